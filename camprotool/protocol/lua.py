"""Generate a Wireshark Lua dissector for the protocol, from the catalogue.

:func:`render_dissector` returns the text of a Lua plugin that registers the
``camproto`` protocol ("SocketCommand camera sync") in Wireshark/tshark. Every
command, field name, field kind, layout, direction and channel it knows comes
from :mod:`camprotool.protocol.catalogue`, so adding a command there and
regenerating is all the dissector needs. Pure string building: no I/O.

What the generated plugin does (details in ``docs/wireshark.md``):

* TCP framing for each dialect: ``line`` (up to LF, one CR dropped, with TCP
  desegmentation), ``lp32le``/``lp32be`` (``dissect_tcp_pdus`` on the 4-byte
  length), or ``auto`` (per TCP stream, from its first bytes). The dialect is a
  preference (``camproto.dialect``) whose default is the ``dialect`` argument.
* Registration on a preference range of TCP ports (``camproto.ports``), in
  "Decode As", and optionally as a TCP heuristic (``camproto_tcp``) that
  recognises a frame by a known command name, on any port.
* Fields ``camproto.command`` (short name), ``camproto.full_name``,
  ``camproto.params``, ``camproto.direction_expected``, ``camproto.channel``,
  one field per catalogue field (``camproto.user``, ``camproto.current`` as an
  unsigned integer, ``camproto.online`` as ``true``/``false``/``null``, ...),
  repeated ``camproto.ids`` and ``camproto.statuses`` items, expert infos on
  malformed parameters and unknown commands, an Info column like
  ``Login user=demo password=***``. Passwords show as ``***`` unless the
  ``camproto.reveal_passwords`` preference is set.
* Text in UTF-8 or GBK (preference ``camproto.encoding``: ``auto`` picks GBK
  for a body that is not valid UTF-8 but is valid GBK). The plugin decodes
  text itself, GBK through a table generated from Python's ``gbk`` codec:
  Wireshark has no ``ENC_GBK``, and up to 4.0 ``TvbRange:string(ENC_GB18030)``
  cuts its UTF-8 result to the input's byte length (so 2-byte GBK characters,
  3 bytes in UTF-8, came out truncated). Wireshark and camprotool therefore
  agree byte for byte on what is text and what is an encoding error.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from camprotool._version import __version__  # not the package root: layers look down
from camprotool.protocol import catalogue
from camprotool.protocol.catalogue import Kind, Layout
from camprotool.protocol.dialect import (
    DEFAULT_HEARTBEAT,
    DEFAULT_MAX_FRAME,
    ENCODINGS,
    FRAMINGS,
    Dialect,
)

__all__ = [
    "DIALECT_CHOICES",
    "PROTO_DESCRIPTION",
    "PROTO_NAME",
    "DissectorField",
    "dissector_fields",
    "fields_markdown",
    "format_ports",
    "lua_string",
    "parse_ports",
    "render_dissector",
]

PROTO_NAME = "camproto"
PROTO_DESCRIPTION = "SocketCommand camera sync"
#: What the ``dialect`` preference offers: the framings, plus per-stream detection.
DIALECT_CHOICES: tuple[str, ...] = (*FRAMINGS, "auto")
ENCODING_CHOICES: tuple[str, ...] = ("auto", "utf-8", "gbk")

_FTYPES = {
    Kind.TEXT: "string",
    Kind.SECRET: "string",
    Kind.CAMERA_ID: "string",
    Kind.STATUS: "string",
    Kind.COUNT: "uint64",
    Kind.PORT: "uint16",
}


@dataclass(frozen=True, slots=True)
class DissectorField:
    """One display-filter field of the generated dissector."""

    abbr: str  # camproto.user
    key: str  # the Lua-side key: user, statuses.online, or a fixed name
    ftype: str  # string, uint64, uint32, uint16
    label: str
    doc: str


# Fields every message may carry, independent of the catalogue's field names.
_FIXED: tuple[tuple[str, str, str, str], ...] = (
    ("command", "string", "Command", "short command name (unknown commands: the raw name)"),
    ("full_name", "string", "Full name",
     "full dotted name of a known command, e.g. SocketCommand.LoginCommand.Login"),
    ("group", "string", "Group", "command group: LoginCommand, NormalCommand, CaramCommand"),
    ("params", "string", "Parameters",
     "the parameter string after the first |, passwords masked unless revealed"),
    ("direction_expected", "string", "Expected direction",
     "who sends this command: c2s, s2c, or push (server to client, unrequested)"),
    ("channel", "string", "Channel", "the connection it belongs on: main or data"),
    ("length", "uint32", "Length", "lp32le/lp32be: body length from the 4-byte prefix"),
    ("encoding", "string", "Text encoding", "utf-8 or gbk, as decoded"),
    ("error", "string", "Error",
     "why the frame or its parameters could not be fully decoded"),
)


def _label(name: str) -> str:
    words = name.replace(".", " ").replace("_", " ").split()
    text = " ".join(words)
    text = re.sub(r"\bid\b", "ID", text)
    text = re.sub(r"\bip\b", "IP", text)
    return text[:1].upper() + text[1:]


def dissector_fields() -> tuple[DissectorField, ...]:
    """Every field the generated dissector registers, fixed ones first, then the
    catalogue's (in catalogue order), then the sub-fields of status lists.

    A field name used by several commands with different kinds is registered as
    a string. A catalogue field named like a fixed field is refused: Wireshark
    cannot register one filter name twice.
    """
    fixed = {name for name, *_ in _FIXED}
    out = [DissectorField(f"{PROTO_NAME}.{n}", n, t, label, doc) for n, t, label, doc in _FIXED]
    kinds: dict[str, set[str]] = {}
    docs: dict[str, str] = {}
    subs: list[DissectorField] = []
    for spec in catalogue.COMMANDS:
        for field in spec.fields:
            if field.name in fixed:
                raise ValueError(
                    f"catalogue field {spec.name}.{field.name} clashes with the dissector's "
                    f"fixed field {PROTO_NAME}.{field.name}; rename it"
                )
            kinds.setdefault(field.name, set()).add(_FTYPES[field.kind])
            repeated = spec.layout in (Layout.IDS, Layout.STATUS_LIST)
            docs.setdefault(field.name,
                            f"repeated, one per item; {field.doc}" if repeated else field.doc)
            if spec.layout is Layout.STATUS_LIST:
                for sub, doc in (("camera_id", "camera id of one id;status pair"),
                                 ("online", "status of one pair: true, false or null")):
                    key = f"{field.name}.{sub}"
                    if all(s.key != key for s in subs):
                        subs.append(DissectorField(f"{PROTO_NAME}.{key}", key, "string",
                                                   _label(sub), doc))
    for name, ftypes in kinds.items():
        ftype = ftypes.pop() if len(ftypes) == 1 else "string"
        out.append(DissectorField(f"{PROTO_NAME}.{name}", name, ftype, _label(name),
                                  docs[name]))
    return (*out, *subs)


def fields_markdown() -> str:
    """The field reference table of ``docs/wireshark.md`` (kept identical by a test)."""
    users: dict[str, list[str]] = {}
    for spec in catalogue.COMMANDS:
        for field in spec.fields:
            users.setdefault(field.name, []).append(spec.name)
            if spec.layout is Layout.STATUS_LIST:
                for sub in ("camera_id", "online"):
                    users.setdefault(f"{field.name}.{sub}", []).append(spec.name)
    lines = ["| field | type | meaning |", "|---|---|---|"]
    for f in dissector_fields():
        doc = f.doc
        if f.key in users:
            doc = f"{doc} ({', '.join(users[f.key])})" if doc else ", ".join(users[f.key])
        doc = doc.replace("|", "\\|")
        lines.append(f"| `{f.abbr}` | {f.ftype} | {doc} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ arguments


def parse_ports(text: str) -> tuple[int, ...]:
    """``"9000,9001-9020"`` -> sorted unique ports; ``ValueError`` naming the bad part."""
    ports: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi if sep else lo)
        except ValueError:
            raise ValueError(f"bad port {part!r}: expected a port or a range like 9001-9020") \
                from None
        if not 0 < first <= last <= 65535:
            raise ValueError(f"bad port {part!r}: ports are 1-65535, ranges low-high")
        ports.update(range(first, last + 1))
    return tuple(sorted(ports))


def format_ports(ports: Iterable[int] | str) -> str:
    """Ports as Wireshark's range syntax, compacted: ``9000,9001-9020`` -> ``9000-9020``."""
    values: list[int]
    if isinstance(ports, str):
        values = list(parse_ports(ports))
    else:
        given: list[int] = []
        for p in ports:
            if isinstance(p, bool) or not isinstance(p, int) or not 0 < p <= 65535:
                raise ValueError(f"bad port {p!r}: ports are integers 1-65535")
            given.append(p)
        values = sorted(set(given))
    runs: list[list[int]] = []
    for p in values:
        if runs and p == runs[-1][1] + 1:
            runs[-1][1] = p
        else:
            runs.append([p, p])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _resolve_dialect(dialect: str | Dialect) -> tuple[str, str, str, int]:
    """-> (framing or auto, encoding preference, heartbeat name, max frame)."""
    if isinstance(dialect, Dialect):
        return dialect.framing, dialect.encoding, dialect.heartbeat_name, dialect.max_frame
    text = str(dialect).strip().lower()
    framing, sep, enc = text.partition(":")
    if framing not in DIALECT_CHOICES:
        raise ValueError(f"unknown dialect {dialect!r}: expected {', '.join(DIALECT_CHOICES)}, "
                         "optionally followed by :utf-8 or :gbk")
    if framing == "auto":
        encoding = ENCODINGS.get(enc) if sep else "auto"
        if encoding is None:
            raise ValueError(f"unknown encoding {enc!r} in dialect {dialect!r}: "
                             "expected utf-8 or gbk")
        return "auto", encoding, DEFAULT_HEARTBEAT, DEFAULT_MAX_FRAME
    parsed = Dialect.parse(text)  # LocalProtocolError (a ValueError) names the problem
    return (parsed.framing, parsed.encoding if sep else "auto", parsed.heartbeat_name,
            parsed.max_frame)


