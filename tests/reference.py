"""Plain reference implementations and torch-side helpers the tests compare against.

The reference selection is a stable sort: obviously right, slow, and independent of the
radix-select kernel under test.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import prune as torch_prune


def reference_keep(
    scores: Sequence[Tensor], eligible: Sequence[Tensor | None], k: int
) -> list[Tensor]:
    """Prune the ``k`` smallest eligible scores across all tensors, ties by lowest flat index."""
    flat = (
        torch.cat([s.reshape(-1).to(torch.float64) for s in scores]) if scores else torch.zeros(0)
    )
    ok = (
        torch.cat(
            [
                torch.ones(s.numel(), dtype=torch.bool) if e is None else e.reshape(-1)
                for s, e in zip(scores, eligible, strict=True)
            ]
        )
        if scores
        else torch.zeros(0, dtype=torch.bool)
    )
    positions = torch.nonzero(ok).reshape(-1)
    order = torch.argsort(flat[positions] + 0.0, stable=True)
    keep = ok.clone()
    keep[positions[order[:k]]] = False
    out, start = [], 0
    for s in scores:
        out.append(keep[start : start + s.numel()].reshape(s.shape))
        start += s.numel()
    return out


def threshold_untied(scores: Tensor, eligible: Tensor | None, k: int) -> bool:
    """Whether the k-th and (k+1)-th smallest eligible scores differ (so any exact method agrees)."""
    flat = scores.reshape(-1).to(torch.float64)
    if eligible is not None:
        flat = flat[eligible.reshape(-1)]
    if k == 0 or k >= flat.numel():
        return True
    ordered = torch.sort(flat).values
    return bool(ordered[k - 1] != ordered[k])


def torch_module(params: dict[str, Tensor]) -> nn.Module:
    """A bare module holding copies of ``params`` as parameters (keys must not contain dots)."""
    module = nn.Module()
    for key, value in params.items():
        module.register_parameter(key, nn.Parameter(value.detach().clone()))
    return module


def torch_masks(module: nn.Module, keys: Sequence[str]) -> dict[str, Tensor]:
    """The bool masks torch.nn.utils.prune installed (all-True where unpruned)."""
    return {
        k: getattr(module, k + "_mask").bool()
        if hasattr(module, k + "_mask")
        else torch.ones_like(getattr(module, k), dtype=torch.bool)
        for k in keys
    }


__all__ = ["reference_keep", "threshold_untied", "torch_masks", "torch_module", "torch_prune"]
