"""The rank kernel: one stable sort ranks every eligible entry; a mask is ``rank >= k``.

For small inputs (at most a few sample sizes of entries) one sort costs less than the eager
kernel's several passes, and it needs readable keys but not a readable ``k``: the ranks are
computed once and ``rank >= k`` is the only operation that sees ``k``, so under ``vmap`` over
counts it is one sort and one compare per count. It takes 12 bytes per entry (int64 sort indices,
int32 ranks), so the dispatcher gives it at most ``RANK_LIMIT`` entries.

>>> import torch
>>> rank_prune_smallest([torch.tensor([3, 1, 1, 2])], [None], torch.tensor(3), [torch.Size([4])])
[tensor([ True, False, False, False])]

:func:`rank_prune_rows` is the same selection done for every row of a batch at once: many small
tensors of one shape, stacked, cost one sort instead of one kernel call each.
"""

from __future__ import annotations

import torch
from torch import Tensor

RANK_LIMIT = 1 << 25
"""Most entries the rank kernel sorts (it needs 12 bytes per entry)."""


def rank_prune_smallest(
    flat: list[Tensor], allowed: list[Tensor | None], k: Tensor, shapes: list[torch.Size]
) -> list[Tensor]:
    """:func:`funcprune._select.prune_smallest` on flat readable keys: one stable sort, then ``rank >= k``.

    >>> import torch
    >>> rank_prune_smallest([torch.tensor([2, 1])], [torch.tensor([True, False])], torch.tensor(1), [torch.Size([2])])
    [tensor([False, False])]
    """
    key = flat[0] if len(flat) == 1 else torch.cat(flat)
    oks = [
        torch.ones_like(f, dtype=torch.bool) if ok is None else ok
        for f, ok in zip(flat, allowed, strict=True)
    ]
    ok = None if all(a is None for a in allowed) else oks[0] if len(oks) == 1 else torch.cat(oks)
    if ok is None:
        order = torch.sort(key, stable=True).indices
    else:
        positions = ok.nonzero().reshape(-1)
        order = positions[torch.sort(key[positions], stable=True).indices]
    dtype = torch.int32 if key.numel() < 2**31 else torch.int64
    ranks = torch.arange(order.numel(), dtype=dtype, device=key.device)
    rank = torch.zeros(key.shape, dtype=dtype, device=key.device).scatter_(0, order, ranks)
    keep = rank >= torch.clamp(k, max=key.numel()).to(rank.dtype)  # no int32 wrap-around
    if ok is not None:
        keep = keep & ok
    starts = [0]
    for f in flat:
        starts.append(starts[-1] + f.numel())
    return [
        keep[a:b].reshape(shape)
        for a, b, shape in zip(starts[:-1], starts[1:], shapes, strict=True)
    ]


def rank_prune_rows(keys: Tensor, eligible: Tensor | None, k: Tensor) -> Tensor:
    """:func:`rank_prune_smallest` on every row of 2-d readable ``keys``, with ``k[i]`` for row ``i``.

    Each row is sorted stably; its eligible entries are counted in that order and the first
    ``k[i]`` of them are pruned, so ties are pruned lowest index first, as in the other kernels.

    Args:
        keys: ``(rows, n)`` integer keys.
        eligible: ``(rows, n)`` bool tensor of the entries that may be pruned, or ``None`` for all.
        k: ``(rows,)`` integer counts, each at most its row's number of eligible entries.

    Returns:
        The ``(rows, n)`` keep mask; ineligible entries are ``False``.

    >>> import torch
    >>> rank_prune_rows(torch.tensor([[3, 1, 1], [0, 2, 0]]), None, torch.tensor([2, 1]))
    tensor([[ True, False, False],
            [False,  True,  True]])
    """
    order = torch.sort(keys, dim=1, stable=True).indices
    limit = k.reshape(-1, 1)
    if eligible is None:
        kept = torch.arange(keys.shape[1], device=keys.device) >= limit
    else:
        alive = eligible.gather(1, order)
        kept = alive & (alive.cumsum(1) > limit)
    return torch.empty(keys.shape, dtype=torch.bool, device=keys.device).scatter_(1, order, kept)


__all__ = ["RANK_LIMIT", "rank_prune_rows", "rank_prune_smallest"]
