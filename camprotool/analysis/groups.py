"""Running values per group of rows, for rows sorted into contiguous groups (connections).

The column-wise rule checker (``fastrules``, ``fastdata``) rewrites the session
machines' state as functions of whole columns: "the last LoginOk before this
message" is a fill-forward, "the highest ``synced`` so far" a cumulative max,
"how many requests are waiting" a running balance. NumPy's accumulators do not
restart at group boundaries, so each helper here takes ``first``: for every row,
the index of its group's first row (:func:`group_first`), and keeps every
result inside its own group.
"""

from __future__ import annotations

import numpy as np

NONE = -1  # "no such row"


def group_first(keys: np.ndarray) -> np.ndarray:
    """For ``keys`` sorted into contiguous groups: the index of each row's group's first row."""
    n = len(keys)
    if not n:
        return np.zeros(0, np.int64)
    start = np.r_[True, keys[1:] != keys[:-1]]
    return np.maximum.accumulate(np.where(start, np.arange(n), 0))


def group_ids(first: np.ndarray) -> np.ndarray:
    """0, 1, 2... numbering the groups in order."""
    n = len(first)
    return np.cumsum(first == np.arange(n)) - 1 if n else np.zeros(0, np.int64)


def group_starts(first: np.ndarray) -> np.ndarray:
    """The index of every group's first row."""
    return np.flatnonzero(first == np.arange(len(first)))


def group_ends(first: np.ndarray) -> np.ndarray:
    """The index of every group's last row."""
    starts = group_starts(first)
    return np.r_[starts[1:], len(first)] - 1 if len(starts) else starts


def last_upto(mask: np.ndarray, first: np.ndarray) -> np.ndarray:
    """The last row at or before each row, in its group, where ``mask`` holds; NONE if none."""
    n = len(mask)
    if not n:
        return np.zeros(0, np.int64)
    acc = np.maximum.accumulate(np.where(mask, np.arange(n), NONE))
    return np.where(acc >= first, acc, NONE)


def last_before(mask: np.ndarray, first: np.ndarray) -> np.ndarray:
    """As :func:`last_upto`, strictly before each row."""
    n = len(mask)
    if not n:
        return np.zeros(0, np.int64)
    acc = np.maximum.accumulate(np.where(mask, np.arange(n), NONE))
    prev = np.r_[NONE, acc[:-1]]
    return np.where(prev >= first, prev, NONE)


def first_in_group(mask: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Per row: the first row of its group where ``mask`` holds (before or after it); NONE."""
    n = len(mask)
    if not n:
        return np.zeros(0, np.int64)
    starts = group_starts(first)
    lowest = np.minimum.reduceat(np.where(mask, np.arange(n), n), starts)
    out = lowest[group_ids(first)]
    return np.where(out < n, out, NONE)


def cumsum(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Inclusive running sum inside each group."""
    if not len(values):
        return np.zeros(0, np.int64)
    total = np.cumsum(values, dtype=np.int64)
    return total - (total[first] - np.asarray(values, np.int64)[first])


def cummax(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Inclusive running maximum inside each group, for any int64 values.

    One ``maximum.accumulate`` over ``values - low + group * span``: the offset
    keeps every group above the ones before it. When that could overflow
    (values spread over more than 2**62 / groups), the values are replaced by
    their ranks first, which costs a sort.
    """
    if not len(values):
        return np.zeros(0, np.int64)
    values = np.asarray(values, np.int64)
    gid = group_ids(first).astype(np.int64)
    low, high = int(values.min()), int(values.max())
    span = high - low + 1
    if span * (int(gid[-1]) + 1) < 1 << 62:
        offset = gid * np.int64(span)
        return np.maximum.accumulate(values - np.int64(low) + offset) - offset + np.int64(low)
    uniq, rank = np.unique(values, return_inverse=True)
    offset = gid * np.int64(len(uniq))
    return uniq[np.maximum.accumulate(rank.astype(np.int64) + offset) - offset]


def shift(values: np.ndarray, first: np.ndarray, fill) -> np.ndarray:
    """Each row gets the previous row's value in its group; a group's first row ``fill``."""
    if not len(values):
        return values.copy()
    out = np.r_[values[:1], values[:-1]]
    out[first == np.arange(len(values))] = fill
    return out


def unmatched(delta: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Answers that find no request waiting, in a queue per group.

    ``delta`` is +1 for a request, -1 for an answer, 0 for anything else. An
    answer takes a waiting request if there is one; otherwise it is unmatched
    and changes nothing. The queue length is the running balance reflected at
    zero, so an answer is unmatched exactly when the balance reaches a new low
    below zero.
    """
    balance = cumsum(delta, first)
    low = np.minimum(-cummax(-balance, first), 0)
    return (delta < 0) & (low < shift(low, first, 0))
