"""DataSession's findings for whole data connections, computed column-wise.

A data connection is modelled here when it is *plain*: every message is a
known transfer command of one kind (UploadCaramer / UploadSucess / UploadFail,
or DownLoadCaramer / DownloadSucess / DownloadFail), in its own direction,
decoded without error, with the fields the rules read present. Then the
machine never takes its "not expected" or "malformed" branches, and its state
is a function of columns per connection:

* uploads: ``expected_current`` is the previous request's ``current`` + 1;
  ``total`` the last request's (before any, the first answer's); answers pair
  with requests first in, first out (a running balance reflected at zero
  finds the answers with nothing waiting); ``synced`` is the running maximum
  of every answer's ``synced`` and its request's ``current``;
* downloads: ``expected_downloaded`` is the last request's ``downloaded`` or
  DownloadSucess's ``current``; an answer serves the latest request since the
  previous answer; ``synced``/``total`` are the last DownloadSucess's;
* both: the transfer is complete after a message when ``synced >= total``
  (a DownloadFail changes neither, so it keeps ``downloaded``), which decides
  the "after the transfer was complete" notes and ``incomplete_sync``.

Any other data connection is returned to the caller for the machines.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from camprotool.analysis import groups as g
from camprotool.analysis.groups import NONE
from camprotool.analysis.judging import CLOSE_RANK, CODE, RANK, ConnInfo, Found, Noted, Rows
from camprotool.protocol.rules import (
    text_download_current,
    text_download_past_end,
    text_download_request,
    text_exceeds_total,
    text_incomplete,
    text_total_changed,
    text_unannounced,
    text_unanswered,
    text_upload_after_complete,
    text_upload_camera,
    text_upload_current,
    text_upload_synced,
    text_upload_total,
)

UPLOAD, DOWNLOAD = 0, 1
#: (command, sent by the client, fields the rules read) of each kind's rows
_KINDS: dict[int, list[tuple[str, bool, tuple[str, ...]]]] = {
    UPLOAD: [("UploadCaramer", True, ("camera_id", "current", "total")),
             ("UploadSucess", False, ("camera_id", "synced", "total")),
             ("UploadFail", False, ("camera_id", "synced", "total"))],
    DOWNLOAD: [("DownLoadCaramer", True, ("downloaded",)),
               ("DownloadSucess", False, ("current", "total")),
               ("DownloadFail", False, ())],
}
_COUNTS = ("current", "total", "synced", "downloaded")


class _Fields:
    """The typed columns the data rules read, for rows ``pos`` of the decoder's table.

    Counts are int64 (0 where null, see ``valid``); camera ids are codes, equal
    for equal ids, so no Python string is made until a detail quotes one.
    """

    # one array per name of _COUNTS (set by name in __init__ and take), and the camera codes
    current: np.ndarray
    total: np.ndarray
    synced: np.ndarray
    downloaded: np.ndarray
    camera: np.ndarray

    def __init__(self, table: pa.Table, pos: np.ndarray) -> None:
        self.table = table
        self.pos = pos
        take = pa.array(pos)
        self.valid: dict[str, np.ndarray] = {}
        for name in (*_COUNTS, "camera_id"):
            col = table[name].take(take)
            self.valid[name] = col.is_valid().to_numpy(zero_copy_only=False)
            if name == "camera_id":
                codes = pc.dictionary_encode(col.combine_chunks()).indices  # one dictionary
                self.camera = pc.fill_null(codes, -1).to_numpy(zero_copy_only=False)
            else:
                setattr(self, name, pc.fill_null(col, 0).to_numpy(zero_copy_only=False)
                        .astype(np.int64))

    def take(self, keep: np.ndarray) -> _Fields:
        out = object.__new__(_Fields)
        out.table = self.table
        out.valid = {k: v[keep] for k, v in self.valid.items()}
        for name in (*_COUNTS, "camera", "pos"):
            setattr(out, name, getattr(self, name)[keep])
        return out

    def camera_id(self, row: int) -> str:
        """The camera id of one row, for a detail."""
        return self.table["camera_id"][int(self.pos[row])].as_py()


def judge_data(r: Rows, table: pa.Table, info: ConnInfo, found: list[Found],
               noted: list[Noted]) -> np.ndarray:
    """Findings of the plain data connections among rows ``r``; returns the other ids."""
    if not len(r.pos):
        return np.zeros(0, np.int64)
    f = _Fields(table, r.pos)
    kind = np.full(len(r.pos), NONE, np.int64)
    for k, commands in _KINDS.items():
        for name, c2s, needed in commands:
            fits = r.command(name, c2s) & ~r.error
            for field in needed:
                fits &= f.valid[field]
            kind[fits] = k
    starts = g.group_starts(r.first)
    low = np.minimum.reduceat(kind, starts)
    high = np.maximum.reduceat(kind, starts)
    plain = (low == high) & (low >= 0)
    group_kind = np.where(plain, low, NONE)[g.group_ids(r.first)]
    for k, judge in ((UPLOAD, _uploads), (DOWNLOAD, _downloads)):
        keep = group_kind == k
        if keep.any():
            sub = r.take(keep)
            _unannounced(sub, info, found)
            judge(sub, f.take(keep), info, found, noted)
    return r.conn[starts[~plain]]


def _unannounced(r: Rows, info: ConnInfo, found: list[Found]) -> None:
    starts = g.group_starts(r.first)
    rank = RANK["unannounced_data_port"]
    for i in starts[info.announced[r.conn[starts]] == 0].tolist():
        conn = int(r.conn[i])
        found.append((int(r.pos[i]), rank, "unannounced_data_port",
                      text_unannounced(info.port[conn])))


def _closing(r: Rows, info: ConnInfo) -> np.ndarray:
    """The last row of every connection seen to close (where ``on_close`` reports)."""
    ends = g.group_ends(r.first)
    return ends[info.closed[r.conn[ends]]]


def _join(found: list[Found], at: int, rule: str, details: list[str]) -> None:
    found.append((at, RANK[rule], rule, "; ".join(details)))


def _uploads(r: Rows, f: _Fields, info: ConnInfo, found: list[Found],
             noted: list[Noted]) -> None:
    n, first, pos = len(r.pos), r.first, r.pos
    idx = np.arange(n)
    is_req = r.spec == CODE["UploadCaramer"]
    is_ans = ~is_req
    cur, tot, syn, cam = f.current, f.total, f.synced, f.camera
    requests_before = g.cumsum(is_req, first) - is_req
    prev_req = g.last_before(is_req, first)
    expected = np.where(prev_req >= 0, cur[np.maximum(prev_req, 0)] + 1, 1)
    # the session's total: the last request's; before any request, the first answer's
    first_ans = g.first_in_group(is_ans, first)
    has_early = (first_ans >= 0) & (first_ans < idx)
    total_before = np.where(prev_req >= 0, tot[np.maximum(prev_req, 0)],
                            tot[np.maximum(first_ans, 0)])
    has_total_before = (prev_req >= 0) | has_early
    last_req = g.last_upto(is_req, first)
    has_total = (last_req >= 0) | ((first_ans >= 0) & (first_ans <= idx))
    total = np.where(last_req >= 0, tot[np.maximum(last_req, 0)], tot[np.maximum(first_ans, 0)])
    # answers take the oldest waiting request: the k-th paired answer the k-th request
    alone = g.unmatched(np.where(is_req, 1, -1), first)
    paired = is_ans & ~alone
    req_rows = np.flatnonzero(is_req)
    req_offset = np.cumsum(is_req) - g.cumsum(is_req, first)  # requests of earlier groups
    req_of = np.full(n, NONE, np.int64)
    ordinal = g.cumsum(paired, first) - paired
    req_of[paired] = req_rows[(req_offset + ordinal)[paired]]
    ro = np.maximum(req_of, 0)
    gain = np.where(paired, np.maximum(syn, cur[ro]), np.where(is_ans, syn, 0))
    synced = g.cummax(gain, first)
    done = has_total & (synced >= total)
    completed_before = g.shift(done, first, False)
    start_seen = info.start_seen[r.conn]

    bad_current = is_req & (cur != expected) & (start_seen | (requests_before > 0))
    changed = is_req & has_total_before & (tot != total_before)
    exceeds = is_req & (cur > tot)
    for i in np.flatnonzero(bad_current | changed | exceeds).tolist():
        c, t = int(cur[i]), int(tot[i])
        details = []
        if bad_current[i]:
            want = int(cur[prev_req[i]]) + 1 if prev_req[i] >= 0 else 1  # Python ints:
            details.append(text_upload_current(c, want, first=requests_before[i] == 0))  # no wrap
        if changed[i]:
            details.append(text_total_changed("UploadCaramer", int(total_before[i]), t))
        if exceeds[i]:
            details.append(text_exceeds_total("UploadCaramer", c, t))
        _join(found, int(pos[i]), "upload_sequence", details)
    for i in np.flatnonzero(is_req & completed_before).tolist():
        noted.append((int(pos[i]), 0, text_upload_after_complete(int(cur[i]))))

    names = {CODE["UploadSucess"]: "UploadSucess", CODE["UploadFail"]: "UploadFail"}
    other_camera = paired & (cam != cam[ro])
    other_total = paired & (tot != tot[ro])
    for i in np.flatnonzero(other_camera | other_total).tolist():
        q, name = int(req_of[i]), names[int(r.spec[i])]
        details = []
        if other_camera[i]:
            details.append(text_upload_camera(name, f.camera_id(i), f.camera_id(q), int(pos[q]),
                                              int(cur[q])))
        if other_total[i]:
            details.append(text_upload_total(name, int(tot[i]), int(tot[q]), int(pos[q])))
        _join(found, int(pos[i]), "upload_sequence", details)
    for i in np.flatnonzero(alone).tolist():
        noted.append((int(pos[i]), 0, text_unanswered(names[int(r.spec[i])], "UploadCaramer")))
    for i in np.flatnonzero(paired & (syn != cur[ro])).tolist():
        noted.append((int(pos[i]), 0, text_upload_synced(names[int(r.spec[i])], int(syn[i]),
                                                         int(cur[req_of[i]]))))

    # on_close: short of the total, or requests unanswered
    answered = g.cumsum(paired, first)
    for i in _closing(r, info).tolist():
        pending = int(requests_before[i] + is_req[i] - answered[i])
        short = has_total[i] and synced[i] < total[i]
        if done[i] or not (pending or short):
            continue
        oldest = int(pos[req_rows[req_offset[i] + answered[i]]]) if pending else None
        detail = text_incomplete("upload", int(synced[i]),
                                 int(total[i]) if has_total[i] else None, pending, oldest)
        found.append((int(pos[i]), CLOSE_RANK, "incomplete_sync", detail))


def _downloads(r: Rows, f: _Fields, info: ConnInfo, found: list[Found],
               noted: list[Noted]) -> None:
    first, pos = r.first, r.pos
    is_q = r.spec == CODE["DownLoadCaramer"]
    is_s = r.spec == CODE["DownloadSucess"]
    is_f = r.spec == CODE["DownloadFail"]
    d, cur, tot = f.downloaded, f.current, f.total
    answer = is_s | is_f
    requests_before = g.cumsum(is_q, first) - is_q
    answers_before = g.cumsum(answer, first) - answer
    start_seen = info.start_seen[r.conn]
    # expected_downloaded: the last request's downloaded or answer's current
    last_qs = g.last_before(is_q | is_s, first)
    lq = np.maximum(last_qs, 0)
    has_expected = (last_qs >= 0) | start_seen
    expected = np.where(last_qs >= 0, np.where(is_q[lq], d[lq], cur[lq]), 0)
    # the request an answer serves: the latest since the previous answer
    last_q = g.last_before(is_q, first)
    waiting = last_q > g.last_before(answer, first)
    last_s = g.last_before(is_s, first)
    ls = np.maximum(last_s, 0)
    synced_before = np.where(last_s >= 0, cur[ls], 0)
    s_upto = g.last_upto(is_s, first)
    su = np.maximum(s_upto, 0)
    done = (s_upto >= 0) & (cur[su] >= tot[su])
    completed_before = g.shift(done, first, False)

    for i in np.flatnonzero(is_q & has_expected & (d != expected)).tolist():
        found.append((int(pos[i]), RANK["download_sequence"], "download_sequence",
                      text_download_request(int(d[i]), int(expected[i]),
                                            int(requests_before[i]), int(answers_before[i]))))
    for i in np.flatnonzero(is_q & completed_before).tolist():
        total = int(tot[ls[i]]) if last_s[i] >= 0 else None
        noted.append((int(pos[i]), 0, text_download_past_end(int(d[i]), total)))

    lqi = np.maximum(last_q, 0)
    s_expected = np.where(waiting, d[lqi] + 1, synced_before + 1)
    bad_current = is_s & (cur != s_expected) & (waiting | start_seen | (answers_before > 0))
    changed = is_s & (last_s >= 0) & (tot != tot[ls])
    exceeds = is_s & (cur > tot)
    for i in np.flatnonzero(bad_current | changed | exceeds).tolist():
        c, t = int(cur[i]), int(tot[i])
        details = []
        if bad_current[i]:
            q = int(last_q[i]) if waiting[i] else None
            want = int(d[q]) + 1 if q is not None else int(synced_before[i]) + 1
            details.append(text_download_current(
                c, want, None if q is None else int(d[q]), None if q is None else int(pos[q])))
        if changed[i]:
            details.append(text_total_changed("DownloadSucess", int(tot[ls[i]]), t))
        if exceeds[i]:
            details.append(text_exceeds_total("DownloadSucess", c, t))
        _join(found, int(pos[i]), "download_sequence", details)
    for mask, name in ((is_s, "DownloadSucess"), (is_f, "DownloadFail")):
        for m in pos[mask & ~waiting].tolist():
            noted.append((m, 0, text_unanswered(name, "DownLoadCaramer")))

    # on_close: still downloading (not complete, not refused) short of the total
    # or with a request unanswered
    last_answer = g.last_upto(answer, first)
    q_upto = g.cumsum(is_q, first)
    q_rows = np.flatnonzero(is_q)
    q_offset = np.cumsum(is_q) - q_upto
    for i in _closing(r, info).tolist():
        if done[i] or is_f[i]:
            continue
        a = int(last_answer[i])
        served = int(q_upto[a]) if a >= 0 else 0
        pending = int(q_upto[i]) - served
        has_total = s_upto[i] >= 0
        synced = int(cur[su[i]]) if has_total else 0
        if not (pending or (has_total and synced < int(tot[su[i]]))):
            continue
        oldest = int(pos[q_rows[q_offset[i] + served]]) if pending else None
        detail = text_incomplete("download", synced, int(tot[su[i]]) if has_total else None,
                                 pending, oldest)
        found.append((int(pos[i]), CLOSE_RANK, "incomplete_sync", detail))
