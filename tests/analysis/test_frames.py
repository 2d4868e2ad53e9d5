"""How ``Capture.messages`` holds its columns: endpoints as categories, one shared array
of nulls for every text column without a value (issue 9: compact tables)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from camprotool import encode, read_capture
from camprotool.analysis.frames import messages_frame
from camprotool.capture.writer import PcapngWriter

T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def heartbeats(clients: list[tuple[str, int]]) -> bytes:
    """Each client sends two heartbeats, answered by none."""
    w = PcapngWriter()
    t = T0
    for k, client in enumerate(clients):
        c = w.tcp(client, ("10.0.0.2", 9000 + k % 2), t)
        for _ in range(2):
            t += MS
            c.send("c2s", encode("Heartbeat", ""), t)
        c.close(t + MS)
    return w.getvalue()


@pytest.fixture(scope="module")
def cap():
    return read_capture(heartbeats([("10.0.0.9", 50001), ("10.0.0.1", 50000),
                                    ("10.0.0.5", 50002)]))


def test_endpoints_are_categories_of_the_connections_with_rows(cap):
    m, conns = cap.messages, cap.connections
    assert len(conns) == 3 and len(m) == 6
    for name in ("client", "server"):
        assert isinstance(m[name].dtype, pd.CategoricalDtype), name
        assert m[name].cat.categories.dtype == "str"
        # each row its connection's endpoint, as the connections table (str) says
        assert m[name].astype(str).tolist() == conns.loc[m["conn"], name].tolist(), name
        # the endpoints that have rows, sorted: what astype("category") of the text gives
        assert list(m[name].cat.categories) == sorted(set(m[name].astype(str))), name
    assert m["client"].cat.codes.dtype == np.int8  # a byte a row, not a string


def test_a_connection_without_rows_is_no_category(cap):
    """As in a chunk of ``iter_capture``: categories are what the rows hold."""
    d = cap.decoded
    quiet = replace(d.connections[0], conn=len(d.connections), client_port=50003)
    m = messages_frame(d.rows, [*d.connections, quiet], order=d.order)
    assert quiet.client not in m["client"].cat.categories
    pd.testing.assert_frame_equal(m, cap.messages)


def test_endpoints_still_compare_sort_and_group_as_text(cap):
    m = cap.messages
    assert (m["client"] == "10.0.0.1:50000").sum() == 2
    assert m["client"].str.endswith(":50000").sum() == 2
    assert m.sort_values("client", kind="stable")["client"].astype(str).tolist() == sorted(
        m["client"].astype(str))
    assert m.groupby("server").size().to_dict() == {"10.0.0.2:9000": 4, "10.0.0.2:9001": 2}
    merged = m.merge(cap.connections[["client", "start"]], on="client")
    assert len(merged) == len(m)


def _null_text_buffers(m: pd.DataFrame) -> dict[str, int]:
    """Each all-null ``str`` column's offsets buffer address."""
    out = {}
    for name in m.columns:
        if str(m[name].dtype) == "str" and m[name].isna().all():
            chunks = m[name].array._pa_array.chunks
            assert len(chunks) == 1, name
            out[name] = chunks[0].buffers()[1].address
    return out


@pytest.mark.parametrize("reordered", [False, True])
def test_text_columns_without_a_value_share_one_array(cap, reordered):
    d = cap.decoded
    order = np.arange(d.rows.num_rows)[::-1].copy() if reordered else d.order
    m = messages_frame(d.rows, d.connections, order=order)
    shared = _null_text_buffers(m)
    assert {"error", "user", "password", "reason", "camera_id"} <= shared.keys()
    assert len(set(shared.values())) == 1, shared
    assert m["params"].notna().all()  # "" is a value: params keeps its own array


def test_concatenating_two_captures_gives_text_or_unions_categories(cap):
    """The documented conversion: pandas' concat of category columns whose categories
    differ gives ``str`` (same values); ``union_categoricals`` keeps categories."""
    other = read_capture(heartbeats([("10.0.0.3", 50004)])).messages
    mine = cap.messages
    both = pd.concat([mine, other], ignore_index=True)
    assert str(both["client"].dtype) == "str"
    assert both["client"].tolist() == [*mine["client"].astype(str), *other["client"]]
    union = pd.api.types.union_categoricals([mine["client"], other["client"]],
                                            sort_categories=True)
    assert list(union.categories) == sorted(set(both["client"]))
    assert list(union.astype(str)) == both["client"].tolist()
    same = pd.concat([mine, mine], ignore_index=True)  # same categories: stay categories
    assert same["client"].dtype == mine["client"].dtype


def test_empty_capture_has_empty_endpoint_categories():
    m = read_capture(PcapngWriter().getvalue()).messages
    for name in ("client", "server"):
        assert isinstance(m[name].dtype, pd.CategoricalDtype)
        assert len(m[name].cat.categories) == 0


def test_a_mostly_sorted_order_is_applied_by_slices_and_gives_the_same_frame(monkeypatch):
    """Rows carried across a window seam: the frame is made of zero-copy slices and small
    takes, and equals the frame a take of every column makes."""
    from camprotool.analysis import frames
    from camprotool.capture.decode import decode_file

    d = decode_file(heartbeats([("10.0.1.1", 40000 + k) for k in range(60)]))
    n = d.rows.num_rows
    assert n == 120
    order = np.arange(n)
    order[n // 3:n // 3 + 5] = order[n // 3:n // 3 + 5][::-1]  # a few rows displaced
    order[-3:] = order[-3:][::-1]
    monkeypatch.setattr(frames, "_RUN", 4)
    pieces = frames._pieces(order)
    assert pieces is not None and any(local is not None for _, _, local in pieces)
    sliced = frames.messages_frame(d.rows, d.connections, order=order)
    monkeypatch.setattr(frames, "_pieces", lambda order: None)
    taken = frames.messages_frame(d.rows, d.connections, order=order)
    pd.testing.assert_frame_equal(sliced, taken)
    assert sliced["frame"].tolist() == d.rows["frame"].to_numpy()[order].tolist()
