"""Which ReturnDataSocketPort announced a data connection: the one linking rule.

The protocol gives a data connection no credentials: the server knows whom it
is for only because it announced the port (``ReturnDataSocketPort``) on a main
connection. Everything that asks "which main connection owns this data
connection" asks this module: the connection table (``Capture.connections``
``main_conn``/``announced``), the session rules' ``unannounced_data_port``
(through that table, or :func:`announcing` for a live main connection), the
``data_port_hijack`` rule and replay.

**The rule.** A data connection to ``port`` opened at ``t`` used the latest
announcement, at or before ``t``, that named ``port`` and is still usable: an
announced port stays usable on its main connection until an *empty*
``ReturnDataSocketPort`` (no free port) comes on that same main connection.
An empty answer on another main connection (another client behind the same
NAT address) clears nothing. Only announcements in the data connection's
*scope* count; the caller says what the scope is (the connection table: the
same client IP and server IP; ``data_port_hijack`` also asks "announced to
anyone on this server"). Equal times are ordered by the announcements' order
(the message order of the capture).

Why this rule and not "only the latest announcement of each main connection"
(the connection table's former rule): PROTOCOL.md defines
``unannounced_data_port`` as a connection "to a port no ReturnDataSocketPort
announced, or after an empty one", and a client may ask for two ports (an
upload and a download) before it opens either. The former rule called the
first of those unannounced while the session rules called it announced, so the
connection table and ``Capture.violations`` disagreed. Why the server IP is
part of the scope: a port number means something only on the host that
announced it; a data connection to another server's port 9001 is not the one
this server announced.

Two forms, held equal by property tests (tests/protocol/test_linking.py):
:func:`announcing`, one data connection over a list of
:class:`Announcement` (the definition; a live main connection and replay use
it), and :func:`link`, every data connection of a capture at once over numpy
arrays (the connection table is on ``read_capture``'s hot path and a capture
may hold 100,000 connections). No I/O, no pandas.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

#: ``link``'s answer for a data connection no announcement links
NONE = -1


class Announcement(NamedTuple):
    """A ReturnDataSocketPort seen on a main connection; ``port`` None means empty.

    ``message`` orders announcements of equal time (a message index);
    ``conn`` names the main connection it was sent on (None: all the same one).
    """

    port: int | None
    message: int
    ts_ns: int
    conn: int | None = None


def announcing(port: int, ts_ns: int, announcements: Iterable[Announcement]
               ) -> Announcement | None:
    """The announcement a data connection to ``port`` opened at ``ts_ns`` used, or None
    (module docstring). Pass only the announcements of its scope."""
    usable: dict[int | None, dict[int, Announcement]] = {}  # main conn -> port -> latest
    for ann in sorted((a for a in announcements if a.ts_ns <= ts_ns),
                      key=lambda a: (a.ts_ns, a.message)):
        ports = usable.setdefault(ann.conn, {})
        if ann.port is None:
            ports.clear()
        else:
            ports[ann.port] = ann
    found = [ports[port] for ports in usable.values() if port in ports]
    return max(found, key=lambda a: (a.ts_ns, a.message)) if found else None


def link(data_scope: np.ndarray, data_port: np.ndarray, data_open: np.ndarray,
         ann_scope: np.ndarray, ann_port: np.ndarray, ann_ts: np.ndarray,
         ann_main: np.ndarray) -> np.ndarray:
    """:func:`announcing` for many data connections at once.

    Data connections: scope code, server port, open time (ns). Announcements, in
    order (equal times keep it): scope code, port (-1: empty), time (ns) and the
    main connection that sent it. Scope codes are any integers the caller picks
    (equal codes: the same scope). Returns, per data connection, the position in
    the announcement arrays of the one it used, or ``NONE``.
    """
    n = len(data_scope)
    out = np.full(n, NONE, np.int64)
    ann_port = np.asarray(ann_port, np.int64)
    named = np.flatnonzero(ann_port >= 0)
    if not n or not len(named):
        return out
    ann_ts = np.asarray(ann_ts, np.int64)
    # rank: the announcements' order by time, ties in the order given
    order = np.argsort(ann_ts, kind="stable")
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    cleared = _cleared_at(np.asarray(ann_main, np.int64), ann_port, ann_ts, rank)
    # one code per (scope, port), then one sort key per named announcement: a data
    # connection's candidates are a run of keys, those at or before its opening a
    # prefix of the run (ranks below ``before``: times at or before the opening)
    scope = _codes(np.asarray(ann_scope, np.int64)[named], np.asarray(data_scope, np.int64))
    port = _codes(ann_port[named], np.asarray(data_port, np.int64))
    pair_a = scope[0] * np.int64(port[2]) + port[0]
    pair_d = scope[1] * np.int64(port[2]) + port[1]
    width = np.int64(len(rank) + 1)
    key = pair_a * width + rank[named]
    by = np.argsort(key)
    key, named = key[by], named[by]
    d_open = np.asarray(data_open, np.int64)
    before = np.searchsorted(ann_ts[order], d_open, side="right")
    start = np.searchsorted(key, pair_d * width)  # the first of the run
    j = np.searchsorted(key, pair_d * width + before) - 1  # the last at or before opening
    has = j >= start
    a_cleared = cleared[named]
    # usable at the opening when no empty answer on its main came by then
    ok = has.copy()
    ok[has] = a_cleared[j[has]] > d_open[has]
    out[ok] = named[j[ok]]
    late = np.flatnonzero(has & ~ok)  # the latest is cleared: an older one may not be
    if len(late):
        i = _last_above(a_cleared, start[late], j[late], d_open[late])
        found = i >= 0
        out[late[found]] = named[i[found]]
    return out


def _codes(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Small integer codes of two arrays' values (equal values, equal codes), and how many."""
    uniq, codes = np.unique(np.concatenate([a, b]), return_inverse=True)
    codes = codes.astype(np.int64).reshape(-1)
    return codes[:len(a)], codes[len(a):], len(uniq)


