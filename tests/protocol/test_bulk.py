"""The bulk decoder must agree exactly with the incremental decoder, on any stream."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camprotool.protocol.bulk import SCHEMA, BulkDecoder, decode_stream
from camprotool.protocol.codec import Decoder, encode
from camprotool.protocol.dialect import Dialect

DIALECTS = ["line", "lp32le", "lp32be", "line:gbk", "lp32le:gbk", "lp32be:gbk"]

SAMPLES = [
    ("Login", "demo|demo"),
    ("LoginOk", "3|2024-01-01 10:00:00|1.2.3.4"),
    ("LoginError", "用户名或者密码错误!"),
    ("CreatDataSocket", "demo|demo"),
    ("ReturnDataSocketPort", "9001"),
    ("ReturnDataSocketPort", ""),
    ("ReturnDataSocketPort", "70000"),
    ("UploadCaramer", "CAM1|1234|1|3"),
    ("UploadCaramer", "CAM1|1234|x|3"),
    ("UploadCaramer", "CAM1|1234|1"),
    ("UploadSucess", "CAM1|True|1|3"),
    ("UploadSucess", "CAM1|maybe|1|3"),
    ("UploadFail", "CAM1|bound | full|2|3"),
    ("DownLoadCaramer", "0"),
    ("DownLoadCaramer", "99999999999999999999"),
    ("DownloadSucess", "CAM1|1234|null|1|2"),
    ("DownloadFail", "没有摄像头"),
    ("CheckCaramerOnlineStatus", "A;B;C;"),
    ("CheckCaramerOnlineStatus", ""),
    ("ReturnCaramerOnlineStatus", "A;true|B;null|C;false"),
    ("ReturnCaramerOnlineStatus", "A;yes"),
    ("PrushCaramerOnlineStatus", "A:false"),
    ("PrushCaramerOnlineStatus", "A"),
    ("PrushCaramerAlarmInfo", "A:motion:zone 1"),
    ("Heartbeat", ""),
    ("Vendor.Extension.Thing", "x|y"),
]


def _norm(value):
    if isinstance(value, tuple):
        return [_norm(v) for v in value]
    return value


def incremental_rows(dec: Decoder, ops) -> list[dict]:
    pairs = []
    for op, arg in ops:
        pairs += dec.feed_with_ends(arg) if op == "feed" else dec.gap_with_ends(arg)
    pairs += dec.finish_with_ends()
    rows = []
    for end, msg in pairs:
        row = dict.fromkeys(SCHEMA.names)
        row.update(end=end, command=msg.command, params=msg.params, error=msg.error,
                   raw=msg.raw if msg.error else None)
        for name, value in msg.fields.items():
            if name == "statuses":
                value = [{"camera_id": c, "online": s} for c, s in value]
            row[name] = _norm(value)
        rows.append(row)
    return rows


def bulk_rows(dec: BulkDecoder, ops) -> list[dict]:
    tables = [dec.feed(arg) if op == "feed" else dec.gap(arg) for op, arg in ops]
    tables.append(dec.finish())
    return pa.concat_tables(tables).to_pylist()


@st.composite
def streams(draw):
    dialect = draw(st.sampled_from(DIALECTS))
    frames = draw(st.lists(st.sampled_from(SAMPLES), max_size=25))
    data = bytearray(b"".join(encode(c, p, dialect) for c, p in frames))
    for _ in range(draw(st.integers(0, 3))):  # corrupt: insert random bytes
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(max_size=12))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=5)))
    ops, pos = [], 0
    for cut in cuts:
        ops.append(("feed", bytes(data[pos:cut])))
        pos = cut
        if draw(st.booleans()):
            ops.append(("gap", draw(st.integers(0, 7))))
    ops.append(("feed", bytes(data[pos:])))
    max_frame = draw(st.sampled_from([1 << 20, 40]))
    return Dialect.parse(dialect, max_frame=max_frame), ops


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_bulk_agrees_with_incremental(case):
    dialect, ops = case
    assert bulk_rows(BulkDecoder(dialect), ops) == incremental_rows(Decoder(dialect), ops)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(DIALECTS), st.binary(max_size=300))
def test_bulk_agrees_on_random_bytes(dialect, data):
    d = Dialect.parse(dialect, max_frame=64)
    assert bulk_rows(BulkDecoder(d), [("feed", data)]) == incremental_rows(
        Decoder(d), [("feed", data)]
    )


def test_typed_columns():
    first = encode("UploadSucess", "CAM1|true|2|3")
    data = first + encode("ReturnDataSocketPort", "")
    table = decode_stream(data)
    assert table.column("command").to_pylist() == ["UploadSucess", "ReturnDataSocketPort"]
    assert table.column("online").to_pylist() == [True, None]
    assert table.column("synced").to_pylist() == [2, None]
    assert table.column("port").to_pylist() == [None, None]
    assert table.column("error").to_pylist() == [None, None]
    assert table.column("end").to_pylist() == [len(first), len(data)]
