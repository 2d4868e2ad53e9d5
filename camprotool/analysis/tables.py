"""The analysis tables of a capture: sessions, sync steps, transfers, camera status, alarms.

Every table is built column-wise from ``Capture.messages`` and
``Capture.connections`` (NumPy over positions, pandas extension arrays for
the typed columns), then goes through :func:`camprotool.analysis.schema.conform`.
Python loops run per connection or per session at most, never per message.
``docs/analysis.md`` describes every column and the decisions taken here.

Positions and labels: ``Capture.messages`` has a RangeIndex, so a message's
position is its index label; ``message``, ``request`` and ``answer`` columns
hold those labels.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from camprotool.analysis import schema
from camprotool.protocol.catalogue import CATALOGUE
from camprotool.protocol.status import OBSERVING
from camprotool.protocol.status import SOURCES as _STATUS_SOURCES

OUTCOMES = ["ok", "error", "no_answer", "before_capture"]  # sessions.outcome
KINDS = ["upload", "download"]  # sync.kind, transfers.kind
STEP_OUTCOMES = ["ok", "failed", "no_answer"]  # sync.outcome
STATUSES = ["complete", "failed", "cut_short", "empty"]  # transfers.status
SOURCES = list(_STATUS_SOURCES)  # status.source: the camera-status model's

_NONE = -1  # "no message / no session" in position arrays


class Prep:
    """The message columns every builder needs, extracted once per capture."""

    def __init__(self, messages: pd.DataFrame, connections: pd.DataFrame,
                 table: pa.Table | None = None) -> None:
        self.messages = messages
        self.connections = connections
        self.table = table  # the decoder's Arrow table, same rows (for list columns)
        self.n = n = len(messages)
        if not isinstance(messages.index, pd.RangeIndex) or (n and messages.index[0] != 0):
            raise ValueError("Capture.messages must have a RangeIndex from 0")
        self.conn = messages["conn"].to_numpy(np.int64)
        self.frame = messages["frame"].to_numpy(np.int64)
        self.stream_offset = messages["stream_offset"].to_numpy(np.int64)
        self.ts = np.asarray(messages["ts"].array.asi8, np.int64)
        self.c2s = _is(messages["direction"], "c2s")
        self.s2c = ~self.c2s
        self._codes, names = _factorize(messages["command"])
        self._cat = {name: i for i, name in enumerate(names)}
        self.ok = messages["error"].isna().to_numpy()  # decoded without any error
        self.channel = {name: _is(messages["channel"], name) for name in ("main", "data")}
        # per connection id (ids may have gaps): start, end, channel
        ids = connections["conn"].to_numpy(np.int64)
        size = int(max(ids.max(initial=-1), self.conn.max(initial=-1))) + 1
        self.n_conn_ids = size
        self.conn_start = np.zeros(size, np.int64)
        self.conn_end = np.zeros(size, np.int64)
        self.conn_start[ids] = connections["start"].array.asi8
        self.conn_end[ids] = connections["end"].array.asi8

    def in_capture_order(self, pos: np.ndarray) -> np.ndarray:
        """``pos`` grouped by connection, each in capture order (frame, then stream
        offset): a clock stepping backwards reorders ``ts``, not a stream."""
        return pos[np.lexsort((self.stream_offset[pos], self.frame[pos], self.conn[pos]))]

    def cmd(self, *names: str) -> np.ndarray:
        """Mask of the messages whose command is one of ``names``."""
        codes = [self._cat[name] for name in names if name in self._cat]
        if not codes:
            return np.zeros(self.n, bool)
        if len(codes) == 1:
            return self._codes == codes[0]
        return np.isin(self._codes, codes)

    def column(self, name: str) -> pd.api.extensions.ExtensionArray:
        return self.messages[name].array


def _factorize(col: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes and the names they stand for, whatever the column's dtype.

    A category column (any category list, used or not) gives its own codes
    at no cost; object, ``str`` and Arrow string columns are factorized.
    """
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.cat.codes.to_numpy(), [str(c) for c in col.cat.categories]
    codes, uniques = pd.factorize(col)
    return codes, [str(u) for u in uniques]