def _cleared_at(main: np.ndarray, port: np.ndarray, ts: np.ndarray, rank: np.ndarray
                ) -> np.ndarray:
    """Per announcement: the time of the first empty one after it on its main connection
    (int64 max: never). From that time on, the port it named is no longer usable."""
    never = np.iinfo(np.int64).max
    out = np.full(len(main), never, np.int64)
    empty = np.flatnonzero(port < 0)
    if not len(empty):
        return out
    width = np.int64(len(rank) + 1)
    _, main_code = np.unique(main, return_inverse=True)
    main_code = main_code.astype(np.int64).reshape(-1)
    key = np.sort(main_code[empty] * width + rank[empty])
    at = np.searchsorted(key, main_code * width + rank, side="right")
    after = key[np.minimum(at, len(key) - 1)]
    hit = (at < len(key)) & (after // width == main_code)
    ts_by_rank = np.empty(len(rank), np.int64)
    ts_by_rank[rank] = ts
    out[hit] = ts_by_rank[after[hit] % width]
    return out


def _last_above(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, floor: np.ndarray
                ) -> np.ndarray:
    """Per query: the last position i in [lo, hi] with ``values[i] > floor``, or -1.

    Skips, from ``hi`` down, blocks of 2**k positions whose maximum is at most
    ``floor`` (a sparse table of block maxima), so each query takes log steps.
    """
    table = [values]
    while (1 << len(table)) <= len(values):
        prev, half = table[-1], 1 << (len(table) - 1)
        table.append(np.maximum(prev[:-half], prev[half:]))
    pos = hi + 1  # exclusive end of what is still unskipped
    for k in range(len(table) - 1, -1, -1):
        size = 1 << k
        can = pos - size >= lo
        at = np.where(can, pos - size, 0)
        skip = can & (table[k][np.minimum(at, len(table[k]) - 1)] <= floor)
        pos = np.where(skip, pos - size, pos)
    i = pos - 1
    good = (i >= lo) & (values[np.maximum(i, 0)] > floor)
    return np.where(good, i, -1)


__all__ = ["NONE", "Announcement", "announcing", "link"]
