"""Decode a 1,000,000-message stream in each dialect: bulk and incremental decoders.

Run: ``.venv/bin/python benchmarks/bench_codec.py [--messages N] [--dialects line,lp32le]``
(or ``make bench``). Prints one table row per (decoder, dialect): messages/s
and MB/s by CPU time (``time.process_time``: the machine may be shared, and
wall time then measures the neighbours), best of ``--repeat`` runs on one
core, and the best wall time beside it.

The message mix is what a busy capture looks like: uploads and their answers,
downloads, status pushes, alarms and heartbeats, with 5% status queries.
"""

from __future__ import annotations

import argparse
import platform
import time

from camprotool.protocol.bulk import BulkDecoder
from camprotool.protocol.codec import Decoder, encode

DIALECTS = ["line", "lp32le", "lp32be", "line:gbk", "lp32le:gbk", "lp32be:gbk"]


def make_stream(n: int, dialect: str) -> bytes:
    """A deterministic mix of every frequent command, ``n`` frames long."""
    frames = []
    for i in range(n):
        k = i % 20
        cam = f"CAM{i % 100000:05d}"
        if k < 6:
            frames.append(encode("UploadCaramer", f"{cam}|1234|{i % 50 + 1}|50", dialect))
        elif k < 11:
            frames.append(encode("UploadSucess", f"{cam}|true|{i % 50 + 1}|50", dialect))
        elif k == 11:
            frames.append(encode("UploadFail", f"{cam}|该摄像头绑定账号已满|{i % 50 + 1}|50",
                                 dialect))
        elif k < 14:
            frames.append(encode("DownloadSucess", f"{cam}|1234|false|{i % 50 + 1}|50", dialect))
        elif k == 14:
            frames.append(encode("PrushCaramerOnlineStatus", f"{cam}:true", dialect))
        elif k == 15:
            frames.append(encode("PrushCaramerAlarmInfo", f"{cam}:motion", dialect))
        elif k == 16:
            frames.append(encode("CheckCaramerOnlineStatus", f"{cam};CAM00001;CAM00002", dialect))
        else:
            frames.append(encode("Heartbeat", "", dialect))
    return b"".join(frames)


def bench(label: str, fn, data: bytes, n: int, repeat: int) -> None:
    best = wall = float("inf")
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        rows = fn(data)
        best = min(best, time.process_time() - cpu)
        wall = min(wall, time.perf_counter() - start)
    assert rows == n, (label, rows, n)
    print(f"| {label:<28} | {n / best:>14,.0f} | {len(data) / best / 1e6:>8.1f} | {best:>7.3f} "
          f"| {wall:>7.3f} |")


def bulk(dialect: str):
    return lambda data: BulkDecoder(dialect).decode(data).num_rows


def incremental(dialect: str, chunk: int = 1460):
    def run(data: bytes) -> int:
        dec = Decoder(dialect)
        count = 0
        for pos in range(0, len(data), chunk):
            count += len(dec.feed(data[pos : pos + chunk]))
        return count + len(dec.finish())

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--dialects", default=",".join(DIALECTS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-incremental", action="store_true")
    args = parser.parse_args()
    print(f"# {args.messages:,} messages; {platform.python_implementation()} "
          f"{platform.python_version()} on {platform.machine()}, one core")
    print("| decoder / dialect            |     messages/s |     MB/s |   CPU s |  wall s |")
    print("|------------------------------|---------------:|---------:|--------:|--------:|")
    for dialect in args.dialects.split(","):
        BulkDecoder(dialect).decode(make_stream(100, dialect))  # loads the compiled kernels
        data = make_stream(args.messages, dialect)
        bench(f"bulk {dialect}", bulk(dialect), data, args.messages, args.repeat)
        if not args.skip_incremental:
            bench(f"incremental {dialect} (1460 B)", incremental(dialect), data,
                  args.messages, 1)


if __name__ == "__main__":
    main()
