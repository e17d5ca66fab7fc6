"""The sweep kernel: exact masks for many counts at once, in three passes over readable keys.

A sweep of amounts under ``vmap`` (``vmap(lambda a: method(a)(params))(amounts)``) batches only the
count ``k``; the keys are the same for every amount. Running a selection per count would repeat
the same work; this kernel shares it, so ``B`` counts cost about two single selections plus one
compare per count and entry (writing the ``B`` masks):

1. **Top digits.** One pass histograms the top 16 bits of every eligible int32 key (signed, so
   bin order is key order) into 65,536 bins. For each count, the cumulative histogram names the
   bin that holds its threshold, and how many keys lie in the bins below.
2. **Low digits.** A second pass histograms the low 16 bits of the keys that fall in those bins
   (at most ``B`` of them), one 65,536-bin histogram per bin. For each count this gives the exact
   threshold key ``t``, the number of keys below it and the number of its ties.
3. **Masks.** Per count, ``key > t``; when only some of the ties at ``t`` are pruned, a running
   ``cumsum`` over the ties in flat order keeps those after the first ``k - below``.

Every temporary is chunk-sized or a fixed number of histogram bins, whatever the values: ties,
layouts or scores that defeat a sample cost no extra memory. Keys must be int32 (scores of at
most 32 bits); the dispatcher takes int64 keys (float64 scores) one count at a time.

>>> import torch
>>> sweep_prune_smallest([torch.tensor([3, 1, 1, 2])], [None], [0, 2, 3], [torch.Size([4])])
[tensor([[ True,  True,  True,  True],
        [ True, False, False,  True],
        [ True, False, False, False]])]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from funcprune._select.chunks import SAME, KeyMaker, chunk_size, eligible_count

_BITS = 16
_BINS = 1 << _BITS
_LOW = _BINS - 1
_OUTSIDE = _BINS
"""The histogram bin of ineligible entries (one past the last digit)."""


@dataclass(frozen=True)
class _Cut:
    """Where one count cuts: keys above ``threshold`` survive, and the first ``ties_pruned`` of
    its ``ties`` in flat order are pruned (``ties_pruned == ties``: all of them)."""

    threshold: int
    ties_pruned: int
    ties: int


def sweep_prune_smallest(
    flat: list[Tensor],
    allowed: list[Tensor | None],
    counts: list[int],
    shapes: list[torch.Size],
    key_maker: KeyMaker = SAME,
) -> list[Tensor]:
    """Per tensor, the stacked masks ``[len(counts), *shape]`` of :func:`prune_smallest` per count.

    >>> import torch
    >>> sweep_prune_smallest([torch.tensor([2, 1]), torch.tensor([1])], [None, None], [1, 2], [torch.Size([2]), torch.Size([1])])
    [tensor([[ True, False],
            [ True, False]]), tensor([[ True],
            [False]])]
    """
    total = eligible_count(flat, allowed)
    ks = [min(max(k, 0), total) for k in counts]
    cuts = _cuts(flat, allowed, sorted({k for k in ks if 0 < k < total}), key_maker)
    out = [torch.empty((len(ks), f.numel()), dtype=torch.bool, device=f.device) for f in flat]
    size = _sweep_chunk(key_maker)
    scratch = _scratch(flat, key_maker, size)
    ties_before = [0] * len(ks)
    for source, ok, masks in zip(flat, allowed, out, strict=True):
        for start in range(0, source.numel(), size):
            span = slice(start, start + size)
            part = key_maker.make(source[span], scratch)
            part_ok = None if ok is None else ok[span]
            for row, k in enumerate(ks):
                piece = masks[row, span]
                if k in cuts:
                    ties_before[row] = _cut(part, part_ok, cuts[k], ties_before[row], piece)
                else:
                    piece.fill_(k == 0)
                    if part_ok is not None:
                        piece &= part_ok
    return [masks.reshape(len(ks), *shape) for masks, shape in zip(out, shapes, strict=True)]


def _sweep_chunk(key_maker: KeyMaker) -> int:
    """Entries per chunk: a quarter of the eager kernel's, as a chunk here holds several
    temporaries per entry (digits, and int64 histogram slots)."""
    return max(chunk_size(key_maker) // 4, 1)


def _scratch(flat: list[Tensor], key_maker: KeyMaker, size: int) -> Tensor | None:
    if key_maker.scratch_dtype is None or not flat:
        return None
    longest = min(size, max(f.numel() for f in flat))
    return torch.empty(longest, dtype=key_maker.scratch_dtype, device=flat[0].device)


def _chunks_of(
    flat: list[Tensor], allowed: list[Tensor | None], key_maker: KeyMaker
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Chunk by chunk, the keys and their eligibility (``None``: all eligible).

    The keys of a chunk may live in a scratch buffer that the next chunk overwrites.
    """
    size = _sweep_chunk(key_maker)
    scratch = _scratch(flat, key_maker, size)
    for source, ok in zip(flat, allowed, strict=True):
        for start in range(0, source.numel(), size):
            span = slice(start, start + size)
            yield key_maker.make(source[span], scratch), None if ok is None else ok[span]


