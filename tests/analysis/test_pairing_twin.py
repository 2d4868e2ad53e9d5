"""The analysis tables pair sync steps column-wise: a twin of the one pairing rule.

``Capture.sync`` is built from ``tables._upload_pairs``/``_download_pairs``,
vectorised for whole captures. They must pair exactly as
:class:`camprotool.protocol.pairing.Pairing` (which the client, the emulator,
the proxy, replay and the session rules use) does, message by message.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from camprotool.analysis import tables
from camprotool.protocol.catalogue import ANSWERS, BY_NAME
from camprotool.protocol.messages import build_message
from camprotool.protocol.pairing import Pairing

UPLOAD = ["UploadCaramer", *ANSWERS["UploadCaramer"]]
DOWNLOAD = ["DownLoadCaramer", *ANSWERS["DownLoadCaramer"]]
NOISE = ["Heartbeat", "LoginOk", "PrushCaramerAlarmInfo"]  # ignored by both


def prep(script: list[tuple[int, str]]) -> tables.Prep:
    """A capture of ``(conn, command)`` messages on data connections, in capture order."""
    n = len(script)
    conns = sorted({c for c, _ in script}) or [0]
    direction = ["c2s" if BY_NAME[name].direction.wire == "c2s" else "s2c"
                 for _, name in script]
    messages = pd.DataFrame({
        "ts": pd.to_datetime(np.arange(n, dtype=np.int64), unit="ns", utc=True),
        "conn": np.array([c for c, _ in script], np.int64),
        "channel": pd.Categorical(["data"] * n, categories=["main", "data", "unknown"]),
        "direction": pd.Categorical(direction, categories=["c2s", "s2c"]),
        "command": pd.Series([name for _, name in script], dtype="object"),
        "error": pd.Series([None] * n, dtype="object"),
        "frame": np.arange(n, dtype=np.int64),
        "stream_offset": np.arange(n, dtype=np.int64),
    })
    connections = pd.DataFrame({
        "conn": np.array(conns, np.int64),
        "start": pd.to_datetime([0] * len(conns), unit="ns", utc=True),
        "end": pd.to_datetime([n] * len(conns), unit="ns", utc=True),
    })
    return tables.Prep(messages, connections)


def by_the_rule(script: list[tuple[int, str]], request: str) -> set[tuple[int, int]]:
    """The (request, answer) steps the one pairing rule makes, per connection."""
    retries = BY_NAME[request].retries
    wanted = {request, *ANSWERS[request]}
    steps: set[tuple[int, int]] = set()
    pairings: dict[int, Pairing] = {}
    for i, (conn, name) in enumerate(script):
        if name not in wanted:
            continue
        pairing = pairings.setdefault(conn, Pairing())
        msg = build_message(BY_NAME[name], name, "")
        if name == request:
            pairing.request(i, msg)
            continue
        got = pairing.answer(msg)
        steps.add((got.request.index if got.request else -1, i))
        assert not got.dropped  # one request command: nothing is ever skipped
    for pairing in pairings.values():
        left = [w.index for w in pairing.waiting]
        if retries and left:  # copies of one retried request: one step, the latest
            left = left[-1:]
        steps |= {(index, -1) for index in left}
    return steps


def by_the_twin(script: list[tuple[int, str]], request: str) -> set[tuple[int, int]]:
    pairs = tables._upload_pairs if request == "UploadCaramer" else tables._download_pairs
    req, ans = pairs(prep(script))
    got = list(zip(req.tolist(), ans.tolist(), strict=True))
    assert len(got) == len(set(got))
    return set(got)


scripts = st.lists(st.tuples(st.integers(0, 2), st.sampled_from(UPLOAD + DOWNLOAD + NOISE)),
                   max_size=60)


@settings(max_examples=150, deadline=None)
@given(scripts)
def test_upload_steps_are_paired_as_the_rule_pairs_them(script) -> None:
    assert by_the_twin(script, "UploadCaramer") == by_the_rule(script, "UploadCaramer")


@settings(max_examples=150, deadline=None)
@given(scripts)
def test_download_steps_are_paired_as_the_rule_pairs_them(script) -> None:
    assert by_the_twin(script, "DownLoadCaramer") == by_the_rule(script, "DownLoadCaramer")


def test_a_known_case_either_way() -> None:
    script = [(0, "DownLoadCaramer"), (0, "DownLoadCaramer"), (0, "DownloadSucess"),
              (0, "DownloadSucess"), (1, "UploadSucess"), (1, "UploadCaramer")]
    assert by_the_twin(script, "DownLoadCaramer") == {(1, 2), (-1, 3)}
    assert by_the_twin(script, "UploadCaramer") == {(-1, 4), (5, -1)}