def _is(col: pd.Series, value: str) -> np.ndarray:
    """Mask of the rows equal to ``value`` (category, object or Arrow string column)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = list(col.cat.categories)
        if value not in cats:
            return np.zeros(len(col), bool)
        return col.cat.codes.to_numpy() == cats.index(value)
    return col.eq(value).to_numpy(dtype=bool, na_value=False)


def take(values: pd.api.extensions.ExtensionArray | np.ndarray, pos: np.ndarray,
         mask: np.ndarray | None = None):
    """``values`` at positions ``pos``; missing where ``pos`` is -1 or ``mask`` is False."""
    pos = np.asarray(pos, np.int64)
    if mask is not None:
        pos = np.where(mask, pos, _NONE)
    if isinstance(values, np.ndarray):
        values = pd.array(values)
    return values.take(pos, allow_fill=True)


def _nullable(pos: np.ndarray) -> pd.arrays.IntegerArray:
    """Positions as a nullable Int64 column, -1 as missing."""
    pos = np.asarray(pos, np.int64)
    return pd.arrays.IntegerArray(pos.copy(), pos < 0)


def _utc(ns: np.ndarray) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(ns, np.int64), unit="ns", utc=True)


def _timedelta(ns: np.ndarray, missing: np.ndarray | None = None) -> np.ndarray:
    out = np.asarray(ns, np.int64).astype("timedelta64[ns]")
    if missing is not None:
        out[missing] = np.timedelta64("NaT")
    return out


def _category(codes: np.ndarray, categories: list[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(np.asarray(codes, np.int64), categories=categories)


def _frame(columns: dict, spec: dict[str, str], index=None) -> pd.DataFrame:
    return schema.conform(pd.DataFrame(columns, index=index), spec)


def _group_starts(keys: np.ndarray) -> np.ndarray:
    """For keys sorted into contiguous groups: True where a group begins."""
    if not len(keys):
        return np.zeros(0, bool)
    return np.r_[True, keys[1:] != keys[:-1]]


def _cumcount(keys: np.ndarray) -> np.ndarray:
    """0, 1, 2... within each contiguous group of ``keys``."""
    idx = np.arange(len(keys))
    first = np.maximum.accumulate(np.where(_group_starts(keys), idx, 0)) if len(keys) else idx
    return idx - first


def _first_per(keys: np.ndarray, pos: np.ndarray, size: int) -> np.ndarray:
    """The first (lowest) position per key in ``0..size-1``; -1 where a key has none."""
    out = np.full(size, _NONE, np.int64)
    keep = keys >= 0
    keys, pos = keys[keep], pos[keep]
    uniq, first = np.unique(keys, return_index=True)  # pos ascending -> first is lowest
    out[uniq] = pos[first]
    return out


# ------------------------------------------------------------------ sessions


class SessionIndex(NamedTuple):
    """``Capture.sessions`` and which session each message and connection belongs to."""

    frame: pd.DataFrame
    by_message: np.ndarray  # session id per message position, -1 for none
    by_conn: np.ndarray  # session id per data connection id, -1 for none (main conns: -1)


def build_sessions(p: Prep) -> SessionIndex:
    n, conn, ts = p.n, p.conn, p.ts
    conns = p.connections
    main = p.channel["main"]
    login_pos = np.flatnonzero(main & p.c2s & p.cmd("Login"))

    # A main connection whose opening was not captured and whose first message is not
    # a Login was logged in before the capture began: one ``before_capture`` session.
    size = p.n_conn_ids
    first_msg = _first_per(conn, np.arange(n), size)
    first_login = _first_per(conn[login_pos], login_pos, size)
    is_main = (conns["channel"] == "main").to_numpy()
    cand = conns["conn"].to_numpy(np.int64)[is_main & ~conns["handshake_seen"].to_numpy()]
    cand = cand[first_msg[cand] >= 0]
    before = cand[(first_login[cand] < 0) | (first_msg[cand] < first_login[cand])]

    s_conn = np.concatenate([before, conn[login_pos]])
    s_start = np.concatenate([p.conn_start[before], ts[login_pos]])
    s_key = np.concatenate([first_msg[before], login_pos])  # position that opens it
    s_login = np.concatenate([np.full(len(before), _NONE, np.int64), login_pos])
    order = np.lexsort((s_key, s_start))  # session ids follow time
    s_conn, s_start, s_key, s_login = s_conn[order], s_start[order], s_key[order], s_login[order]
    count = len(s_conn)
    sid = np.arange(count)

    # each main message belongs to the latest session of its connection opened at or before it
    stride = np.int64(n + 1)
    by_ck = np.lexsort((s_key, s_conn))
    ck = s_conn[by_ck] * stride + s_key[by_ck]
    by_message = np.full(n, _NONE, np.int64)
    main_pos = np.flatnonzero(main)
    if count and len(main_pos):
        j = np.searchsorted(ck, conn[main_pos] * stride + main_pos, side="right") - 1
        hit = (j >= 0) & (s_conn[by_ck][np.maximum(j, 0)] == conn[main_pos])
        by_message[main_pos[hit]] = by_ck[j[hit]]

    # a session ends where the next one on its connection begins, else with the connection
    s_end = p.conn_end[s_conn].copy()
    if count:
        nxt = by_ck[1:]
        same = s_conn[by_ck][1:] == s_conn[by_ck][:-1]
        s_end[by_ck[:-1][same]] = s_start[nxt[same]]

    # the first LoginOk/LoginError of each session answers it
    ans_pos = np.flatnonzero(main & p.s2c & p.cmd("LoginOk", "LoginError"))
    answer = _first_per(by_message[ans_pos], ans_pos, count)
    has_answer = answer >= 0
    answer_ok = np.zeros(count, bool)
    answer_ok[has_answer] = p.cmd("LoginOk")[answer[has_answer]]
    outcome = np.where(s_login < 0, 3, np.where(~has_answer, 2, np.where(answer_ok, 0, 1)))

    # the user named by the Login, else by the session's first CreatDataSocket
    user_na = p.messages["user"].isna().to_numpy()
    cds_pos = np.flatnonzero(main & p.c2s & p.cmd("CreatDataSocket") & ~user_na)
    cds = _first_per(by_message[cds_pos], cds_pos, count)
    login_has_user = s_login >= 0
    login_has_user[login_has_user] = ~user_na[s_login[login_has_user]]
    user_pos = np.where(login_has_user, s_login, cds)

    # data connections: the session active on their main connection when they started
    data = conns[(conns["channel"] == "data") & conns["main_conn"].notna()]
    by_conn = np.full(size, _NONE, np.int64)
    data_conns: list[list[int]] = [[] for _ in range(count)]
    if len(data) and count:
        left = pd.DataFrame({"start": data["start"].array.asi8,
                             "main": data["main_conn"].to_numpy(np.int64),
                             "conn": data["conn"].to_numpy(np.int64)}).sort_values("start")
        right = pd.DataFrame({"start": s_start, "main": s_conn, "session": sid}).sort_values(
            ["start", "session"])
        linked = pd.merge_asof(left, right, on="start", by="main", direction="backward")
        linked = linked.dropna(subset=["session"]).sort_values("conn")
        for d, s in zip(linked["conn"].tolist(), linked["session"].astype(np.int64).tolist(),
                        strict=True):
            by_conn[d] = s
            data_conns[s].append(d)
    data_pos = np.flatnonzero(p.channel["data"])
    by_message[data_pos] = by_conn[conn[data_pos]]

    # heartbeats and the longest client silence: between the session's start, each client
    # message and its end
    client_pos = main_pos[p.c2s[main_pos] & (by_message[main_pos] >= 0)]
    hb = client_pos[p.cmd("Heartbeat")[client_pos]]
    heartbeats = np.bincount(by_message[hb], minlength=count)
    max_gap = np.zeros(count, np.int64)
    if count:
        pts_s = np.concatenate([sid, by_message[client_pos], sid])
        pts_t = np.concatenate([s_start, ts[client_pos], s_end])
        o = np.lexsort((pts_t, pts_s))
        pts_s, pts_t = pts_s[o], pts_t[o]
        gaps = np.r_[0, np.diff(pts_t)]
        gaps[_group_starts(pts_s)] = 0
        max_gap = np.maximum.reduceat(gaps, np.flatnonzero(_group_starts(pts_s)))

    client = conns["client"].array
    server = conns["server"].array
    conn_row = np.full(size, _NONE, np.int64)
    conn_row[conns["conn"].to_numpy(np.int64)] = np.arange(len(conns))
    ok_answer = np.where(answer_ok, answer, _NONE)
    err_answer = np.where(has_answer & ~answer_ok, answer, _NONE)
    columns = {
        "session": sid,
        "conn": s_conn,
        "client": take(client, conn_row[s_conn]),
        "server": take(server, conn_row[s_conn]),
        "user": take(p.column("user"), user_pos),
        "outcome": _category(outcome, OUTCOMES),
        "reason": take(p.column("reason"), err_answer),
        "camera_count": take(p.column("camera_count"), ok_answer),
        "last_login_time": take(p.column("last_login_time"), ok_answer),
        "last_login_ip": take(p.column("last_login_ip"), ok_answer),
        "data_conns": pd.Series(data_conns, dtype=object) if count else [],
        "start": _utc(s_start),
        "end": _utc(s_end),
        "duration": _timedelta(s_end - s_start),
        "heartbeats": heartbeats.astype(np.int64),
        "heartbeat_max_gap": _timedelta(max_gap),
        "message": _nullable(s_login),
        "answer": _nullable(answer),
    }
    return SessionIndex(_frame(columns, schema.SESSIONS), by_message, by_conn)


# ------------------------------------------------------------------ sync steps


def _pairs(p: Prep, request: str) -> tuple[np.ndarray, np.ndarray]:
    """(request, answer) positions of every step of ``request`` on data connections, -1
    for a missing side: the vectorised twin of the one pairing rule,
    :class:`camprotool.protocol.pairing.Pairing`, held to it by property tests
    (``tests/analysis/test_pairing_twin.py``). Which commands answer ``request``, and
    whether a repeat is a retry, come from the catalogue."""
    spec = CATALOGUE.by_name[request]
    data = p.channel["data"]
    req = data & p.c2s & p.cmd(request)
    ans = data & p.s2c & p.cmd(*spec.answers)
    return (_retry_pairs if spec.retries else _fifo_pairs)(p, req, ans)


def _fifo_pairs(p: Prep, req: np.ndarray, ans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Answers take the oldest unanswered request of their connection; an answer that
    finds no request waiting (a capture started mid-transfer) is a step alone."""
    pos = np.flatnonzero(req | ans)
    pos = p.in_capture_order(pos)
    conn, is_ans = p.conn[pos], ans[pos]
    # pending requests are a queue reflected at 0: an answer is alone when the running
    # balance (requests - answers) reaches a new low below 0
    balance = pd.Series(np.where(is_ans, -1, 1)).groupby(conn).cumsum()
    low = np.minimum(balance.groupby(conn).cummin().to_numpy(), 0)
    low_before = np.r_[0, low[:-1]] if len(low) else low
    low_before[_group_starts(conn)] = 0
    alone = is_ans & (low < low_before)
    paired = is_ans & ~alone
    rq, an = pos[~is_ans], pos[paired]
    rq_rank = conn[~is_ans] * np.int64(p.n + 1) + _cumcount(conn[~is_ans])
    an_rank = conn[paired] * np.int64(p.n + 1) + _cumcount(conn[paired])
    answer = np.full(len(rq), _NONE, np.int64)
    _, ri, ai = np.intersect1d(rq_rank, an_rank, assume_unique=True, return_indices=True)
    answer[ri] = an[ai]
    lone = pos[alone]
    return (np.concatenate([rq, np.full(len(lone), _NONE, np.int64)]),
            np.concatenate([answer, lone]))


