"""pyshark, for people who already use it: captures with the ``camproto`` dissector loaded.

:func:`pyshark_capture` opens a pyshark ``FileCapture`` (a file) or
``LiveCapture`` (an interface) whose tshark runs the Lua dissector camprotool
generates from its catalogue (:mod:`camprotool.protocol.lua`, the one
``camprotool dissector`` writes), so every protocol message is a ``camproto``
layer::

    cap = cpt.pyshark_capture("captures/sample.pcapng")
    for pkt in cap:
        if "camproto" in pkt:
            print(pkt.number, pkt.camsync.command, pkt.camsync.camera_id)

The layer is named ``camproto`` as in Wireshark (display filters such as
``camproto.command == "UploadFail"`` work in ``display_filter``); ``camsync``
is an alias on the packets these captures return. A packet that completes
several messages has several layers: ``pkt.get_multiple_layers("camproto")``.
:func:`camprotool.pyshark_messages.from_pyshark` turns such packets into the
``messages`` table of :func:`camprotool.read_capture`.

Why the settings below:

* The generated script goes to a per-user cache file named by its content
  hash (tshark loads Lua from a file: ``-X lua_script:PATH``), written
  atomically, so concurrent processes share it and never read half a file.
* Like ``read_capture(dialect="auto")``, the protocol is found by content on
  any port: the dissector's heuristic runs first (``tcp.try_heuristic_first``),
  because ports like 7000 and 9000 belong to other Wireshark dissectors
  otherwise; the framing is detected per TCP stream. ``ports`` registers the
  dissector on those ports too (for streams the heuristic cannot recognise,
  such as captures starting mid-connection) and, as in ``read_capture``, keeps
  only connections with an end on them.
* pyshark drives tshark from an asyncio loop and cannot run its synchronous
  calls where a loop is already running (a Jupyter cell). These captures own
  a private loop and, when iterated where a loop is running, read the packets
  on a worker thread, so ``for pkt in cap`` and ``from_pyshark(cap)`` work in
  a notebook; pyshark's other synchronous calls (``cap[0]``,
  ``load_packets``) still need a plain Python process or ``nest_asyncio``.

pyshark comes with the ``pyshark`` extra (``pip install 'camprotool[pyshark]'``)
and tshark from Wireshark (``apt-get install tshark``; ``make sysdeps``); this
module imports pyshark only when a capture is opened, so ``import camprotool``
does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from camprotool._extras import require
from camprotool.protocol.dialect import Dialect

__all__ = ["ALIAS", "LAYER", "dissector_script", "pyshark_capture"]

#: The dissector's protocol (layer) name, and the alias these captures' packets accept.
LAYER = "camproto"
ALIAS = "camsync"
#: File names that are captures even before they exist (for a clear "no such file").
_CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".gz", ".zst", ".lz4")
#: Seconds tshark gets to exit by itself after its output ended (a guard, not a pause).
_EXIT_DEADLINE = 30.0


# ------------------------------------------------------------------ the Lua script


def _cache_dirs() -> list[Path]:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return [Path(base) / "camprotool", Path(tempfile.gettempdir()) / f"camprotool-{uid}"]


def dissector_script(dialect: str | Dialect = "auto", ports: Iterable[int] = (),
                     heuristic: bool = True) -> Path:
    """The generated dissector as a ``.lua`` file in the user's cache; its path.

    Named by the hash of its text, so a new catalogue or other defaults make a
    new file, and written to a temporary name then renamed, so a tshark started
    by another process never reads it half written.
    """
    from camprotool.protocol.lua import render_dissector

    data = render_dissector(dialect, tuple(ports), heuristic=heuristic).encode("utf-8")
    name = f"camproto-{hashlib.sha256(data).hexdigest()[:16]}.lua"
    errors = []
    for directory in _cache_dirs():
        path = directory / name
        try:
            if path.is_file() and path.stat().st_size == len(data):
                return path
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".camproto-", suffix=".lua")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return path
        except OSError as exc:
            errors.append(f"{directory}: {exc.strerror or exc}")
    raise OSError(f"cannot write the camproto dissector: {'; '.join(errors)}")


# ------------------------------------------------------------------ running where a loop runs


def _loop_running_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _iterate_in_thread(make: Callable[[], Iterator[Any]], name: str) -> Iterator[Any]:
    """Items of ``make()``, produced on a worker thread (it must not see this thread's
    running event loop); stops the worker when the consumer stops early."""
    items: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=256)
    stop = threading.Event()

    def put(kind: str, value: Any) -> bool:
        """Hand over one entry, unless the consumer has gone (then False)."""
        while not stop.is_set():
            try:
                items.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            iterator = make()
            try:
                for item in iterator:
                    if not put("item", item):
                        return
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()  # pyshark's generator stops tshark here, on this thread
        except BaseException as exc:
            put("error", exc)
        else:
            put("end", None)

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            kind, value = items.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        worker.join()


def _call_in_thread(fn: Callable[[], Any], name: str) -> Any:
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(("ok", fn()))
        except BaseException as exc:
            result.append(("error", exc))

    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()
    worker.join()
    kind, value = result[0]
    if kind == "error":
        raise value
    return value


# ------------------------------------------------------------------ pyshark classes


@functools.cache
def _classes() -> dict[str, type]:
    """The pyshark subclasses, made on first use so that pyshark is imported only then."""
    pyshark: Any = require("pyshark", "pyshark", "cpt.pyshark_capture")  # untyped package
    from pyshark.packet.packet import Packet

    def real(name: Any) -> Any:
        return LAYER if isinstance(name, str) and name.lower() == ALIAS else name

    class CamsyncPacket(Packet):
        """A pyshark ``Packet`` whose ``camproto`` layers also answer to ``camsync``."""

        def __getattr__(self, item: str) -> Any:
            return super().__getattr__(real(item))

        def __getitem__(self, item: Any) -> Any:
            return super().__getitem__(real(item))

        def get_multiple_layers(self, layer_name: str) -> list[Any]:
            return super().get_multiple_layers(real(layer_name))

        def __dir__(self) -> list[str]:
            names = super().__dir__()
            return [*names, ALIAS] if LAYER in names else names

    class AliasingParser:
        """pyshark's output parser, handing out :class:`CamsyncPacket` instances."""

        def __init__(self, inner: Any) -> None:
            self._inner = inner

        async def get_packets_from_stream(self, stream: Any, existing_data: bytes,
                                          got_first_packet: bool = True) -> Any:
            packet, rest = await self._inner.get_packets_from_stream(
                stream, existing_data, got_first_packet=got_first_packet)
            if type(packet) is Packet:
                packet.__class__ = CamsyncPacket
            return packet, rest

    class Mixin:
        """What both capture kinds add to pyshark's: the alias, a private event loop,
        and iteration that works where an event loop is running (Jupyter)."""

        _owns_loop = False

        def _setup_tshark_output_parser(self) -> Any:
            return AliasingParser(super()._setup_tshark_output_parser())  # type: ignore[misc]

        async def _cleanup_subprocess(self, process: Any) -> Any:
            # At the end of a file tshark exits by itself. pyshark kills it if its exit is
            # not known yet, and Popen's kill() reaps an exited child first, so asyncio's
            # child watcher then reports exit status 255 and pyshark raises "TShark seems
            # to have crashed" at random. Waiting for the exit first avoids that race.
            if process.returncode is None and getattr(self, "_eof_reached", False):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(process.wait(), _EXIT_DEADLINE)
            return await super()._cleanup_subprocess(process)  # type: ignore[misc]

        def __iter__(self) -> Iterator[Any]:
            outer = super().__iter__  # type: ignore[misc]
            if getattr(self, "loaded", False) or not _loop_running_here():
                return outer()
            return _iterate_in_thread(outer, "camprotool-pyshark")

        def close(self) -> None:
            if self.eventloop.is_closed():  # type: ignore[attr-defined]
                return
            if _loop_running_here():
                _call_in_thread(self._shut_down, "camprotool-pyshark-close")
            else:
                self._shut_down()

        def _shut_down(self) -> None:
            """pyshark's close; then, if the loop is ours, close it, after closing the
            pipes of tshark processes stopped early (pyshark kills them but leaves
            their transports open, which would later call into the closed loop)."""
            loop = self.eventloop  # type: ignore[attr-defined]
            processes = list(self._running_processes)  # type: ignore[attr-defined]
            super().close()  # type: ignore[misc]
            if not self._owns_loop:
                return
            for process in processes:
                transport = getattr(process, "_transport", None)
                if transport is not None:
                    transport.close()
            loop.run_until_complete(asyncio.sleep(0))  # run the transports' last callbacks
            loop.close()

    class CamprotoFileCapture(Mixin, pyshark.FileCapture):
        """``pyshark.FileCapture`` with the camproto dissector (see :func:`pyshark_capture`)."""

    class CamprotoLiveCapture(Mixin, pyshark.LiveCapture):
        """``pyshark.LiveCapture`` with the camproto dissector (see :func:`pyshark_capture`)."""

    made: dict[str, type] = {"CamsyncPacket": CamsyncPacket,
                             "CamprotoFileCapture": CamprotoFileCapture,
                             "CamprotoLiveCapture": CamprotoLiveCapture}
    for name, cls in made.items():  # importable by name (pickle finds them via __getattr__)
        cls.__module__, cls.__qualname__ = __name__, name
    return made


