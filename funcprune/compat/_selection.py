"""The entries ``torch.topk`` picks, found by the core's exact selection whenever that is the same.

Without a tie at the boundary, the ``k`` smallest (or largest) values form one set, and the core's
exact selection (:func:`funcprune._select.prune_smallest`) finds it. With a tie there, torch's
choice among the tied entries is its kernel's, not a documented rule, so only ``torch.topk`` itself
can reproduce it: the selection falls back to it (and for NaN or non-floating values, whose order
the core would define on its own, and for values that cannot be read, such as ``meta`` tensors).

Why not ``topk`` over the few entries that decide the cut: on CPU, ``topk`` runs
``std::nth_element`` (or a heap ``partial_sort`` for small ``k``) on (value, index) pairs compared
by value alone. Which tied entries end up in front depends on the pivots and swaps of the whole
partitioning, i.e. on where every other value sits; the same call on a subset (the tied entries
and those beyond them, in order) runs other partitions. Measured on 400 random tied inputs,
``topk`` on that subset chose torch's tied entries in 5. Reproducing the choice means replaying
the partitioning over all entries, which is ``topk``'s own cost.

What can be saved is the rest of the call. ``prune`` asks for a sorted ``topk``, whose kernel then
sorts the ``k - 1`` entries in front after partitioning them: a reordering of the chosen entries
that changes none of them (and most of the time on large inputs: 16 s of 18 s for 124M entries
and ``k`` = 80%). Here ``topk`` runs unsorted, and the mask is every value beyond the ``k``-th one
plus the tied entries ``topk`` chose, not a scatter of ``k`` indices.

>>> import torch
>>> topk_mask(torch.tensor([0.3, 0.1, 0.2]), 2, largest=False)
tensor([False,  True,  True])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from funcprune._select import order_keys, prune_smallest
from funcprune._tensors import is_concrete


def _core_choice(values: Tensor, k: int, largest: bool) -> Tensor | None:
    """The core's chosen set, or ``None`` when it may differ from torch.topk's (ties, NaN, meta)."""
    if not values.is_floating_point() or not is_concrete(values) or bool(torch.isnan(values).any()):
        return None
    smallest = values.numel() - k if largest else k
    kept = prune_smallest(
        [order_keys(values)], [None], torch.tensor(smallest, device=values.device)
    )[0]
    pruned = ~kept  # the entries below the cut; kept: those above it
    top_of_pruned = values.masked_fill(kept, -math.inf).max()
    bottom_of_kept = values.masked_fill(pruned, math.inf).min()
    tie = bool(top_of_pruned == bottom_of_kept)  # equal: a tie at the boundary
    return None if tie else (kept if largest else pruned)


def topk_mask(values: Tensor, k: int, *, largest: bool) -> Tensor:
    """Bool mask of the entries ``torch.topk(values, k, largest=largest)`` returns (1-d ``values``).

    Args:
        values: a 1-d tensor.
        k: how many entries to choose, ``0 <= k <= values.numel()``.
        largest: choose the largest (``True``) or the smallest values.

    >>> import torch
    >>> topk_mask(torch.tensor([1.0, 5.0, 5.0, 2.0]), 1, largest=True).sum().item()
    1
    """
    chosen = None if k in (0, values.numel()) else _core_choice(values, k, largest)
    if chosen is not None:
        return chosen
    picked = torch.topk(values, k, largest=largest, sorted=False)  # the same entries as sorted
    if k == 0 or not is_concrete(values) or bool(torch.isnan(picked.values).any()):
        mask = torch.zeros(values.shape, dtype=torch.bool, device=values.device)
        mask[picked.indices] = True
        return mask
    last = picked.values.min() if largest else picked.values.max()  # the k-th value
    mask = values > last if largest else values < last
    mask[picked.indices[picked.values == last]] = True  # the tied entries topk chose
    return mask


__all__ = ["topk_mask"]