def _retry_pairs(p: Prep, req: np.ndarray, ans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An answer serves every request waiting since the previous answer (repeats are
    retries); the step keeps the latest of them."""
    pos = np.flatnonzero(req | ans)
    pos = p.in_capture_order(pos)
    conn, is_ans = p.conn[pos], ans[pos].astype(np.int64)
    if not len(pos):
        return pos, pos
    before = pd.Series(is_ans).groupby(conn).cumsum().to_numpy() - is_ans  # answers earlier
    new = _group_starts(conn) | np.r_[True, before[1:] != before[:-1]]
    gid = np.cumsum(new) - 1
    groups = int(gid[-1]) + 1
    request = np.full(groups, _NONE, np.int64)
    answer = np.full(groups, _NONE, np.int64)
    r = is_ans == 0
    np.maximum.at(request, gid[r], pos[r])
    answer[gid[~r]] = pos[~r]
    return request, answer


def _upload_pairs(p: Prep) -> tuple[np.ndarray, np.ndarray]:
    """(request, answer) positions of every upload step, -1 for a missing side."""
    return _pairs(p, "UploadCaramer")


def _download_pairs(p: Prep) -> tuple[np.ndarray, np.ndarray]:
    """(request, answer) positions of every download step, -1 for a missing side."""
    return _pairs(p, "DownLoadCaramer")


def build_sync(p: Prep, sessions: SessionIndex) -> pd.DataFrame:
    up_req, up_ans = _upload_pairs(p)
    dn_req, dn_ans = _download_pairs(p)
    m = p.messages
    nu = len(up_req)

    def first(a: pd.api.extensions.ExtensionArray, b) -> pd.api.extensions.ExtensionArray:
        return pd.Series(a).fillna(pd.Series(b)).array

    # uploads: the request's camera, position and total (the answer's when it is alone)
    u_ok = up_ans >= 0
    u_ok[u_ok] = p.cmd("UploadSucess")[up_ans[u_ok]]
    u_fail = (up_ans >= 0) & ~u_ok
    up = {
        "camera_id": first(take(m["camera_id"].array, up_req),
                           take(m["camera_id"].array, up_ans)),
        "current": first(take(m["current"].array, up_req), take(m["synced"].array, up_ans)),
        "total": first(take(m["total"].array, up_req), take(m["total"].array, up_ans)),
        "synced": take(m["synced"].array, up_ans),
        "reason": take(m["reason"].array, up_ans, u_fail),
        "online": take(m["online"].array, up_ans, u_ok),
    }
    u_outcome = np.where(u_ok, 0, np.where(u_fail, 1, 2))

    # downloads: the answer's camera; the position asked for when there is no camera
    d_ok = dn_ans >= 0
    d_ok[d_ok] = p.cmd("DownloadSucess")[dn_ans[d_ok]]
    d_fail = (dn_ans >= 0) & ~d_ok
    asked = pd.Series(take(m["downloaded"].array, dn_req)) + 1
    d_total = pd.Series(take(m["total"].array, dn_ans, d_ok))
    d_conn = p.conn[np.where(dn_ans >= 0, dn_ans, dn_req)]
    down = {
        "camera_id": take(m["camera_id"].array, dn_ans, d_ok),
        "current": first(take(m["current"].array, dn_ans, d_ok), asked),
        # a refused or unanswered step keeps the total its connection announced last
        "total": d_total.groupby(d_conn).ffill().array if len(d_conn) else d_total.array,
        "synced": take(m["current"].array, dn_ans, d_ok),
        "reason": take(m["reason"].array, dn_ans, d_fail),
        "online": take(m["online"].array, dn_ans, d_ok),
    }
    d_outcome = np.where(d_ok, 0, np.where(d_fail, 1, 2))

    request = np.concatenate([up_req, dn_req])
    answer = np.concatenate([up_ans, dn_ans])
    key = np.where(answer >= 0, answer, request)
    order = np.argsort(key, kind="stable")
    key = key[order]
    conn = p.conn[key]
    session = sessions.by_conn[conn]
    columns = {
        "ts": _utc(p.ts[key]),
        "session": _nullable(session),
        "conn": conn,
        "kind": _category(np.r_[np.zeros(nu, np.int64),
                                np.ones(len(dn_req), np.int64)][order], KINDS),
    }
    for name in ("camera_id", "current", "total", "synced", "reason", "online"):
        columns[name] = pd.concat([pd.Series(up[name]), pd.Series(down[name])],
                                  ignore_index=True).array.take(order)
    columns["outcome"] = _category(np.r_[u_outcome, d_outcome][order], STEP_OUTCOMES)
    columns["request"] = _nullable(request[order])
    columns["answer"] = _nullable(answer[order])
    return _frame(columns, schema.SYNC)


def build_transfers(p: Prep, sessions: SessionIndex, sync: pd.DataFrame) -> pd.DataFrame:
    conns = p.connections
    data = conns[conns["channel"] == "data"]
    ids = data["conn"].to_numpy(np.int64)
    k = len(ids)
    row = np.full(p.n_conn_ids, _NONE, np.int64)
    row[ids] = np.arange(k)

    # the transfer's kind is its first step's; steps of the other kind are ignored,
    # as the rules ignore them
    s_conn = sync["conn"].to_numpy(np.int64)
    s_kind = sync["kind"].cat.codes.to_numpy()
    kind = np.full(k, _NONE, np.int64)
    first = _first_per(row[s_conn], np.arange(len(sync)), k)
    kind[first >= 0] = s_kind[first[first >= 0]]
    mine = s_kind == kind[row[s_conn]]
    r = row[s_conn][mine]
    outcome = sync["outcome"].cat.codes.to_numpy()[mine]
    ok = np.bincount(r[outcome == 0], minlength=k)
    failed = np.bincount(r[outcome == 1], minlength=k)
    no_answer = np.bincount(r[outcome == 2], minlength=k)
    is_upload = kind == 0
    completed = ok + np.where(is_upload, failed, 0)  # cameras the server answered for
    # the first total the transfer named
    total_col = pd.Series(sync["total"].array[mine]).groupby(r).first().reindex(range(k)).array
    # how far the transfer got: the highest position the server answered with a camera
    # (as the rule machines judge it; a server whose synced skips failures only
    # earns a note there)
    cur = sync["current"].to_numpy(dtype=np.float64, na_value=np.nan)[mine]
    answered = (outcome == 0) | ((outcome == 1) & is_upload[r])
    reach = np.zeros(k)
    np.maximum.at(reach, r[answered], np.nan_to_num(cur[answered], nan=0.0))
    tot = total_col.to_numpy(dtype=np.float64, na_value=np.nan)
    reached = ~np.isnan(tot) & (reach >= tot)
    status = np.where(
        kind < 0, 3,
        np.where(is_upload & (ok == 0) & (failed > 0), 1,
                 np.where(reached, 0, np.where(~is_upload & (failed > 0), 1, 2))))

    main_conn = data["main_conn"].to_numpy(np.int64, na_value=_NONE)
    conn_row = np.full(p.n_conn_ids, _NONE, np.int64)
    conn_row[conns["conn"].to_numpy(np.int64)] = np.arange(len(conns))
    dur = data["duration"].to_numpy().astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(dur > 0, completed / (dur / 1e9), np.nan)
    columns = {
        "kind": _category(kind, KINDS),
        "client": take(conns["client"].array, conn_row[np.maximum(main_conn, 0)],
                       main_conn >= 0),
        "data_client": data["client"].array,
        "server": data["server"].array,
        "total": total_col,
        "completed": completed.astype(np.int64),
        "conn": ids,
        "main_conn": data["main_conn"].array,
        "session": _nullable(sessions.by_conn[ids]),
        "ok": ok.astype(np.int64),
        "failed": failed.astype(np.int64),
        "no_answer": no_answer.astype(np.int64),
        "status": _category(status, STATUSES),
        "start": data["start"].array,
        "end": data["end"].array,
        "duration": data["duration"].array,
        "cameras_per_s": rate,
        "close_reason": data["close_reason"].array,
    }
    return _frame(columns, schema.TRANSFERS, index=pd.Index(ids))


# ------------------------------------------------------------------ camera status


_STATUS_LIST = "ReturnCaramerOnlineStatus"  # one observation per (camera;status) pair


def _observing(p: Prep, command: str) -> np.ndarray:
    """Positions of the messages of ``command`` that the status model observes."""
    mask = p.s2c & p.ok & p.cmd(command)
    if OBSERVING[command][1]:  # only on a data connection
        mask &= p.channel["data"]
    return np.flatnonzero(mask)


def build_status(p: Prep, sessions: SessionIndex) -> pd.DataFrame:
    """Observations from pushes, query answers, upload and download answers; then transitions.

    The vectorised twin of :class:`camprotool.protocol.status.StatusModel` (the
    model ``ClientPanel`` shows): which messages observe what comes from its
    ``OBSERVING`` table, and ``tests/analysis/test_status_twin.py`` holds every
    row equal to what the model says fed the same messages one by one. Columns
    over positions, so a million messages take NumPy time, not a Python loop.
    """
    m = p.messages
    single = {SOURCES.index(source): _observing(p, command)
              for command, (source, _) in OBSERVING.items() if command != _STATUS_LIST}
    pos = np.concatenate(list(single.values()))
    source = np.concatenate([np.full(len(v), s, np.int64) for s, v in single.items()])
    camera = pd.Series(take(m["camera_id"].array, pos))
    online = pd.Series(take(m["online"].array, pos))
    sub = np.zeros(len(pos), np.int64)  # order inside one message

    # query answers: one observation per (camera;status) pair, flattened in Arrow
    q = _observing(p, _STATUS_LIST)
    if len(q):
        if p.table is not None:
            lists = p.table["statuses"].take(pa.array(q)).combine_chunks()
        else:  # built from a frame alone: the object column
            lists = pa.array(list(m["statuses"].to_numpy()[q]),
                             pa.large_list(pa.struct([("camera_id", pa.large_string()),
                                                      ("online", pa.bool_())])))
        flat = pc.list_flatten(lists)
        parent = pc.list_parent_indices(lists).to_numpy()
        q_pos = q[parent]
        pos = np.concatenate([pos, q_pos])
        query = SOURCES.index(OBSERVING[_STATUS_LIST][0])
        source = np.concatenate([source, np.full(len(q_pos), query, np.int64)])
        camera = pd.concat([camera, pd.Series(pd.array(flat.field("camera_id"), dtype="str"))],
                           ignore_index=True)
        online = pd.concat([online, pd.Series(pd.array(flat.field("online"), dtype="boolean"))],
                           ignore_index=True)
        sub = np.concatenate([sub, _cumcount(q_pos)])
    keep = camera.notna().to_numpy()
    pos, source, sub = pos[keep], source[keep], sub[keep]
    camera = camera[keep].astype("str")
    online = online[keep].astype("boolean")
    order = np.lexsort((sub, pos))
    pos, source = pos[order], source[order]
    camera = camera.array.take(order)
    online = online.array.take(order)

    # transitions per camera, in time order
    codes = pd.factorize(camera)[0] if len(pos) else np.zeros(0, np.int64)
    by_cam = np.argsort(codes, kind="stable")
    c = codes[by_cam]
    state = online.to_numpy(dtype=np.int8, na_value=-1)[by_cam]
    t = p.ts[pos][by_cam]
    seen = ~_group_starts(c)  # not the camera's first observation
    prev_state = np.r_[-1, state[:-1]] if len(c) else state
    changed = seen & (state != prev_state)
    run_start = np.maximum.accumulate(np.where(~seen | changed, np.arange(len(c)), 0)) \
        if len(c) else c
    prev_run = np.r_[0, run_start[:-1]] if len(c) else c
    since = t - t[prev_run]
    inv = np.empty_like(by_cam)
    inv[by_cam] = np.arange(len(by_cam))
    previous = pd.array(np.where(prev_state == 1, True, False), dtype="boolean")
    previous[~seen | (prev_state < 0)] = pd.NA
    columns = {
        "ts": _utc(p.ts[pos]),
        "camera_id": camera,
        "online": online,
        "source": _category(source, SOURCES),
        "conn": p.conn[pos],
        "session": _nullable(sessions.by_message[pos]),
        "message": pos,
        "previous": previous[inv],
        "changed": changed[inv],
        "time_in_previous": _timedelta(since, ~seen)[inv],
    }
    return _frame(columns, schema.STATUS)


def build_alarms(p: Prep, sessions: SessionIndex, status: pd.DataFrame) -> pd.DataFrame:
    """Alarm pushes, each with its camera's last known status (``pd.merge_asof``)."""
    m = p.messages
    pos = np.flatnonzero(p.s2c & p.ok & p.cmd("PrushCaramerAlarmInfo"))
    camera = take(m["camera_id"].array, pos).astype("str")  # status's dtype: merge keys match
    alarms = pd.DataFrame({"message": pos, "camera_id": camera})
    known = status[["message", "camera_id", "online"]]
    if len(alarms) and len(known):
        # message labels follow time (ties in stream order), so "before the alarm" is
        # "an earlier message"; an alarm is never a status message, so no exact matches
        merged = pd.merge_asof(alarms, known, on="message", by="camera_id",
                               direction="backward", allow_exact_matches=False)
        online = merged["online"].array
    else:
        online = pd.array([pd.NA] * len(pos), dtype="boolean")
    columns = {
        "ts": _utc(p.ts[pos]),
        "camera_id": camera,
        "alarm_type": take(m["alarm_type"].array, pos),
        "conn": p.conn[pos],
        "session": _nullable(sessions.by_message[pos]),
        "message": pos,
        "online": online,
    }
    return _frame(columns, schema.ALARMS)


def camera_counts(sync: pd.DataFrame, transfers: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per sync kind, what became of the cameras: ``ok`` (bound or downloaded),
    ``refused`` by the server, ``unanswered`` steps, and ``never_reached``: the
    cameras a transfer cut short never got to (its total minus the steps seen).

    ``transfers.completed`` counts a refused upload too (it is PROTOCOL.md's
    ``synced`` position), so it cannot say how many cameras were bound.
    """
    out = {}
    for kind in KINDS:
        steps = sync[sync["kind"].astype(str) == kind]
        mine = transfers[transfers["kind"].astype(str) == kind]
        if not len(steps) and not len(mine):
            continue
        outcome = steps["outcome"].astype(str)
        cut = mine[mine["status"].astype(str) == "cut_short"]
        seen = cut["ok"] + cut["failed"] + cut["no_answer"]
        never = (cut["total"] - seen).clip(lower=0).fillna(0)
        out[kind] = {"ok": int((outcome == "ok").sum()),
                     "refused": int((outcome == "failed").sum()),
                     "unanswered": int((outcome == "no_answer").sum()),
                     "never_reached": int(never.sum())}
    return out


def summary(cap) -> dict[str, object]:
    """A few headline numbers of a capture, from its tables.

    ``cameras``: per sync kind, cameras ``bound`` (upload) or ``downloaded``,
    ``refused`` by the server, and ``failed`` (unanswered, or never reached
    because the transfer was cut short): see :func:`camera_counts`.
    """
    m, s, t = cap.messages, cap.sessions, cap.transfers
    cameras = {kind: {"bound" if kind == "upload" else "downloaded": c["ok"],
                      "refused": c["refused"], "failed": c["unanswered"] + c["never_reached"]}
               for kind, c in camera_counts(cap.sync, t).items()}
    return {
        "messages": len(m),
        "connections": len(cap.connections),
        "first": m["ts"].min() if len(m) else None,
        "last": m["ts"].max() if len(m) else None,
        "sessions": len(s),
        "logins": s["outcome"].value_counts().reindex(OUTCOMES, fill_value=0).to_dict(),
        "users": sorted(s["user"].dropna().unique().tolist()),
        "transfers": t["status"].value_counts().reindex(STATUSES, fill_value=0).to_dict(),
        "cameras": cameras,
        "status_changes": int(cap.status["changed"].sum()),
        "alarms": len(cap.alarms),
        "violations": cap.violations["rule"].value_counts().loc[lambda c: c > 0].to_dict(),
    }
