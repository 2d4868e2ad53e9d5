"""``camprotool decode CAPS -o DATASET/ [--dask SCHEDULER]``: many captures into a dataset.

Why apart from ``decode``'s streaming path: a dataset is decoded capture set by
capture set (``camprotool.dataset``), each with every analysis table, and may
run on a Dask cluster; the single-file path streams one table in bounded
memory. ``decode`` hands over here when ``-o`` names a folder.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from camprotool.cli import CliError
from camprotool.cli.progress import progress_bar

#: seconds to wait for a --dask scheduler to answer
CONNECT_TIMEOUT = 10.0


def is_dataset_output(args: argparse.Namespace) -> bool:
    """``-o`` names a folder: ends with a separator, is a folder, or has no extension."""
    out = args.output
    if not out:
        return False
    return out.endswith(("/", os.sep)) or os.path.isdir(out) or not Path(out).suffix


def connect(scheduler: str):
    """A ``distributed.Client`` for ``--dask``: ``local`` or ``local:N`` starts a
    LocalCluster of N worker processes on 127.0.0.1 (default: one per core); anything
    else is a scheduler's address (``tcp://host:8786``). Returns (client, cluster)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise CliError("--dask needs the dask extra: pip install 'camprotool[dask]'") from None
    if scheduler == "local" or scheduler.startswith("local:"):
        _, _, n = scheduler.partition(":")
        try:
            workers = int(n) if n else (os.cpu_count() or 1)
        except ValueError:
            raise CliError(f"--dask {scheduler}: local:N needs a number of workers") from None
        if workers < 1:
            raise CliError(f"--dask {scheduler}: at least one worker")
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        return Client(cluster), cluster
    try:
        return Client(scheduler, timeout=CONNECT_TIMEOUT), None
    except (OSError, TimeoutError, ValueError) as exc:
        raise CliError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None


def run_dataset(args: argparse.Namespace, captures: list[str]) -> int:
    from camprotool.dataset import write_dataset

    client = cluster = None
    if args.dask:
        client, cluster = connect(args.dask)
    bar = {}

    def progress(done: int, total: int) -> None:
        if "update" not in bar:
            bar["update"] = progress_bar(total, f"decoding into {args.output}")
        if bar["update"] is not None:
            bar["update"](done)

    def report(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        summary = write_dataset(captures, args.output, dialect=args.dialect, ports=args.ports,
                                reveal_passwords=args.reveal_passwords, client=client,
                                progress=progress, report=report)
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    print(summary.line(), file=sys.stderr)
    return 1 if summary.failed else 0
