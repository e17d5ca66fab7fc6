"""Peak RSS of one selection, run alone in this (child) process.

``python -m benchmarks.memory WORKLOAD funcprune|torch`` prints one JSON line: the peak RSS growth
during the call, and that growth beyond the masks it returns, per parameter. Workloads:
``global_gpt2`` (global L1 over the GPT-2 stack; also ``torch``), ``ties`` (50M entries, 80% exact
zeros), ``adversarial`` (a conv whose large values sit on the sample's stride), ``random``
(global random scores over the GPT-2 stack) and ``sweep`` (a vmapped sweep of 8 amounts of
global L1 over the GPT-2 stack; its masks are the 8 mask sets).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

import torch
from torch import Tensor
from torch.func import vmap
from torch.nn.utils import prune

import funcprune as fp
from benchmarks.models import Holder, flat_weights, gpt2_weights
from benchmarks.timing import peak_rss, reset_peak_rss


def _inputs(
    workload: str,
) -> tuple[dict[str, Tensor], Callable[[dict[str, Tensor]], dict[str, Tensor]]]:
    """The parameters of a funcprune memory workload, and what makes its masks of them."""
    if workload == "global_gpt2":
        return gpt2_weights(), fp.global_unstructured(0.8)
    if workload == "ties":  # a checkpoint pruned once and pruned again: 80% exact zeros
        params = flat_weights(50_000_000)
        for index, p in enumerate(params.values()):
            p[: p.numel() * 4 // 5] = 0.0
            p.copy_(p[torch.randperm(p.numel(), generator=torch.Generator().manual_seed(index))])
        return params, fp.global_unstructured(0.5)  # the cut falls among the zeros
    if workload == "adversarial":  # the large values sit exactly where the sample looks
        weight = torch.randn(1024, 1024, 7, 7, generator=torch.Generator().manual_seed(0))
        flat = weight.view(-1)
        flat[:: max(1, flat.numel() // (1 << 16)) | 1] = 100.0
        return {"conv.weight": weight}, fp.l1_unstructured(0.5)
    if workload == "random":
        return gpt2_weights(), fp.global_unstructured(0.8, scores="random")
    if workload == "sweep":
        amounts = torch.linspace(0.05, 0.95, 8)
        return gpt2_weights(), lambda p: vmap(lambda a: fp.global_unstructured(a)(p))(amounts)
    raise ValueError(
        f"unknown workload {workload!r}; allowed: 'global_gpt2', 'ties', 'adversarial', 'random', 'sweep'"
    )


def main(workload: str, impl: str) -> dict[str, float]:
    """Measure ``impl`` (``funcprune``, or ``torch`` for ``global_gpt2``) on ``workload``."""
    if impl == "torch":
        if workload != "global_gpt2":
            raise ValueError("torch is measured on 'global_gpt2' only")
        params = gpt2_weights()
        n = sum(p.numel() for p in params.values())
        holder = Holder(params)
        del params
        before = reset_peak_rss()
        prune.global_unstructured(holder.targets(), pruning_method=prune.L1Unstructured, amount=0.8)
        mask_bytes = sum(b.numel() * b.element_size() for b in holder.buffers())
    elif impl == "funcprune":
        params, method = _inputs(workload)
        n = sum(p.numel() for p in params.values())
        before = reset_peak_rss()
        start = time.perf_counter()
        masks = method(params)
        seconds = time.perf_counter() - start
        mask_bytes = sum(m.numel() * m.element_size() for m in masks.values())
    else:
        raise ValueError(f"unknown implementation {impl!r}; allowed: 'funcprune' or 'torch'")
    delta = peak_rss() - before
    report = {
        "params": n,
        "delta_bytes": delta,
        "mask_bytes": mask_bytes,
        "beyond_masks_per_param": (delta - mask_bytes) / n,
    }
    if impl == "funcprune":
        report["seconds"] = seconds
    return report


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:3])))
