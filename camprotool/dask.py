"""Many captures as ``dask.dataframe`` tables: decoded and analysed on Dask's workers.

Why Dask: the people who ask fleet questions already know pandas, and Dask's
dataframes are pandas partitions with the same API; its ``distributed``
scheduler runs the same graph on a laptop's threads, a ``LocalCluster`` or a
cluster of machines. We add no scheduler of our own.

* :func:`read_captures` decodes capture files: one partition per capture set
  (``camprotool.dataset.sets``: a dumpcap ring buffer, or a lone file). A task
  decodes its set and builds all nine tables on the worker; every table's
  partition comes from that one task, so ``dask.compute(caps.alarms,
  caps.sync)`` decodes each set once (``persist()`` keeps them on the workers
  for later computations).
* :func:`read_dataset` reads a dataset directory (``camprotool decode CAPS -o
  DIR/``): one partition per capture set and day, each read with the filters
  pushed down to Parquet.

The tables have ``Capture``'s columns and dtypes plus ``capture_set`` and
``day`` (and ``message`` in ``messages``), as ``camprotool.read_dataset``
gives them; the meta comes from the fixed schema
(``camprotool.dataset.columns``), so nothing is computed to learn it. Category
columns whose values are open (``command``, ``dialect``, ``close_reason``,
``problems.kind``) have unknown categories in the meta; the others are known.

Computing needs no arguments (Dask's default: threads of this process);
with a ``distributed.Client`` (``Client(LocalCluster(...))`` or
``Client("tcp://scheduler:8786")``) made first, the work runs on its workers,
which must see the capture files and the dataset at the same paths.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from camprotool._extras import require
from camprotool.dataset import columns as cols
from camprotool.dataset.manifest import Manifest, snapshot
from camprotool.dataset.options import DecodeOptions
from camprotool.dataset.reader import (
    Filters,
    check_columns,
    partition_filter,
    table_dataset,
    to_expression,
)
from camprotool.dataset.sets import CaptureSet, Sources, group_sets
from camprotool.dataset.tables import set_tables

if TYPE_CHECKING:
    import dask
    import dask.dataframe as dd
    from dask.base import tokenize
else:  # without the dask extra: one line naming it, not "No module named 'dask'"
    dask = require("dask", "dask", "camprotool.dask")
    dd = require("dask.dataframe", "dask", "camprotool.dask")
    tokenize = require("dask.base", "dask", "camprotool.dask").tokenize

__all__ = ["DaskCaptures", "DaskDataset", "meta", "read_captures", "read_dataset"]

TABLES = tuple(cols.TABLES)
#: Dask turns text columns into ``string[pyarrow]`` (missing as ``pd.NA``) when a
#: collection is made; ours keep ``Capture``'s ``str`` (missing as NaN), so a computed
#: table equals the pandas one. Set around our constructors only, not globally.
def _keep_strings() -> Any:
    return dask.config.set({"dataframe.convert-string": False})


def meta(name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """The empty frame Dask is told a table's partitions look like."""
    frame = cols.empty(name, columns)
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.CategoricalDtype) and (
                (name, col) not in cols.CATEGORIES or (name, col) in cols.OPEN_EXTRAS):
            frame[col] = dd.utils.clear_known_categories(frame[[col]])[col]
    return frame


def _pick(tables: dict[str, pd.DataFrame], name: str) -> pd.DataFrame:
    return tables[name]


def _decode(cset: CaptureSet, options: DecodeOptions) -> dict[str, pd.DataFrame]:
    """What a worker runs for one set: decode it and build every table."""
    return set_tables(cset, options)


class _Tables(ABC):
    """Table attributes shared by both readers."""

    @abstractmethod
    def table(self, name: str) -> dd.DataFrame:
        """Table ``name`` as a Dask dataframe."""

    @property
    def messages(self) -> dd.DataFrame:
        return self.table("messages")

    @property
    def connections(self) -> dd.DataFrame:
        return self.table("connections")

    @property
    def sessions(self) -> dd.DataFrame:
        return self.table("sessions")

    @property
    def sync(self) -> dd.DataFrame:
        return self.table("sync")

    @property
    def transfers(self) -> dd.DataFrame:
        return self.table("transfers")

    @property
    def status(self) -> dd.DataFrame:
        return self.table("status")

    @property
    def alarms(self) -> dd.DataFrame:
        return self.table("alarms")

    @property
    def violations(self) -> dd.DataFrame:
        return self.table("violations")

    @property
    def problems(self) -> dd.DataFrame:
        return self.table("problems")