# ------------------------------------------------------------------ Lua text


def lua_string(text: str) -> str:
    """A Lua string literal for ``text`` (UTF-8 kept; quotes, backslashes and
    control characters escaped)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\{code:03d}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _commands_lua() -> str:
    lines = []
    for spec in catalogue.COMMANDS:
        fields = "".join(
            f"\n          {{ name = {lua_string(f.name)}, kind = {lua_string(f.kind.value)} }},"
            for f in spec.fields
        )
        lines.append(
            f"    {{ number = {spec.number}, group = {lua_string(spec.group)}, "
            f"name = {lua_string(spec.name)},\n"
            f"      full = {lua_string(spec.full_name)},\n"
            f"      direction = {lua_string(spec.direction.value)}, "
            f"channel = {lua_string(spec.channel.value)}, "
            f"layout = {lua_string(spec.layout.value)},\n"
            f"      fields = {{{fields} }} }},"
        )
    return "\n".join(lines)


def _fields_lua() -> str:
    return "\n".join(
        f"    {{ abbr = {lua_string(f.abbr)}, key = {lua_string(f.key)}, "
        f"ftype = {lua_string(f.ftype)}, label = {lua_string(f.label)},\n"
        f"      doc = {lua_string(f.doc)} }},"
        for f in dissector_fields()
    )


@functools.cache
def _gbk_rows_lua() -> str:
    rows = []
    for lead in range(0x81, 0xFF):
        chars = []
        for trail in range(0x40, 0xFF):
            try:
                chars.append(bytes((lead, trail)).decode("gbk"))
            except UnicodeDecodeError:
                chars.append("\ufffd")
        rows.append(f"    {lua_string(''.join(chars))}, -- 0x{lead:02X}")
    return "\n".join(rows)


#: the rendered dissector shipped in the package (``camprotool/protocol/camproto.lua``,
#: the defaults of ``camprotool dissector``), for Lua tools and ``wireshark -X lua_script:``
PACKAGED_DISSECTOR = "camproto.lua"


def packaged_dissector() -> Path:
    """Where the installed package keeps its rendered ``camproto.lua`` (a data file, kept
    current by ``scripts/render_generated.py`` and a test)."""
    return Path(__file__).resolve().with_name(PACKAGED_DISSECTOR)


def render_dissector(
    dialect: str | Dialect = "line",
    ports: Iterable[int] | str = (9000,),
    heuristic: bool = True,
) -> str:
    """The Lua source of the ``camproto`` Wireshark dissector.

    ``dialect``: ``line``, ``lp32le``, ``lp32be`` or ``auto``, optionally with
    ``:utf-8``/``:gbk`` (without it the encoding preference defaults to
    ``auto``), or a :class:`Dialect` (its heartbeat name and maximum frame size
    become preference defaults too). ``ports``: the TCP ports registered by
    default (ints, or text like ``"9000,9001-9020"``; may be empty).
    ``heuristic``: also register the ``camproto_tcp`` heuristic dissector.
    Raises ``ValueError`` on a bad dialect or port.
    """
    framing, encoding, heartbeat, max_frame = _resolve_dialect(dialect)
    port_text = format_ports(ports)
    values = {
        "@VERSION@": __version__,
        "@DIALECT@": lua_string(framing),
        "@DIALECT_NAME@": framing if encoding == "auto" else f"{framing}:{encoding}",
        "@ENCODING@": lua_string(encoding),
        "@PORTS@": lua_string(port_text),
        "@PORTS_NAME@": port_text or "none",
        "@HEURISTIC@": "true" if heuristic else "false",
        "@HEURISTIC_NAME@": "on" if heuristic else "off",
        "@HEARTBEAT_SHORT@": lua_string(catalogue.HEARTBEAT),
        "@HEARTBEAT@": lua_string(heartbeat),
        "@MAX_FRAME@": str(max_frame),
        "@MAX_STATUS_IDS@": str(catalogue.MAX_STATUS_IDS),
        "@PROTO_NAME@": lua_string(PROTO_NAME),
        "@PROTO_DESCRIPTION@": lua_string(PROTO_DESCRIPTION),
        "@DIALECTS@": ", ".join(lua_string(d) for d in DIALECT_CHOICES),
        "@ENCODINGS@": ", ".join(lua_string(e) for e in ENCODING_CHOICES),
        "@COMMANDS@": _commands_lua(),
        "@FIELDS@": _fields_lua(),
        "@GBK_ROWS@": _gbk_rows_lua(),
    }
    return re.sub(r"@[A-Z_]+@", lambda m: values[m.group(0)], _TEMPLATE)


_TEMPLATE = r"""-- camproto.lua: Wireshark dissector for the SocketCommand camera sync protocol.
--
-- Generated by camprotool @VERSION@ from camprotool/protocol/catalogue.py: do not edit,
-- regenerate with `camprotool dissector -o camproto.lua` (defaults baked in here:
-- dialect @DIALECT_NAME@, ports @PORTS_NAME@, heuristic @HEURISTIC_NAME@).
--
-- Load it with `wireshark -X lua_script:camproto.lua` (tshark too), or copy it into
-- the personal Lua plugins folder (Help > About Wireshark > Folders). Preferences:
-- Edit > Preferences > Protocols > CAMPROTO, or `-o camproto.dialect:lp32le`,
-- `-o camproto.ports:9000-9020`, `-o camproto.encoding:gbk`,
-- `-o camproto.reveal_passwords:TRUE`. Field reference: docs/wireshark.md.
-- Written for Lua 5.1 to 5.4; tested with tshark 4.0 (tests/protocol/test_lua.py).

