"""A fleet into a Parquet dataset: Dask LocalCluster(2 workers) vs a sequential loop.

    .venv/bin/python benchmarks/bench_fleet.py [--quick] [--workdir DIR] [--workers 2]

The fleet (``camprotool.fleet``, cached in the work directory and reused while
its spec is the same) is 8 sensors' dumpcap ring buffers over two days, five
files each: 40 captures, about 5 M messages. ``--quick`` makes 8 captures of
about 0.2 M messages for a check in a minute.

What is measured, each run starting from an empty dataset:

* one capture set decoded and written alone in a fresh process: its wall time
  and peak RSS (the memory one unit of work needs);
* the sequential loop: ``write_dataset`` over every set in one fresh process;
* Dask: a ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
  host="127.0.0.1")`` and ``write_dataset(..., client=...)``: each set is a
  task that decodes, builds the nine tables and writes them on its worker.
  Peak RSS per worker is each worker process's ``ru_maxrss``, asked of every
  worker (``client.run``) after the last set; the cluster's start is timed apart;
* the dataset's size on disk against the captures'.

Both runs must give the same rows per table (checked). The load average is
printed: the figures only mean something on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

from camprotool.fleet import FleetSpec, generate_sensor

FULL = FleetSpec(sensors=8, days=2, clients=8400, visits_per_day=2, stay_minutes=60,
                 ring_seconds=34_600, seed=10)  # 5 files of 9.6 h per sensor
QUICK = FleetSpec(sensors=4, days=1, clients=700, visits_per_day=2, stay_minutes=60,
                  ring_seconds=43_300, seed=10)  # 2 files per sensor


def generate(folder: Path, spec: FleetSpec, jobs: int) -> dict:
    """The fleet in ``folder``, generated sensor by sensor in ``jobs`` processes (reused
    when ``fleet.json`` says it was made from the same spec)."""
    stamp = folder / "fleet.json"
    wanted = asdict(spec)
    if stamp.exists() and json.loads(stamp.read_text())["spec"] == wanted:
        return json.loads(stamp.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    start = time.perf_counter()
    with ProcessPoolExecutor(jobs) as pool:
        done = list(pool.map(generate_sensor, [folder] * spec.sensors, range(spec.sensors),
                             [spec] * spec.sensors))
    info = {"spec": wanted, "seconds": time.perf_counter() - start,
            "files": sum(len(paths) for paths, *_ in done),
            "messages": sum(m for _, m, _, _ in done),
            "bytes": sum(p.stat().st_size for paths, *_ in done for p in paths)}
    stamp.write_text(json.dumps(info, indent=1))
    return info


def du(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def child(argv: list[str]) -> dict:
    """Run this script's --child mode in a fresh interpreter; its JSON answer."""
    proc = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True,
                          text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"child {argv} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_child(kind: str, sources: str, root: str) -> None:
    from camprotool.dataset import write_dataset
    from camprotool.dataset.sets import group_sets

    start = time.perf_counter()
    if kind == "one":  # the largest set alone
        sets = group_sets(sources)
        biggest = max(sets, key=lambda s: s.size)
        summary = write_dataset(list(biggest.paths), root)
    else:
        summary = write_dataset(sources, root)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rows = {r.name: r.rows for r in summary.decoded}
    print(json.dumps({"seconds": seconds, "peak_rss": usage.ru_maxrss * 1024,
                      "cpu": usage.ru_utime + usage.ru_stime, "rows": rows,
                      "messages": summary.messages, "sets": len(summary.decoded)}))


