"""Capture sets: dumpcap ring-buffer names group by prefix, any other file is its own set."""

from __future__ import annotations

from pathlib import Path

import pytest

from camprotool.dataset.sets import expand, group_sets, set_key


def touch(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / n for n in names]
    for p in paths:
        p.write_bytes(b"x")
    return paths


def test_ring_buffer_names_group_by_prefix_in_number_order(tmp_path: Path) -> None:
    touch(tmp_path, "cam_00010_20261201100000.pcapng", "cam_00002_20261201090000.pcapng",
          "cam_00009_20261130235959.pcapng", "door_00001_20261201000000.pcap",
          "lone.pcapng", "notes.txt")
    sets = group_sets(tmp_path)
    assert [s.name for s in sets] == ["cam", "door", "lone.pcapng"]
    assert [Path(p).name[:9] for p in sets[0].paths] == ["cam_00002", "cam_00009", "cam_00010"]
    assert all(Path(p).is_absolute() for s in sets for p in s.paths)


def test_names_that_only_look_like_a_ring_buffer_are_single_files() -> None:
    assert set_key("/x/cam_0001_20261201100000.pcapng") == ("cam_0001_20261201100000.pcapng",
                                                             None)
    assert set_key("/x/cam_00001_2026120110000.pcapng")[1] is None  # 13-digit time
    assert set_key("/x/my_cam_00042_20261201100000.pcap") == ("my_cam", 42)


def test_glob_list_and_folder_sources(tmp_path: Path) -> None:
    a = touch(tmp_path / "a", "s_00001_20261201000000.pcapng", "s_00002_20261201010000.pcapng")
    touch(tmp_path / "b", "t_00001_20261201000000.pcapng")
    assert expand(str(tmp_path / "a" / "*.pcapng")) == [str(p) for p in a]
    sets = group_sets([str(tmp_path / "a" / "*.pcapng"), tmp_path / "b"])
    assert [(s.name, len(s.paths)) for s in sets] == [("s", 2), ("t", 1)]
    # a file named twice is read once
    assert len(expand([a[0], str(a[0]), str(tmp_path / "a")])) == 2


def test_bad_sources_are_errors_that_name_them(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"nope\.pcapng: no such file"):
        expand(str(tmp_path / "nope.pcapng"))
    with pytest.raises(ValueError, match=r"\*\.pcap: no capture file matches"):
        expand(str(tmp_path / "*.pcap"))
    touch(tmp_path / "x", "cam_00001_20261201000000.pcapng")
    touch(tmp_path / "y", "cam_00001_20261202000000.pcapng")
    with pytest.raises(ValueError, match="two capture sets are named 'cam'"):
        group_sets([tmp_path / "x", tmp_path / "y"])
    touch(tmp_path / "z", "s_00001_20261201000000.pcapng", "s")
    with pytest.raises(ValueError, match="named like the ring buffer 's'"):
        group_sets([tmp_path / "z" / "s_00001_20261201000000.pcapng", tmp_path / "z" / "s"])