def __getattr__(name: str) -> Any:
    if name in ("CamsyncPacket", "CamprotoFileCapture", "CamprotoLiveCapture"):
        return _classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------ the entry point


def _is_file_source(source: str | os.PathLike[str]) -> bool:
    """A capture file (True) or an interface name (False); a path-like name that does
    not exist is an error, not an interface."""
    text = os.fspath(source)
    path = Path(text)
    if path.is_file():
        return True
    if path.is_dir():
        raise IsADirectoryError(f"{text}: is a directory, not a capture file")
    if isinstance(source, os.PathLike) or os.sep in text or text.lower().endswith(
            _CAPTURE_SUFFIXES):
        raise FileNotFoundError(f"{text}: no such capture file")
    return False


def _tshark(tshark_path: str | None) -> str:
    from pyshark.tshark.tshark import TSharkNotFoundException, get_process_path

    try:
        return get_process_path(tshark_path)
    except TSharkNotFoundException:
        raise FileNotFoundError(
            "tshark not found: cpt.pyshark_capture runs Wireshark's tshark; install it "
            "(Debian/Ubuntu: apt-get install tshark, or `make sysdeps` as root) or pass "
            "tshark_path=") from None


def _merge_parameters(ours: list[str], theirs: Any) -> list[str]:
    if theirs is None:
        return ours
    if isinstance(theirs, dict):
        extra = [str(x) for kv in theirs.items() for x in kv]
    elif isinstance(theirs, list | tuple):
        extra = [str(x) for x in theirs]
    else:
        raise TypeError("custom_parameters: a list of tshark arguments or a dict of them")
    return [*ours, *extra]