local camproto = Proto(@PROTO_NAME@, @PROTO_DESCRIPTION@)

-- ------------------------------------------------------------ generated from the catalogue
local DEFAULT_DIALECT = @DIALECT@
local DEFAULT_ENCODING = @ENCODING@
local DEFAULT_PORTS = @PORTS@
local DEFAULT_HEARTBEAT = @HEARTBEAT@
local DEFAULT_MAX_FRAME = @MAX_FRAME@
local REGISTER_HEURISTIC = @HEURISTIC@
local HEARTBEAT = @HEARTBEAT_SHORT@
local MAX_STATUS_IDS = @MAX_STATUS_IDS@
local DIALECTS = { @DIALECTS@ }
local ENCODINGS = { @ENCODINGS@ }

local COMMANDS = {
@COMMANDS@
}

local FIELDS = {
@FIELDS@
}

-- GBK_ROWS[lead - 0x80]: the characters of GBK bytes (lead, 0x40) .. (lead, 0xFE), from
-- Python's gbk codec; U+FFFD marks byte pairs that are not GBK.
local GBK_ROWS = {
@GBK_ROWS@
}
-- ------------------------------------------------------------ end of generated part

local MASK = "***"
local INFO_VALUE_MAX = 48
local HEUR_PEEK = 256

