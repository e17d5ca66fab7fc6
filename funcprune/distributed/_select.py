"""Exact smallest-k selection over sharded keys, with only histograms crossing the wire.

Each selection ("problem") is a list of segments: the local keys of one DTensor, its eligible
entries, its layout and its start in the global concatenation (dict order). A radix select finds
the ``k``-th smallest eligible key 8 bits at a time: every rank counts the digit of its local
candidates (owners only, see :mod:`funcprune.distributed._layout`), one ``all_reduce`` of a
``(problems, 256)`` int64 histogram sums the counts, and every rank keeps only the candidates in
the chosen bin. Ties at the threshold are then split by a second radix select on the global flat
index (unique among owners), so ``(key, global flat index)`` orders the entries exactly as the
single-process kernels do. Many problems (one per parameter for per-tensor methods) share each
``all_reduce``. A 32-bit key takes 4 rounds of 2 KiB per problem; ties add up to 8 more.

>>> _bits_to_signed(0xFFFFFFFF, 32), _bits_to_signed(5, 32)
(-1, 5)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from funcprune.distributed._layout import Layout, global_flat_index

_DIGIT_BITS = 8
_BINS = 1 << _DIGIT_BITS


@dataclass(frozen=True)
class Segment:
    """One tensor of a selection: flat local keys, eligible entries (``None``: all), placement."""

    keys: Tensor
    eligible: Tensor | None
    layout: Layout
    start: int
    """Flat index of the tensor's first entry in the concatenation of the problem's tensors."""


def _owned(segment: Segment) -> Tensor | None:
    """The entries this rank counts: eligible ones it owns (``None``: all)."""
    if not segment.layout.owner:
        return torch.zeros_like(segment.keys, dtype=torch.bool)
    return segment.eligible


def _bits_to_signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


_WIDE = 2 * _DIGIT_BITS
"""Bits of the digit each local pass takes: one pass serves two 8-bit rounds on the wire."""
_LOCAL_HISTOGRAM = 1 << 12
"""Parts larger than this count all 65536 wide digits at once; smaller ones count per round."""


class _Part:
    """One tensor's candidates during a pair of rounds: its wide digits and their counts."""

    def __init__(self, keys: Tensor, shift: int, top: bool) -> None:
        self.keys = keys
        shifted = keys >> shift
        # The top digit of a signed key, shifted arithmetically, lies in [-2**15, 2**15):
        # adding 2**15 orders negative keys first.
        self.wide = shifted + (1 << (_WIDE - 1)) if top else shifted & ((1 << _WIDE) - 1)
        self.counts = (
            torch.bincount(self.wide, minlength=1 << _WIDE).view(_BINS, _BINS)
            if keys.numel() > _LOCAL_HISTOGRAM
            else None
        )

    def high(self) -> Tensor:
        """Counts of the high 8 bits of the wide digit."""
        if self.counts is not None:
            return self.counts.sum(1)
        return torch.bincount(self.wide >> _DIGIT_BITS, minlength=_BINS)

    def low(self, high: int) -> Tensor:
        """Counts of the low 8 bits among the candidates whose high 8 bits are ``high``."""
        if self.counts is not None:
            return self.counts[high]
        inside = self.wide[(self.wide >> _DIGIT_BITS) == high]
        return torch.bincount(inside & (_BINS - 1), minlength=_BINS)

    def chosen(self, digit: int) -> Tensor:
        """The candidates whose wide digit is ``digit``."""
        return self.keys[self.wide == digit]


def _round(
    local: dict[int, Tensor],
    remaining: list[int],
    counts: list[int],
    group: dist.ProcessGroup | None,
) -> dict[int, int]:
    """One round on the wire: sum the problems' 256-bin histograms over the ranks (one
    ``all_reduce``) and pick, per problem, the bin holding its remaining rank.

    Updates ``remaining`` (the rank within the chosen bin) and ``counts`` (the bin's size).
    """
    first = next(iter(local.values()))
    hist = torch.zeros(len(remaining), _BINS, dtype=torch.int64, device=first.device)
    for i, h in local.items():
        hist[i] = h
    dist.all_reduce(hist, group=group)
    hist = hist.cpu()
    cumulative = hist.cumsum(1)
    chosen = {}
    for i in local:
        b = int(torch.searchsorted(cumulative[i], remaining[i]))
        remaining[i] -= int(cumulative[i, b - 1]) if b else 0
        counts[i] = int(hist[i, b])
        chosen[i] = b
    return chosen


