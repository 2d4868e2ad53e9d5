"""``Capture.violations``: the protocol core's session machines run over a whole capture.

Nothing here judges a rule: every row comes from
:class:`~camprotool.protocol.rules.MainSession` (one per main connection) or
:class:`~camprotool.protocol.rules.DataSession` (one per data connection),
fed that connection's messages in order. This module only rebuilds the
decoded ``Message`` objects from the capture's columns and decides what each
machine is told about its connection:

* ``MainSession(start_seen=handshake_seen)``: a connection whose opening was
  not captured began logged in, so it never reports ``before_login``; when
  the opening was captured the heartbeat clock starts there (``opened_ns``).
  Bytes lost server->client before the login answer (``LoginOk``/``LoginError``,
  or with none seen) count as an opening not seen: the answer may have been lost.
* ``DataSession(announced=...)``: :func:`~camprotool.protocol.rules.data_port_announced`
  over the ReturnDataSocketPort answers sent to the same client IP on its main
  connections; None (cannot tell) when ``Capture.connections.announced`` is
  null because no main connection of that client was captured.
  ``start_seen=handshake_seen`` as for main connections.
* ``on_close`` only for connections seen to close (``close_reason`` fin or
  rst): a capture that stops, or a port reused, judges no ``incomplete_sync``.

Messages are rebuilt from the decoder's unmasked Arrow table (the same rows,
in the same order, as ``Capture.messages``): typed fields come straight from
its columns, so no parameter string is parsed again unless the row had an error.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from camprotool.analysis import schema
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
    Announcement,
    DataSession,
    MainSession,
    data_port_announced,
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
    return out  # type: ignore[return-value]


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


class RuleCheck:
    """Run the session machines over a capture; ``violations`` and ``notes`` frames."""

    def __init__(self, table: pa.Table, messages: pd.DataFrame, connections: pd.DataFrame,
                 *, heartbeat_timeout_ns: int | None = DEFAULT_HEARTBEAT_TIMEOUT_NS,
                 reveal_passwords: bool = False,
                 first_gap_s2c: dict[int, int] | None = None) -> None:
        self.table = table
        self.first_gap_s2c = first_gap_s2c or {}
        self.reveal_passwords = reveal_passwords
        self.messages = messages
        self.connections = connections
        self.heartbeat_timeout_ns = heartbeat_timeout_ns
        self.found: list[tuple[str, int, str]] = []  # (rule, message, detail)
        self.noted: list[tuple[int, str]] = []  # (message, detail)
        self._run()

    def _announced(self) -> dict[int, bool | None]:
        """``announced`` per data connection, by the rules' own helper."""
        c = self.connections
        m = self.messages
        ok = ((m["channel"] == "main") & (m["direction"] == "s2c")
              & (m["command"] == "ReturnDataSocketPort") & m["error"].isna()).to_numpy()
        pos = np.flatnonzero(ok)
        client_ip = dict(zip(c["conn"].tolist(), c["client_ip"].tolist(), strict=True))
        by_ip: dict[str, list[Announcement]] = defaultdict(list)
        ports = m["port"].array.take(pos)
        ts = m["ts"].array.asi8[pos]
        for i, conn, port, t in zip(pos.tolist(), m["conn"].to_numpy()[pos].tolist(),
                                    ports.tolist(), ts.tolist(), strict=True):
            by_ip[client_ip[conn]].append(
                Announcement(None if port is pd.NA else int(port), i, t, conn))
        data = c[c["channel"] == "data"]
        out: dict[int, bool | None] = {}
        for conn, ip, port, start, known in zip(
                data["conn"].tolist(), data["client_ip"].tolist(),
                data["server_port"].tolist(), data["start"].array.asi8.tolist(),
                data["announced"].tolist(), strict=True):
            out[conn] = None if known is pd.NA else data_port_announced(port, start,
                                                                         by_ip.get(ip, ()))
        return out

    def _login_answer_lost(self) -> set[int]:
        """Main connections whose server->client bytes were lost before the login answer.

        The answer may have been among them: what follows cannot be judged
        ``before_login``.
        """
        if not self.first_gap_s2c:
            return set()
        m = self.messages
        answers = m[(m["direction"] == "s2c") & m["command"].isin(("LoginOk", "LoginError"))]
        first_answer = answers.groupby("conn")["stream_offset"].min().to_dict()
        return {conn for conn, gap in self.first_gap_s2c.items()
                if conn not in first_answer or first_answer[conn] > gap}

    def _sessions(self) -> dict[int, tuple[MainSession | DataSession, bool]]:
        c = self.connections
        announced = self._announced()
        lost_login = self._login_answer_lost()
        sessions: dict[int, tuple[MainSession | DataSession, bool]] = {}
        for conn, channel, seen, start, reason, port in zip(
                c["conn"].tolist(), c["channel"].tolist(), c["handshake_seen"].tolist(),
                c["start"].array.asi8.tolist(), c["close_reason"].tolist(),
                c["server_port"].tolist(), strict=True):
            closed = reason in CLOSED
            if channel == "main":
                seen = seen and conn not in lost_login
                sessions[conn] = (MainSession(start_seen=seen,
                                              heartbeat_timeout_ns=self.heartbeat_timeout_ns,
                                              opened_ns=start if seen else None), closed)
            elif channel == "data":
                sessions[conn] = (DataSession(announced=announced[conn], start_seen=seen,
                                              port=port), closed)
        return sessions

    def _run(self) -> None:
        sessions = self._sessions()
        m = self.messages
        conn = m["conn"].to_numpy(np.int64)
        judged = np.isin(conn, np.fromiter(sessions, np.int64, len(sessions)))
        pos = np.flatnonzero(judged)
        # each connection in capture order (frame, stream offset), not by ts: a clock
        # stepping backwards reorders timestamps, never a TCP stream
        frame = m["frame"].to_numpy(np.int64)
        offset = m["stream_offset"].to_numpy(np.int64)
        pos = pos[np.lexsort((offset[pos], frame[pos], conn[pos]))]
        conn_sorted = conn[pos]
        c2s = (m["direction"] == "c2s").to_numpy()
        ts = m["ts"].array.asi8
        columns = ["command", "params", "error", *dict.fromkeys(
            f for spec in COMMANDS for f in spec.field_names)]
        table = self.table.select(columns)
        found, noted = self.found, self.noted
        for a, b in _chunks(conn_sorted, CHUNK_ROWS):
            rows = pos[a:b]
            msgs = rebuild_messages(table.take(pa.array(rows)))
            idx = rows.tolist()
            dirs = np.where(c2s[rows], "c2s", "s2c").tolist()
            times = ts[rows].tolist()
            starts = np.flatnonzero(np.r_[True, conn_sorted[a + 1:b] != conn_sorted[a:b - 1]])
            ends = np.r_[starts[1:], b - a]
            for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
                session, closed = sessions.pop(int(conn_sorted[a + s]))
                on = session.on_message
                for i, d, msg, t in zip(idx[s:e], dirs[s:e], msgs[s:e], times[s:e],
                                        strict=True):
                    v = on(i, d, msg, t)
                    if v:
                        found.extend(v)
                if closed:
                    found.extend(session.on_close())
                noted.extend(session.notes)
        for session, closed in sessions.values():  # connections without messages
            if closed:
                found.extend(session.on_close())

    def violations(self) -> pd.DataFrame:
        rules = list(RULES)
        order = {r: i for i, r in enumerate(rules)}
        rows = sorted(self.found, key=lambda v: v[1])  # stable: the machines' order per message
        message = np.array([v[1] for v in rows], np.int64)
        columns = {
            "rule": pd.Categorical.from_codes([order[v[0]] for v in rows], categories=rules),
            "message": message,
            **self._where(message),
            "detail": pd.array(self._masked(message, [v[2] for v in rows]), dtype="str"),
        }
        return schema.conform(pd.DataFrame(columns), schema.VIOLATIONS)

    def notes(self) -> pd.DataFrame:
        rows = sorted(self.noted, key=lambda v: v[0])
        message = np.array([v[0] for v in rows], np.int64)
        columns = {"message": message, **self._where(message),
                   "detail": pd.array(self._masked(message, [v[1] for v in rows]), dtype="str")}
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
