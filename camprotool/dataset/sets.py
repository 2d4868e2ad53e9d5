"""Which files are read together: capture sets.

Why: a sensor running ``dumpcap -b filesize:100000 -w cam.pcapng`` leaves a
ring buffer, ``cam_00001_20261201080000.pcapng``, ``cam_00002_…``; a
connection that crosses from one file to the next is only whole when the
files are read as one capture (``read_capture(list)``). So files are grouped
before anything is decoded:

* a name of dumpcap's ring-buffer form ``PREFIX_NNNNN_YYYYMMDDhhmmss.EXT``
  (five or more digits, then fourteen) belongs to the set ``PREFIX``: one
  sensor's ring buffer, whatever days it spans;
* any other file is a set of its own, named by its file name
  (``sample.pcapng``).

A set's files are listed by their ring-buffer number; ``read_capture`` orders
them by their first timestamp anyway. Set names must be unique: two folders
holding the same prefix are two sensors that would mix, so that is an error.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: dumpcap's ring-buffer file names: prefix, file number, start time, extension
RING_NAME = re.compile(r"^(?P<prefix>.+)_(?P<number>\d{5,})_(?P<stamp>\d{14})(?P<ext>\.[^.]+)$")
#: what a folder given as a source contributes
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap")
_GLOB_CHARS = re.compile(r"[*?\[]")

Sources = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]


@dataclass(frozen=True, slots=True)
class CaptureSet:
    """Files read as one capture: ``name`` (the partition value) and ``paths`` (absolute)."""

    name: str
    paths: tuple[str, ...]

    @property
    def size(self) -> int:
        """Bytes on disk now (0 for a file that went away)."""
        return sum(_size(p) for p in self.paths)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def expand(sources: Sources) -> list[str]:
    """Absolute paths of the capture files named by ``sources``: a path, a folder (its
    ``.pcap``/``.pcapng``/``.cap`` files), a glob pattern, or a list of any of these.

    A name that exists nowhere, or a pattern that matches nothing, is a ``ValueError``
    that names it (a typo should not give an empty dataset)."""
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    found: dict[str, None] = {}
    for source in sources:
        text = os.fspath(source)
        if os.path.isdir(text):
            names = sorted(p for p in Path(text).iterdir()
                           if p.is_file() and p.suffix.lower() in CAPTURE_SUFFIXES)
            found.update((os.path.abspath(p), None) for p in names)
        elif os.path.exists(text):
            found[os.path.abspath(text)] = None
        elif _GLOB_CHARS.search(text):
            matches = sorted(m for m in glob.glob(text) if os.path.isfile(m))
            if not matches:
                raise ValueError(f"{text}: no capture file matches")
            found.update((os.path.abspath(m), None) for m in matches)
        else:
            raise ValueError(f"{text}: no such file")
    if not found:
        raise ValueError("no capture file given")
    return list(found)


def set_key(path: str) -> tuple[str, int | None]:
    """``(set name, ring-buffer number or None)`` of one file, by its name alone."""
    name = os.path.basename(path)
    hit = RING_NAME.match(name)
    if hit:
        return hit.group("prefix"), int(hit.group("number"))
    return name, None


def group_sets(sources: Sources) -> list[CaptureSet]:
    """The capture sets of ``sources`` (see the module docstring), sorted by name."""
    groups: dict[str, list[tuple[int, str]]] = {}
    folders: dict[str, str] = {}
    for path in expand(sources):
        name, number = set_key(path)
        folder = os.path.dirname(path)
        if folders.setdefault(name, folder) != folder:
            raise ValueError(f"two capture sets are named {name!r} ({folders[name]} and "
                             f"{folder}): rename one, or decode them into separate datasets")
        groups.setdefault(name, []).append((-1 if number is None else number, path))
    for name, files in groups.items():
        if len(files) > 1 and any(n == -1 for n, _ in files):
            raise ValueError(f"a capture is named like the ring buffer {name!r} in "
                             f"{folders[name]}: rename it")
    return [CaptureSet(name, tuple(p for _, p in sorted(files)))
            for name, files in sorted(groups.items())]