def pyshark_capture(
    source: str | os.PathLike[str],
    *,
    dialect: str | Dialect = "auto",
    ports: Iterable[int] | int | None = None,
    heuristic: bool = True,
    reveal_passwords: bool = False,
    display_filter: str | None = None,
    **kwargs: Any,
) -> Any:
    """A pyshark capture of ``source`` with camprotool's Wireshark dissector loaded.

    ``source``: a capture file (pcap or pcapng: a ``FileCapture``) or an
    interface name such as ``"lo"`` (a ``LiveCapture``). ``dialect``: ``"auto"``
    (framing detected per TCP stream, text encoding per frame) or e.g.
    ``"lp32le:gbk"``. ``ports``: also decode these TCP ports as camproto, and
    keep only connections with an end on one of them (as ``read_capture``).
    ``heuristic``: recognise the protocol by content on any port (default).
    ``reveal_passwords``: show passwords instead of ``***`` (the dissector's
    ``camproto.reveal_passwords`` preference). ``display_filter`` and any other
    keyword go to pyshark (``keep_packets``, ``override_prefs``,
    ``custom_parameters``, ``bpf_filter``, ``tshark_path``, ...).

    Iterate it as any pyshark capture; packets have ``pkt.camproto`` (alias
    ``pkt.camsync``) layers. ``cpt.from_pyshark(cap)`` builds the messages table.
    Raises ``ModuleNotFoundError`` naming the ``pyshark`` extra without pyshark,
    ``FileNotFoundError`` without tshark or for a missing file.
    """
    from camprotool.protocol.lua import format_ports

    classes = _classes()  # pyshark, or the error naming the extra
    _tshark(kwargs.get("tshark_path"))
    is_file = _is_file_source(source)
    port_list = (ports,) if isinstance(ports, int) else tuple(ports or ())
    port_text = format_ports(port_list)  # ValueError on a bad port
    script = dissector_script(dialect, port_list, heuristic)

    prefs = {"tcp.try_heuristic_first": "TRUE"} if heuristic else {}
    if reveal_passwords:
        prefs["camproto.reveal_passwords"] = "TRUE"
    prefs.update(kwargs.pop("override_prefs", None) or {})
    params = _merge_parameters(["-X", f"lua_script:{script}"],
                               kwargs.pop("custom_parameters", None))
    if port_text:
        keep = "tcp.port in {" + port_text.replace(",", " ").replace("-", "..") + "}"
        display_filter = f"({keep}) && ({display_filter})" if display_filter else keep
    owns_loop = "eventloop" not in kwargs
    if owns_loop:
        # pyshark's default is the current loop, which a notebook is already running
        # (and pyshark would install a process-wide child watcher for it)
        kwargs["eventloop"] = asyncio.new_event_loop()
    cls = classes["CamprotoFileCapture" if is_file else "CamprotoLiveCapture"]
    where = {"input_file": os.fspath(source)} if is_file else {"interface": os.fspath(source)}
    try:
        cap = cls(**where, display_filter=display_filter, override_prefs=prefs,
                  custom_parameters=params, **kwargs)
    except BaseException:
        if owns_loop:
            kwargs["eventloop"].close()
        raise
    cap._owns_loop = owns_loop
    return cap