def _kth_smallest(
    candidates: list[list[Tensor]], ranks: list[int], group: dist.ProcessGroup | None
) -> list[tuple[int, int, int]]:
    """Per problem, the ``rank``-th smallest (1-based) of its candidates on all ranks.

    A problem's candidates are a list of key tensors of one integer dtype (one per tensor).
    Each round sums one ``(problems, 256)`` histogram of an 8-bit digit over the ranks; locally
    one pass over the candidates counts a 16-bit digit, which serves two rounds, and only then
    are the candidates narrowed to the chosen digit.
    Returns ``(value, rank among the entries equal to it, how many entries equal it)``.
    Problems with ``rank == 0`` are skipped (returned as ``(0, 0, 0)``).
    """
    if not any(ranks):  # the same on every rank: the ranks come from global counts
        return [(0, 0, 0)] * len(candidates)
    bits = [torch.iinfo(parts[0].dtype).bits for parts in candidates]
    remaining = list(ranks)
    values = [0] * len(candidates)
    counts = [0] * len(candidates)
    current = [list(parts) for parts in candidates]
    for r in range(max(bits) // _WIDE):
        live = [i for i in range(len(current)) if remaining[i] and bits[i] >= _WIDE * (r + 1)]
        if not live:  # the same on every rank
            continue
        shifts = {i: bits[i] - _WIDE * (r + 1) for i in live}
        parts = {i: [_Part(c, shifts[i], r == 0) for c in current[i]] for i in live}
        high = _round(
            {i: torch.stack([p.high() for p in parts[i]]).sum(0) for i in live},
            remaining,
            counts,
            group,
        )
        low = _round(
            {i: torch.stack([p.low(high[i]) for p in parts[i]]).sum(0) for i in live},
            remaining,
            counts,
            group,
        )
        for i in live:
            digit = high[i] << _DIGIT_BITS | low[i]
            real = digit ^ (1 << (_WIDE - 1)) if r == 0 else digit
            values[i] |= real << shifts[i]
            current[i] = [part.chosen(digit) for part in parts[i]]
    return [
        (_bits_to_signed(v, b), rank, count)
        for v, b, rank, count in zip(values, bits, remaining, counts, strict=True)
    ]


def _tie_positions(segment: Segment, threshold: int) -> tuple[Tensor, Tensor]:
    """Local flat positions of eligible keys equal to ``threshold``, and their global indices."""
    tie = segment.keys == threshold
    if segment.eligible is not None:
        tie &= segment.eligible
    positions = tie.nonzero().reshape(-1)
    return positions, segment.start + global_flat_index(segment.layout, positions)


def prune_smallest(
    problems: list[list[Segment]], counts: list[int], group: dist.ProcessGroup | None
) -> list[list[Tensor]]:
    """Per problem and segment, the flat local keep mask pruning exactly ``counts`` entries.

    The pruned entries are the ``count`` smallest eligible ``(key, global flat index)`` pairs,
    the single-process rule. ``counts`` must not exceed the eligible totals.
    """
    candidates = []
    for segments in problems:
        parts = []
        for segment in segments:
            owned = _owned(segment)
            parts.append(segment.keys if owned is None else segment.keys[owned])
        candidates.append(parts)
    thresholds = _kth_smallest(candidates, counts, group)
    tie_index: list[list[Tensor]] = []
    tie_ranks = []
    for segments, (threshold, rank, ties) in zip(problems, thresholds, strict=True):
        split = 0 < rank < ties
        parts = [_tie_positions(s, threshold)[1] for s in segments if split and s.layout.owner]
        empty = torch.zeros(0, dtype=torch.int64, device=segments[0].keys.device)
        tie_index.append(parts or [empty])
        tie_ranks.append(rank if split else 0)
    last_ties = _kth_smallest(tie_index, tie_ranks, group)
    return [
        [_keep(segment, count, threshold, last_tie) for segment in segments]
        for segments, count, threshold, (last_tie, _, _) in zip(
            problems, counts, thresholds, last_ties, strict=True
        )
    ]


def _keep(segment: Segment, count: int, threshold: tuple[int, int, int], last_tie: int) -> Tensor:
    """The keep mask of one segment: prune keys below the threshold and the chosen ties."""
    value, rank, ties = threshold
    if count == 0:
        keep = torch.ones_like(segment.keys, dtype=torch.bool)
    else:
        keep = segment.keys > value
        if rank < ties:  # only the ties up to global index ``last_tie`` are pruned
            positions, index = _tie_positions(segment, value)
            keep[positions] = index > last_tie
    if segment.eligible is not None:
        keep &= segment.eligible
    return keep


__all__ = ["Segment", "prune_smallest"]
