"""Exports: every format reads back, list columns in their wire form."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import camprotool as cpt
from camprotool.analysis.export import flatten, output_format, write_frame

SAMPLE = Path(__file__).resolve().parents[2] / "captures" / "sample.pcapng"


@pytest.fixture(scope="module")
def cap():
    return cpt.read_capture(SAMPLE)


def test_statuses_and_ids_in_wire_form(cap):
    flat = flatten(cap.messages)
    answers = flat.loc[flat["command"] == "ReturnCaramerOnlineStatus", "statuses"].tolist()
    assert answers[0] == "DEMO0001;true|DEMO0002;false|DEMO0003;null"
    queries = flat.loc[flat["command"] == "CheckCaramerOnlineStatus", "ids"].tolist()
    assert queries[0] == "DEMO0001;DEMO0002;DEMO0003"


def test_live_tuples_flatten_alike():
    df = pd.DataFrame({"statuses": [(("A", True), ("B", None)), None]})
    assert flatten(df)["statuses"].tolist()[0] == "A;true|B;null"


def test_sessions_data_conns(cap):
    assert flatten(cap.sessions)["data_conns"].tolist() == ["1"]


@pytest.mark.parametrize("suffix", [".csv", ".json", ".parquet"])
def test_every_format_reads_back(cap, tmp_path, suffix):
    path = tmp_path / f"messages{suffix}"
    write_frame(cap.messages, path)
    if suffix == ".csv":
        back = pd.read_csv(path)
    elif suffix == ".json":
        back = pd.read_json(path, lines=True)
    else:
        back = pd.read_parquet(path)
    assert len(back) == len(cap.messages)
    assert back["command"].astype(str).tolist() == cap.messages["command"].astype(str).tolist()
    assert "demo|***" in back["params"].astype(str).tolist()  # passwords stay masked


def test_unknown_extension_is_refused():
    with pytest.raises(ValueError, match=r"unknown output format '\.xls'"):
        output_format("x.xls")
