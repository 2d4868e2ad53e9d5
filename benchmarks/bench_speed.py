"""Capture speed and memory against tshark + Lua, measured as ../shared/bench/speed.sh does.

    .venv/bin/python benchmarks/bench_speed.py [--quick] [--only NAME[,NAME]] [--skip-slow]

Every figure is a whole process under ``/usr/bin/time -f %M``, as in speed.sh:

* per-file work = wall time of the process on the capture minus the same
  command's wall time on an empty capture (interpreter start and imports don't
  count: a notebook pays them once);
* per-file memory = peak RSS on the capture minus peak RSS on the empty capture;
* median of 3 repetitions (``--repeat``). For camprotool against tshark + Lua
  each repetition runs both on the empty capture, then both on the capture, and
  the repetition with the median ratio is shown, exactly as speed.sh does.

Sections (``--only`` takes these names, or tool names, comma-separated):

``shape1``, ``shape2``
    the two capture shapes of issue 9 (``gen_big.py --clients 200`` and
    ``--clients 3000 --cycles 3``), generated once into ~/.cache/camprotool-bench/
    ($BENCH_DIR) like speed.sh. Tools: ``camprotool`` (``read_capture(path).messages``,
    the message count checked against FILE.json), ``tshark`` + camsync.lua as
    speed.sh runs it, and for context ``pyshark`` (same Lua dissector, reading
    the camsync fields of every packet), ``scapy`` and ``dpkt`` (read the packets,
    take the TCP payloads, cut lines per connection direction, split command
    and parameters: the least code that does the same job on this capture).
    pyshark and scapy are slow: one repetition each, on shape2 only when their
    shape1 run took less than ``--long`` seconds (or with ``--slow-everywhere``);
    ``--skip-slow`` leaves them out.
``stream``
    ``camprotool decode CAP -o out.parquet`` on a capture 10x shape1
    (``--clients 2000``) and on shape1: peak RSS of each and the ratio (issue 9
    target: within 2x).
``conns``
    200,000 short connections each carrying half a Login line
    (benchmarks/gen_short_conns.py): read_capture time, peak RSS and memory per
    connection = (peak RSS - peak RSS on the empty capture - bytes of the result
    tables) / connections (issue 9 target: at most 1 KB).
``startup``
    ``import camprotool`` and the first ``read_capture`` on a tiny capture in a
    fresh process: first ever (numba cache files of camprotool deleted first) and
    warm.

A run whose first repetition takes longer than ``--long`` seconds is not
repeated. Peak RSS is GNU time's: the largest process of the tree (for pyshark,
the larger of Python and its tshark), not a sum. ``--src DIR`` measures the
camprotool package in DIR instead of the working tree, e.g. the engine before a
change: ``git archive COMMIT camprotool | tar -x -C DIR``. Other load on the
machine skews wall times: the load average is printed at the start and the end.
``--quick``: shape1 only, one repetition, slow tools left out unless named in
``--only``. The tables are Markdown, printed to stdout; progress goes
to stderr.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
SHAPES = {"shape1": "--clients 200", "shape2": "--clients 3000 --cycles 3"}
STREAM_10X = "--clients 2000"
TINY = "--clients 1 --cycles 1"
SECTIONS = ("shape1", "shape2", "stream", "conns", "startup")
TOOLS = ("camprotool", "tshark", "pyshark", "scapy", "dpkt")
SLOW = ("pyshark", "scapy")
MB = 1024 * 1024

# speed.sh's camprotool command, word for word.
CAMPROTOOL = "import sys,camprotool as c; print(len(c.read_capture(sys.argv[1]).messages))"

# pyshark with the same Lua dissector: every camsync item of every packet, with its fields.
PYSHARK = """\
import sys, pyshark
cap = pyshark.FileCapture(sys.argv[1], custom_parameters=["-X", "lua_script:" + sys.argv[2]],
                          display_filter="camsync", keep_packets=False)
rows = []
for p in cap:
    for m in p.get_multiple_layers("camsync"):
        rows.append((p.sniff_timestamp, p.tcp.stream, m.get_field("command"),
                     m.get_field("params")))