-- ------------------------------------------------------------ fields, experts, prefs
local pf = {}
local field_list = {}
local ftype_of = {}
for _, d in ipairs(FIELDS) do
    local f
    if d.ftype == "uint64" then
        f = ProtoField.uint64(d.abbr, d.label, base.DEC, nil, nil, d.doc)
    elseif d.ftype == "uint32" then
        f = ProtoField.uint32(d.abbr, d.label, base.DEC, nil, nil, d.doc)
    elseif d.ftype == "uint16" then
        f = ProtoField.uint16(d.abbr, d.label, base.DEC, nil, nil, d.doc)
    else
        f = ProtoField.string(d.abbr, d.label, base.UNICODE, d.doc)
    end
    pf[d.key] = f
    ftype_of[d.key] = d.ftype
    field_list[#field_list + 1] = f
end
camproto.fields = field_list

local ef = {
    malformed = ProtoExpert.new("camproto.malformed", "Malformed parameters",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_frame = ProtoExpert.new("camproto.bad_frame", "Frame could not be decoded",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_encoding = ProtoExpert.new("camproto.bad_encoding", "Text is not valid in its encoding",
        expert.group.MALFORMED, expert.severity.WARN),
    unknown_command = ProtoExpert.new("camproto.unknown_command", "Unknown command",
        expert.group.UNDECODED, expert.severity.WARN),
    too_many_ids = ProtoExpert.new("camproto.too_many_ids", "Too many camera ids in one query",
        expert.group.PROTOCOL, expert.severity.WARN),
    no_free_port = ProtoExpert.new("camproto.no_free_port", "Server has no free data port",
        expert.group.RESPONSE_CODE, expert.severity.NOTE),
}
camproto.experts = { ef.malformed, ef.bad_frame, ef.bad_encoding, ef.unknown_command,
    ef.too_many_ids, ef.no_free_port }

local function enum_of(names, descriptions)
    local t = {}
    for i, n in ipairs(names) do t[i] = { n, descriptions[n] or n, i } end
    return t
end
local function index_of(names, name)
    for i, n in ipairs(names) do if n == name then return i end end
    return 1
end

camproto.prefs.dialect = Pref.enum("Dialect (framing)", index_of(DIALECTS, DEFAULT_DIALECT),
    "How frames are delimited: line (body + CRLF), lp32le / lp32be (4-byte length, then the "
    .. "body), or auto (detected per TCP stream from its first bytes)",
    enum_of(DIALECTS, { line = "line: body + CRLF", lp32le = "lp32le: 4-byte little-endian length",
        lp32be = "lp32be: 4-byte big-endian length", auto = "auto: detect per TCP stream" }),
    false)
camproto.prefs.encoding = Pref.enum("Text encoding", index_of(ENCODINGS, DEFAULT_ENCODING),
    "utf-8, gbk, or auto: GBK for a body that is not valid UTF-8 but is valid GBK",
    enum_of(ENCODINGS, { auto = "auto: UTF-8, else GBK", ["utf-8"] = "UTF-8", gbk = "GBK" }),
    false)
camproto.prefs.ports = Pref.range("TCP ports", DEFAULT_PORTS,
    "TCP ports decoded as camproto (main and data ports), e.g. 9000,9001-9020", 65535)
camproto.prefs.reveal_passwords = Pref.bool("Reveal passwords", false,
    "Show account and camera passwords instead of ***")
camproto.prefs.heartbeat = Pref.string("Heartbeat command name", DEFAULT_HEARTBEAT,
    "The name the deployment uses for the heartbeat (full or short)")
camproto.prefs.max_frame = Pref.uint("Maximum frame size", DEFAULT_MAX_FRAME,
    "Longest frame body accepted, in bytes; longer frames are reported, not buffered")

-- ------------------------------------------------------------ command names
local BY_SHORT = {}
local KNOWN_NAMES = {}
for _, c in ipairs(COMMANDS) do
    BY_SHORT[c.name] = c
    KNOWN_NAMES[#KNOWN_NAMES + 1] = c.name
    KNOWN_NAMES[#KNOWN_NAMES + 1] = c.full
end

local function trim(s)
    return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

local function split_plain(s, sep)
    local out, i = {}, 1
    while true do
        local j = s:find(sep, i, true)
        if not j then
            out[#out + 1] = s:sub(i)
            return out
        end
        out[#out + 1] = s:sub(i, j - 1)
        i = j + 1
    end
end

-- "A. B" -> "A.B" (readers accept whitespace around the dots).
local function normalize_name(raw)
    if not raw:find("[ \t]") then return raw end
    local parts = split_plain(trim(raw), ".")
    for k, p in ipairs(parts) do parts[k] = trim(p) end
    return table.concat(parts, ".")
end

local function short_of(name)
    return name:match("([^.]*)$")
end

local function heartbeat_name()
    local hb = camproto.prefs.heartbeat
    if hb == nil or hb == "" then return nil end
    return normalize_name(hb)
end

-- The command spec for a full or short name, or nil.
local function lookup(raw)
    local name = normalize_name(raw)
    local short = short_of(name)
    local spec = BY_SHORT[short]
    if spec and (name == short or name == spec.full) then return spec end
    local wanted = heartbeat_name()
    if wanted and BY_SHORT[HEARTBEAT] and (name == wanted or name == short_of(wanted)) then
        return BY_SHORT[HEARTBEAT]
    end
    return nil
end

-- A dotted identifier, whitespace allowed around the dots.
local function is_name(raw)
    for _, part in ipairs(split_plain(raw, ".")) do
        if not trim(part):match("^[A-Za-z_][A-Za-z0-9_]*$") then return false end
    end
    return true
end

-- Could `text` (a frame cut short) be the beginning of a known command name?
local function is_name_prefix(text, min_len)
    local t = text:gsub("%s", "")
    if #t < min_len then return false end
    for _, n in ipairs(KNOWN_NAMES) do
        if n:sub(1, #t) == t then return true end
    end
    local wanted = heartbeat_name()
    if wanted and (wanted:sub(1, #t) == t or short_of(wanted):sub(1, #t) == t) then
        return true
    end
    return false
end

-- ------------------------------------------------------------ text encodings
-- Decoding is done here, not with TvbRange:string(): Wireshark has no ENC_GBK, and up
-- to 4.0 TvbRange:string(ENC_GB18030) (or ENC_UTF_8 on invalid bytes) returns only as
-- many bytes as it read, cutting the UTF-8 text short. The GBK table is Python's gbk
-- codec, so Wireshark and camprotool agree on every byte.
local REPLACEMENT = "\239\191\189" -- U+FFFD

-- Length of the valid UTF-8 sequence starting at s[i], or nil.
local function utf8_seq(s, i)
    local c = s:byte(i)
    local need, lo, hi = 0, 0x80, 0xBF
    if c < 0x80 then
        return 1
    elseif c >= 0xC2 and c <= 0xDF then
        need = 1
    elseif c >= 0xE0 and c <= 0xEF then
        need = 2
        if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
    elseif c >= 0xF0 and c <= 0xF4 then
        need = 3
        if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
    else
        return nil
    end
    for k = 1, need do
        local b = s:byte(i + k)
        if b == nil then return nil end
        if k == 1 then
            if b < lo or b > hi then return nil end
        elseif b < 0x80 or b > 0xBF then
            return nil
        end
    end
    return need + 1
end

-- -> text (invalid bytes replaced by U+FFFD), 0-based offset of the first error or nil
local function utf8_decode(s)
    local i, n, err = 1, #s, nil
    local out = nil
    while i <= n do
        local len = utf8_seq(s, i)
        if len then
            if out then out[#out + 1] = s:sub(i, i + len - 1) end
            i = i + len
        else
            if out == nil then out = { s:sub(1, i - 1) } end
            err = err or (i - 1)
            out[#out + 1] = REPLACEMENT
            i = i + 1
        end
    end
    if out == nil then return s, nil end
    return table.concat(out), err
end

local gbk_cache = {}
local function gbk_row(lead)
    local row = gbk_cache[lead]
    if row == nil then
        row = {}
        for ch in GBK_ROWS[lead - 0x80]:gmatch("[\1-\127\194-\244][\128-\191]*") do
            row[#row + 1] = ch
        end
        gbk_cache[lead] = row
    end
    return row
end

local function gbk_decode(s)
    local out, i, n, err = {}, 1, #s, nil
    while i <= n do
        local c = s:byte(i)
        if c < 0x80 then
            local j = s:find("[\128-\255]", i) or (n + 1)
            out[#out + 1] = s:sub(i, j - 1)
            i = j
        else
            local b = s:byte(i + 1)
            local ch = nil
            if c >= 0x81 and c <= 0xFE and b and b >= 0x40 and b <= 0xFE then
                ch = gbk_row(c)[b - 0x3F]
                if ch == REPLACEMENT then ch = nil end
            end
            if ch then
                out[#out + 1] = ch
                i = i + 2
            else
                err = err or (i - 1)
                out[#out + 1] = REPLACEMENT
                i = i + 1
            end
        end
    end
    return table.concat(out), err
end

local DECODERS = { ["utf-8"] = utf8_decode, gbk = gbk_decode }

-- -> "utf-8" or "gbk", and an error text or nil
local function choose_encoding(raw)
    local pref = ENCODINGS[camproto.prefs.encoding] or "auto"
    if not raw:find("[\128-\255]") then
        return (pref == "gbk") and "gbk" or "utf-8", nil
    end
    if pref == "auto" then
        local _, uerr = utf8_decode(raw)
        if uerr == nil then return "utf-8", nil end
        local _, gerr = gbk_decode(raw)
        if gerr == nil then return "gbk", nil end
        return "utf-8", "invalid utf-8 at byte " .. uerr
    end
    local _, err = DECODERS[pref](raw)
    if err then return pref, "invalid " .. pref .. " at byte " .. err end
    return pref, nil
end

-- ------------------------------------------------------------ a frame body, as spans
-- A context describes one body: ctx.raw (its bytes), ctx.base (its tvb offset),
-- ctx.gbk (split GBK-aware: a GBK trail byte may equal '|' or ';').
local function find_byte(ctx, b, i, j)
    local raw = ctx.raw
    if not ctx.gbk then
        local p = raw:find(string.char(b), i, true)
        if p and p <= j then return p end
        return nil
    end
    while i <= j do
        local c = raw:byte(i)
        if c >= 0x81 and c <= 0xFE then
            i = i + 2
        elseif c == b then
            return i
        else
            i = i + 1
        end
    end
    return nil
end

-- Split raw[i..j] at byte b: a list of {first, last} (last = first - 1 when empty).
local function split_span(ctx, i, j, b)
    local out = {}
    while true do
        local p = find_byte(ctx, b, i, j)
        if not p then
            out[#out + 1] = { i, j }
            return out
        end
        out[#out + 1] = { i, p - 1 }
        i = p + 1
    end
end

local function span_text(ctx, i, j)
    if j < i then return "" end
    return (DECODERS[ctx.enc](ctx.raw:sub(i, j)))
end

local function span_range(ctx, i, j)
    return ctx.tvb(ctx.base + i - 1, j - i + 1)
end

local function quoted(text)
    return "'" .. text .. "'"
end

-- ------------------------------------------------------------ typed field values
local INT64_MAX = "9223372036854775807"

local function count_error(text)
    if not text:match("^%d+$") then return quoted(text) .. " is not a non-negative integer" end
    local digits = text:gsub("^0+", "")
    if #digits > #INT64_MAX or (#digits == #INT64_MAX and digits > INT64_MAX) then
        return quoted(text) .. " is too large"
    end
    return nil
end

-- One field: -> item (or nil when the value could not be typed), error text or nil.
local function typed_item(ctx, name, kind, i, j)
    local text = span_text(ctx, i, j)
    local item = { key = name, i = i, j = j, shown = text }
    if kind == "secret" then
        if not ctx.reveal then item.shown = MASK end
        item.value = item.shown
    elseif kind == "count" then
        local err = count_error(text)
        if err then return nil, name .. ": " .. err end
        item.value = UInt64(text)
    elseif kind == "port" then
        if text == "" then
            item.empty_port = true
            return item, nil
        end
        if not text:match("^%d+$") then
            return nil, name .. ": " .. quoted(text) .. " is not a port number"
        end
        local digits = text:gsub("^0+", "")
        if digits == "" then digits = "0" end
        if #digits > 5 or tonumber(digits) < 1 or tonumber(digits) > 65535 then
            return nil, name .. ": " .. digits .. " is outside 1-65535"
        end
        item.value = tonumber(digits)
        item.shown = digits
    elseif kind == "status" then
        local low = text:lower()
        if low ~= "true" and low ~= "false" and low ~= "null" then
            return nil, name .. ": " .. quoted(text) .. " is not true, false or null"
        end
        item.value = low
        item.shown = low
    else
        item.value = text
    end
    return item, nil
end

local function join_errors(errs)
    if #errs == 0 then return nil end
    return table.concat(errs, "; ")
end

local function parse_pipe(ctx, spec, i, j)
    local fields = spec.fields
    local n = #fields
    if n == 0 then return {}, nil end
    local spans
    if n == 1 then
        spans = { { i, j } }
    else
        spans = split_span(ctx, i, j, 124)
        local at
        for k, f in ipairs(fields) do if f.name == "reason" then at = k end end
        if #spans > n and at then
            -- A free-text reason may itself contain '|': it takes the surplus.
            local surplus = #spans - n
            local merged = {}
            for k, s in ipairs(spans) do
                if k == at then
                    merged[#merged + 1] = { s[1], spans[at + surplus][2] }
                elseif k < at or k > at + surplus then
                    merged[#merged + 1] = s
                end
            end
            spans = merged
        end
    end
    if #spans ~= n then
        local names = {}
        for k, f in ipairs(fields) do names[k] = f.name end
        return {}, string.format("expected %d fields (%s), got %d", n,
            table.concat(names, "|"), #spans)
    end
    local items, errs = {}, {}
    for k, f in ipairs(fields) do
        local item, err = typed_item(ctx, f.name, f.kind, spans[k][1], spans[k][2])
        if item then items[#items + 1] = item end
        if err then errs[#errs + 1] = err end
    end
    return items, join_errors(errs)
end

local function parse_ids(ctx, spec, i, j)
    local name = spec.fields[1].name
    local items = {}
    for _, s in ipairs(split_span(ctx, i, j, 59)) do
        if s[2] >= s[1] then
            local item = typed_item(ctx, name, "camera_id", s[1], s[2])
            items[#items + 1] = item
        end
    end
    if #items == 0 then return items, name .. ": no camera id" end
    return items, nil
end

local function parse_status_list(ctx, spec, i, j)
    local name = spec.fields[1].name
    local items, errs = {}, {}
    local spans = split_span(ctx, i, j, 124)
    if spans[#spans][2] < spans[#spans][1] then spans[#spans] = nil end -- trailing '|'
    for k, s in ipairs(spans) do
        local semi = find_byte(ctx, 59, s[1], s[2])
        if not semi or find_byte(ctx, 59, semi + 1, s[2]) then
            errs[#errs + 1] = string.format("%s: item %d %s is not id;status", name, k,
                quoted(span_text(ctx, s[1], s[2])))
        else
            local st, err = typed_item(ctx, name .. ".online", "status", semi + 1, s[2])
            if err then
                errs[#errs + 1] = string.format("%s: item %d: %s", name, k,
                    (err:gsub("^[^:]*: ", "")))
            else
                local cam = typed_item(ctx, name .. ".camera_id", "camera_id", s[1], semi - 1)
                items[#items + 1] = { key = name, i = s[1], j = s[2], pair = { cam, st },
                    value = cam.shown .. ";" .. st.shown, shown = cam.shown .. ";" .. st.shown }
            end
        end
    end
    if #spans == 0 then errs[#errs + 1] = name .. ": no id;status pair" end
    return items, join_errors(errs)
end

local function parse_colon_pair(ctx, spec, i, j)
    local first, second = spec.fields[1], spec.fields[2]
    local c = find_byte(ctx, 58, i, j)
    if not c then
        return {}, string.format("expected %s:%s, got %s", first.name, second.name,
            quoted(span_text(ctx, i, j)))
    end
    local items = { (typed_item(ctx, first.name, first.kind == "secret" and "secret" or "text",
        i, c - 1)) }
    local item, err = typed_item(ctx, second.name, second.kind, c + 1, j)
    if item then items[#items + 1] = item end
    return items, err
end

local PARSERS = { pipe = parse_pipe, ids = parse_ids, status_list = parse_status_list,
    colon_pair = parse_colon_pair }

-- params with secret fields masked, as camprotool's tables do it
local function masked_params(spec, params)
    if spec == nil or spec.layout ~= "pipe" then return params end
    local positions = {}
    for k, f in ipairs(spec.fields) do
        if f.kind == "secret" then positions[#positions + 1] = k end
    end
    if #positions == 0 then return params end
    local parts = split_plain(params, "|")
    if #parts ~= #spec.fields then
        if #parts > 1 then return parts[1] .. "|" .. MASK end
        return MASK
    end
    for _, k in ipairs(positions) do parts[k] = MASK end
    return table.concat(parts, "|")
end

-- ------------------------------------------------------------ columns
local function short_value(text)
    if #text <= INFO_VALUE_MAX then return text end
    local cut = INFO_VALUE_MAX
    while cut > 0 and (text:byte(cut + 1) or 0) >= 0x80 and text:byte(cut + 1) < 0xC0 do
        cut = cut - 1 -- never cut inside a UTF-8 sequence
    end
    return text:sub(1, cut) .. "..."
end

local function add_info(pinfo, text)
    pinfo.cols.protocol:set("CAMPROTO")
    if pinfo.private.camproto_info == "1" then
        pinfo.cols.info:append(", " .. text)
    else
        pinfo.cols.info:set(text)
        pinfo.private.camproto_info = "1"
    end
end

-- ------------------------------------------------------------ one message
local function add_length(t, len_range, le)
    if len_range == nil then return end
    if le then t:add_le(pf.length, len_range) else t:add(pf.length, len_range) end
end

-- A frame that carries no readable command (empty, too long).
local function dissect_bad_frame(tvb, pinfo, tree, off, len, len_range, le, why)
    local t = tree:add(camproto, tvb(off, len))
    add_length(t, len_range, le)
    t:add(pf.error, tvb(off, len), why):set_generated()
    t:add_proto_expert_info(ef.bad_frame, why)
    t:append_text(", " .. why)
    add_info(pinfo, "[" .. why .. "]")
end

local function dissect_message(tvb, pinfo, tree, frame_off, frame_len, body_off, body_len,
                               len_range, le)
    local t = tree:add(camproto, tvb(frame_off, frame_len))
    add_length(t, len_range, le)
    local raw = tvb:raw(body_off, body_len)
    local enc, enc_err = choose_encoding(raw)
    local ctx = { tvb = tvb, base = body_off, raw = raw, enc = enc, gbk = (enc == "gbk"),
        reveal = camproto.prefs.reveal_passwords }
    local errors = {}
    local body_range = tvb(body_off, body_len)
    t:add(pf.encoding, body_range, enc):set_generated()
    if enc_err then
        errors[#errors + 1] = enc_err
        t:add_proto_expert_info(ef.bad_encoding, enc_err)
    end

    local bar = find_byte(ctx, 124, 1, #raw)
    local name_last = bar and bar - 1 or #raw
    local p_first = bar and bar + 1 or #raw + 1
    local name_text = span_text(ctx, 1, name_last)
    local name_range = span_range(ctx, 1, name_last)
    local params_text = span_text(ctx, p_first, #raw)
    local params_range = span_range(ctx, p_first, #raw)

    local spec = lookup(name_text)
    local command, unknown = nil, false
    if spec then
        command = spec.name
        t:add(pf.command, name_range, spec.name)
        t:add(pf.full_name, name_range, spec.full)
        t:add(pf.group, name_range, spec.group):set_generated()
        t:add(pf.direction_expected, name_range, spec.direction):set_generated()
        t:add(pf.channel, name_range, spec.channel):set_generated()
    elseif is_name(name_text) then
        command = normalize_name(name_text)
        unknown = true
        t:add(pf.command, name_range, command)
        t:add_proto_expert_info(ef.unknown_command, "unknown command " .. command)
    else
        command = name_text
        local why = "not a command name: " .. quoted(name_text:sub(1, 40))
        errors[#errors + 1] = why
        t:add(pf.command, name_range, command)
        t:add_proto_expert_info(ef.bad_frame, why)
    end

    local items, perr = {}, nil
    if spec then items, perr = PARSERS[spec.layout](ctx, spec, p_first, #raw) end

    local shown_params = params_text
    if not ctx.reveal then
        if spec then
            shown_params = masked_params(spec, params_text)
        elseif #errors > 0 and params_text ~= "" then
            shown_params = MASK -- unreadable: a password may be anywhere in it
        end
    end
    t:add(pf.params, params_range, shown_params)

    local info_parts, by_key = { command }, {}
    for _, item in ipairs(items) do
        local r = span_range(ctx, item.i, item.j)
        if item.pair then
            local sub = t:add(pf[item.key], r, item.shown)
            for _, p in ipairs(item.pair) do
                sub:add(pf[p.key], span_range(ctx, p.i, p.j), p.shown)
            end
        elseif item.empty_port then
            t:add_proto_expert_info(ef.no_free_port,
                "empty " .. item.key .. ": the server has no free data port")
        elseif ftype_of[item.key] == "string" then
            t:add(pf[item.key], r, item.shown)
        else
            t:add(pf[item.key], r, item.value)
        end
        if by_key[item.key] == nil then
            by_key[item.key] = {}
            info_parts[#info_parts + 1] = item.key
        end
        local list = by_key[item.key]
        list[#list + 1] = item.shown
    end
    for k = 2, #info_parts do
        local key = info_parts[k]
        local sep = (spec and spec.layout == "ids") and ";" or "|"
        info_parts[k] = key .. "=" .. short_value(table.concat(by_key[key], sep))
    end
    if spec and spec.layout == "ids" and #items > MAX_STATUS_IDS then
        t:add_proto_expert_info(ef.too_many_ids, string.format(
            "%d ids, the protocol allows at most %d per query", #items, MAX_STATUS_IDS))
    end
    if perr then
        errors[#errors + 1] = perr
        t:add_proto_expert_info(ef.malformed, perr)
    end
    if not spec and params_text ~= "" then
        info_parts[#info_parts + 1] = short_value(shown_params)
    end
    if #errors > 0 then
        t:add(pf.error, body_range, table.concat(errors, "; ")):set_generated()
    end

    local info = table.concat(info_parts, " ")
    if unknown then info = info .. " [unknown command]" end
    if #errors > 0 then info = info .. " [malformed]" end
    t:append_text(", " .. info)
    add_info(pinfo, info)
end

-- ------------------------------------------------------------ framing
local function max_frame()
    return camproto.prefs.max_frame or DEFAULT_MAX_FRAME
end

local function dissect_lines(tvb, pinfo, tree)
    local n = tvb:len()
    local data = tvb:raw(0, n)
    local offset = 0
    while offset < n do
        local lf = data:find("\n", offset + 1, true)
        if not lf then
            if n - offset > max_frame() then
                dissect_bad_frame(tvb, pinfo, tree, offset, n - offset, nil, false, string.format(
                    "line of more than %d bytes without a line feed", max_frame()))
                return n
            end
            pinfo.desegment_offset = offset
            pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
            return n
        end
        local frame_len = lf - offset
        local body_len = frame_len - 1
        if body_len > 0 and data:byte(offset + body_len) == 13 then body_len = body_len - 1 end
        if body_len > max_frame() then
            dissect_bad_frame(tvb, pinfo, tree, offset, frame_len, nil, false, string.format(
                "line of %d bytes exceeds the %d-byte limit", body_len, max_frame()))
        elseif body_len > 0 then -- empty lines carry nothing
            dissect_message(tvb, pinfo, tree, offset, frame_len, offset, body_len, nil, false)
        end
        offset = lf
    end
    return n
end

local function lp_length(tvb, offset, le)
    local r = tvb(offset, 4)
    if le then return r:le_uint() end
    return r:uint()
end

local function lp_get_len(le)
    return function(tvb, pinfo, offset)
        local len = lp_length(tvb, offset, le)
        if len > max_frame() then return tvb:len() - offset end -- broken stream: take it all
        return 4 + len
    end
end

local function lp_pdu(le)
    return function(tvb, pinfo, tree)
        local len = lp_length(tvb, 0, le)
        local len_range = tvb(0, 4)
        if len == 0 then
            dissect_bad_frame(tvb, pinfo, tree, 0, 4, len_range, le, "empty frame (length 0)")
        elseif len > max_frame() then
            dissect_bad_frame(tvb, pinfo, tree, 0, tvb:len(), len_range, le, string.format(
                "length %d exceeds the %d-byte limit", len, max_frame()))
        else
            dissect_message(tvb, pinfo, tree, 0, 4 + len, 4, len, len_range, le)
        end
        return tvb:len()
    end
end

local LP = {
    lp32le = { get_len = lp_get_len(true), pdu = lp_pdu(true) },
    lp32be = { get_len = lp_get_len(false), pdu = lp_pdu(false) },
}

local function dissect_framed(framing, tvb, pinfo, tree)
    local lp = LP[framing]
    if lp == nil then return dissect_lines(tvb, pinfo, tree) end
    dissect_tcp_pdus(tvb, tree, 4, lp.get_len, lp.pdu)
    return tvb:len()
end

-- ------------------------------------------------------------ detection
-- Does `text` start like a frame body? `complete`: the whole body is in `text`.
local function looks_like_body(text, complete, min_prefix)
    local stop = text:find("[|\r\n]")
    if stop then return stop > 1 and lookup(text:sub(1, stop - 1)) ~= nil end
    if complete then return text ~= "" and lookup(text) ~= nil end
    return is_name_prefix(text, min_prefix)
end

-- The framing of a stream from its first bytes, or nil.
local function detect(tvb)
    local n = tvb:len()
    if n == 0 then return nil end
    local head = tvb:raw(0, math.min(n, HEUR_PEEK))
    if #head >= 4 then
        local b1, b2, b3, b4 = head:byte(1, 4)
        local candidates = { { "lp32le", b1 + b2 * 256 + b3 * 65536 + b4 * 16777216 },
            { "lp32be", b4 + b3 * 256 + b2 * 65536 + b1 * 16777216 } }
        for _, cand in ipairs(candidates) do
            local len = cand[2]
            if len >= 1 and len <= max_frame() then
                local body = head:sub(5, 4 + len)
                if looks_like_body(body, #body >= len, 3) then return cand[1] end
            end
        end
    end
    if looks_like_body(head, false, 4) then return "line" end
    return nil
end

local f_tcp_stream = Field.new("tcp.stream")
local stream_framing = {}

local function stream_key(pinfo)
    local all = { f_tcp_stream() }
    local fi = all[#all]
    if fi == nil then return nil end
    return tostring(fi.value)
end

local function framing_for(tvb, pinfo)
    local key = stream_key(pinfo)
    if key and stream_framing[key] then return stream_framing[key] end
    local framing = DIALECTS[camproto.prefs.dialect] or DEFAULT_DIALECT
    if framing == "auto" then
        local found = detect(tvb)
        if found and key then stream_framing[key] = found end
        framing = found or "line"
    end
    return framing
end

function camproto.init()
    stream_framing = {}
end

function camproto.dissector(tvb, pinfo, tree)
    if tvb:len() == 0 then return 0 end
    return dissect_framed(framing_for(tvb, pinfo), tvb, pinfo, tree)
end

-- A TCP payload on any port whose first bytes are a frame of a known command:
-- the whole TCP conversation becomes camproto, in the framing seen.
local function heuristic(tvb, pinfo, tree)
    local framing = detect(tvb)
    if framing == nil then return false end
    local key = stream_key(pinfo)
    if key then stream_framing[key] = framing end
    -- Wireshark up to 4.0 takes a Proto here; later versions may want a Dissector.
    if not pcall(function() pinfo.conversation = camproto end) then
        pcall(function() pinfo.conversation = Dissector.get("camproto") end)
    end
    dissect_framed(framing, tvb, pinfo, tree)
    return true
end

-- ------------------------------------------------------------ registration
local tcp_port = DissectorTable.get("tcp.port")
local registered_ports = ""

local function register_ports()
    if registered_ports ~= "" then tcp_port:remove(registered_ports, camproto) end
    registered_ports = tostring(camproto.prefs.ports or "")
    if registered_ports ~= "" then tcp_port:add(registered_ports, camproto) end
end

function camproto.prefs_changed()
    register_ports()
end

tcp_port:add_for_decode_as(camproto)
register_ports()
if REGISTER_HEURISTIC then
    camproto:register_heuristic("tcp", heuristic)
end
"""
