"""Decode capture sets into a Parquet dataset directory, set by set.

Layout (one Parquet dataset per table, hive-partitioned)::

    DATASET/manifest.json
    DATASET/messages/capture_set=cam-a/day=2026-12-01/part-0.parquet
    DATASET/messages/capture_set=cam-a/day=2026-12-02/part-0.parquet
    DATASET/alarms/capture_set=cam-a/day=2026-12-01/part-0.parquet
    ...

Why set by set: a set is the unit that must be decoded whole (its files are one
capture), so it is also the unit of work (one Dask task), of replacement (a
changed set's partitions are swapped for new ones) and of bookkeeping (one
manifest entry). :func:`decode_set` is what a worker runs: decode, build every
table, write them under ``DATASET/.staging/`` and move them into place, and
return counts, never the tables, so a worker's memory follows one set.

A set whose files cannot be read at all (not a capture, unreadable) is still
written: its ``problems`` rows say ``bad_file`` and name each file; the run
reports each such file in one line and goes on. A set that fails otherwise (a
bug) leaves the dataset as it was and is retried by the next run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pyarrow.parquet as pq

from camprotool.capture.records import CaptureFormatError
from camprotool.dataset import columns
from camprotool.dataset.manifest import FileStat, Manifest, SetEntry, snapshot
from camprotool.dataset.options import DecodeOptions
from camprotool.dataset.sets import CaptureSet, Sources, group_sets
from camprotool.dataset.tables import bad_file_tables, keyed_tables, read_set

ROW_GROUP = 1 << 17
COMPRESSION = "zstd"


@dataclass(slots=True)
class SetResult:
    """What a worker returns for one set: counts and file states, not tables."""

    name: str
    files: list[FileStat]
    rows: dict[str, int] = field(default_factory=dict)
    days: list[str] = field(default_factory=list)
    bad: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


def partition_dir(root: str | os.PathLike[str], table: str, set_name: str) -> Path:
    return Path(root) / table / f"capture_set={quote(set_name, safe='')}"


def _bad_files(problems, paths: Iterable[str]) -> dict[str, str]:
    """Files a ``bad_file`` problem row names (``read_capture`` skipped them)."""
    rows = problems[problems["kind"].astype("str") == "bad_file"]["detail"].tolist()
    out = {}
    for path in paths:
        hit = next((d for d in rows if path in d), None)
        if hit is not None:
            out[path] = hit
    return out


def decode_set(cset: CaptureSet, root: str, options: DecodeOptions,
               files: list[FileStat] | None = None,
               progress: Callable[[int], None] | None = None) -> SetResult:
    """Decode one set and put its tables in place under ``root`` (see the module doc)."""
    start = time.perf_counter()
    result = SetResult(cset.name, files if files is not None else snapshot(cset))
    try:
        try:
            cap = read_set(cset, options, progress)
        except (CaptureFormatError, OSError) as exc:
            tables = bad_file_tables(cset, exc)
        else:
            tables = keyed_tables(cap, cset.name)
            del cap
        result.bad = _bad_files(tables["problems"], cset.paths)
        result.rows, result.days = write_set(tables, root, cset.name)
    except Exception as exc:  # a bug must not stop the other sets: reported, retried
        last = traceback.extract_tb(exc.__traceback__)[-1]
        result.error = (f"{type(exc).__name__}: {exc} (at {os.path.basename(last.filename)}:"
                        f"{last.lineno})")
    result.seconds = time.perf_counter() - start
    return result


def write_set(tables: dict, root: str | os.PathLike[str], set_name: str
              ) -> tuple[dict[str, int], list[str]]:
    """Write one set's keyed tables, one file per table and day, and swap them in for
    the set's old partitions. Returns rows per table and the days seen."""
    root = Path(root)
    staging = root / ".staging" / f"{uuid.uuid4().hex}"
    rows, days = {}, set()
    try:
        for name, df in tables.items():
            rows[name] = len(df)
            (root / name).mkdir(parents=True, exist_ok=True)
            if not len(df):
                continue
            table = columns.to_arrow(df, name)
            day = df["day"].to_numpy(dtype=object)
            for value in sorted(set(day.tolist())):
                days.add(value)
                part = staging / name / f"day={quote(value, safe='')}"
                part.mkdir(parents=True)
                rows_of_day = table.take(np.flatnonzero(day == value))
                pq.write_table(rows_of_day, part / "part-0.parquet", compression=COMPRESSION,
                               row_group_size=ROW_GROUP)
        for name in tables:
            target = partition_dir(root, name, set_name)
            old = staging / f"old-{name}"
            if target.exists():
                os.replace(target, old)
            if (staging / name).exists():
                os.replace(staging / name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        # the last set out leaves no .staging behind (OSError: another set is being written)
        with contextlib.suppress(OSError):
            staging.parent.rmdir()
    return rows, sorted(days)


@dataclass(slots=True)
class Summary:
    """What one :func:`write_dataset` run did."""

    root: str
    decoded: list[SetResult] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    failed: list[SetResult] = field(default_factory=list)

    @property
    def bad_files(self) -> dict[str, str]:
        return {p: d for r in self.decoded for p, d in r.bad.items()}

    @property
    def messages(self) -> int:
        return sum(r.rows.get("messages", 0) for r in self.decoded)

    def line(self) -> str:
        files = sum(len(r.files) for r in self.decoded)
        text = (f"{len(self.decoded)} capture sets ({files} files, {self.messages:,} "
                f"messages) decoded into {self.root}, {len(self.up_to_date)} up to date")
        if self.bad_files:
            text += f", {len(self.bad_files)} bad files skipped"
        if self.failed:
            text += f", {len(self.failed)} sets failed (retried next run)"
        return text


def _report_lines(result: SetResult) -> list[str]:
    lines = [f"skipped {detail}" if detail.startswith(path) else f"skipped {path}: {detail}"
             for path, detail in result.bad.items()]
    if result.error:
        lines.append(f"failed {result.name} ({len(result.files)} files): {result.error}")
    return lines


def write_dataset(
    sources: Sources,
    root: str | os.PathLike[str],
    *,
    dialect: str = "auto",
    ports: Iterable[int] | int | None = None,
    reveal_passwords: bool = False,
    client=None,
    progress: Callable[[int, int], None] | None = None,
    report: Callable[[str], None] | None = None,
) -> Summary:
    """Decode the capture sets of ``sources`` into the dataset ``root``.

    Only sets that are new or changed since the manifest was written are decoded.
    ``client``: a ``distributed.Client``; each set is then a task on its workers,
    which must see ``sources`` and ``root`` at the same paths (shared storage).
    ``progress`` gets the bytes of capture decoded so far and the bytes this run has
    to decode (the files of new or changed sets);
    ``report`` one line per file skipped as bad and per set that failed.
    """
    options = DecodeOptions.make(dialect, ports, reveal_passwords)
    root_path = Path(root).absolute()
    if root_path.exists() and not root_path.is_dir():
        raise ValueError(f"{root}: exists and is not a directory")
    sets = group_sets(sources)
    root_path.mkdir(parents=True, exist_ok=True)
    with _writing(root_path):
        return _write(sets, root_path, str(root), options, client, progress, report)


@contextlib.contextmanager
def _writing(root: Path):
    """One run at a time per dataset: two would swap the same partitions and lose each
    other's manifest entries. ``flock`` is released by the system if a run dies."""
    import fcntl

    with open(root / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"{root}: another decode is writing this dataset") from None
        yield


def _write(sets: list[CaptureSet], root_path: Path, shown: str, options: DecodeOptions,
           client, progress, report) -> Summary:
    manifest = Manifest.load(root_path)
    wanted = options.as_dict()
    summary = Summary(shown)
    todo = []
    for cset in sets:
        files = snapshot(cset)
        if manifest.up_to_date(cset, files, wanted):
            summary.up_to_date.append(cset.name)
        else:
            todo.append((cset, files))
    done_bytes = 0
    total = sum(max(f.size, 0) for _, files in todo for f in files)

    def finish(result: SetResult) -> None:
        nonlocal done_bytes
        for line in _report_lines(result):
            if report is not None:
                report(line)
        if result.error:
            summary.failed.append(result)
        else:
            summary.decoded.append(result)
            manifest.record(result.name, SetEntry(result.files, wanted, result.rows,
                                                  result.days, result.bad, result.seconds))
            manifest.save()
        done_bytes += sum(max(f.size, 0) for f in result.files)
        if progress is not None:
            progress(done_bytes, total)

    if progress is not None:
        progress(0, total)  # a bar starts its clock here
    if client is None:
        for cset, files in todo:
            base = done_bytes
            inner = None
            if progress is not None:  # read_capture reports bytes read through the set
                def inner(done: int, base: int = base) -> None:
                    progress(base + done, total)
            finish(decode_set(cset, str(root_path), options, files, inner))
    else:
        from distributed import as_completed

        futures = {client.submit(decode_set, cset, str(root_path), options, files,
                                 pure=False, key=f"camprotool-decode-{uuid.uuid4().hex}"):
                   (cset, files) for cset, files in todo}
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as exc:  # the worker died (memory, killed): the set failed
                cset, files = futures[future]
                result = SetResult(cset.name, files, error=f"{type(exc).__name__}: {exc}")
            finish(result)
            future.release()
    if not manifest.path.exists():
        manifest.save()  # an empty dataset is still a dataset
    return summary