class DaskCaptures(_Tables):
    """Capture sets decoded lazily on Dask; one partition per set in every table."""

    def __init__(self, sets: list[CaptureSet], options: DecodeOptions) -> None:
        self.sets = sets
        self.options = options
        # the files' sizes and times are in the keys: a set changed on disk is a new task,
        # never a result a cluster kept from before
        token = tokenize(sets, options, [snapshot(s) for s in sets])
        self._parts = [dask.delayed(_decode, pure=True)(
            cset, options, dask_key_name=f"camprotool-decode-{token}-{i}")
            for i, cset in enumerate(sets)]

    def table(self, name: str) -> dd.DataFrame:
        """Table ``name`` across the sets (``capture_set`` says which row is whose)."""
        if name not in cols.TABLES:
            raise ValueError(f"{name!r} is not a table ({', '.join(TABLES)})")
        parts = [dask.delayed(_pick, pure=True)(part, name) for part in self._parts]
        with _keep_strings():
            return dd.from_delayed(parts, meta=meta(name), verify_meta=False)

    def persist(self) -> DaskCaptures:
        """Decode every set now and keep its tables where they were computed (on the
        workers with a ``distributed.Client``), so each later ``compute`` starts there."""
        self._parts = list(dask.persist(*self._parts))
        return self

    def __repr__(self) -> str:
        files = sum(len(s.paths) for s in self.sets)
        return f"<DaskCaptures: {len(self.sets)} capture sets, {files} files>"


def read_captures(
    paths_or_glob: Sources,
    dialect: str = "auto",
    ports: Iterable[int] | int | None = None,
    reveal_passwords: bool = False,
) -> DaskCaptures:
    """Capture files (a path, a folder, a glob or a list) as Dask tables, grouped into
    capture sets; arguments as :func:`camprotool.read_capture`. Nothing is decoded
    until a table is computed. A set none of whose files is a capture gives a
    ``bad_file`` row in ``problems`` instead of failing the computation."""
    options = DecodeOptions.make(dialect, ports, reveal_passwords)
    return DaskCaptures(group_sets(paths_or_glob), options)


def _read_part(fragment, name: str, columns: list[str] | None, filters) -> pd.DataFrame:
    """One partition of a dataset table: one file (a set's day), filtered as it is read,
    in the dataset dtypes (the partition columns come from the file's folder names)."""
    table = fragment.to_table(schema=cols.dataset_schema(name), columns=columns,
                              filter=filters)
    return cols.to_pandas(table, name)


class DaskDataset(_Tables):
    """A dataset directory's tables as Dask dataframes; one partition per set and day."""

    def __init__(self, root: str | os.PathLike[str], *, sets=None, days=None) -> None:
        self.root = Path(root).absolute()
        self.manifest = Manifest.load(self.root, missing_ok=False)
        self.where = partition_filter(sets, days)

    def table(self, name: str, filters: Filters = None,
              columns: list[str] | None = None) -> dd.DataFrame:
        """Table ``name``; ``filters`` (pyarrow expression or list form) and ``columns``
        are applied when each partition's file is read."""
        wanted = check_columns(name, columns)
        data = table_dataset(self.root, name)
        fragments = list(data.get_fragments(filter=self.where))
        frame_meta = meta(name, wanted)
        with _keep_strings():
            if not fragments:
                return dd.from_pandas(frame_meta, npartitions=1)
            return dd.from_map(_read_part, fragments, name=name, columns=wanted,
                               filters=to_expression(filters), meta=frame_meta,
                               enforce_metadata=False, label=f"camprotool-{name}")

    @cached_property
    def sets(self) -> list[str]:
        return sorted(self.manifest.sets)

    def __repr__(self) -> str:
        return f"<DaskDataset {str(self.root)!r}: {len(self.manifest.sets)} capture sets>"


def read_dataset(root: str | os.PathLike[str], *, sets: str | list[str] | None = None,
                 days: str | tuple[str, str] | list[str] | None = None) -> DaskDataset:
    """A dataset directory (``camprotool decode CAPS -o DIR/``) as Dask tables;
    ``sets``/``days`` as in :func:`camprotool.read_dataset`."""
    return DaskDataset(root, sets=sets, days=days)
