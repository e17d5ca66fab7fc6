"""Exact smallest-k selection: radix select on order-preserving integer keys.

Scores become integer keys whose signed order equals the scores' order (:func:`order_keys`). The
threshold key is then found 16 bits at a time from fixed-size histograms, so every shape is static:
no sort, no ``topk``, no concatenation, and the count ``k`` may be a batched tensor under
``torch.func.vmap`` or a traced value under ``torch.compile``. Exactly ``k`` eligible entries are
pruned: all keys below the threshold, then the threshold's ties by lowest flat index, counting
through the tensors in the order given (so a global selection over many tensors breaks ties like one
concatenated vector would).

>>> import torch
>>> keys = order_keys(torch.tensor([0.3, 0.1, 0.2, 0.1]))
>>> prune_smallest([keys], [None], torch.tensor(2))[0]
tensor([ True, False,  True, False])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

_DIGIT_BITS = 16
_BINS = 1 << _DIGIT_BITS
_DIGIT = _BINS - 1


def order_keys(scores: Tensor) -> Tensor:
    """Integer keys whose signed order is the order of ``scores`` (floating, any shape).

    float16/bfloat16/float32 give int32 keys, float64 gives int64 keys. ``-0.0`` and ``0.0`` share a
    key; NaN sorts above ``inf``, as in ``torch.topk``.

    >>> import torch
    >>> k = order_keys(torch.tensor([-2.0, -1.0, -0.0, 0.0, 1.0, float("inf")]))
    >>> bool((k[1:] >= k[:-1]).all()), bool(k[2] == k[3])
    (True, True)
    """
    wide = scores.to(torch.float64 if scores.dtype == torch.float64 else torch.float32)
    int_dtype = torch.int64 if wide.dtype == torch.float64 else torch.int32
    bits = (wide + 0.0).view(int_dtype)  # + 0.0 turns -0.0 into 0.0
    magnitude = torch.iinfo(int_dtype).max
    return bits ^ ((bits >> (torch.iinfo(int_dtype).bits - 1)) & magnitude)


def prune_smallest(keys: Sequence[Tensor], eligible: Sequence[Tensor | None], k: Tensor) -> list[Tensor]:
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
    flat = [key.reshape(-1) for key in keys]
    allowed = [None if e is None else e.reshape(-1) for e in eligible]
    bits = torch.iinfo(flat[0].dtype).bits if flat else 32
    remaining = k.to(torch.int64)
    prefix = torch.zeros((), dtype=torch.int64, device=k.device)
    for shift in range(bits - _DIGIT_BITS, -1, -_DIGIT_BITS):
        hist = _digit_histogram(flat, allowed, prefix, shift, top=shift == bits - _DIGIT_BITS)
        counts = torch.cumsum(hist, 0)
        before = counts < remaining  # bins wholly below the threshold's digit
        digit = torch.clamp(before.sum(), max=_DIGIT)
        remaining = remaining - torch.where(before, counts, 0).amax()
        signed_digit = digit - (1 << (_DIGIT_BITS - 1)) if shift == bits - _DIGIT_BITS else digit
        prefix = prefix * _BINS + signed_digit
    return _threshold_masks(flat, allowed, prefix, remaining, [key.shape for key in keys])


def _digits(key: Tensor, shift: int, top: bool) -> Tensor:
    digit = (key >> shift) & _DIGIT
    return digit ^ (1 << (_DIGIT_BITS - 1)) if top else digit


def _digit_histogram(
    keys: list[Tensor], allowed: list[Tensor | None], prefix: Tensor, shift: int, top: bool
) -> Tensor:
    """Counts of the 16-bit digit at ``shift`` among eligible keys whose higher bits equal ``prefix``."""
    hist = torch.zeros(_BINS, dtype=torch.int64, device=prefix.device)
    for key, ok in zip(keys, allowed):
        match = ok
        if not top:
            higher = (key >> (shift + _DIGIT_BITS)) == prefix
            match = higher if match is None else match & higher
        weight = (
            torch.ones((), dtype=torch.int64, device=key.device).expand(key.shape)
            if match is None
            else match.to(torch.int64)
        )
        hist = hist.index_add(0, _digits(key, shift, top).to(torch.int64), weight)
    return hist


def _threshold_masks(
    keys: list[Tensor],
    allowed: list[Tensor | None],
    threshold: Tensor,
    ties_to_prune: Tensor,
    shapes: list[torch.Size],
) -> list[Tensor]:
    masks = []
    ties_before = torch.zeros((), dtype=torch.int64, device=threshold.device)
    for key, ok, shape in zip(keys, allowed, shapes):
        limit = threshold.to(key.dtype)
        tie = key == limit
        below = key < limit
        if ok is not None:
            tie = tie & ok
            below = below & ok
        rank = torch.cumsum(tie, 0, dtype=torch.int64) + ties_before
        pruned = below | (tie & (rank <= ties_to_prune))
        keep = ~pruned if ok is None else ok & ~pruned
        masks.append(keep.reshape(shape))
        ties_before = ties_before + tie.sum()
    return masks
