"""camprotool.dask: the tables computed on a LocalCluster equal the pandas ones.

One module-scoped cluster of two worker processes on 127.0.0.1 serves every test
(starting one costs seconds); each test computes a few small tables on it.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import dask
import pandas as pd
import pytest
from distributed import Client, LocalCluster

import camprotool as cpt
import camprotool.dask as cdd
from camprotool.cli import decode_dataset, main
from camprotool.dataset import columns
from camprotool.fleet import FleetSpec, generate_fleet

SPEC = FleetSpec(sensors=2, days=1, clients=30, visits_per_day=3, ring_seconds=6 * 3600,
                 seed=7)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None)
    with Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory):
    return generate_fleet(tmp_path_factory.mktemp("fleet"), SPEC)


def own(df: pd.DataFrame, name: str, set_name: str) -> pd.DataFrame:
    rows = df[df["capture_set"] == set_name]
    drop = ["capture_set", "day", *columns.EXTRA.get(name, {})]
    return rows.drop(columns=drop).reset_index(drop=True)


def test_read_captures_computed_on_workers_equal_read_capture(client, fleet) -> None:
    caps = cdd.read_captures(str(fleet.folder / "*.pcapng"))
    assert caps.messages.npartitions == 2  # one per capture set (sensor)
    names = list(columns.TABLES)
    computed = dict(zip(names, dask.compute(*(caps.table(n) for n in names)), strict=True))
    assert set(client.run(lambda: 1)) == set(client.scheduler_info()["workers"])
    for sensor, paths in fleet.files.items():
        cap = cpt.read_capture([str(p) for p in paths])
        for name in names:
            got = own(computed[name], name, sensor)
            pd.testing.assert_frame_equal(got, getattr(cap, name).reset_index(drop=True),
                                          check_categorical=False, obj=f"{sensor} {name}")
    meta = caps.sync._meta
    assert dict(meta.dtypes.astype(str)) == dict(computed["sync"].dtypes.astype(str))


@pytest.fixture(scope="module")
def written(client, fleet, tmp_path_factory: pytest.TempPathFactory):
    """``camprotool decode 'DIR/*.pcapng' -o DS/ --dask ADDRESS``: the sets are decoded
    and written on the cluster's workers. Returns (dataset, what it printed on stderr)."""
    out = tmp_path_factory.mktemp("dask-ds") / "ds"
    address = client.scheduler.address
    assert address.startswith("tcp://127.0.0.1:")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["decode", str(fleet.folder / "*.pcapng"), "-o", f"{out}/",
                     "--dask", address])
    assert code == 0, err.getvalue()
    return out, err.getvalue()


def test_decode_dask_scheduler_address(written, fleet, capsys,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    out, printed = written
    assert "2 capture sets (7 files" in printed
    assert sorted(cpt.read_dataset(out).sets) == ["sensor-a", "sensor-b"]
    monkeypatch.setattr(decode_dataset, "CONNECT_TIMEOUT", 0.5)
    assert main(["decode", str(fleet.folder), "-o", str(out), "--dask", "tcp://127.0.0.1:9"]
                ) == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err


def test_read_dataset_equals_the_pandas_reader(client, written) -> None:
    root, _ = written
    ds, dds = cpt.read_dataset(root), cdd.read_dataset(root)
    for name in ("messages", "sync", "alarms", "problems"):
        pd.testing.assert_frame_equal(dds.table(name).compute().reset_index(drop=True),
                                      ds.table(name), check_categorical=False, obj=name)
    # filters go to Parquet; no client needed: local threads compute it too
    wanted = [("outcome", "==", "failed")]
    got = cdd.read_dataset(root, sets=["sensor-b"]).table(
        "sync", filters=wanted, columns=["camera_id", "reason"]).compute(scheduler="threads")
    want = cpt.read_dataset(root, sets=["sensor-b"]).table(
        "sync", filters=wanted, columns=["camera_id", "reason"])
    assert len(want)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want)


def test_a_bad_file_is_a_problem_row_not_a_failed_computation(client, tmp_path: Path) -> None:
    shutil.copy(ROOT / "captures" / "sample.pcapng", tmp_path)
    (tmp_path / "broken.pcapng").write_bytes(b"\x00" * 64)
    caps = cdd.read_captures(tmp_path)
    problems, messages = dask.compute(caps.problems, caps.messages)
    bad = problems[problems["kind"] == "bad_file"]
    assert bad["capture_set"].tolist() == ["broken.pcapng"]
    assert str(tmp_path / "broken.pcapng") in bad["detail"].item()
    assert len(messages) == len(cpt.read_capture(tmp_path / "sample.pcapng").messages)


def test_without_the_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "dask", None)  # as if dask were not installed
    monkeypatch.delitem(sys.modules, "camprotool.dask")
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'camprotool\[dask\]'"):
        importlib.import_module("camprotool.dask")
