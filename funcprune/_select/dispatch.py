"""``prune_smallest`` and ``prune_smallest_magnitudes``: pick the kernel that fits the inputs.

Every kernel prunes exactly ``k`` eligible entries: all keys below the ``k``-th smallest, then
that key's ties by lowest flat index, counting through the tensors in the order given (a global
selection over many tensors breaks ties like one concatenated vector would, without concatenating
anything). They give the same masks; they exist because of what can be read:

* **eager** (:mod:`.eager`): keys and ``k`` readable. Brackets the threshold from a sample and
  gathers only the keys near it; no sort, chunk-sized temporaries. Every plain call.
* **rank** (:mod:`.rank`): keys readable but ``k`` batched by ``vmap`` (a sweep of amounts), or
  inputs of at most ``_SAMPLE`` entries, where one sort beats the eager kernel's passes.
* **radix** (:mod:`.radix`): keys batched or traced (``vmap`` over parameters, ``torch.compile``):
  static shapes only, so a 16-bit radix select from fixed-size histograms.

>>> import torch
>>> from funcprune._select.keys import order_keys
>>> prune_smallest([order_keys(torch.tensor([0.3, 0.1, 0.2, 0.1]))], [None], torch.tensor(2))[0]
tensor([ True, False,  True, False])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from funcprune._select import eager
from funcprune._select.keys import order_keys
from funcprune._select.radix import static_prune_smallest
from funcprune._select.rank import RANK_LIMIT, rank_prune_smallest
from funcprune._tensors import is_concrete


def prune_smallest(
    keys: Sequence[Tensor], eligible: Sequence[Tensor | None], k: Tensor
) -> list[Tensor]:
    """Keep masks pruning exactly ``k`` eligible entries with the smallest keys, across all tensors.

    Args:
        keys: integer key tensors from :func:`order_keys` (or any int32/int64 keys), all one dtype.
        eligible: per tensor, a bool tensor of its shape marking the entries that may be pruned
            (the survivors of earlier pruning), or ``None`` for all of them. Ineligible entries are
            never selected and come back ``False`` (they were pruned already).
        k: 0-d integer tensor, at most the number of eligible entries (larger values are clamped).

    Returns:
        Per tensor, a bool mask of its shape: ``True`` where the entry survives.

    >>> import torch
    >>> a, b = order_keys(torch.tensor([1.0, 5.0])), order_keys(torch.tensor([5.0, 0.5]))
    >>> prune_smallest([a, b], [None, None], torch.tensor(3))
    [tensor([False, False]), tensor([ True, False])]
    """
    return _prune(list(keys), eligible, k, eager.SAME)


def prune_smallest_magnitudes(
    scores: Sequence[Tensor], eligible: Sequence[Tensor | None], k: Tensor
) -> list[Tensor]:
    """:func:`prune_smallest` on ``order_keys(|s|)``, without holding the keys of all tensors at once.

    Scores are compared in float64 if any is float64, else in float32 (exact for every lower
    precision). On readable values the keys are made chunk by chunk, so the extra memory stays a
    few chunks however many parameters there are; otherwise they are made up front.

    >>> import torch
    >>> prune_smallest_magnitudes([torch.tensor([-3.0, 1.0]), torch.tensor([0.5])], [None, None], torch.tensor(2))
    [tensor([ True, False]), tensor([False])]
    """
    wide = torch.float64 if any(s.dtype == torch.float64 for s in scores) else torch.float32

    def magnitude_keys(part: Tensor, scratch: Tensor | None) -> Tensor:
        if scratch is None:
            return order_keys(part.abs().to(wide))
        magnitudes = scratch[: part.numel()]
        if part.dtype == wide:
            return order_keys(torch.abs(part, out=magnitudes))
        return order_keys(magnitudes.copy_(part).abs_())

    return _prune(list(scores), eligible, k, eager.KeyMaker(magnitude_keys, wide, wide.itemsize))


def _prune(
    sources: list[Tensor],
    eligible: Sequence[Tensor | None],
    k: Tensor,
    key_maker: eager.KeyMaker,
) -> list[Tensor]:
    """Eager for readable values, rank for a batched ``k`` over readable keys or small inputs,
    else radix."""
    flat = [source.reshape(-1) for source in sources]
    allowed = [None if e is None else e.reshape(-1) for e in eligible]
    shapes = [source.shape for source in sources]
    data = flat + [ok for ok in allowed if ok is not None]
    readable = bool(flat) and all(is_concrete(t) for t in data)
    total = sum(f.numel() for f in flat)
    if readable and is_concrete(k) and total > eager._SAMPLE:
        return eager.eager_prune_smallest(flat, allowed, int(k), shapes, key_maker)
    keys = [key_maker.make(f, None) for f in flat]
    if readable and total <= RANK_LIMIT:  # small inputs: one sort beats the eager kernel's steps
        return rank_prune_smallest(keys, allowed, k, shapes)
    return static_prune_smallest(keys, allowed, k, shapes)


__all__ = ["prune_smallest", "prune_smallest_magnitudes"]
