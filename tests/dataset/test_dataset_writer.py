"""Writing a dataset: the same tables as read_capture, decoded once, bad files skipped."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import camprotool as cpt
from camprotool.dataset import columns, read_dataset, write_dataset
from camprotool.dataset import writer as writer_module
from camprotool.dataset.manifest import Manifest
from camprotool.fleet import Fleet

EXTRA = ["capture_set", "day"]


def own_columns(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """A dataset table's rows without the columns a dataset adds, with a RangeIndex."""
    drop = EXTRA + list(columns.EXTRA.get(name, {}))
    return df.drop(columns=drop).reset_index(drop=True)


def test_tables_equal_read_capture_of_each_set(fleet: Fleet, dataset: Path) -> None:
    ds = read_dataset(dataset)
    assert ds.sets == sorted(fleet.files)
    for sensor, paths in fleet.files.items():
        assert len(paths) > 1  # ring buffers: each set is several files read as one
        cap = cpt.read_capture([str(p) for p in paths])
        for name in columns.TABLES:
            table = getattr(ds, name)
            got = own_columns(table[table["capture_set"] == sensor], name)
            want = getattr(cap, name).reset_index(drop=True)
            assert len(want) or name in ("violations", "problems"), (sensor, name)
            pd.testing.assert_frame_equal(got, want, check_categorical=False,
                                          obj=f"{sensor} {name}")
        msgs = ds.messages[ds.messages["capture_set"] == sensor]
        assert msgs["message"].tolist() == list(range(len(cap.messages)))
    # references into messages stay valid: (capture_set, message) is the key
    keys = set(zip(ds.messages["capture_set"], ds.messages["message"], strict=True))
    assert set(zip(ds.sync["capture_set"], ds.sync["request"].astype(int),
                   strict=True)) <= keys


def test_partitions_by_set_and_day_with_one_schema(dataset: Path) -> None:
    files = sorted((dataset / "messages").rglob("*.parquet"))
    assert {f.parent.parent.name for f in files} == {"capture_set=sensor-a",
                                                     "capture_set=sensor-b"}
    assert {f.parent.name for f in files} == {"day=2026-11-30"}
    for name in columns.TABLES:
        for f in (dataset / name).rglob("*.parquet"):
            assert pq.read_schema(f) == columns.arrow_schema(name), f
    ds = read_dataset(dataset)
    assert list(ds.messages["command"].cat.categories[:16]) == columns.CATEGORIES[
        ("messages", "command")][:16]
    manifest = Manifest.load(dataset)
    entry = manifest.sets["sensor-a"]
    assert entry.rows["messages"] == int((ds.messages["capture_set"] == "sensor-a").sum())
    assert all(f.size > 0 and f.mtime_ns > 0 for f in entry.files)


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    decoded: list[str] = []
    real = writer_module.read_set

    def spy(cset, options, progress=None):
        decoded.append(cset.name)
        return real(cset, options, progress)

    monkeypatch.setattr(writer_module, "read_set", spy)
    return decoded


def test_written_twice_is_decoded_once_and_a_changed_set_again(
        fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    captures = tmp_path / "caps"
    shutil.copytree(fleet.folder, captures)
    root = tmp_path / "ds"
    decoded = _counting(monkeypatch)
    seen: list[tuple[int, int]] = []
    first = write_dataset(str(captures / "*.pcapng"), root,
                          progress=lambda done, total: seen.append((done, total)))
    assert sorted(decoded) == ["sensor-a", "sensor-b"] and not first.up_to_date
    # one progress over the whole run: from 0 to every byte of the sets, never back
    assert seen[0] == (0, fleet.bytes) and seen[-1] == (fleet.bytes, fleet.bytes)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) > 3
    parquet = {p: p.stat().st_mtime_ns for p in root.rglob("*.parquet")}

    decoded.clear()
    again = write_dataset(str(captures / "*.pcapng"), root)
    assert decoded == [] and again.decoded == []
    assert sorted(again.up_to_date) == ["sensor-a", "sensor-b"]
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.parquet")} == parquet

    # a ring buffer gains a file: only its set is decoded again, and replaced whole
    last = fleet.files["sensor-b"][-1]
    shutil.copy(last, captures / last.name.replace("sensor-b", "sensor-c"))
    os.utime(captures / fleet.files["sensor-a"][0].name, ns=(1, 1))  # touched
    decoded.clear()
    third = write_dataset(captures, root)
    assert sorted(decoded) == ["sensor-a", "sensor-c"]
    assert third.up_to_date == ["sensor-b"]
    ds = read_dataset(root)
    assert sorted(ds.sets) == ["sensor-a", "sensor-b", "sensor-c"]
    assert len(ds.messages) == (first.messages + third.decoded[1].rows["messages"])
    # options are part of "up to date": other ports mean other rows
    decoded.clear()
    write_dataset(captures, root, ports=[9000])
    assert sorted(decoded) == ["sensor-a", "sensor-b", "sensor-c"]
    assert set(read_dataset(root).connections["server_port"]) == {9000}


def test_corrupt_files_are_reported_and_skipped(fleet: Fleet, tmp_path: Path) -> None:
    captures = tmp_path / "caps"
    shutil.copytree(fleet.folder, captures)
    member = captures / "sensor-a_00099_20261130235900.pcapng"  # inside a ring buffer
    member.write_bytes(b"this is not a capture at all")
    lone = captures / "notes.pcap"
    lone.write_bytes(b"")
    lines: list[str] = []
    summary = write_dataset(captures, tmp_path / "ds", report=lines.append)
    assert sorted(lines) == [f"skipped {lone}: empty file, not a capture",
                             f"skipped {member}: not a pcap or pcapng capture (starts with "
                             "74686973); file skipped"]
    assert set(summary.bad_files) == {str(member), str(lone)}
    assert not summary.failed
    ds = read_dataset(tmp_path / "ds")
    bad = ds.table("problems", filters=[("kind", "==", "bad_file")])
    assert sorted(bad["capture_set"]) == ["notes.pcap", "sensor-a"]
    # the rest of the ring buffer decoded as before
    clean = read_dataset(write_dataset(fleet.folder, tmp_path / "clean").root)
    assert len(ds.messages) == len(clean.messages)
    assert Manifest.load(tmp_path / "ds").sets["sensor-a"].bad == {
        str(member): bad[bad["capture_set"] == "sensor-a"]["detail"].item()}


def test_a_set_that_fails_leaves_the_dataset_as_it_was(
        fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ds"
    write_dataset(fleet.folder, root)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.parquet")}

    def broken(tables, root, set_name):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(writer_module, "write_set", broken)
    lines: list[str] = []
    summary = write_dataset(fleet.folder, root, ports=[9000], report=lines.append)
    assert [r.name for r in summary.failed] == ["sensor-a", "sensor-b"]
    assert lines[0].startswith("failed sensor-a (") and "disk on fire" in lines[0]
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.parquet")} == before
    assert Manifest.load(root).sets["sensor-a"].options["ports"] is None  # not recorded


def test_one_run_at_a_time(fleet: Fleet, tmp_path: Path) -> None:
    import fcntl

    root = tmp_path / "ds"
    root.mkdir()
    with open(root / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ValueError, match="another decode is writing this dataset"):
            write_dataset(fleet.folder, root)
    assert write_dataset(fleet.folder, root).messages > 0
