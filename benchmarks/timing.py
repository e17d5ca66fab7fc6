"""Timing and memory measurement: interleaved repeats with medians, memory-copy floors, peak RSS."""

from __future__ import annotations

import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Timed:
    """Median and spread of the wall-clock seconds of repeated calls."""

    median: float
    low: float
    high: float
    repeats: int


def interleaved(
    candidates: dict[str, Callable[[], object]],
    repeats: int,
    setup: dict[str, Callable[[], None]] | None = None,
    warmup: int = 1,
) -> dict[str, Timed]:
    """Time each candidate ``repeats`` times, alternating between them so noise hits all alike.

    ``setup[name]`` (untimed) runs before every call of ``name``, e.g. to undo torch's pruning.
    """
    setup = setup or {}
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for round_ in range(warmup + repeats):
        for name, fn in candidates.items():
            if name in setup:
                setup[name]()
            gc.collect()
            start = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - start
            if round_ >= warmup:
                samples[name].append(elapsed)
    return {
        name: Timed(statistics.median(s), min(s), max(s), len(s)) for name, s in samples.items()
    }


def copy_seconds(nbytes: int, repeats: int = 7) -> float:
    """Median time of one ``copy_`` of ``nbytes`` between preallocated buffers: the memory floor."""
    src = torch.ones(max(nbytes // 4, 1), dtype=torch.float32)
    dst = torch.empty_like(src)
    dst.copy_(src)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> int:
    """Reset the process's peak RSS to its current RSS (Linux ``clear_refs``); return it in bytes."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return _status_kib("VmRSS") * 1024


def peak_rss() -> int:
    """The process's peak RSS in bytes since the last :func:`reset_peak_rss`."""
    return _status_kib("VmHWM") * 1024


def peak_rss_delta_in_subprocess(workload: str, impl: str) -> dict[str, float]:
    """Run ``python -m benchmarks.memory workload impl`` in a fresh process; return its JSON report."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", workload, impl],
        capture_output=True,
        text=True,
        check=True,
    )
    report: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return report
