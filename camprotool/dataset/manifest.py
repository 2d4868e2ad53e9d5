"""``DATASET/manifest.json``: what was decoded, so a rerun decodes only what changed.

Why per set, not per file: the files of a ring buffer are read as one capture
(a connection crossing two files is one connection), so a new or changed file
means its whole set is decoded again and its partitions replaced. A set is up
to date when the same files are there (path, size, modification time in ns)
and it was decoded with the same options. Sets the manifest knows but a run
does not name are left alone: a dataset can grow folder by folder.

The file is JSON, written to a temporary name and renamed, so a reader or an
interrupted run never sees half of it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from camprotool.dataset.sets import CaptureSet

FORMAT = 1
NAME = "manifest.json"


@dataclass(frozen=True, slots=True)
class FileStat:
    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str) -> FileStat:
        st = os.stat(path)
        return cls(path, st.st_size, st.st_mtime_ns)


def snapshot(cset: CaptureSet) -> list[FileStat]:
    """What the set's files are now (a file gone since it was listed reads as size -1)."""
    out = []
    for path in cset.paths:
        try:
            out.append(FileStat.of(path))
        except OSError:
            out.append(FileStat(path, -1, 0))
    return out


@dataclass(slots=True)
class SetEntry:
    """One decoded set: its files as they were, rows per table, days, bad files."""

    files: list[FileStat]
    options: dict
    rows: dict[str, int] = field(default_factory=dict)
    days: list[str] = field(default_factory=list)
    bad: dict[str, str] = field(default_factory=dict)  # path -> why it was skipped
    seconds: float = 0.0
    decoded_at: str = ""

    def to_json(self) -> dict:
        return {"files": [[f.path, f.size, f.mtime_ns] for f in self.files],
                "options": self.options, "rows": self.rows, "days": self.days,
                "bad": self.bad, "seconds": round(self.seconds, 3),
                "decoded_at": self.decoded_at}

    @classmethod
    def from_json(cls, d: dict) -> SetEntry:
        return cls([FileStat(p, s, m) for p, s, m in d["files"]], d["options"],
                   d.get("rows", {}), d.get("days", []), d.get("bad", {}),
                   d.get("seconds", 0.0), d.get("decoded_at", ""))


class Manifest:
    """The sets of one dataset directory, by name."""

    def __init__(self, root: str | os.PathLike[str], sets: dict[str, SetEntry] | None = None):
        self.root = Path(root)
        self.sets: dict[str, SetEntry] = sets or {}

    @property
    def path(self) -> Path:
        return self.root / NAME

    @classmethod
    def load(cls, root: str | os.PathLike[str], *, missing_ok: bool = True) -> Manifest:
        path = Path(root) / NAME
        if not path.exists():
            if missing_ok:
                return cls(root)
            raise ValueError(f"{root}: not a camprotool dataset (no {NAME})")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
            sets = {name: SetEntry.from_json(e) for name, e in data["sets"].items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a manifest this version reads ({exc})") from None
        return cls(root, sets)

    def up_to_date(self, cset: CaptureSet, files: list[FileStat], options: dict) -> bool:
        entry = self.sets.get(cset.name)
        return entry is not None and entry.files == files and entry.options == options

    def record(self, name: str, entry: SetEntry) -> None:
        entry.decoded_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.sets[name] = entry

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = {"format": FORMAT, "sets": {n: e.to_json() for n, e in sorted(self.sets.items())}}
        tmp = self.path.with_name(f".{NAME}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.path)

    def files(self) -> pd.DataFrame:
        """One row per file: set, path, size, mtime, whether it was skipped as bad, and
        the set's rows per table (a set's counts repeat on each of its files)."""
        rows = []
        for name, e in sorted(self.sets.items()):
            for f in e.files:
                rows.append({"capture_set": name, "path": f.path, "size": f.size,
                             "mtime": pd.Timestamp(f.mtime_ns, unit="ns", tz="UTC"),
                             "bad": e.bad.get(f.path), **{f"{t}_rows": n
                                                          for t, n in e.rows.items()}})
        return pd.DataFrame(rows)
