"""Run every benchmark workload, print the table and rewrite ``docs/benchmarks.md`` and its plot.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.run            # full run, a few minutes
    .venv/bin/python -m benchmarks.run --quick    # fewer repeats and models (a few minutes)
    .venv/bin/python -m benchmarks.run --only l1 sweep --no-docs
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks import real_models, report, workloads
from benchmarks.workloads import Result

ROOT = Path(__file__).resolve().parent.parent
NAMES = [
    "global",
    "l1",
    "sweep",
    "step",
    "compiled",
    "models",
    "training",
    "forward",
    "load",
    "memory",
    "many",
    "first",
    "scaling",
]


def _plan(quick: bool) -> dict[str, Callable[[], list[Result]]]:
    fast, slow = (5, 1) if quick else (9, 3)
    return {
        "global": lambda: [workloads.global_gpt2(fast, slow, memory=True)],
        "l1": lambda: [workloads.l1_square(fast, slow)],
        "sweep": lambda: [workloads.sweep(fast, slow)],
        "step": lambda: [workloads.train_step(10 if quick else 30)],
        "compiled": lambda: [workloads.train_step_compiled(10 if quick else 30)],
        "models": lambda: real_models.real_models(quick),
        "training": lambda: real_models.training(quick),
        "forward": lambda: [real_models.masked_forward(quick)],
        "load": lambda: real_models.under_load(quick),
        "memory": real_models.memory,
        "many": lambda: real_models.many_keys(quick),
        "first": real_models.first_call,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the chosen workloads, print and write the results."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer repeats and sizes (about a minute)"
    )
    parser.add_argument("--only", nargs="+", choices=NAMES, default=NAMES, help="workloads to run")
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/ alone")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    results = []
    for name, run in _plan(args.quick).items():
        if name in args.only:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            load = os.getloadavg()[0]
            for result in run():
                result.notes.append(f"1-minute load average when it started: {load:.2f}")
                results.append(result)
    scale = None
    if "scaling" in args.only:
        print("running scaling ...", file=sys.stderr, flush=True)
        sizes = (
            [1_000_000, 3_000_000, 10_000_000]
            if args.quick
            else [1_000_000, 3_000_000, 10_000_000, 30_000_000, 100_000_000]
        )
        scale = workloads.scaling(
            sizes,
            torch_limit=3_000_000 if args.quick else 10_000_000,
            repeats=3 if args.quick else 5,
        )
    print(report.console(results, scale))
    print(f"total {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if not args.no_docs:
        png = "benchmarks_scaling.png" if scale is not None else None
        if scale is not None:
            report.plot(scale, ROOT / "docs" / "benchmarks_scaling.png")
        flags = (" --quick" if args.quick else "") + (
            f" --threads {args.threads}" if args.threads else ""
        )
        command = "python -m benchmarks.run" + flags
        (ROOT / "docs" / "benchmarks.md").write_text(report.markdown(results, scale, command, png))
    return 0 if all(r.met for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
