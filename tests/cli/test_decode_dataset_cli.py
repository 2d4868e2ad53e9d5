"""``camprotool decode CAPS -o DIR/``: a dataset, one line per bad file, reruns decode nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import camprotool as cpt
from camprotool.cli import main
from camprotool.fleet import FleetSpec, generate_fleet

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("caps")
    generate_fleet(folder, FleetSpec(sensors=2, days=1, clients=12, ring_seconds=8 * 3600))
    (folder / "broken.pcapng").write_bytes(b"\x0a\x0d\x0d\x0a" + b"\xff" * 40)
    return folder


def test_a_glob_into_a_dataset_folder_then_a_rerun(captures: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "ds"
    assert main(["decode", str(captures / "*.pcapng"), "-o", f"{out}/"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2, err
    assert err[0].startswith(f"skipped {captures / 'broken.pcapng'}: ")
    assert err[1].startswith("3 capture sets (") and "1 bad files skipped" in err[1]
    ds = cpt.read_dataset(out)
    assert sorted(ds.sets) == ["broken.pcapng", "sensor-a", "sensor-b"]
    assert len(ds.messages) > 0
    # again, without the trailing slash (an existing folder): nothing to decode
    assert main(["decode", str(captures), "-o", str(out)]) == 0
    assert capsys.readouterr().err.strip() == (f"0 capture sets (0 files, 0 messages) decoded "
                                               f"into {out}, 3 up to date")


def test_shell_expanded_files_and_usage_errors(captures: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    files = sorted(str(p) for p in captures.glob("sensor-a_*"))
    assert main(["decode", *files, "-o", str(tmp_path / "ds")]) == 0  # no extension: a folder
    assert cpt.read_dataset(tmp_path / "ds").sets == ["sensor-a"]
    capsys.readouterr()
    assert main(["decode", *files]) == 2
    assert "quote a glob" in capsys.readouterr().err
    assert main(["decode", files[0], "--dask", "local"]) == 2
    assert "--dask decodes into a dataset" in capsys.readouterr().err
    taken = tmp_path / "file"
    shutil.copy(ROOT / "captures" / "sample.pcap", taken)
    assert main(["decode", files[0], "-o", f"{taken}/"]) == 2
    assert "not a directory" in capsys.readouterr().err