cap.close()
print(len(rows))
"""

# The job of tshark + camsync.lua with scapy / dpkt: TCP payloads, cut into lines per
# connection direction (no reassembly needed: the generated captures are in order),
# each line split into command and parameters, with the time of the packet ending it.
SCAPY = """\
import sys
from scapy.layers.inet import IP, TCP
from scapy.utils import rdpcap
bufs, rows = {}, []
for p in rdpcap(sys.argv[1]):
    if TCP not in p:
        continue
    data = bytes(p[TCP].payload)
    if not data:
        continue
    key = (p[IP].src, p[TCP].sport, p[IP].dst, p[TCP].dport)
    *lines, bufs[key] = (bufs.get(key, b"") + data).split(b"\\n")
    for line in lines:
        cmd, _, params = line.rstrip(b"\\r").partition(b"|")
        rows.append((float(p.time), key, cmd.decode(), params.decode()))
print(len(rows))
"""

DPKT = """\
import sys
import dpkt
bufs, rows = {}, []
with open(sys.argv[1], "rb") as f:
    for ts, buf in dpkt.pcap.Reader(f):
        ip = dpkt.ethernet.Ethernet(buf).data
        if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP):
            continue
        tcp = ip.data
        if not tcp.data:
            continue
        key = (ip.src, tcp.sport, ip.dst, tcp.dport)
        *lines, bufs[key] = (bufs.get(key, b"") + tcp.data).split(b"\\n")
        for line in lines:
            cmd, _, params = line.rstrip(b"\\r").partition(b"|")
            rows.append((ts, key, cmd.decode(), params.decode()))
print(len(rows))
"""

# The short-connection line: the result tables are measured in the same process.
CONNS = (
    "import sys,json,camprotool as c; cap=c.read_capture(sys.argv[1]); "
    "m=cap.messages; k=cap.connections; "
    "print(json.dumps([len(m), len(k), int(m.memory_usage(deep=True).sum()), "
    "int(k.memory_usage(deep=True).sum())]))"
)

# Startup: import, first read_capture, a second one in the same process.
STARTUP = (
    "import sys,time,json; t0=time.perf_counter(); import camprotool as c; "
    "t1=time.perf_counter(); n=len(c.read_capture(sys.argv[1]).messages); "
    "t2=time.perf_counter(); c.read_capture(sys.argv[1]).messages; t3=time.perf_counter(); "
    "print(json.dumps([t1-t0, t2-t1, t3-t2, n]))"
)


# -- running one command ---------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    rss_mb: float
    rc: int
    out: str
    err: str
    timed_out: bool = False

    def failure(self) -> str | None:
        if self.timed_out:
            return f"timed out after {self.seconds:.0f} s"
        if self.rc:
            lines = (self.err.strip() or self.out.strip() or f"exit {self.rc}").splitlines()
            return f"exit {self.rc}: {lines[-1][:120]}"
        return None


def run(
    cmd: list[str], timeout: float, env: dict[str, str] | None = None, cwd: str | None = None
) -> Run:
    """Whole-process wall time and peak RSS (``/usr/bin/time -f %M``), as speed.sh's run()."""
    with tempfile.NamedTemporaryFile() as tf:
        t = time.perf_counter()
        p = subprocess.Popen(
            ["/usr/bin/time", "-f", "%M", "-o", tf.name, *cmd],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
        )
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)  # the group started just above
            out, err = p.communicate()
            return Run(time.perf_counter() - t, float("nan"), -9, out, err, True)
        except BaseException:  # Ctrl-C, SIGTERM: don't leave the measured process behind
            os.killpg(p.pid, signal.SIGKILL)
            raise
        dt = time.perf_counter() - t
        try:
            rss = int(Path(tf.name).read_text().split()[-1]) / 1024
        except (ValueError, IndexError):
            rss = float("nan")
        return Run(dt, rss, p.returncode, out, err)


def runs_note(n: int) -> str:
    return f"median of {n}" if n > 1 else "1 run"


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the setting ---------------------------------------------------------------------------


@dataclass
class Setup:
    python: str
    gen: Path
    lua: Path
    work: Path
    timeout: float
    long: float
    env: dict[str, str] | None
    cwd: str | None  # --src: `python -c` puts the working directory first on sys.path
    tshark: str | None
    failed: list[str] = field(default_factory=list)

    def camprotool_cli(self) -> list[str]:
        exe = Path(self.python).parent / "camprotool"
        return [str(exe)] if exe.exists() else [self.python, "-m", "camprotool"]

    def run(self, cmd: list[str]) -> Run:
        return run(cmd, self.timeout, self.env, self.cwd)


def tag_of(args: str) -> str:
    """speed.sh's file tag: ``echo "$args" | tr -c 'a-z0-9' '_'``."""
    return "".join(
        ch if ch in "abcdefghijklmnopqrstuvwxyz0123456789" else "_" for ch in args + "\n"
    )


