"""``make fuzz``: run every fuzz target (tests/fuzz/fuzz_targets.py) for a time budget.

Why a runner and not just pytest: hypothesis stops after ``max_examples``,
and a fuzzer should instead use the time it is given. This runs each target
in batches with fresh random seeds until its share of the budget is spent,
then reports how many inputs it tried and what failed, with the shrunk input
(also written to ``--findings``, one file per failure) so it can become a
regression test in tests/fuzz/test_regressions.py.

A hang is a failure too: an example still running after ``--hang`` seconds
dumps every thread's stack and ends the run with status 3.

Usage::

    python tests/fuzz/run.py [--seconds 300] [--target NAME ...] [--findings DIR]

Exit status: 0 nothing found, 1 a target failed, 2 bad arguments, 3 a hang.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import random
import sys
import time
import traceback
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz_targets import TARGETS, Target

BATCH = 25  # examples per hypothesis run (a new random seed each); small, to keep to the budget


def fuzz(target: Target, seconds: float, rng: random.Random, findings: Path,
         hang: float) -> dict:
    """Run ``target`` for ``seconds``; its counts and the failure found, if any."""
    tried = 0
    last_failing: list[object] = []

    def check(example: object) -> None:
        nonlocal tried
        tried += 1
        faulthandler.dump_traceback_later(hang, exit=True)
        try:
            target.check(example)
        except BaseException:
            last_failing[:] = [example]  # the last one raised is hypothesis's shrunk input
            raise
        finally:
            faulthandler.cancel_dump_traceback_later()

    @settings(max_examples=BATCH, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck),
              phases=(Phase.generate, Phase.target, Phase.shrink), print_blob=False)
    @given(target.strategy)
    def prop(example: object) -> None:
        check(example)

    started = time.monotonic()
    failure = None
    with target.context():
        while time.monotonic() - started < seconds:
            run = hypothesis_seed(rng.getrandbits(64))(prop)
            try:
                run()
            except Exception as exc:  # a property failed: report it, go on to the next target
                failure = {"error": "".join(traceback.format_exception_only(exc)).strip(),
                           "input": repr(last_failing[0]) if last_failing else "?"}
                findings.mkdir(parents=True, exist_ok=True)
                path = findings / f"{target.name}-{int(time.time())}.txt"
                path.write_text(f"target: {target.name}\n{failure['error']}\n\n"
                                f"input:\n{failure['input']}\n\n"
                                + "".join(traceback.format_exception(exc)), encoding="utf-8")
                failure["file"] = str(path)
                break
    return {"target": target.name, "inputs": tried,
            "seconds": round(time.monotonic() - started, 1), "failure": failure}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0,
                        help="the whole budget, shared equally by the targets (300)")
    parser.add_argument("--target", action="append", choices=sorted(TARGETS),
                        help="fuzz only this target (repeat for more; default all)")
    parser.add_argument("--findings", type=Path, default=Path(".hypothesis/fuzz-findings"),
                        help="where failures are written (.hypothesis/fuzz-findings)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the batch seeds")
    parser.add_argument("--hang", type=float, default=120.0,
                        help="seconds one input may run before it counts as a hang (120)")
    args = parser.parse_args(argv)
    # the emulator logs every refusal it makes; only its errors (a handler failing) matter here
    logging.getLogger("camprotool").setLevel(logging.ERROR)
    if not args.seconds > 0:
        parser.error("--seconds must be > 0")
    names = args.target or sorted(TARGETS)
    seed = args.seed if args.seed is not None else random.SystemRandom().getrandbits(32)
    rng = random.Random(seed)
    share = args.seconds / len(names)
    print(f"fuzzing {', '.join(names)} for {args.seconds:g} s ({share:.0f} s each), "
          f"seed {seed}", flush=True)
    results = []
    for name in names:
        result = fuzz(TARGETS[name], share, rng, args.findings, args.hang)
        results.append(result)
        status = "ok" if result["failure"] is None else "FAILED"
        print(f"{name:14} {result['inputs']:8,} inputs in {result['seconds']:6.1f} s  {status}",
              flush=True)
        if result["failure"]:
            print(f"  {result['failure']['error']}\n  input: {result['failure']['input'][:500]}"
                  f"\n  written to {result['failure']['file']}", flush=True)
    total = sum(r["inputs"] for r in results)
    failed = [r["target"] for r in results if r["failure"]]
    print(f"total: {total:,} inputs, {len(failed)} target(s) failed"
          + (f": {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
