"""``Capture.violations``: the protocol core's session machines run over a whole capture.

Every row is what :class:`~camprotool.protocol.rules.MainSession` (one per
main connection) or :class:`~camprotool.protocol.rules.DataSession` (one per
data connection) finds when fed that connection's messages in order. With
``engine="reference"`` that is literally how they are found; the default
``engine="fast"`` computes the same rows column-wise
(:mod:`camprotool.analysis.fastrules`) and feeds only the connections it does
not model to the machines, because one Python call per message is too slow
for a million messages. This module decides what each machine is told about
its connection, and rebuilds the decoded ``Message`` objects the machines need:

* ``MainSession(start_seen=handshake_seen)``: a connection whose opening was
  not captured began logged in, so it never reports ``before_login``; when
  the opening was captured the heartbeat clock starts there (``opened_ns``).
  Bytes lost server->client before the login answer (``LoginOk``/``LoginError``,
  or with none seen) count as an opening not seen: the answer may have been lost.
* ``DataSession(announced=...)``: ``Capture.connections.announced``, which the
  one linking rule (:mod:`camprotool.protocol.linking`) set: whether an
  announcement to the same client IP by the same server links the connection;
  None (cannot tell) when no main connection of that scope was captured.
  ``start_seen=handshake_seen`` as for main connections.
* ``on_close`` only for connections seen to close (``close_reason`` fin or
  rst): a capture that stops, or a port reused, judges no ``incomplete_sync``.

Messages are rebuilt from the decoder's unmasked Arrow table (the same rows,
in the same order, as ``Capture.messages``): typed fields come straight from
its columns, so no parameter string is parsed again unless the row had an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from camprotool.analysis import fastrules, schema
from camprotool.analysis.dataports import data_port_findings
from camprotool.analysis.judging import DATA, MAIN, ConnInfo, Found, Noted
from camprotool.analysis.masking import SECRET_POSITIONS, mask_params
from camprotool.protocol.catalogue import COMMANDS, Layout, spec_for
from camprotool.protocol.messages import (
    MESSAGE_TYPES,
    Message,
    UnknownMessage,
    build_message,
)
from camprotool.protocol.rules import (
    DEFAULT_HEARTBEAT_TIMEOUT_NS,
    RULES,
    DataSession,
    MainSession,
)

CHUNK_ROWS = 1 << 17  # messages rebuilt at a time (bounds memory on big captures)
CLOSED = frozenset({"fin", "rst"})

_FIELDS = {spec.name: spec.field_names for spec in COMMANDS}
_LIST_LAYOUT = {spec.name: spec.layout for spec in COMMANDS}


def rebuild_messages(table: pa.Table) -> list[Message]:
    """The decoded ``Message`` of every row of a decoder table, in row order."""
    n = table.num_rows
    out: list[Message | None] = [None] * n
    if not n:
        return []
    enc = pc.dictionary_encode(table["command"]).combine_chunks()
    codes = enc.indices.to_numpy(zero_copy_only=False)
    names = enc.dictionary.to_pylist()
    params = table["params"].to_pylist()
    errors = table["error"].to_pylist()
    has_error = table["error"].is_valid().to_numpy(zero_copy_only=False)
    by_code = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[by_code], np.arange(len(names) + 1))
    for k, name in enumerate(names):
        rows = by_code[bounds[k]:bounds[k + 1]]
        spec = spec_for(name)
        if spec is None:
            for i in rows.tolist():
                out[i] = UnknownMessage(command=name, params=params[i], error=errors[i])
            continue
        clean = rows[~has_error[rows]]
        if len(clean):
            cls = MESSAGE_TYPES[spec.name]
            fields = [_values(table[f].take(pa.array(clean)), spec.name)
                      for f in _FIELDS[spec.name]]
            idx = clean.tolist()
            if fields:
                for i, values in zip(idx, zip(*fields, strict=True), strict=True):
                    out[i] = cls(name, params[i], None, b"", *values)
            else:
                for i in idx:
                    out[i] = cls(name, params[i], None, b"")
        for i in rows[has_error[rows]].tolist():
            msg = build_message(spec, name, params[i])
            object.__setattr__(msg, "error", errors[i])  # the decoder's own error text
            out[i] = msg
    return cast(list[Message], out)  # every row is in one command's group: none left None


def _values(column: pa.ChunkedArray, command: str) -> list:
    values = column.to_pylist()
    layout = _LIST_LAYOUT[command]
    if layout is Layout.IDS:
        return [tuple(v) if v is not None else () for v in values]
    if layout is Layout.STATUS_LIST:
        return [tuple((s["camera_id"], s["online"]) for s in v) if v is not None else ()
                for v in values]
    return values


def _chunks(conn_sorted: np.ndarray, size: int) -> Iterator[tuple[int, int]]:
    """[a, b) ranges of whole connections, each about ``size`` rows."""
    n = len(conn_sorted)
    a = 0
    while a < n:
        b = min(a + size, n)
        if b < n:  # extend to the end of the connection at b - 1
            b = int(np.searchsorted(conn_sorted, conn_sorted[b - 1], side="right"))
        yield a, b
        a = b


ENGINES = ("fast", "reference")


class RuleCheck:
    """Judge a capture by the session rules; ``violations`` and ``notes`` frames.

    ``engine="fast"`` (the default) computes the machines' findings column-wise
    (:mod:`camprotool.analysis.fastrules`) and feeds only the connections it
    does not model to the machines; ``engine="reference"`` feeds every
    connection to the machines, one message at a time. Both give the same
    frames (tests/analysis/test_fastrules.py): the reference is the definition.
    """

    def __init__(self, table: pa.Table, messages: pd.DataFrame, connections: pd.DataFrame,
                 *, heartbeat_timeout_ns: int | None = DEFAULT_HEARTBEAT_TIMEOUT_NS,
                 reveal_passwords: bool = False,
                 first_gap_s2c: dict[int, int] | None = None, engine: str = "fast") -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine: {engine!r} is not one of {', '.join(ENGINES)}")
        self.table = table
        self.first_gap_s2c = first_gap_s2c or {}
        self.reveal_passwords = reveal_passwords
        self.messages = messages
        self.connections = connections
        self.heartbeat_timeout_ns = heartbeat_timeout_ns
        self.engine = engine
        self.found: list[Found] = []  # (message, rank, rule, detail)
        self.noted: list[Noted] = []  # (message, rank, detail)
        self._run()
        self.found.extend(data_port_findings(messages, connections))  # across connections
        self.found.sort(key=lambda v: (v[0], v[1]))
        self.noted.sort(key=lambda v: (v[0], v[1]))

    # -- what each connection's machine is told
    def _login_answer_lost(self) -> set[int]:
        """Main connections whose server->client bytes were lost before the login answer.

        The answer may have been among them: what follows cannot be judged
        ``before_login``.
        """
        if not self.first_gap_s2c:
            return set()
        m = self.messages
        answers = m[((m["direction"] == "s2c")
                     & m["command"].isin(("LoginOk", "LoginError"))).to_numpy(bool)]
        first_answer = answers.groupby("conn")["stream_offset"].min().to_dict()
        return {conn for conn, gap in self.first_gap_s2c.items()
                if conn not in first_answer or first_answer[conn] > gap}

    def _conn_info(self, size: int) -> ConnInfo:
        c = self.connections
        ids = c["conn"].to_numpy(np.int64)
        main = (c["channel"] == "main").to_numpy(bool)
        data = (c["channel"] == "data").to_numpy(bool)
        lost = np.isin(ids, np.fromiter(self._login_answer_lost(), np.int64))
        kind = np.full(size, -1, np.int8)
        kind[ids[main]] = MAIN
        kind[ids[data]] = DATA
        start_seen = np.zeros(size, bool)
        start_seen[ids] = c["handshake_seen"].to_numpy(bool) & ~(main & lost)
        opened = np.zeros(size, np.int64)
        opened[ids] = c["start"].array.asi8
        # what the linking rule decided (-1: cannot tell)
        announced = np.full(size, -1, np.int8)
        told = c["announced"].notna().to_numpy(bool) & data
        announced[ids[told]] = c["announced"][told].to_numpy(bool)
        closed = np.zeros(size, bool)
        closed[ids] = c["close_reason"].isin(CLOSED).to_numpy(bool)
        port = dict(zip(ids[data].tolist(), c["server_port"][data].tolist(), strict=True))
        return ConnInfo(kind, start_seen, opened, announced, closed, port)

    def _machine(self, conn: int, info: ConnInfo) -> MainSession | DataSession:
        seen = bool(info.start_seen[conn])
        if info.kind[conn] == MAIN:
            return MainSession(start_seen=seen, heartbeat_timeout_ns=self.heartbeat_timeout_ns,
                               opened_ns=int(info.opened_ns[conn]) if seen else None)
        known = int(info.announced[conn])
        return DataSession(announced=None if known < 0 else bool(known), start_seen=seen,
                           port=info.port[conn])

    # -- judging
    def _run(self) -> None:
        m = self.messages
        conn = m["conn"].to_numpy(np.int64)
        ids = self.connections["conn"].to_numpy(np.int64)
        size = int(max(ids.max(initial=-1), conn.max(initial=-1))) + 1
        info = self._conn_info(size)
        judged = info.kind[conn] >= 0
        pos = np.flatnonzero(judged)
        # each connection in capture order (frame, stream offset), not by ts: a clock
        # stepping backwards reorders timestamps, never a TCP stream
        frame = m["frame"].to_numpy(np.int64)
        offset = m["stream_offset"].to_numpy(np.int64)
        c2s = (m["direction"] == "c2s").to_numpy(bool)
        ts = np.asarray(m["ts"].array.asi8, np.int64)
        if self.engine == "reference":
            pos = pos[np.lexsort((offset[pos], frame[pos], conn[pos]))]
            self._run_machines(pos, conn, c2s, ts, info, np.flatnonzero(info.kind >= 0))
            return
        pos = fastrules.capture_order(pos, conn, frame, offset)
        judgement = fastrules.judge(pos, self.table, info, c2s=c2s, ts=ts, conn=conn,
                                    heartbeat_timeout_ns=self.heartbeat_timeout_ns)
        self.found.extend(judgement.found)
        self.noted.extend(judgement.noted)
        left = judgement.machine_conns
        if len(left):
            self._run_machines(pos[np.isin(conn[pos], left)], conn, c2s, ts, info, left)

    def _run_machines(self, pos: np.ndarray, conn: np.ndarray, c2s: np.ndarray,
                      ts: np.ndarray, info: ConnInfo, conns: np.ndarray) -> None:
        """Feed connections ``conns`` (rows ``pos``, in capture order) to the machines."""
        sessions = {c: self._machine(c, info) for c in conns.tolist()}
        conn_sorted = conn[pos]
        columns = ["command", "params", "error", *dict.fromkeys(
            f for spec in COMMANDS for f in spec.field_names)]
        table = self.table.select(columns)
        found, noted = self.found, self.noted
        rank = len(found) + len(noted)  # a running number: the machines' own order
        for a, b in _chunks(conn_sorted, CHUNK_ROWS):
            rows = pos[a:b]
            msgs = rebuild_messages(table.take(pa.array(rows)))
            idx = rows.tolist()
            dirs = np.where(c2s[rows], "c2s", "s2c").tolist()
            times = ts[rows].tolist()
            starts = np.flatnonzero(np.r_[True, conn_sorted[a + 1:b] != conn_sorted[a:b - 1]])
            ends = np.r_[starts[1:], b - a]
            for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
                key = int(conn_sorted[a + s])
                session = sessions.pop(key)
                on = session.on_message
                for i, d, msg, t in zip(idx[s:e], dirs[s:e], msgs[s:e], times[s:e],
                                        strict=True):
                    for v in on(i, d, msg, t):
                        found.append((v.message, rank, v.rule, v.detail))
                        rank += 1
                if info.closed[key]:
                    for v in session.on_close():
                        found.append((v.message, rank, v.rule, v.detail))
                        rank += 1
                for note in session.notes:
                    noted.append((note.message, rank, note.detail))
                    rank += 1
        for key, session in sessions.items():  # connections without messages
            if info.closed[key]:
                for v in session.on_close():
                    found.append((v.message, rank, v.rule, v.detail))
                    rank += 1

    def violations(self) -> pd.DataFrame:
        rules = list(RULES)
        order = {r: i for i, r in enumerate(rules)}
        rows = self.found  # sorted by message, each message's in the machines' order
        message = np.array([v[0] for v in rows], np.int64)
        columns = {
            "rule": pd.Categorical.from_codes(np.array([order[v[2]] for v in rows], np.int64),
                                              categories=rules),
            "message": message,
            **self._where(message),
            "detail": pd.array(self._masked(message, [v[3] for v in rows]), dtype="str"),
        }
        return schema.conform(pd.DataFrame(columns), schema.VIOLATIONS)

    def notes(self) -> pd.DataFrame:
        rows = self.noted
        message = np.array([v[0] for v in rows], np.int64)
        columns = {"message": message, **self._where(message),
                   "detail": pd.array(self._masked(message, [v[2] for v in rows]), dtype="str")}
        return schema.conform(pd.DataFrame(columns), schema.NOTES)

    def _masked(self, message: np.ndarray, details: list[str]) -> list[str]:
        """Details with the passwords of the parameters they quote masked, as in every table.

        The rules quote a malformed message's parameters (``'demo|pa|ss'``); unless
        passwords are revealed, that quote becomes the masked text (``'demo|***'``).
        """
        if self.reveal_passwords or not len(message):
            return details
        commands = self.messages["command"].array.take(message).astype(str)
        take = pa.array(message)
        params = self.table["params"].take(take).to_pylist()
        # An unreadable frame's name and error are masked in ``messages`` (masking.py):
        # the details quote the unmasked ones.
        raw_commands = self.table["command"].take(take).to_pylist()
        raw_errors = self.table["error"].take(take).to_pylist()
        errors = self.messages["error"].array.take(message)
        out = []
        for command, raw, detail, raw_command, raw_error, error in zip(
                commands, params, details, raw_commands, raw_errors, errors, strict=True):
            if command in SECRET_POSITIONS and raw:
                detail = detail.replace(repr(raw[:80]), repr(mask_params(command, raw)[:80]))
            if raw_error and isinstance(error, str) and raw_error != error:
                detail = detail.replace(raw_error, error)
            if raw_command and raw_command != command:
                detail = detail.replace(raw_command, command)
            out.append(detail)
        return out

    def _where(self, message: np.ndarray) -> dict[str, object]:
        m = self.messages
        return {
            "conn": m["conn"].to_numpy(np.int64)[message],
            "ts": pd.to_datetime(m["ts"].array.asi8[message], unit="ns", utc=True),
            "command": pd.array(m["command"].array.take(message).astype(str), dtype="str"),
        }