def _top_bins(part: Tensor, ok: Tensor | None) -> Tensor:
    """The signed top digit of each key as a bin in [0, 65536); ineligible keys in ``_OUTSIDE``."""
    top = (part >> _BITS).add_(_BINS >> 1)
    return top if ok is None else top.masked_fill_(~ok, _OUTSIDE)


def _cuts(
    flat: list[Tensor], allowed: list[Tensor | None], ks: list[int], key_maker: KeyMaker
) -> dict[int, _Cut]:
    """The cut of each count in ``ks`` (each strictly between 0 and the eligible total)."""
    if not ks:
        return {}
    device = flat[0].device
    ones = torch.ones((), dtype=torch.int64, device=device)
    top = torch.zeros(_BINS + 1, dtype=torch.int64, device=device)
    for part, ok in _chunks_of(flat, allowed, key_maker):
        bins = _top_bins(part, ok)
        top.index_add_(0, bins, ones.expand(bins.shape))
    cumulative = torch.cumsum(top[:_BINS], 0)
    wanted = torch.tensor(ks, dtype=torch.int64, device=device)
    bins_of = torch.searchsorted(cumulative, wanted)  # first bin whose cumulative count reaches k
    chosen = torch.unique(bins_of)
    slot = torch.full((_BINS + 1,), -1, dtype=torch.int64, device=device)
    slot[chosen] = torch.arange(chosen.numel(), device=device)
    low = torch.zeros(chosen.numel() * _BINS, dtype=torch.int64, device=device)
    for part, ok in _chunks_of(flat, allowed, key_maker):
        slots = slot.index_select(0, _top_bins(part, ok))
        picked = slots >= 0
        fine = slots[picked] * _BINS + (part[picked] & _LOW)
        low.index_add_(0, fine, ones.expand(fine.shape))
    low_cumulative = torch.cumsum(low.view(-1, _BINS), 1)
    cuts = {}
    for k, b in zip(ks, bins_of.tolist(), strict=True):
        below_bin = int(cumulative[b - 1]) if b > 0 else 0
        row = low_cumulative[int(slot[b])]
        digit = int(torch.searchsorted(row, torch.tensor(k - below_bin, device=device)))
        below = below_bin + (int(row[digit - 1]) if digit > 0 else 0)
        ties = int(row[digit]) - (below - below_bin)
        cuts[k] = _Cut(((b - (_BINS >> 1)) << _BITS) | digit, k - below, ties)
    return cuts


def _cut(part: Tensor, ok: Tensor | None, cut: _Cut, ties_before: int, piece: Tensor) -> int:
    """Write one count's mask for one chunk into ``piece``; return the ties seen so far."""
    torch.gt(part, cut.threshold, out=piece)
    if cut.ties_pruned < cut.ties:  # some ties survive: the ones after the first ties_pruned
        tie = part == cut.threshold
        if ok is not None:
            tie &= ok
        hits = tie.nonzero().reshape(-1)  # few: the threshold's ties in this chunk, in order
        piece[hits[max(cut.ties_pruned - ties_before, 0) :]] = True
        ties_before += hits.numel()
    if ok is not None:
        piece &= ok
    return ties_before


__all__ = ["sweep_prune_smallest"]
