"""Sparse CPU inference against dense: when does ``torch.sparse`` CSR pay off?

Two models, each with every Linear weight pruned by ``l1_unstructured`` at 80, 90 and 95%:
an MLP (512 -> 2048 -> 2048 -> 512, ReLU) and a GPT-2-small MLP block (transformers'
``GPT2MLP``: Conv1D 768 -> 3072, GELU, Conv1D 3072 -> 768), at batch 1, 8 and 64 (rows of
the input; for the GPT-2 block, tokens). Dense runs the finalized model (zeros stored);
sparse runs ``funcprune.sparse.to_sparse(..., layout="csr")``. Times are medians of
interleaved repeats in one process; *speedup* is dense time over sparse time (> 1: sparse wins),
of the medians and of the fastest runs (steadier on a loaded machine).
The last column is what ``fastest_layouts`` picks per layer on the same input.

Usage (from the repository root)::

    python -m benchmarks.sparse_inference              # about a minute
    python -m benchmarks.sparse_inference --threads 1  # single-threaded kernels
    python -m benchmarks.sparse_inference --threads 1 --clock cpu  # CPU time: for a busy machine
    python -m benchmarks.sparse_inference --threads 1 --clock cpu --docs  # and write docs/sparse_inference.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import funcprune as fp
from benchmarks.report import machine
from funcprune.io import finalize
from funcprune.sparse import fastest_layouts, to_sparse

DOCS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "sparse_inference.md"
SPARSITIES = (0.8, 0.9, 0.95)
BATCHES = (1, 8, 64)


def mlp() -> tuple[nn.Module, int]:
    """The MLP and its input width."""
    return nn.Sequential(
        nn.Linear(512, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 512)
    ), 512


def gpt2_mlp_block() -> tuple[nn.Module, int]:
    """GPT-2 small's MLP block (transformers' GPT2MLP, Conv1D layers) and its input width."""
    from transformers import GPT2Config
    from transformers.models.gpt2.modeling_gpt2 import GPT2MLP

    return GPT2MLP(3072, GPT2Config()), 768


@dataclass(frozen=True)
class Row:
    """One model at one sparsity and batch size."""

    model: str
    sparsity: float
    batch: int
    dense_ms: float
    sparse_ms: float
    best_ratio: float
    picks: str

    @property
    def speedup(self) -> float:
        return self.dense_ms / self.sparse_ms


def measure(
    name: str, build: Callable[[], tuple[nn.Module, int]], repeats: int, clock: str
) -> list[Row]:
    """Every sparsity and batch size of one model."""
    torch.manual_seed(0)
    model, width = build()
    model.eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    rows = []
    for sparsity in SPARSITIES:
        masks = fp.only(fp.l1_unstructured(sparsity), include=r"weight$")(params)
        dense = build()[0].eval()
        dense.load_state_dict(finalize(params, masks))
        sparse = to_sparse(model, params, masks).eval()
        for batch in BATCHES:
            x = torch.randn(batch, width)
            dense_ms, sparse_ms, best_ratio = _compare(dense, sparse, x, repeats, clock)
            picks = fastest_layouts(model, params, masks, (x,), repeats=repeats // 2 or 1)
            rows.append(
                Row(
                    name,
                    sparsity,
                    batch,
                    dense_ms,
                    sparse_ms,
                    best_ratio,
                    ", ".join(f"{k.split('.')[-2]}={v}" for k, v in picks.items()),
                )
            )
            print(
                f"  {name} {sparsity:.0%} batch {batch}: {rows[-1].speedup:.2f}x "
                f"(fastest runs {best_ratio:.2f}x)",
                file=sys.stderr,
            )
    return rows


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.thread_time}


def _compare(
    dense: nn.Module, sparse: nn.Module, x: torch.Tensor, repeats: int, clock: str
) -> tuple[float, float, float]:
    """Median milliseconds of each on ``x`` (interleaved) and the ratio of their fastest runs.

    The outputs are checked to agree first. On a loaded machine the fastest run of each is the
    one least disturbed by other processes, so its ratio is the steadier estimate; the ``cpu``
    clock (this thread's CPU time, exact with one intra-op thread) ignores time spent waiting
    for a core altogether.
    """
    now = CLOCKS[clock]
    samples: dict[str, list[float]] = {"dense": [], "sparse": []}
    with torch.no_grad():
        torch.testing.assert_close(sparse(x), dense(x), rtol=1e-4, atol=1e-4)
        for _ in range(repeats):
            for name, model in (("dense", dense), ("sparse", sparse)):
                start = now()
                model(x)
                samples[name].append(now() - start)
    return (
        statistics.median(samples["dense"]) * 1e3,
        statistics.median(samples["sparse"]) * 1e3,
        min(samples["dense"]) / min(samples["sparse"]),
    )


def table(rows: list[Row]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| model | sparsity | batch | dense ms | CSR ms | speedup (medians) | speedup (fastest runs) "
        "| fastest_layouts picks |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.model} | {r.sparsity:.0%} | {r.batch} | {r.dense_ms:.3f} | {r.sparse_ms:.3f} | "
        f"{r.speedup:.2f}x | {r.best_ratio:.2f}x | {r.picks} |"
        for r in rows
    ]
    return "\n".join(lines)


def _verdict(what: str, rows: list[Row], total: int) -> str:
    """Where sparse wins (or loses) by both measures."""
    cases = ", ".join(f"{r.model.split()[0]} {r.sparsity:.0%} batch {r.batch}" for r in rows)
    return f"\nSparse {what} by both measures in {len(rows)} of {total} cases: {cases or 'none'}"


def page(rows: list[Row], command: str, load_before: tuple[float, ...], clock: str) -> str:
    """The Markdown page: machine, load, clock, table, and where sparse wins and loses."""
    clock_text = "CPU time of the calling thread" if clock == "cpu" else "wall time"
    lines = [
        "# Sparse CPU inference: torch CSR against dense",
        "",
        f"Generated by `{command}`. Do not edit by hand: rerun the command.",
        "",
        *[f"- {line}" for line in machine()],
        f"- Load average at the start: {', '.join(f'{x:.2f}' for x in load_before)}",
        f"- Clock: {clock} ({clock_text})",
        "",
        table(rows),
        _verdict("wins", [r for r in rows if min(r.speedup, r.best_ratio) > 1], len(rows)),
        _verdict("loses", [r for r in rows if max(r.speedup, r.best_ratio) < 1], len(rows)),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run both models, print the machine, the load and the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall time, or this thread's CPU time (needs --threads 1; steadier on a busy machine)",
    )
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per form (default 20)")
    parser.add_argument(
        "--docs", action="store_true", help=f"also write {DOCS_PAGE.name} (in benchmarks.md's page)"
    )
    args = parser.parse_args(argv)
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu counts only the calling thread: pass --threads 1 with it")
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    rows = measure("MLP 512-2048-2048-512", mlp, args.repeats, args.clock)
    rows += measure("GPT-2-small MLP block 768-3072-768", gpt2_mlp_block, args.repeats, args.clock)
    command = " ".join(
        ["python -m benchmarks.sparse_inference", *(sys.argv[1:] if argv is None else argv)]
    )
    text = page(rows, command, load_before, args.clock)
    print(text)
    if args.docs:
        DOCS_PAGE.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
