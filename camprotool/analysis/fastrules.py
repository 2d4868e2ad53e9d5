"""The session machines' findings for a whole capture, computed column-wise.

Why: :mod:`camprotool.protocol.rules` judges one message per Python call,
about 6 µs each, so a million-message capture took seconds. Yet almost all
of a machine's state is a simple function of a few columns of its
connection, in capture order:

* a main connection is logged in when its last LoginOk/LoginError before the
  message was a LoginOk (or, with none, when its opening was not captured);
  ``login_sent`` when a Login came after that; ``before_login`` follows;
* the heartbeat clock is a running maximum of the client's timestamps;
* "answers no request" notes are answers that find a queue, counted by a
  running balance reflected at zero, empty;
* the message-level rules look at one row at a time anyway.

Data connections are in :mod:`camprotool.analysis.fastdata`. What neither
module models (see :class:`Judgement`) goes to the real machines, which
:class:`camprotool.analysis.violations.RuleCheck` runs over those
connections alone. Every sentence comes from the ``text_*`` functions of
``protocol.rules``, and tests/analysis/test_fastrules.py holds this module to
the machines' exact rows, order and wording.

Findings and notes carry a rank that puts them in the machines' order
(:mod:`camprotool.analysis.judging`); a main message's notes rank as its
machine writes them: answer effect, misplaced command, then message-level.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from camprotool.analysis import fastdata
from camprotool.analysis import groups as g
from camprotool.analysis.groups import NONE
from camprotool.analysis.judging import (
    CODE,
    DATA,
    MAIN,
    RANK,
    ConnInfo,
    Found,
    Noted,
    Rows,
)
from camprotool.protocol.catalogue import COMMANDS, HEARTBEAT, MAX_STATUS_IDS, Channel, spec_for
from camprotool.protocol.fields import parse_params
from camprotool.protocol.rules import (
    C2S,
    S2C,
    MainState,
    text_before_login,
    text_heartbeat_gap,
    text_malformed,
    text_not_a_param_error,
    text_oddity,
    text_too_many_ids,
    text_unanswered,
    text_unknown,
)

_NOTE_EFFECT, _NOTE_ODD, _NOTE_MESSAGE = 0, 1, 2  # a main message's notes, in order
_STATES = [str(s) for s in (MainState.AWAITING_LOGIN, MainState.LOGIN_SENT, MainState.LOGGED_IN)]
_SPEC_MAIN = np.array([spec.channel is Channel.MAIN for spec in COMMANDS] + [False])
_SPEC_C2S = np.array([spec.direction.wire == C2S for spec in COMMANDS] + [False])


class Judgement(NamedTuple):
    found: list[Found]
    noted: list[Noted]
    machine_conns: np.ndarray  # connections left to the machines: none of their rows above


def judge(pos: np.ndarray, table: pa.Table, info: ConnInfo, *, c2s: np.ndarray,
          ts: np.ndarray, conn: np.ndarray, heartbeat_timeout_ns: int | None) -> Judgement:
    """The findings of every judged connection whose rows are ``pos``, in capture order
    grouped by connection (``c2s``, ``ts``, ``conn``: per message position)."""
    spec, quirk = _spec_codes(table["command"])
    rows_conn = conn[pos]
    rows = Rows(pos, rows_conn, c2s[pos], ts[pos], spec[pos],
                table["error"].is_valid().to_numpy(zero_copy_only=False)[pos],
                g.group_first(rows_conn))
    # A known command under another spelling would make a machine's Message.command
    # differ from its spec name: left to the machines, as nothing produces it today.
    odd_conns = np.unique(rows_conn[quirk[pos]])
    kind = info.kind[rows_conn]
    found: list[Found] = []
    noted: list[Noted] = []
    plain = ~np.isin(rows_conn, odd_conns)
    main = rows.take(plain & (kind == MAIN))
    _judge_main(main, table, info, heartbeat_timeout_ns, found, noted)
    data = rows.take(plain & (kind == DATA))
    left = fastdata.judge_data(data, table, info, found, noted)
    return Judgement(found, noted, np.union1d(odd_conns, left))


def capture_order(pos: np.ndarray, conn: np.ndarray, frame: np.ndarray,
                  offset: np.ndarray) -> np.ndarray:
    """``pos`` grouped by connection, each in capture order (frame, then stream offset).

    The same order as ``np.lexsort((offset, frame, conn))``, cheaper: messages
    come sorted by time, which is capture order unless a clock stepped back,
    so a stable sort by connection alone (a radix sort when ids fit 16 bits)
    is usually it already. Checked, and the full sort done when it is not.
    """
    c = conn[pos]
    small = len(c) and c.min() >= 0 and c.max() < 1 << 16
    out = pos[np.argsort(c.astype(np.uint16) if small else c, kind="stable")]
    c, f, o = conn[out], frame[out], offset[out]
    rising = (c[1:] != c[:-1]) | (f[1:] > f[:-1]) | ((f[1:] == f[:-1]) & (o[1:] > o[:-1]))
    if rising.all():
        return out
    return pos[np.lexsort((offset[pos], frame[pos], conn[pos]))]


def _spec_codes(command: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Per message: its spec code (-1 unknown), and whether its name is not the spec's own.

    Looked up as :func:`camprotool.analysis.violations.rebuild_messages` does:
    ``spec_for`` on the decoder's unmasked name.
    """
    enc = pc.dictionary_encode(command.combine_chunks())  # one dictionary for all rows
    codes = enc.indices.to_numpy(zero_copy_only=False)
    names = enc.dictionary.to_pylist()
    specs = [spec_for(name) for name in names]
    by_name = np.array([CODE[s.name] if s is not None else NONE for s in specs], np.int64)
    quirk = np.array([s is not None and s.name != name for s, name in zip(specs, names,
                                                                          strict=True)])
    if not len(names):
        return np.zeros(0, np.int64), np.zeros(0, bool)
    return by_name[codes], quirk[codes]


