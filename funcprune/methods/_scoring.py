"""What the per-tensor methods share: unit counts, the scored tensor, and pruning whole slices.

>>> import torch
>>> prune_slices("w", torch.ones(3, 2), None, torch.tensor([2, 0, 1]), 1, 0)
tensor([[ True,  True],
        [False, False],
        [ True,  True]])
"""

from __future__ import annotations

import torch
from torch import Tensor

from funcprune._checks import check_dim, check_floating
from funcprune._select import prune_smallest
from funcprune.methods._amount import units_to_prune
from funcprune.types import Amount


def unit_count(param: Tensor, survivors: Tensor | None) -> Tensor:
    if survivors is None:
        return torch.tensor(param.numel(), device=param.device)
    return survivors.sum()


def entry_count(key: str, param: Tensor, survivors: Tensor | None, amount: Amount) -> Tensor:
    """How many of the surviving entries ``amount`` prunes."""
    known = param.numel() if survivors is None else None
    remaining = unit_count(param, survivors)
    return units_to_prune(amount, remaining, key=key, unit="entries", known=known)


def score_source(key: str, default: Tensor, score: Tensor | None, method: str) -> Tensor:
    """The tensor a magnitude or norm is taken of: ``score`` when given, else ``default``; floating.

    It is detached: masks are never differentiable, so a Parameter (``requires_grad``) is ranked
    by its values, and the kernels may compute in place.

    >>> import torch
    >>> score_source("w", torch.ones(2, requires_grad=True), None, "l1_unstructured")
    tensor([1., 1.])
    """
    source = default if score is None else score
    check_floating(key, source, "parameter" if score is None else "importance score", method)
    return source.detach()


def current(param: Tensor, survivors: Tensor | None) -> Tensor:
    """The parameter as currently pruned (torch's default importance scores)."""
    return param if survivors is None else param * survivors


def channel_dim(key: str, shape: torch.Size, dim: int, method: str) -> int:
    if len(shape) < 2:
        raise ValueError(
            f"{key!r}: {method} prunes slices of tensors with >= 2 dims; got shape {tuple(shape)}. "
            "Restrict it to such parameters with funcprune.only(method, include=...)"
        )
    return check_dim(key, tuple(shape), dim)


def prune_slices(
    key: str,
    param: Tensor,
    survivors: Tensor | None,
    channel_keys: Tensor,
    amount: Amount,
    dim: int,
) -> Tensor:
    others = tuple(d for d in range(param.dim()) if d != dim)
    # A slice survives unless entirely pruned; an empty slice (another dim of size 0) has nothing
    # pruned, so it survives whatever the masks say, as without them.
    empty = param.numel() == 0
    alive = None if survivors is None or empty else survivors.any(dim=others)
    size = param.shape[dim]
    remaining = torch.tensor(size, device=param.device) if alive is None else alive.sum()
    known = size if alive is None else None
    count = units_to_prune(amount, remaining, key=key, unit=f"slices along dim {dim}", known=known)
    kept = prune_smallest([channel_keys], [alive], count)[0]
    view = [1] * param.dim()
    view[dim] = param.shape[dim]
    keep = kept.reshape(view).expand(param.shape)
    return keep.contiguous() if survivors is None else keep & survivors
