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
from funcprune._select import prune_smallest, rank_prune_rows
from funcprune.methods._amount import row_units_to_prune, units_to_prune
from funcprune.methods._rows import Rows
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


def prune_entry_rows(rows: Rows, keys: Tensor, amount: Amount) -> Tensor:
    """Per row of a batch, keep masks pruning ``amount`` of its survivors with the smallest ``keys``.

    ``keys`` are order keys of ``rows.params``' shape; ties are pruned lowest index first.
    """
    flat = keys.flatten(1)
    alive = None if rows.survivors is None else rows.survivors.flatten(1)
    n = flat.shape[1]
    remaining = (
        torch.full((len(rows.keys),), n, device=flat.device) if alive is None else alive.sum(1)
    )
    known = n if alive is None else None
    count = row_units_to_prune(amount, remaining, keys=rows.keys, unit="entries", known=known)
    return rank_prune_rows(flat, alive, count).reshape(keys.shape)


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
    """Keep mask pruning ``amount`` of ``param``'s surviving slices along ``dim``, by their keys."""
    # A slice survives unless entirely pruned; an empty slice (another dim of size 0) has nothing
    # pruned, so it survives whatever the masks say, as without them.
    alive = None if param.numel() == 0 else _alive_slices(survivors, dim, 0)
    size = param.shape[dim]
    remaining = torch.tensor(size, device=param.device) if alive is None else alive.sum()
    known = size if alive is None else None
    count = units_to_prune(amount, remaining, key=key, unit=f"slices along dim {dim}", known=known)
    kept = prune_smallest([channel_keys], [alive], count)[0]
    return _spread(kept, param.shape, survivors, dim)


def prune_slice_rows(rows: Rows, channel_keys: Tensor, amount: Amount, dim: int) -> Tensor:
    """:func:`prune_slices` for every row of a batch of non-empty parameters.

    ``channel_keys`` holds one row of keys per parameter; ``dim`` is a dim of one parameter.
    """
    shape = rows.params.shape
    alive = _alive_slices(rows.survivors, dim + 1, 1)
    size = torch.full((shape[0],), shape[dim + 1], device=channel_keys.device)
    remaining = size if alive is None else alive.sum(1)
    known = shape[dim + 1] if alive is None else None
    unit = f"slices along dim {dim}"
    count = row_units_to_prune(amount, remaining, keys=rows.keys, unit=unit, known=known)
    kept = rank_prune_rows(channel_keys, alive, count)
    return _spread(kept, shape, rows.survivors, dim + 1)


def _alive_slices(survivors: Tensor | None, dim: int, lead: int) -> Tensor | None:
    """Which slices along ``dim`` still hold a survivor, keeping the ``lead`` batch dims."""
    if survivors is None:
        return None
    return survivors.any(dim=tuple(d for d in range(lead, survivors.dim()) if d != dim))


def _spread(kept: Tensor, shape: torch.Size, survivors: Tensor | None, dim: int) -> Tensor:
    """A keep mask of ``shape`` from ``kept`` slices along ``dim`` (after any batch dims)."""
    view = [1] * len(shape)
    view[: kept.dim() - 1] = shape[: kept.dim() - 1]
    view[dim] = shape[dim]
    keep = kept.reshape(view).expand(shape)
    return keep.contiguous() if survivors is None else keep & survivors
