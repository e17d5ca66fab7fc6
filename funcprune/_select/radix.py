"""The radix kernel: exact selection with static shapes only, for ``vmap`` over keys and ``compile``.

When the keys themselves are batched (``vmap`` over parameters) or traced (``torch.compile``), no
operation may produce a shape that depends on the values, so the eager kernel's gather of the
keys near the threshold is out. This kernel finds the threshold key one 16-bit digit at a time,
most significant first:

1. Histogram the top digit of every eligible key into 65,536 bins (``index_add``; the shape is
   fixed whatever the values).
2. The cumulative counts show which bin holds the ``k``-th smallest key: that bin's digit is the
   threshold's top digit, and the counts of the bins before it are subtracted from ``k``.
3. Repeat on the next 16 bits, counting only the keys whose higher bits equal the digits found so
   far (the prefix). int32 keys take two rounds, int64 keys four.

The top digit is signed: keys compare as signed integers, but ``(key >> shift) & 0xFFFF`` reads a
negative key's top digit as 0x8000 or more, above every non-negative key. Flipping that digit's
high bit (``^ 0x8000``) makes bin order equal signed order; subtracting 0x8000 from the bin index
found gives the signed value of ``key >> shift``, so ``prefix * 65536 + digit`` rebuilds the
arithmetic shift of the threshold at every round.

The masks are then ``key > threshold`` plus the threshold's ties after the first ``k - below``
of them in flat order (a running ``cumsum`` over the tensors in the order given).

>>> import torch
>>> static_prune_smallest([torch.tensor([3, 1, 1, 2])], [None], torch.tensor(1), [torch.Size([4])])
[tensor([ True, False,  True,  True])]
"""

from __future__ import annotations

import torch
from torch import Tensor

_DIGIT_BITS = 16
_BINS = 1 << _DIGIT_BITS
_DIGIT = _BINS - 1
_TOP_FLIP = 1 << (_DIGIT_BITS - 1)


def static_prune_smallest(
    flat: list[Tensor], allowed: list[Tensor | None], k: Tensor, shapes: list[torch.Size]
) -> list[Tensor]:
    """:func:`funcprune._select.prune_smallest` on flat keys with static shapes only (radix select).

    >>> import torch
    >>> static_prune_smallest([torch.tensor([-5, 7])], [None], torch.tensor(1), [torch.Size([2])])
    [tensor([False,  True])]
    """
    bits = torch.iinfo(flat[0].dtype).bits if flat else 32
    total = sum(f.numel() for f in flat)
    count = torch.int32 if total < 2**31 else torch.int64  # counts fit: no full-size int64
    remaining = k.to(torch.int64)
    prefix = torch.zeros((), dtype=torch.int64, device=k.device)
    for shift in range(bits - _DIGIT_BITS, -1, -_DIGIT_BITS):
        top = shift == bits - _DIGIT_BITS
        hist = _digit_histogram(flat, allowed, prefix, shift, top, count).to(torch.int64)
        if top:  # clamp k to the eligible count, so that k >= count prunes every eligible entry
            remaining = torch.clamp(torch.minimum(remaining, hist.sum()), min=0)
        counts = torch.cumsum(hist, 0)
        before = counts < remaining  # bins wholly below the threshold's digit
        digit = torch.clamp(before.sum(), max=_DIGIT)
        remaining = remaining - torch.where(before, counts, 0).amax()
        prefix = prefix * _BINS + (digit - _TOP_FLIP if top else digit)
    ties = torch.clamp(remaining, 0, total).to(count)
    return _threshold_masks(flat, allowed, prefix, ties, shapes)


def _digits(key: Tensor, shift: int, top: bool) -> Tensor:
    digit = (key >> shift) & _DIGIT
    return digit ^ _TOP_FLIP if top else digit


def _digit_histogram(
    keys: list[Tensor],
    allowed: list[Tensor | None],
    prefix: Tensor,
    shift: int,
    top: bool,
    count: torch.dtype,
) -> Tensor:
    """Counts of the 16-bit digit at ``shift`` among eligible keys whose higher bits equal ``prefix``."""
    hist = torch.zeros(_BINS, dtype=count, device=prefix.device)
    for key, ok in zip(keys, allowed, strict=True):
        match = ok
        if not top:
            higher = (key >> (shift + _DIGIT_BITS)) == prefix
            match = higher if match is None else match & higher
        weight = (
            torch.ones((), dtype=count, device=key.device).expand(key.shape)
            if match is None
            else match.to(count)
        )
        hist = hist.index_add(0, _digits(key, shift, top).to(torch.int32), weight)
    return hist


def _threshold_masks(
    keys: list[Tensor],
    allowed: list[Tensor | None],
    threshold: Tensor,
    ties_to_prune: Tensor,
    shapes: list[torch.Size],
) -> list[Tensor]:
    """``key > threshold``, plus the ties after the first ``ties_to_prune`` in flat order."""
    masks = []
    ties_before = torch.zeros((), dtype=ties_to_prune.dtype, device=threshold.device)
    for key, ok, shape in zip(keys, allowed, shapes, strict=True):
        limit = threshold.to(key.dtype)
        tie = key == limit
        below = key < limit
        if ok is not None:
            tie = tie & ok
            below = below & ok
        rank = torch.cumsum(tie, 0, dtype=ties_to_prune.dtype) + ties_before
        pruned = below | (tie & (rank <= ties_to_prune))
        keep = ~pruned if ok is None else ok & ~pruned
        masks.append(keep.reshape(shape))
        ties_before = ties_before + tie.sum(dtype=ties_to_prune.dtype)
    return masks


__all__ = ["static_prune_smallest"]
