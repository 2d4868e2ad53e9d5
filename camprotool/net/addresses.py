"""``host:port`` text <-> ``(host, port)`` tuples, IPv6 written ``[addr]:port``."""

from __future__ import annotations

import ipaddress


def format_endpoint(addr: tuple | None) -> str:
    """``("127.0.0.1", 9000)`` -> ``127.0.0.1:9000``; IPv6 gets brackets (PROTOCOL.md s.4)."""
    if not addr:
        return ""
    host, port = addr[0], addr[1]
    if ":" in str(host):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def parse_endpoint(text: str, *, default_host: str | None = None) -> tuple[str, int]:
    """Parse ``HOST:PORT`` / ``[v6]:PORT`` (or ``:PORT`` / ``PORT`` with a default host).

    Raises ``ValueError`` with a message fit for one CLI line.
    """
    raw = text.strip()
    host: str | None
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0 or raw[end + 1 : end + 2] != ":":
            raise ValueError(f"bad address {text!r}: expected [IPv6]:PORT")
        host, port_text = raw[1:end], raw[end + 2 :]
    elif ":" in raw:
        host, _, port_text = raw.rpartition(":")
        if ":" in host:
            raise ValueError(f"bad address {text!r}: write IPv6 addresses as [addr]:PORT")
    elif default_host is not None:
        host, port_text = "", raw
    else:
        raise ValueError(f"bad address {text!r}: expected HOST:PORT")
    if not host:
        if default_host is None:
            raise ValueError(f"bad address {text!r}: missing host")
        host = default_host
    if not port_text.isascii() or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"bad address {text!r}: port must be a number 0-65535")
    if any(c.isspace() for c in host):
        raise ValueError(f"bad address {text!r}: spaces in the host")
    return host, int(port_text)


def same_host(a: str, b: str) -> bool:
    """Whether two peer addresses name the same host (``::ffff:1.2.3.4`` == ``1.2.3.4``)."""
    return _canonical(a) == _canonical(b)


def canonical_host(host: str) -> str:
    """One spelling per host (``::ffff:1.2.3.4`` -> ``1.2.3.4``): a key for per-host counters."""
    return _canonical(host)


def _canonical(host: str) -> str:
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host.lower()
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)
