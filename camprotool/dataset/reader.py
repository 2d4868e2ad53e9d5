"""``read_dataset``: a dataset directory's tables as pandas, filters pushed to Parquet.

Why pyarrow.dataset: a filter on the partition keys (``capture_set``, ``day``)
skips whole folders, and a filter on a column (``camera_id == "CAM00042"``,
``outcome == "failed"``) is checked against each row group's statistics before
anything is decoded, so asking one camera's week of alarms does not read the
fleet's. Each table is read on first use and kept.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TypeAlias

import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from camprotool.dataset import columns as cols
from camprotool.dataset.manifest import Manifest

Filters: TypeAlias = pc.Expression | list | None


def _partitioning() -> pads.Partitioning:
    import pyarrow as pa

    return pads.partitioning(pa.schema([(p, pa.string()) for p in cols.PARTITIONS]),
                             flavor="hive")


def partition_filter(sets: str | list[str] | None = None,
                     days: str | tuple[str, str] | list[str] | None = None
                     ) -> pc.Expression | None:
    """``capture_set`` in ``sets`` and ``day`` in ``days``: one day ``"2026-12-01"``, an
    inclusive range ``("2026-12-01", "2026-12-03")`` or a list of days."""
    parts = []
    if sets is not None:
        parts.append(pc.field("capture_set").isin([sets] if isinstance(sets, str)
                                                  else list(sets)))
    if isinstance(days, str):
        parts.append(pc.field("day") == days)
    elif isinstance(days, tuple):
        if len(days) != 2:
            raise ValueError(f"days: {days!r} is not a (first, last) pair")
        parts.append((pc.field("day") >= days[0]) & (pc.field("day") <= days[1]))
    elif days is not None:
        parts.append(pc.field("day").isin(list(days)))
    expr = None
    for part in parts:
        expr = part if expr is None else expr & part
    return expr


def to_expression(filters: Filters) -> pc.Expression | None:
    """A pyarrow expression, or ``read_parquet``'s list form
    (``[("outcome", "==", "failed")]``, or a list of such lists for OR)."""
    if filters is None or isinstance(filters, pc.Expression):
        return filters
    return pq.filters_to_expression(filters)


def _and(a: pc.Expression | None, b: pc.Expression | None) -> pc.Expression | None:
    if a is None:
        return b
    return a if b is None else a & b


def table_dataset(root: str | os.PathLike[str], name: str) -> pads.Dataset:
    if name not in cols.TABLES:
        raise ValueError(f"{name!r} is not a dataset table ({', '.join(cols.TABLES)})")
    path = Path(root) / name
    path.mkdir(exist_ok=True)  # a table no set had rows for is an empty table
    return pads.dataset(path, format="parquet", schema=cols.dataset_schema(name),
                        partitioning=_partitioning())


def check_columns(name: str, wanted: list[str] | None) -> list[str] | None:
    if wanted is None:
        return None
    known = cols.dataset_schema(name).names
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise ValueError(f"{name} has no column {unknown[0]!r}")
    return list(wanted)


class Dataset:
    """The tables of a dataset directory (``camprotool decode CAPS -o DIR/``).

    ``ds.messages``, ``ds.alarms`` ... are the sets' tables one after the other,
    each with ``capture_set`` and ``day`` columns (``messages`` also with
    ``message``, its label in the set's ``read_capture(...).messages``), read
    once on first use. ``ds.table(name, filters=..., columns=...)`` reads with
    a filter of its own. ``ds.files`` is the manifest, one row per capture file.
    """

    def __init__(self, root: str | os.PathLike[str], *, sets=None, days=None) -> None:
        self.root = Path(root)
        self.manifest = Manifest.load(self.root, missing_ok=False)
        self.where = partition_filter(sets, days)

    def table(self, name: str, filters: Filters = None,
              columns: list[str] | None = None) -> pd.DataFrame:
        """Table ``name``, only rows passing ``filters`` (and the dataset's sets/days)."""
        wanted = check_columns(name, columns)
        data = table_dataset(self.root, name)
        arrow = data.to_table(columns=wanted, filter=_and(self.where, to_expression(filters)))
        return cols.to_pandas(arrow, name)

    @property
    def sets(self) -> list[str]:
        return sorted(self.manifest.sets)

    @property
    def files(self) -> pd.DataFrame:
        return self.manifest.files()

    @cached_property
    def messages(self) -> pd.DataFrame:
        return self.table("messages")

    @cached_property
    def connections(self) -> pd.DataFrame:
        return self.table("connections")

    @cached_property
    def sessions(self) -> pd.DataFrame:
        return self.table("sessions")

    @cached_property
    def sync(self) -> pd.DataFrame:
        return self.table("sync")

    @cached_property
    def transfers(self) -> pd.DataFrame:
        return self.table("transfers")

    @cached_property
    def status(self) -> pd.DataFrame:
        return self.table("status")

    @cached_property
    def alarms(self) -> pd.DataFrame:
        return self.table("alarms")

    @cached_property
    def violations(self) -> pd.DataFrame:
        return self.table("violations")

    @cached_property
    def problems(self) -> pd.DataFrame:
        return self.table("problems")

    def __repr__(self) -> str:
        files = sum(len(e.files) for e in self.manifest.sets.values())
        rows = sum(e.rows.get("messages", 0) for e in self.manifest.sets.values())
        return (f"<Dataset {str(self.root)!r}: {len(self.manifest.sets)} capture sets, "
                f"{files} files, {rows:,} messages>")



def read_dataset(root: str | os.PathLike[str], *, sets: str | list[str] | None = None,
                 days: str | tuple[str, str] | list[str] | None = None) -> Dataset:
    """Open a dataset directory written by ``camprotool decode CAPS -o DIR/`` (or
    :func:`camprotool.dataset.write_dataset`). ``sets`` and ``days`` keep only those
    partitions in every table; ``Dataset.table`` takes column filters too."""
    return Dataset(root, sets=sets, days=days)