# ------------------------------------------------------------------ main connections


def _judge_main(r: Rows, table: pa.Table, info: ConnInfo, timeout: int | None,
                found: list[Found], noted: list[Noted]) -> None:
    """MainSession's findings over every main connection's rows ``r``."""
    if not len(r.pos):
        return
    first, known = r.first, r.spec >= 0
    start_seen = info.start_seen[r.conn]
    ok, refused = r.command("LoginOk", False), r.command("LoginError", False)
    login = r.command("Login", True)
    # the state before each message: only LoginOk/LoginError/Login move it
    reset = g.last_before(ok | refused, first)
    logged_in = np.where(reset >= 0, ok[np.maximum(reset, 0)], ~start_seen)
    sent = ~logged_in & (g.last_before(login, first) > reset)
    state = np.where(logged_in, 2, np.where(sent, 1, 0))
    in_pre_table = login | r.command(HEARTBEAT, True) | ok | refused
    spec = np.where(known, r.spec, len(COMMANDS))  # unknown -> the guard entry
    odd = known & (~_SPEC_MAIN[spec] | (_SPEC_C2S[spec] != r.c2s))
    pos, c2s = r.pos, r.c2s

    # effects, in the order a machine writes its notes
    unasked = [
        (ok & (state == 0) & start_seen, text_unanswered("LoginOk", "Login")),
        (g.unmatched(r.command("CreatDataSocket", True).astype(np.int64)
                     - r.command("ReturnDataSocketPort", False), first),
         text_unanswered("ReturnDataSocketPort", "CreatDataSocket")),
        (g.unmatched(r.command("CheckCaramerOnlineStatus", True).astype(np.int64)
                     - r.command("ReturnCaramerOnlineStatus", False), first),
         text_unanswered("ReturnCaramerOnlineStatus", "CheckCaramerOnlineStatus")),
    ]
    for mask, text in unasked:
        noted.extend((m, _NOTE_EFFECT, text) for m in pos[mask].tolist())
    for i in np.flatnonzero(odd).tolist():
        what = text_oddity(COMMANDS[r.spec[i]], C2S if c2s[i] else S2C, Channel.MAIN)
        if what is not None:  # always, for an odd row: wrong channel or direction
            noted.append((int(pos[i]), _NOTE_ODD, what))

    rank = RANK["before_login"]
    for i in np.flatnonzero(known & (state < 2) & ~in_pre_table).tolist():
        detail = text_before_login(COMMANDS[r.spec[i]].name, C2S if c2s[i] else S2C,
                                   _STATES[state[i]])
        found.append((int(pos[i]), rank, "before_login", detail))
    if timeout is not None:
        _heartbeat_gaps(r, info, timeout, found)
    message_rules(r, table, found, noted)


