"""Replay's comparison: recorded vs live server messages, field by field, and the result."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from camprotool.net.addresses import format_endpoint
from camprotool.net.table import mask_params
from camprotool.protocol import Message
from camprotool.protocol.catalogue import Kind, Layout

if TYPE_CHECKING:
    import pandas as pd


log = logging.getLogger("camprotool.net.replay")

#: Fields that legitimately differ between two runs and are not compared.
DEFAULT_VOLATILE: dict[str, tuple[str, ...]] = {
    "LoginOk": ("last_login_time", "last_login_ip"),
}
#: The values of the comparison's ``match`` column.
MATCHES = ("same", "different", "missing", "extra")

# ====================================================================== comparing


def _fmt(kind: Kind | None, value: Any) -> str:
    if value is None and kind is Kind.STATUS:
        return "null"
    if value is None or value == "":
        return "empty"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def compare_replies(recorded: Message, live: Message,
                    volatile: Mapping[str, Iterable[str]] | None = None,
                    reveal_passwords: bool = False) -> tuple[str, str]:
    """``("same" | "different", detail)`` for a recorded server message and a live one.

    ``detail`` names each differing field (``camera_count: 3 -> 1``); for
    ``same`` it lists the volatile fields that differed (``ignored: port``).
    Passwords are named, not shown, unless ``reveal_passwords``.
    """
    volatile = DEFAULT_VOLATILE if volatile is None else volatile
    if recorded.command != live.command:
        shown = live.params if reveal_passwords else mask_params(live)
        return "different", f"command {recorded.command} -> {live.command} {shown}".rstrip()
    spec = recorded.spec
    if spec is None or recorded.error or live.error:
        if recorded.params == live.params:
            return "same", ""
        a = recorded.params if reveal_passwords else mask_params(recorded)
        b = live.params if reveal_passwords else mask_params(live)
        return "different", f"params {a!r} -> {b!r}"
    ignored = set(volatile.get(spec.name, ()))
    diffs: list[str] = []
    skipped: list[str] = []
    for f in spec.fields:
        a, b = getattr(recorded, f.name), getattr(live, f.name)
        if a == b:
            continue
        if f.name in ignored:
            skipped.append(f.name)
        elif f.kind is Kind.PORT and (a is None) == (b is None):
            skipped.append(f.name)  # a port number is the server's choice; presence is not
        elif f.kind is Kind.PORT:
            diffs.append(f"{f.name}: {_fmt(f.kind, a)} -> {_fmt(f.kind, b)}"
                         + (" (no free data port)" if b is None else ""))
        elif f.kind is Kind.SECRET and not reveal_passwords:
            diffs.append(f"{f.name} differs")
        elif spec.layout is Layout.STATUS_LIST:
            diffs.extend(_status_diffs(a or (), b or ()))
        else:
            diffs.append(f"{f.name}: {_fmt(f.kind, a)} -> {_fmt(f.kind, b)}")
    if diffs:
        return "different", "; ".join(diffs)
    return "same", ("ignored: " + ", ".join(skipped)) if skipped else ""


def _status_diffs(a: Iterable[tuple[str, Any]], b: Iterable[tuple[str, Any]]) -> list[str]:
    left, right = dict(a), dict(b)
    out = []
    for cid in dict.fromkeys([*left, *right]):
        if cid not in right:
            out.append(f"{cid}: not answered")
        elif cid not in left:
            out.append(f"{cid}: {_fmt(Kind.STATUS, right[cid])} (not in the recording)")
        elif left[cid] != right[cid]:
            out.append(f"{cid}: {_fmt(Kind.STATUS, left[cid])} -> "
                       f"{_fmt(Kind.STATUS, right[cid])}")
    return out


@dataclass
class ReplayResult:
    """What :func:`replay_client` saw.

    ``messages``: every live message, sent and received (``Capture.messages``
    columns). ``comparison``: one row per recorded server message and per
    unexpected live one (see the module docs). ``conn_map``: recorded
    connection id -> live connection id (in ``messages``). ``replayed``: the
    recorded main connections replayed. ``notes``: what could not be replayed
    and why. ``elapsed``: seconds the replay took.
    """

    messages: pd.DataFrame
    comparison: pd.DataFrame
    conn_map: dict[int, int]
    replayed: list[int]
    notes: list[str]
    elapsed: float
    target: tuple[str, int]
    source: str = ""

    @property
    def replies(self) -> pd.DataFrame:
        """The comparison rows for replies (pushes left out)."""
        return self.comparison[self.comparison["kind"] == "reply"]

    @property
    def ok(self) -> bool:
        """Whether every recorded reply came back the same (and nothing extra came)."""
        return bool((self.replies["match"] == "same").all())

    @property
    def counts(self) -> dict[str, int]:
        """Reply rows per match value."""
        values = self.replies["match"].astype(str).value_counts()
        return {m: int(values.get(m, 0)) for m in MATCHES}

    def summary(self) -> str:
        counts = self.counts
        pushes = self.comparison[self.comparison["kind"] == "push"]["match"].astype(str)
        text = (f"{sum(counts.values())} replies: "
                + ", ".join(f"{n} {m}" for m, n in counts.items()))
        if len(pushes):
            pc = pushes.value_counts()
            text += f"; {len(pushes)} pushes: " + ", ".join(
                f"{int(pc[m])} {m}" for m in MATCHES if m in pc)
        return text

    def __repr__(self) -> str:
        return (f"<ReplayResult {self.source or 'capture'} -> {format_endpoint(self.target)}: "
                f"{self.summary()}>")


COMPARISON_COLUMNS = ("conn", "channel", "kind", "live_conn", "request", "request_params",
                      "recorded_ts", "recorded_command", "recorded_params", "live_ts",
                      "live_command", "live_params", "match", "detail")


def _comparison_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    rows = sorted(rows, key=lambda r: r["_order"])  # stable: extras stay after their kin
    data: dict[str, Any] = {}
    for name in COMPARISON_COLUMNS:
        values = [r[name] for r in rows]
        if name in ("conn", "live_conn"):
            data[name] = pd.array(values, dtype="Int64")
        elif name.endswith("_ts"):
            data[name] = pd.to_datetime(pd.Series(values, dtype="Int64"), unit="ns", utc=True)
        elif name == "match":
            data[name] = pd.Categorical(values, categories=list(MATCHES))
        elif name == "kind":
            data[name] = pd.Categorical(values, categories=["reply", "push"])
        elif name == "channel":
            data[name] = pd.Categorical(values, categories=["main", "data", "unknown"])
        else:
            data[name] = pd.Series(values, dtype="object")
    return pd.DataFrame(data)


