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


def _kth_smallest(
    candidates: list[Tensor], ranks: list[int], group: dist.ProcessGroup | None
) -> list[tuple[int, int, int]]:
    """Per problem, the ``rank``-th smallest (1-based) of the union over ranks of ``candidates``.

    Returns ``(value, rank among the entries equal to it, how many entries equal it)``.
    Problems with ``rank == 0`` are skipped (returned as ``(0, 0, 0)``).
    """
    if not any(ranks):  # the same on every rank: the ranks come from global counts
        return [(0, 0, 0)] * len(candidates)
    device = candidates[0].device
    bits = [torch.iinfo(c.dtype).bits for c in candidates]
    rounds = max(bits, default=0) // _DIGIT_BITS
    remaining = list(ranks)
    values = [0] * len(candidates)
    counts = [0] * len(candidates)
    current = list(candidates)
    for r in range(rounds):
        hist = torch.zeros(len(current), _BINS, dtype=torch.int64, device=device)
        digits: list[Tensor | None] = []
        for i, c in enumerate(current):
            shift = bits[i] - _DIGIT_BITS * (r + 1)
            if shift < 0 or remaining[i] == 0:
                digits.append(None)
                continue
            digit = (c >> shift) & (_BINS - 1)
            if r == 0:
                digit = digit ^ (_BINS >> 1)  # the sign bit: negative keys first
            hist[i] = torch.bincount(digit.to(torch.int64), minlength=_BINS)
            digits.append(digit)
        if all(d is None for d in digits):
            continue
        dist.all_reduce(hist, group=group)
        hist = hist.cpu()
        cumulative = hist.cumsum(1)
        for i, found in enumerate(digits):
            if found is None:
                continue
            chosen = int(torch.searchsorted(cumulative[i], remaining[i]))
            remaining[i] -= int(cumulative[i, chosen - 1]) if chosen else 0
            counts[i] = int(hist[i, chosen])
            real = chosen ^ (_BINS >> 1) if r == 0 else chosen
            values[i] |= real << (bits[i] - _DIGIT_BITS * (r + 1))
            current[i] = current[i][found == chosen]
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
        candidates.append(torch.cat(parts))
    thresholds = _kth_smallest(candidates, counts, group)
    tie_index: list[Tensor] = []
    tie_ranks = []
    for segments, (threshold, rank, ties) in zip(problems, thresholds, strict=True):
        split = 0 < rank < ties
        parts = [_tie_positions(s, threshold)[1] for s in segments if split and s.layout.owner]
        empty = torch.zeros(0, dtype=torch.int64, device=segments[0].keys.device)
        tie_index.append(torch.cat(parts) if parts else empty)
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