def _heartbeat_gaps(r: Rows, info: ConnInfo, timeout: int, found: list[Found]) -> None:
    """``heartbeat_gap``: the client's messages (any, known or not) against the running
    maximum of the client's earlier timestamps, from the opening when it was seen."""
    client = np.flatnonzero(r.c2s)
    if not len(client):
        return
    conn, ts, pos = r.conn[client], r.ts[client], r.pos[client]
    first = g.group_first(conn)
    has_prev = first != np.arange(len(client))
    prev = g.shift(g.cummax(ts, first), first, 0)
    seen = info.start_seen[conn]
    opened = info.opened_ns[conn]
    last = np.where(has_prev & seen, np.maximum(prev, opened), np.where(has_prev, prev, opened))
    gap = (has_prev | seen) & (ts - last > timeout)
    rank = RANK["heartbeat_gap"]
    for i in np.flatnonzero(gap).tolist():
        since = int(pos[i - 1]) if has_prev[i] else None
        found.append((int(pos[i]), rank, "heartbeat_gap",
                      text_heartbeat_gap(int(ts[i] - last[i]), since, timeout)))


def message_rules(r: Rows, table: pa.Table, found: list[Found], noted: list[Noted]) -> None:
    """What ``_Session.on_message`` judges of any single message: unknown commands (a
    note), a decoding error (``malformed_params`` or a note), too many ids."""
    pos = r.pos
    unknown = np.flatnonzero(r.spec < 0)
    errored = np.flatnonzero((r.spec >= 0) & r.error)
    check = (r.spec == CODE["CheckCaramerOnlineStatus"]) & ~r.error
    if len(unknown) or len(errored):
        at = np.r_[unknown, errored]
        take = pa.array(pos[at])
        commands = table["command"].take(take).to_pylist()
        params = table["params"].take(take).to_pylist()
        errors = table["error"].take(take).to_pylist()
        for k, i in enumerate(at.tolist()):
            m = int(pos[i])
            if k < len(unknown):
                noted.append((m, _NOTE_MESSAGE, text_unknown(commands[k], errors[k])))
                continue
            spec = COMMANDS[r.spec[i]]
            values, field_error = parse_params(spec, params[k])
            if field_error:
                found.append((m, RANK["malformed_params"], "malformed_params",
                              text_malformed(spec.name, params[k], field_error)))
            else:
                noted.append((m, _NOTE_MESSAGE, text_not_a_param_error(spec.name, errors[k])))
            if spec.name == "CheckCaramerOnlineStatus" and len(values["ids"]) > MAX_STATUS_IDS:
                found.append((m, RANK["check_too_many_ids"], "check_too_many_ids",
                              text_too_many_ids(len(values["ids"]))))
    if check.any():
        at = np.flatnonzero(check)
        counts = pc.list_value_length(table["ids"].take(pa.array(pos[at])))
        counts = pc.fill_null(counts, 0).to_numpy(zero_copy_only=False)
        for i, count in zip(at[counts > MAX_STATUS_IDS].tolist(),
                            counts[counts > MAX_STATUS_IDS].tolist(), strict=True):
            found.append((int(pos[i]), RANK["check_too_many_ids"], "check_too_many_ids",
                          text_too_many_ids(count)))
