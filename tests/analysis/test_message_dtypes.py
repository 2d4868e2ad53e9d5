"""The analysis tables do not depend on how ``Capture.messages`` stores its columns.

``command``, ``channel``, ``direction``, ``client`` and ``server`` may be
categories (with a fixed list, in any order, unused ones included) or plain
strings; text columns may be Arrow-backed; ``raw`` may be null for rows that
decoded cleanly. Every analysis table must come out the same, dtypes included.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from test_fastrules import _transfers_capture, conversations
from test_tables import sessions_capture, sync_capture

from camprotool import read_capture
from camprotool.analysis.capture import Capture
from camprotool.analysis.frames import CHANNELS
from camprotool.protocol.catalogue import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("sessions", "sync", "transfers", "status", "alarms", "violations", "notes")
NAMES = ("command", "channel", "direction", "client", "server")
FIXED = {"command": [spec.name for spec in COMMANDS], "channel": CHANNELS,
         "direction": ["c2s", "s2c"]}
HOW = ("object", "category", "arrow", "string[pyarrow]")


def convert(messages: pd.DataFrame, how: str) -> pd.DataFrame:
    m = messages.copy()
    if how == "object":
        for name in NAMES:
            m[name] = m[name].astype(object)
    elif how == "category":
        for name in NAMES:
            values = m[name].astype(object)
            fixed = FIXED.get(name, [])
            categories = fixed + sorted(set(values) - set(fixed))
            m[name] = pd.Categorical(values, categories=categories[::-1])  # not first-seen order
    else:
        dtype = pd.ArrowDtype(pa.string()) if how == "arrow" else "string[pyarrow]"
        for name in m.columns:
            if name in NAMES or str(m[name].dtype) == "str":
                m[name] = m[name].astype(object).astype(dtype)
    m["raw"] = m["raw"].where(m["error"].notna(), None)
    return m


def assert_same_tables(cap: Capture, how: str) -> None:
    other = Capture(cap.decoded, reveal_passwords=cap.reveal_passwords,
                    heartbeat_timeout=cap.heartbeat_timeout)
    other.__dict__["messages"] = convert(cap.messages, how)
    other.__dict__["connections"] = cap.connections
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(other, name), getattr(cap, name), obj=name)


CAPTURES = {
    **{p.name: p for p in sorted((ROOT / "captures").glob("*.pcap*"))},
    "sessions": sessions_capture,
    "sync": sync_capture,
    "rules": _transfers_capture,
}


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("name", list(CAPTURES))
def test_tables_whatever_the_message_dtypes(name, how):
    source = CAPTURES[name]
    cap = read_capture(source if isinstance(source, Path) else source())
    assert_same_tables(cap, how)


def test_the_categorical_conversion_really_changes_the_columns():
    cap = read_capture(sync_capture())
    m = convert(cap.messages, "category")
    assert list(m["command"].cat.categories[:2]) != list(cap.messages["command"].cat.categories[:2])
    assert isinstance(m["client"].dtype, pd.CategoricalDtype)
    assert m["raw"].isna().all()
    assert isinstance(convert(cap.messages, "arrow")["camera_id"].dtype, pd.ArrowDtype)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations())
def test_generated_conversations_whatever_the_message_dtypes(conversation):
    cap = read_capture(conversation[0])
    for how in HOW:
        assert_same_tables(cap, how)
