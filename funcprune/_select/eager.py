"""The eager kernel: exact selection for readable keys and a readable ``k``, without a full sort.

The fastest kernel and the one every plain call takes. It uses value-dependent shapes (it gathers
the few keys near the threshold), so it runs only where values can be read (not under ``vmap`` or
``torch.compile``):

1. **Bracket.** A strided sample of about ``_SAMPLE`` eligible keys is sorted; the sample's
   quantile at ``k / total``, widened by four standard deviations of a binomial count, gives keys
   ``lo <= hi`` that bracket the ``k``-th smallest key with overwhelming probability. The stride
   is odd, so it rarely lines up with the rows of a weight matrix.
2. **Split.** One pass over the keys, in chunks of about ``_CHUNK`` bytes of temporaries, writes
   ``key > hi`` straight into the masks, counts it, and gathers the eligible keys inside
   ``[lo, hi]`` with their positions (a word-at-a-time scan, as the bracket is sparse).
3. **Select.** If the ``k``-th smallest is not inside the bracket (the sample missed), the split is
   redone on the side where it lies. ``kthvalue`` finds the threshold among the gathered keys;
   they are kept if above it, and its ties are pruned lowest flat index first. Only the mask
   entries of the gathered keys are patched.

Temporaries are chunk-sized, so the extra memory stays a few chunks plus the bracket.

>>> import torch
>>> eager_prune_smallest([torch.tensor([3, 1, 1, 2])], [None], 2, [torch.Size([4])])
[tensor([ True, False, False,  True])]
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from funcprune._select.chunks import (
    SAME,
    KeyMaker,
    chunk_size,
    eligible_count,
    key_dtype,
    positions_of,
)
from funcprune._select.sweep import sweep_prune_smallest

_SAMPLE = 1 << 16
"""Sampled entries used to bracket the threshold (also the dispatcher's smallest eager input)."""
_GATHER_LIMIT = 64
"""The bracket may gather at most one entry in this many (12 bytes each: key and position)."""


def _chunks(
    source: Tensor, ok: Tensor | None, size: int
) -> list[tuple[Tensor, Tensor | None, slice]]:
    """Slices of ``size`` entries of ``source`` (and ``ok``), with their spans."""
    spans = [slice(start, start + size) for start in range(0, source.numel(), size)]
    return [(source[span], None if ok is None else ok[span], span) for span in spans]


def sorted_sample(
    flat: list[Tensor], allowed: list[Tensor | None], key_maker: KeyMaker, size: int
) -> Tensor:
    """The sorted keys of a strided sample of about ``size`` eligible entries (odd stride)."""
    stride = max(1, sum(f.numel() for f in flat) // size) | 1  # odd: rarely aligned with rows
    picks = [
        key_maker.make(f[::stride], None)
        if ok is None
        else key_maker.make(f[::stride], None)[ok[::stride]]
        for f, ok in zip(flat, allowed, strict=True)
    ]
    return torch.sort(torch.cat(picks)).values


def bracket_of(sample: Tensor, k: int, total: int) -> tuple[int, int]:
    """Keys ``lo <= hi`` that very likely bracket the ``k``-th smallest of ``total``, from a sorted sample."""
    info = torch.iinfo(sample.dtype)
    m = sample.numel()
    if m == 0:
        return info.min, info.max
    centre = k / total * m
    margin = 4.0 * math.sqrt(centre * (1.0 - k / total)) + 2.0
    low, high = math.floor(centre - margin), math.ceil(centre + margin)
    lo = int(sample[low]) if low >= 0 else info.min
    hi = int(sample[high]) if high < m else info.max
    return lo, hi


def _bracket(
    flat: list[Tensor], allowed: list[Tensor | None], k: int, total: int, key_maker: KeyMaker
) -> tuple[int, int]:
    """Keys ``lo <= hi`` that very likely bracket the ``k``-th smallest, from a strided sample."""
    return bracket_of(sorted_sample(flat, allowed, key_maker, _SAMPLE), k, total)


def _split(
    flat: list[Tensor],
    allowed: list[Tensor | None],
    out: list[Tensor],
    bracket: tuple[int, int],
    key_maker: KeyMaker,
) -> tuple[int, list[tuple[Tensor, Tensor]], list[Tensor]] | None:
    """Write ``key > hi`` into the masks; gather the eligible keys in ``[lo, hi]``.

    Returns the number of eligible keys above ``hi``, per chunk its mask view and the positions
    of the keys in ``[lo, hi]`` in it, and those keys (in flat order); or ``None`` as soon as the
    bracket holds more than ``1 / _GATHER_LIMIT`` of the entries (ties, or a sample that missed),
    where gathering would cost more memory than the masks.
    """
    lo, hi = bracket
    above = []
    spots = []
    inside = []
    size = min(chunk_size(key_maker), max(f.numel() for f in flat))
    device = flat[0].device
    scratch = (
        None
        if key_maker.scratch_dtype is None
        else torch.empty(size, dtype=key_maker.scratch_dtype, device=device)
    )
    flags = torch.empty(size, dtype=torch.bool, device=device)
    gathered, limit = 0, sum(f.numel() for f in flat) // _GATHER_LIMIT
    if key_dtype(flat, key_maker) != torch.int32:  # no constant-memory kernel for int64 keys
        limit = sum(f.numel() for f in flat)
    for source, ok, mask in zip(flat, allowed, out, strict=True):
        for chunk, part_ok, span in _chunks(source, ok, size):
            part = key_maker.make(chunk, scratch)
            piece = mask[span]
            torch.gt(part, hi, out=piece)
            within = torch.ge(part, lo, out=flags[: chunk.numel()])
            within ^= piece  # piece is a subset of within, as lo <= hi
            if part_ok is not None:
                piece &= part_ok
                within &= part_ok
            above.append(piece.count_nonzero())
            gathered += int(within.count_nonzero())
            if gathered > limit:  # checked before gathering: a dense chunk never gets gathered
                return None
            positions = positions_of(within)
            spots.append((piece, positions))
            inside.append(part[positions])
    return int(torch.stack(above).sum()), spots, inside


def _holds(
    split: tuple[int, list[tuple[Tensor, Tensor]], list[Tensor]], k: int, total: int
) -> bool:
    """Whether the ``k``-th smallest key is among the gathered ones."""
    above, _, parts = split
    return total - above - sum(part.numel() for part in parts) < k <= total - above


def survivors(keys: Tensor, pruned: int) -> Tensor:
    """Which of ``keys`` (1-d, in flat order) survive when the ``pruned`` smallest are pruned,
    ties at the threshold pruned lowest position first (``0 < pruned <= keys.numel()``).

    >>> import torch
    >>> survivors(torch.tensor([5, 1, 3, 1, 3]), 3).tolist()
    [True, False, False, False, True]
    """
    t = torch.kthvalue(keys, pruned).values
    keep = keys > t
    ties_kept = int((keys <= t).count_nonzero()) - pruned  # the last ties at t survive
    if ties_kept:
        tie = keys == t
        keep |= tie & (torch.cumsum(tie, 0) > tie.count_nonzero() - ties_kept)
    return keep


def eager_prune_smallest(
    flat: list[Tensor],
    allowed: list[Tensor | None],
    k: int,
    shapes: list[torch.Size],
    key_maker: KeyMaker = SAME,
) -> list[Tensor]:
    """:func:`funcprune._select.prune_smallest` on flat sources: bracket, split, ``kthvalue``, patch.

    ``key_maker`` turns the sources into keys chunk by chunk (default: they are keys).

    >>> import torch
    >>> eager_prune_smallest([torch.tensor([5, 4]), torch.tensor([4])], [None, None], 1, [torch.Size([2]), torch.Size([1])])
    [tensor([ True, False]), tensor([True])]
    """
    total = eligible_count(flat, allowed)
    k = min(max(k, 0), total)
    out = [torch.empty(f.shape, dtype=torch.bool, device=f.device) for f in flat]
    if k == 0 or k == total:
        for ok, mask in zip(allowed, out, strict=True):
            mask.fill_(k == 0)
            if ok is not None:
                mask &= ok
        return [mask.reshape(shape) for mask, shape in zip(out, shapes, strict=True)]
    lo, hi = _bracket(flat, allowed, k, total, key_maker)
    split = _split(flat, allowed, out, (lo, hi), key_maker)
    if split is not None and not _holds(split, k, total):  # the sample missed: retry on its side
        info = torch.iinfo(split[2][0].dtype)
        below = total - split[0] - sum(part.numel() for part in split[2])
        lo, hi = (info.min, lo - 1) if k <= below else (hi + 1, info.max)
        split = _split(flat, allowed, out, (lo, hi), key_maker)
    if split is None or not _holds(split, k, total):  # too many to gather: constant memory
        split = None  # its chunk views hold the masks: free them before sweep makes its own
        out.clear()
        return [m[0] for m in sweep_prune_smallest(flat, allowed, [k], shapes, key_maker)]
    above, spots, parts = split
    below = total - above - sum(part.numel() for part in parts)
    keep = survivors(torch.cat(parts), k - below)
    start = 0
    for piece, positions in spots:
        piece[positions] = keep[start : start + positions.numel()]
        start += positions.numel()
    return [mask.reshape(shape) for mask, shape in zip(out, shapes, strict=True)]


__all__ = ["eager_prune_smallest"]