def _usage() -> tuple[int, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def run_dask(sources: str, root: str, workers: int) -> dict:
    from distributed import Client, LocalCluster

    from camprotool.dataset import write_dataset

    start = time.perf_counter()
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None)
    client = Client(cluster)
    started = time.perf_counter() - start
    try:
        client.run(lambda: __import__("camprotool.dataset.writer"))  # imports, not timed
        before = client.run(_usage)
        start = time.perf_counter()
        summary = write_dataset(sources, root, client=client)
        seconds = time.perf_counter() - start
        after = client.run(_usage)
    finally:
        client.close()
        cluster.close()
    if summary.failed:
        raise SystemExit(f"sets failed: {[(r.name, r.error) for r in summary.failed]}")
    return {"seconds": seconds, "cluster_start": started,
            "worker_peak_rss": sorted(peak for peak, _ in after.values()),
            "cpu": sum(after[w][1] - before[w][1] for w in after),
            "task_seconds": sum(r.seconds for r in summary.decoded),
            "rows": {r.name: r.rows for r in summary.decoded}, "messages": summary.messages,
            "sets": len(summary.decoded)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="8 captures, ~0.2 M messages")
    p.add_argument("--workdir", type=Path,
                   default=Path(tempfile.gettempdir()) / "camprotool-bench-fleet")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        run_child(*args.child)
        return
    spec = QUICK if args.quick else FULL
    fleet_dir = args.workdir / ("fleet-quick" if args.quick else "fleet")
    info = generate(fleet_dir, spec, args.workers)
    print(f"fleet: {info['files']} captures, {info['messages']:,} messages, "
          f"{info['bytes'] / 2**20:.0f} MiB (generated in {info['seconds']:.0f} s)", flush=True)
    sources = str(fleet_dir / "*.pcapng")
    runs = args.workdir / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    one = child(["one", sources, str(runs / "one")])
    print(f"one set alone: {one['seconds']:.1f} s, peak {one['peak_rss'] / 2**20:.0f} MiB",
          flush=True)
    seq = child(["all", sources, str(runs / "seq")])
    print(f"sequential: {seq['seconds']:.1f} s, peak {seq['peak_rss'] / 2**20:.0f} MiB",
          flush=True)
    dsk = run_dask(sources, str(runs / "dask"), args.workers)
    print(f"dask: {dsk['seconds']:.1f} s (+{dsk['cluster_start']:.1f} s to start), worker "
          f"peaks {[round(x / 2**20) for x in dsk['worker_peak_rss']]} MiB", flush=True)
    if seq["rows"] != dsk["rows"]:
        raise SystemExit("the sequential and the Dask datasets differ")
    size = du(runs / "dask")
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average": os.getloadavg(), "fleet": info, "one_set": one,
        "sequential": {k: v for k, v in seq.items() if k != "rows"},
        "dask": {k: v for k, v in dsk.items() if k != "rows"},
        "dataset_bytes": size, "pcap_bytes": info["bytes"],
    }
    (args.workdir / "results.json").write_text(json.dumps(result, indent=1))
    worst = max(dsk["worker_peak_rss"])
    print()
    print("| run | wall time | CPU time | peak RSS |")
    print("|---|---:|---:|---|")
    print(f"| one capture set alone (largest) | {one['seconds']:.1f} s | {one['cpu']:.1f} s | "
          f"{one['peak_rss'] / 2**20:.0f} MiB |")
    print(f"| sequential loop, {seq['sets']} sets | {seq['seconds']:.1f} s | "
          f"{seq['cpu']:.1f} s | {seq['peak_rss'] / 2**20:.0f} MiB |")
    print(f"| Dask LocalCluster({args.workers} workers), {dsk['sets']} sets | "
          f"{dsk['seconds']:.1f} s ({seq['seconds'] / dsk['seconds']:.2f}x) | "
          f"{dsk['cpu']:.1f} s (workers) | {worst / 2**20:.0f} MiB per worker at most "
          f"({worst / one['peak_rss']:.2f}x one set) |")
    print()
    print(f"dataset {size / 2**20:.1f} MiB on disk for {info['bytes'] / 2**20:.1f} MiB of "
          f"captures ({size / info['bytes']:.1%}); {seq['messages']:,} messages; "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
