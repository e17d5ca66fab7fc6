"""Peak RSS of one global selection over the GPT-2 stack, run alone in this (child) process.

``python -m benchmarks.memory global_gpt2 funcprune|torch`` prints one JSON line: the peak RSS
growth during the call, and that growth beyond the masks it returns, per parameter.
"""

from __future__ import annotations

import json
import sys

from torch.nn.utils import prune

import funcprune as fp
from benchmarks.models import Holder, gpt2_weights
from benchmarks.timing import peak_rss, reset_peak_rss


def main(workload: str, impl: str) -> dict[str, float]:
    """Measure ``impl`` (``funcprune`` or ``torch``) on ``workload`` (only ``global_gpt2``)."""
    if workload != "global_gpt2":
        raise ValueError(f"unknown workload {workload!r}; allowed: 'global_gpt2'")
    params = gpt2_weights()
    n = sum(p.numel() for p in params.values())
    if impl == "funcprune":
        before = reset_peak_rss()
        masks = fp.global_unstructured(0.8)(params)
        mask_bytes = sum(m.numel() * m.element_size() for m in masks.values())
    elif impl == "torch":
        holder = Holder(params)
        del params
        before = reset_peak_rss()
        prune.global_unstructured(holder.targets(), pruning_method=prune.L1Unstructured, amount=0.8)
        mask_bytes = sum(b.numel() * b.element_size() for b in holder.buffers())
    else:
        raise ValueError(f"unknown implementation {impl!r}; allowed: 'funcprune' or 'torch'")
    delta = peak_rss() - before
    return {
        "params": n,
        "delta_bytes": delta,
        "mask_bytes": mask_bytes,
        "beyond_masks_per_param": (delta - mask_bytes) / n,
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:3])))
