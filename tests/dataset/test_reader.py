"""Reading a dataset back: tables as pandas, filters and partitions pushed down."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pytest

import camprotool as cpt
from camprotool.dataset import columns


def test_filters_give_what_filtering_the_whole_table_gives(dataset: Path) -> None:
    ds = cpt.read_dataset(dataset)
    alarms = ds.alarms
    camera = alarms["camera_id"].value_counts().index[0]
    one = ds.table("alarms", filters=[("camera_id", "==", camera)])
    want = alarms[alarms["camera_id"] == camera].reset_index(drop=True)
    pd.testing.assert_frame_equal(one, want)
    failed = ds.table("sync", filters=pc.field("outcome") == "failed",
                      columns=["capture_set", "camera_id", "reason"])
    assert list(failed.columns) == ["capture_set", "camera_id", "reason"]
    assert len(failed) == int((ds.sync["outcome"] == "failed").sum()) > 0
    # the list form's OR: a list of AND-lists
    either = ds.table("messages", filters=[[("command", "==", "Login")],
                                           [("command", "==", "LoginError")]])
    assert set(either["command"].astype(str)) == {"Login", "LoginError"}


def test_sets_and_days_select_partitions(dataset: Path) -> None:
    every = cpt.read_dataset(dataset)
    only_b = cpt.read_dataset(dataset, sets="sensor-b")
    assert set(only_b.messages["capture_set"]) == {"sensor-b"}
    assert len(only_b.messages) == int((every.messages["capture_set"] == "sensor-b").sum())
    assert len(cpt.read_dataset(dataset, days=("2026-11-30", "2026-12-31")).alarms) == len(
        every.alarms)
    assert cpt.read_dataset(dataset, days=["2026-12-01"]).messages.empty
    empty = cpt.read_dataset(dataset, days="1999-01-01").sessions
    assert list(empty.columns) == list(every.sessions.columns)
    assert dict(empty.dtypes) == dict(every.sessions.dtypes)


def test_dtypes_are_the_captures_plus_keys(dataset: Path) -> None:
    ds = cpt.read_dataset(dataset)
    for name, dtypes in columns.TABLES.items():
        table = ds.table(name)
        assert list(table.columns) == [*dtypes, *columns.EXTRA.get(name, {}),
                                       "capture_set", "day"]
        assert isinstance(table.index, pd.RangeIndex)
    assert str(ds.messages["ids"].dtype).startswith("large_list")
    assert ds.sessions["data_conns"].map(type).eq(list).all()
    assert "sensor-a" in repr(ds.files) and len(ds.files) == sum(
        len(e.files) for e in ds.manifest.sets.values())


def test_clear_errors(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a camprotool dataset"):
        cpt.read_dataset(tmp_path)
    ds = cpt.read_dataset(dataset)
    with pytest.raises(ValueError, match="'packets' is not a dataset table"):
        ds.table("packets")
    with pytest.raises(ValueError, match="alarms has no column 'cam'"):
        ds.table("alarms", columns=["cam"])
    with pytest.raises(ValueError, match="days"):
        cpt.read_dataset(dataset, days=("2026-11-30",))


def test_endpoints_of_all_sets_are_one_category(dataset: Path) -> None:
    """``client``/``server`` are categories in every file (``dictionary<int32, string>``);
    read together, the categories are every set's endpoints, sorted, and each set's rows
    keep their values."""
    ds = cpt.read_dataset(dataset)
    messages = ds.messages
    for name in ("client", "server"):
        column = messages[name]
        assert isinstance(column.dtype, pd.CategoricalDtype), name
        assert list(column.cat.categories) == sorted(set(column.astype(str))), name
    for one in ("sensor-a", "sensor-b"):
        alone = cpt.read_dataset(dataset, sets=one).messages
        assert alone["client"].astype(str).tolist() == messages.loc[
            messages["capture_set"] == one, "client"].astype(str).tolist()
    assert columns.arrow_schema("messages").field("client").type == columns.arrow_type(
        "client", "category")
