"""Exports: every format reads back; Parquet and JSON keep list columns, CSV flattens them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import camprotool as cpt
from camprotool.analysis.export import ARROW_TYPES, flatten, output_format, write_frame

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


def test_parquet_keeps_list_and_struct_columns(cap, tmp_path):
    path = tmp_path / "messages.parquet"
    write_frame(cap.messages, path)
    schema = pq.read_schema(path)
    assert schema.field("ids").type == pa.list_(pa.string())
    assert schema.field("statuses").type == pa.list_(
        pa.struct([("camera_id", pa.string()), ("online", pa.bool_())]))
    assert schema.field("raw").type == pa.binary()
    back = pd.read_parquet(path)
    query = back.loc[back["command"] == "CheckCaramerOnlineStatus", "ids"].iloc[0]
    assert list(query) == ["DEMO0001", "DEMO0002", "DEMO0003"]
    answer = back.loc[back["command"] == "ReturnCaramerOnlineStatus", "statuses"].iloc[0]
    assert list(answer) == [{"camera_id": "DEMO0001", "online": True},
                            {"camera_id": "DEMO0002", "online": False},
                            {"camera_id": "DEMO0003", "online": None}]
    assert back["online"].dtype == "boolean" and back["current"].dtype == "Int64"


def test_parquet_schema_does_not_depend_on_the_rows(cap, tmp_path):
    """A table whose list columns are all null (a chunk without status queries) has the
    same schema, so files of one table concatenate."""
    write_frame(cap.messages.head(2), tmp_path / "head.parquet")
    write_frame(cap.messages, tmp_path / "all.parquet")
    head, full = pq.read_schema(tmp_path / "head.parquet"), pq.read_schema(tmp_path / "all.parquet")
    for name, arrow_type in ARROW_TYPES.items():
        if name in full.names:
            assert head.field(name).type == full.field(name).type == arrow_type, name


def test_parquet_sessions_and_live_tuples(cap, tmp_path):
    write_frame(cap.sessions, tmp_path / "sessions.parquet")
    assert [list(v) for v in pd.read_parquet(tmp_path / "sessions.parquet")["data_conns"]] == [[1]]
    live = pd.DataFrame({"ids": [("A", "B"), None],
                         "statuses": [(("A", True), ("B", None)), None]})
    write_frame(live, tmp_path / "live.parquet")
    back = pd.read_parquet(tmp_path / "live.parquet")
    assert list(back["ids"][0]) == ["A", "B"] and back["ids"][1] is None
    assert list(back["statuses"][0]) == [{"camera_id": "A", "online": True},
                                         {"camera_id": "B", "online": None}]


def test_json_lines_keep_arrays(cap, tmp_path):
    path = tmp_path / "messages.json"
    write_frame(cap.messages, path)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    by_command = {}
    for r in rows:
        by_command.setdefault(r["command"], r)  # the first of each
    assert by_command["CheckCaramerOnlineStatus"]["ids"] == ["DEMO0001", "DEMO0002", "DEMO0003"]
    assert by_command["ReturnCaramerOnlineStatus"]["statuses"][2] == {
        "camera_id": "DEMO0003", "online": None}
    assert by_command["Login"]["ids"] is None


def test_csv_flattens_to_the_wire_form(cap, tmp_path):
    path = tmp_path / "messages.csv"
    write_frame(cap.messages, path)
    back = pd.read_csv(path)
    assert "DEMO0001;true|DEMO0002;false|DEMO0003;null" in back["statuses"].tolist()
    assert "DEMO0001;DEMO0002;DEMO0003" in back["ids"].tolist()


def test_raw_bytes_per_format(tmp_path):
    df = pd.DataFrame({"raw": [b"\x00ab", None]})
    write_frame(df, tmp_path / "raw.parquet")
    assert pd.read_parquet(tmp_path / "raw.parquet")["raw"].tolist() == [b"\x00ab", None]
    write_frame(df, tmp_path / "raw.csv")
    assert pd.read_csv(tmp_path / "raw.csv", dtype=str)["raw"].tolist()[0] == "006162"
    write_frame(df, tmp_path / "raw.json")
    assert json.loads((tmp_path / "raw.json").read_text().splitlines()[0]) == {"raw": "006162"}


def test_unknown_extension_is_refused():
    with pytest.raises(ValueError, match=r"unknown output format '\.xls'"):
        output_format("x.xls")