def generate(s: Setup, gen_args: str, name: str | None = None, script: Path | None = None) -> Path:
    """FILE once into the bench directory (FILE.json written last marks it complete)."""
    path = s.work / (name or f"cap_{tag_of(gen_args)}.pcap")
    if not (path.exists() and Path(str(path) + ".json").exists()):
        script = script or s.gen
        say(f"generating {path.name}: {script.name} {gen_args}")
        t = time.perf_counter()
        subprocess.run(
            [
                shutil.which("python3") or sys.executable,
                str(script),
                *gen_args.split(),
                "--out",
                str(path),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        say(f"  {path.stat().st_size / MB:.0f} MiB in {time.perf_counter() - t:.0f} s")
    return path


def empty_capture(s: Setup) -> Path:
    return generate(s, "--clients 0", name="empty.pcap")


def expected(path: Path) -> dict:
    return json.loads(Path(str(path) + ".json").read_text())


# -- the tools of the shape comparison -------------------------------------------------------


@dataclass
class Tool:
    name: str
    slow: bool
    command: Callable[[Setup, str], list[str]]  # (setup, file) -> argv
    count: Callable[[str], int]  # stdout -> messages found

    def argv(self, s: Setup, f: str) -> list[str]:
        return self.command(s, f)


def last_int(out: str) -> int:
    return int(out.split()[-1])


def tshark_cmd(s: Setup, f: str) -> list[str]:
    return [
        s.tshark or "tshark",
        "-X",
        f"lua_script:{s.lua}",
        "-r",
        f,
        "-Y",
        "camsync",
        "-T",
        "fields",
        "-e",
        "frame.time_epoch",
        "-e",
        "tcp.stream",
        "-e",
        "camsync.command",
        "-e",
        "camsync.params",
    ]


def tshark_count(out: str) -> int:
    """Messages in tshark's output: one line per packet, several messages comma-separated."""
    n = 0
    for line in out.splitlines():
        cols = line.split("\t")
        if len(cols) > 2 and cols[2]:
            n += cols[2].count(",") + 1
    return n


TOOL_LIST = [
    Tool("camprotool", False, lambda s, f: [s.python, "-c", CAMPROTOOL, f], last_int),
    Tool("tshark", False, tshark_cmd, tshark_count),
    Tool("pyshark", True, lambda s, f: [s.python, "-c", PYSHARK, f, str(s.lua)], last_int),
    Tool("scapy", True, lambda s, f: [s.python, "-c", SCAPY, f], last_int),
    Tool("dpkt", False, lambda s, f: [s.python, "-c", DPKT, f], last_int),
]
LABEL = {
    "camprotool": "camprotool `read_capture(path).messages`",
    "tshark": "tshark + camsync.lua",
    "pyshark": "pyshark + camsync.lua",
    "scapy": "scapy (rdpcap, lines per flow)",
    "dpkt": "dpkt (pcap.Reader, lines per flow)",
}


def tool_available(s: Setup, tool: Tool) -> str | None:
    """None when the tool can run, else why not."""
    if tool.name in ("tshark", "pyshark") and not s.tshark:
        return "tshark not installed (apt-get install -y tshark)"
    if tool.name in ("pyshark", "scapy", "dpkt"):
        r = subprocess.run(
            [s.python, "-c", f"import {tool.name}"], capture_output=True, env=s.env, cwd=s.cwd
        )
        if r.returncode:
            return f"{tool.name} not installed (pip install -e '.[bench,pyshark]')"
    return None


@dataclass
class Sample:
    work: float  # seconds, capture minus empty
    mem: float  # MB, capture minus empty
    messages: int | None
    seconds: float  # whole process on the capture
    rss: float  # MB, whole process on the capture


def measure_shape(
    s: Setup,
    cap: Path,
    empty: Path,
    tools: list[Tool],
    reps: int,
) -> dict[str, list[Sample] | str]:
    """Per repetition: every tool on the empty capture, then every tool on the capture
    (speed.sh's order for camprotool and tshark). A slow tool, or one whose run took
    longer than s.long, runs once. Failures are kept as a string."""
    res: dict[str, list[Sample] | str] = {t.name: [] for t in tools}
    once = {t.name for t in tools if t.slow}
    for rep in range(reps):
        active = [
            t for t in tools if isinstance(res[t.name], list) and (rep == 0 or t.name not in once)
        ]
        if not active:
            break
        base = {}
        for t in active:
            base[t.name] = s.run(t.argv(s, str(empty)))
            if why := base[t.name].failure():
                res[t.name] = f"failed on the empty capture: {why}"
        for t in active:
            if not isinstance(res[t.name], list):
                continue
            say(f"  {cap.name} {t.name} (run {rep + 1}) ...")
            r = s.run(t.argv(s, str(cap)))
            if why := r.failure():
                res[t.name] = why
                continue
            try:
                n = t.count(r.out)
            except (ValueError, IndexError):
                n = None
            b = base[t.name]
            res[t.name].append(
                Sample(r.seconds - b.seconds, r.rss_mb - b.rss_mb, n, r.seconds, r.rss_mb)
            )
            say(f"    {r.seconds - b.seconds:.2f} s, {r.rss_mb - b.rss_mb:.0f} MB, {n} messages")
            if r.seconds > s.long:
                once.add(t.name)
    return res


def pick(res: dict[str, list[Sample] | str]) -> dict[str, tuple[Sample, int] | str]:
    """The sample shown per tool, with the number of runs. camprotool: the repetition with the
    median camprotool/tshark ratio (speed.sh); the others: median work and median memory."""
    out: dict[str, tuple[Sample, int] | str] = {}
    for name, samples in res.items():
        if isinstance(samples, str) or not samples:
            out[name] = samples if isinstance(samples, str) else "no run"
            continue
        out[name] = (
            Sample(
                statistics.median(x.work for x in samples),
                statistics.median(x.mem for x in samples),
                samples[0].messages,
                statistics.median(x.seconds for x in samples),
                statistics.median(x.rss for x in samples),
            ),
            len(samples),
        )
    cam, ts = res.get("camprotool"), res.get("tshark")
    if isinstance(cam, list) and isinstance(ts, list) and cam and ts:
        pairs = sorted(
            ((t.work / max(c.work, 1e-3), c, t) for c, t in zip(cam, ts, strict=False)),
            key=lambda p: p[0],
        )
        _, c, t = pairs[len(pairs) // 2]
        out["camprotool"] = (c, len(pairs))
        out["tshark"] = (t, len(pairs))
    return out


def shape_rows(
    s: Setup, label: str, cap: Path, picked: dict, skipped: dict[str, str]
) -> list[list[str]]:
    want = expected(cap)["messages"]
    ts = picked.get("tshark")
    ts = ts[0] if isinstance(ts, tuple) else None
    rows = []
    for name in TOOLS:
        if rows:
            label = ""  # the capture is named on its first row only
        if name in skipped:
            rows.append([label, LABEL[name], "-", "-", "-", "-", "-", "-", skipped[name]])
            continue
        if name not in picked:
            continue
        got = picked[name]
        if isinstance(got, str):
            rows.append([label, LABEL[name], "-", "-", "-", "-", "-", "-", got])
            if name == "camprotool":
                s.failed.append(f"{label}: camprotool {got}")
            continue
        x, runs = got
        note = ""
        if x.messages != want:
            note = f"{x.messages} messages, expected {want}"
            if name == "camprotool":
                s.failed.append(f"{label}: camprotool found {x.messages} messages, expected {want}")
                note = "WRONG: " + note
        speed = f"{ts.work / max(x.work, 1e-3):.2f}x" if ts else "-"
        memp = f"{100 * x.mem / ts.mem:.0f} %" if ts and ts.mem > 0 else "-"
        rows.append(
            [
                label,
                LABEL[name],
                f"{x.work:.2f}",
                speed,
                f"{x.mem:.0f}",
                memp,
                f"{x.messages:,}" if x.messages is not None else "?",
                runs_note(runs),
                note,
            ]
        )
    return rows


def section_shapes(s: Setup, names: list[str], tools: list[Tool], reps: int, args) -> None:
    empty = empty_capture(s)
    header = [
        "capture",
        "tool",
        "per-file work s",
        "speed vs tshark+Lua",
        "per-file MB",
        "memory vs tshark",
        "messages",
        "runs",
        "note",
    ]
    rows = []
    slow_ok = {t.name: True for t in tools}
    for name in names:
        cap = generate(s, SHAPES[name])
        e = expected(cap)
        label = (
            f"{name}: `gen_big.py {SHAPES[name]}` ({e['packets']:,} packets, "
            f"{e['messages']:,} messages, "
            f"{e['connections']:,} connections)"
        )
        skipped, run_tools = {}, []
        for t in tools:
            why = tool_available(s, t)
            if why:
                skipped[t.name] = why
            elif t.slow and not slow_ok[t.name] and not args.slow_everywhere:
                skipped[t.name] = f"skipped: took over {s.long:.0f} s on shape1 (--slow-everywhere)"
            else:
                run_tools.append(t)
        say(f"{name}: {cap.name}")
        res = measure_shape(s, cap, empty, run_tools, reps)
        for t in run_tools:
            r = res[t.name]
            if t.slow and (not isinstance(r, list) or any(x.seconds > s.long for x in r)):
                slow_ok[t.name] = False
        rows += shape_rows(s, label, cap, pick(res), skipped)
    print("\n## Per-file work and memory against tshark + Lua\n")
    print(
        "Targets (issue 9): camprotool >= 30x tshark + Lua (floor 20x) on both shapes, "
        "memory <= 50 % of tshark's.\n"
    )
    table(header, rows)


# -- streaming to Parquet ---------------------------------------------------------------------


def parquet_rows(s: Setup, path: Path) -> int | None:
    r = subprocess.run(
        [
            s.python,
            "-c",
            "import sys,pyarrow.parquet as pq; print(pq.read_metadata(sys.argv[1]).num_rows)",
            str(path),
        ],
        capture_output=True,
        text=True,
        env=s.env,
        cwd=s.cwd,
    )
    return int(r.stdout.split()[-1]) if r.returncode == 0 else None


def decode_once(s: Setup, cap: Path, out_dir: Path) -> tuple[Run, int | None]:
    out = out_dir / "out.parquet"
    out.unlink(missing_ok=True)
    r = s.run([*s.camprotool_cli(), "decode", str(cap), "-o", str(out)])
    n = parquet_rows(s, out) if not r.failure() and out.exists() else None
    out.unlink(missing_ok=True)
    return r, n


def section_stream(s: Setup, reps: int) -> None:
    empty = empty_capture(s)
    caps = [
        ("1x", SHAPES["shape1"], generate(s, SHAPES["shape1"])),
        ("10x", STREAM_10X, generate(s, STREAM_10X)),
    ]
    out_dir = Path(tempfile.mkdtemp(prefix="decode-", dir=s.work))
    got: dict[str, list[tuple[Run, Run, int | None]] | str] = {k: [] for k, _, _ in caps}
    try:
        for rep in range(reps):
            for key, _, cap in caps:
                if isinstance(got[key], str) or (
                    rep and any(r.seconds > s.long for _, r, _ in got[key])
                ):
                    continue
                say(f"stream: decode {cap.name} -o out.parquet (run {rep + 1}) ...")
                b, _ = decode_once(s, empty, out_dir)
                r, n = decode_once(s, cap, out_dir)
                if why := (b.failure() or r.failure()):
                    got[key] = why
                    continue
                say(f"    {r.seconds:.1f} s, peak {r.rss_mb:.0f} MB, {n} rows")
                got[key].append((b, r, n))
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    rows, peaks = [], {}
    for key, gen_args, cap in caps:
        e = expected(cap)
        label = (
            f"{key}: `gen_big.py {gen_args}` ({e['bytes'] / MB:.0f} MiB, "
            f"{e['messages']:,} messages)"
        )
        g = got[key]
        if isinstance(g, str) or not g:
            rows.append([label, "-", "-", "-", "-", g or "no run"])
            s.failed.append(f"stream {key}: {g}")
            continue
        secs = statistics.median(r.seconds for _, r, _ in g)
        peak = statistics.median(r.rss_mb for _, r, _ in g)
        base = statistics.median(b.rss_mb for b, _, _ in g)
        work = statistics.median(r.seconds - b.seconds for b, r, _ in g)
        n = g[0][2]
        note = (
            "" if n == e["messages"] else f"{n} rows in the Parquet file, expected {e['messages']}"
        )
        if note:
            s.failed.append(f"stream {key}: {note}")
        peaks[key] = peak
        rows.append(
            [
                label,
                f"{secs:.1f}",
                f"{work:.1f}",
                f"{peak:,.0f}",
                f"{peak - base:,.0f}",
                runs_note(len(g)) + (f"; {note}" if note else ""),
            ]
        )
    print("\n## Streaming: `camprotool decode CAP -o out.parquet`\n")
    table(["capture", "wall s", "per-file work s", "peak RSS MB", "per-file MB", "note"], rows)
    if len(peaks) == 2:
        print(f"\nPeak RSS 10x / 1x: **{peaks['10x'] / peaks['1x']:.2f}x** (target: within 2x).")


# -- many short connections ---------------------------------------------------------------------


def section_conns(s: Setup, conns: int, reps: int) -> None:
    empty = empty_capture(s)
    cap = generate(
        s, f"--conns {conns}", name=f"short_conns_{conns}.pcap", script=HERE / "gen_short_conns.py"
    )
    e = expected(cap)
    cmd = lambda f: [s.python, "-c", CONNS, f]  # noqa: E731
    samples, fail = [], None
    for rep in range(reps):
        say(f"conns: read_capture {cap.name} (run {rep + 1}) ...")
        b, r = s.run(cmd(str(empty))), s.run(cmd(str(cap)))
        if fail := (b.failure() or r.failure()):
            break
        nmsg, ncon, mbytes, cbytes = json.loads(r.out.strip().splitlines()[-1])
        _, _, mb0, cb0 = json.loads(b.out.strip().splitlines()[-1])
        result = (mbytes + cbytes - mb0 - cb0) / MB
        samples.append((r.seconds - b.seconds, r.rss_mb, r.rss_mb - b.rss_mb, result, nmsg, ncon))
        say(f"    {r.seconds - b.seconds:.1f} s, peak {r.rss_mb:.0f} MB, result {result:.0f} MB")
        if r.seconds > s.long:
            break
    label = (
        f"{conns:,} connections, half a Login each ({e['packets']:,} packets, "
        f"{e['bytes'] / MB:.0f} MiB)"
    )
    print(f"\n## {conns:,} short connections (`benchmarks/gen_short_conns.py --conns {conns}`)\n")
    hdr = [
        "capture",
        "per-file work s",
        "peak RSS MB",
        "per-file MB",
        "result tables MB",
        "per connection beyond the result",
        "rows (messages, connections)",
        "runs",
    ]
    if not samples:
        s.failed.append(f"conns: {fail}")
        table(hdr, [[label, "-", "-", "-", "-", "-", "-", fail or "no run"]])
        return
    med = lambda i: statistics.median(x[i] for x in samples)  # noqa: E731
    per_conn = (med(2) - med(3)) * MB / conns
    table(
        hdr,
        [
            [
                label,
                f"{med(0):.1f}",
                f"{med(1):,.0f}",
                f"{med(2):,.0f}",
                f"{med(3):,.0f}",
                f"{per_conn:,.0f} bytes",
                f"{samples[0][4]:,}, {samples[0][5]:,}",
                runs_note(len(samples)),
            ]
        ],
    )
    print("\nTarget (issue 9): at most 1 KB per connection beyond the result.")


# -- startup ----------------------------------------------------------------------------------


def package_dir(s: Setup) -> Path:
    """Where the measured interpreter finds camprotool (without importing it)."""
    r = subprocess.run(
        [
            s.python,
            "-c",
            "import importlib.util as u; "
            "print(u.find_spec('camprotool').submodule_search_locations[0])",
        ],
        capture_output=True,
        text=True,
        env=s.env,
        cwd=s.cwd,
        check=True,
    )
    return Path(r.stdout.strip())


def numba_cache_files(s: Setup) -> list[Path]:
    """numba's cache files of camprotool: __pycache__/*.nbi|*.nbc under the package (and
    under $NUMBA_CACHE_DIR, where numba mirrors the source path, when that is set)."""
    found = [
        p
        for pat in ("*.nbi", "*.nbc")
        for p in package_dir(s).rglob(pat)
        if p.parent.name == "__pycache__"
    ]
    if os.environ.get("NUMBA_CACHE_DIR"):
        found += [
            p
            for pat in ("*.nbi", "*.nbc")
            for p in Path(os.environ["NUMBA_CACHE_DIR"]).rglob(pat)
            if "camprotool" in p.parts
        ]
    return sorted(set(found))


def section_startup(s: Setup, reps: int) -> None:
    tiny = generate(s, TINY, name="tiny.pcap")
    cmd = [s.python, "-c", STARTUP, str(tiny)]
    old = numba_cache_files(s)
    for p in old:
        p.unlink(missing_ok=True)
    say(f"startup: deleted {len(old)} numba cache files; first call ...")
    cold = s.run(cmd)
    if why := cold.failure():
        s.failed.append(f"startup: {why}")
        print(f"\n## Startup\n\nfailed: {why}")
        return
    made = numba_cache_files(s)
    warm = []
    for _ in range(max(reps, 3)):
        r = s.run(cmd)
        if not r.failure():
            warm.append((r, json.loads(r.out.strip().splitlines()[-1])))
    c = json.loads(cold.out.strip().splitlines()[-1])
    w = [statistics.median(x[1][i] for x in warm) for i in range(3)] if warm else [float("nan")] * 3
    wp = statistics.median(x[0].seconds for x in warm) if warm else float("nan")
    e = expected(tiny)
    print(
        f"\n## Startup (tiny capture: `gen_big.py {TINY}`, {e['packets']} packets, "
        f"{e['messages']} messages)\n"
    )
    table(
        [
            "",
            "import camprotool s",
            "first read_capture s",
            "second read_capture s",
            "whole process s",
        ],
        [
            [
                f"first ever ({len(old)} numba cache files deleted before, {len(made)} after)",
                f"{c[0]:.3f}",
                f"{c[1]:.3f}",
                f"{c[2]:.3f}",
                f"{cold.seconds:.2f}",
            ],
            [
                f"warm (median of {len(warm)})",
                f"{w[0]:.3f}",
                f"{w[1]:.3f}",
                f"{w[2]:.3f}",
                f"{wp:.2f}",
            ],
        ],
    )


# -- output -------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> None:
    num = [
        all(_numeric(r[i]) for r in rows if i < len(r) and r[i] != "-") for i in range(len(header))
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" if num[i] and i else "---" for i in range(len(header))) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    sys.stdout.flush()


def _numeric(text: str) -> bool:
    t = text.replace(",", "").replace("x", "").replace("%", "").replace("bytes", "").strip()
    try:
        float(t)
    except ValueError:
        return False
    return True


def load() -> str:
    """Other work on the machine skews wall times: the load average says how much there was."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} {five:.1f} {fifteen:.1f}"


def machine(s: Setup) -> list[str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(
            int(x.split()[1])
            for x in Path("/proc/meminfo").read_text().splitlines()
            if x.startswith("MemTotal")
        )
        ram = f"{mem / 2**20:.1f} GiB"
    except (OSError, StopIteration):
        ram = "?"
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    r = subprocess.run(
        [
            s.python,
            "-c",
            "import platform,importlib.metadata as m\n"
            "v=[]\nfor p in ('camprotool','numpy','numba','pandas','pyarrow',\n"
            "          'pyshark','scapy','dpkt'):\n"
            "    try: v.append(p+' '+m.version(p))\n    except Exception: v.append(p+' -')\n"
            "print('CPython '+platform.python_version()+'; '+', '.join(v))",
        ],
        capture_output=True,
        text=True,
        env=s.env,
        cwd=s.cwd,
    )
    tshark = "-"
    if s.tshark:
        tshark = subprocess.run(
            [s.tshark, "--version"], capture_output=True, text=True
        ).stdout.splitlines()[0]
    pkg = package_dir(s)
    git = subprocess.run(
        ["git", "-C", str(REPO), "log", "-1", "--format=%h %cs %s"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "camprotool"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if s.env:  # --src
        code = f"--src; this repository is at {git}"
    else:
        code = git + (" + uncommitted changes in camprotool/" if dirty else "")
    return [
        f"machine: {nproc} CPUs (nproc), {cpu}, {ram} RAM; "
        f"{platform.system()} {platform.release()} "
        f"{platform.machine()}",
        f"software: {r.stdout.strip() or '?'}; {tshark}",
        f"{load()} at the start",
        f"camprotool measured: {pkg} ({code})",
    ]


def commands(s: Setup) -> list[str]:
    q = lambda argv: shlex.join(argv)  # noqa: E731
    return [
        f"camprotool: {q([s.python, '-c', CAMPROTOOL, 'FILE'])}",
        f"tshark:     {q(tshark_cmd(s, 'FILE'))}",
        f"pyshark:    {s.python} -c <PYSHARK in bench_speed.py> FILE {s.lua}",
        f"scapy/dpkt: {s.python} -c <SCAPY / DPKT in bench_speed.py> FILE",
        f"stream:     {q([*s.camprotool_cli(), 'decode', 'FILE', '-o', 'out.parquet'])}",
        f"conns:      {q([s.python, '-c', CONNS, 'FILE'])}",
        f"startup:    {q([s.python, '-c', STARTUP, 'FILE'])}",
        "each under: /usr/bin/time -f %M -o TMP ...; FILE = the capture, then the empty capture "
        f"(gen_big.py --clients 0) in {s.work}",
    ]


# -- main -------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="shape1 only, one repetition, slow tools left out unless named in --only",
    )
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"sections {','.join(SECTIONS)} and/or tools {','.join(TOOLS)} (comma-separated)",
    )
    ap.add_argument("--skip-slow", action="store_true", help="leave out pyshark and scapy")
    ap.add_argument(
        "--slow-everywhere",
        action="store_true",
        help="run pyshark and scapy on shape2 even when they took over --long s on shape1",
    )
    ap.add_argument(
        "--repeat", type=int, default=3, help="repetitions, the median is shown (default 3)"
    )
    ap.add_argument(
        "--timeout", type=float, default=900, help="seconds allowed to one run (default 900)"
    )
    ap.add_argument(
        "--long",
        type=float,
        default=60,
        help="a run longer than this is not repeated (default 60 s)",
    )
    ap.add_argument(
        "--conns", type=int, default=200_000, help="short connections (default 200,000)"
    )
    ap.add_argument(
        "--gen",
        default=str(REPO.parent / "shared" / "bench" / "gen_big.py"),
        help="gen_big.py (default ../shared/bench/gen_big.py); camsync.lua is beside it",
    )
    ap.add_argument("--lua", help="the Lua dissector (default: camsync.lua beside --gen)")
    ap.add_argument("--python", help="interpreter with camprotool (default .venv/bin/python)")
    ap.add_argument(
        "--src",
        help="measure the camprotool package under this directory (PYTHONPATH), "
        "e.g. a git worktree of another commit",
    )
    ap.add_argument(
        "--dir",
        default=os.environ.get("BENCH_DIR", str(Path.home() / ".cache" / "camprotool-bench")),
        help="where captures are generated once ($BENCH_DIR, ~/.cache/camprotool-bench)",
    )
    args = ap.parse_args()

    names = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    bad = [n for n in names if n not in SECTIONS + TOOLS]
    if bad:
        ap.error(f"--only {','.join(bad)}: choose from {', '.join(SECTIONS + TOOLS)}")
    gen = Path(args.gen).resolve()
    if not gen.exists():
        print(f"generator missing: {gen} (give it with --gen PATH/gen_big.py)")
        return 2
    lua = Path(args.lua).resolve() if args.lua else gen.parent / "camsync.lua"
    if not lua.exists():
        print(f"Lua dissector missing: {lua} (give it with --lua PATH/camsync.lua)")
        return 2
    if not Path("/usr/bin/time").exists():
        print(
            "/usr/bin/time missing (apt-get install -y time): it measures peak RSS as speed.sh does"
        )
        return 2
    venv = REPO / ".venv" / "bin" / "python"
    python = args.python or (str(venv) if venv.exists() else sys.executable)
    env = None
    if args.src:
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(
                [str(Path(args.src).resolve())] + [p for p in [os.environ.get("PYTHONPATH")] if p]
            ),
        )
    work = Path(args.dir).expanduser()
    work.mkdir(parents=True, exist_ok=True)
    cwd = str(Path(args.src).resolve()) if args.src else None
    s = Setup(python, gen, lua, work, args.timeout, args.long, env, cwd, shutil.which("tshark"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    sections = [n for n in names if n in SECTIONS]
    tool_names = [n for n in names if n in TOOLS]
    if not sections:
        sections = (
            ["shape1"] if args.quick else (["shape1", "shape2"] if tool_names else list(SECTIONS))
        )
    reps = 1 if args.quick else max(1, args.repeat)
    tools = [
        t
        for t in TOOL_LIST
        if (not tool_names or t.name in tool_names)
        and not (t.slow and (args.skip_slow or args.quick) and t.name not in tool_names)
    ]

    t_start = time.perf_counter()
    argv = " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(f"# bench_speed.py {argv}".rstrip())
    print(f"\n{datetime.datetime.now().astimezone().isoformat(timespec='minutes')}\n")
    print("```")
    for line in machine(s) + ["commands:"] + ["  " + c for c in commands(s)]:
        print(line)
    print("```")
    print(
        "\nPer-file work = wall time of the whole process on the capture minus on the "
        "empty capture; "
        "per-file MB = peak RSS (`/usr/bin/time -f %M`) minus the same on the empty capture; "
        f"median of {reps} unless said (a run over {s.long:.0f} s, pyshark and scapy run once). "
        "Speed = tshark's per-file work / the tool's."
    )
    shapes = [n for n in SECTIONS if n in sections and n in SHAPES]
    if shapes:
        section_shapes(s, shapes, tools, reps, args)
    if "stream" in sections:
        section_stream(s, reps)
    if "conns" in sections:
        section_conns(s, args.conns, reps)
    if "startup" in sections:
        section_startup(s, reps)
    print(f"\nWhole run: {time.perf_counter() - t_start:.0f} s; {load()} at the end.")
    for f in s.failed:
        print(f"FAILED: {f}")
    return 1 if s.failed else 0


if __name__ == "__main__":
    sys.exit(main())
