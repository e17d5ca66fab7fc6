"""The sweep kernel: exact masks for many counts at once, in three passes over readable keys.

A sweep of amounts under ``vmap`` (``vmap(lambda a: method(a)(params))(amounts)``) batches only the
count ``k``; the keys are the same for every amount. Running a selection per count would repeat
the same work; this kernel shares it, so ``B`` counts cost about two single selections plus one
compare per count and entry (writing the ``B`` masks):

1. **Top digits.** One pass histograms the top 16 bits of every eligible int32 key (signed, so
   bin order is key order) into 65,536 bins. For each count, the cumulative histogram names the
   bin that holds its threshold, and how many keys lie in the bins below.
2. **Low digits.** The low 16 bits of the keys in those bins are histogrammed, one 65,536-slot
   row per bin, up to ``_MOST_FINE`` bins per pass (bounded memory). When the bins hold few keys
   (at most ``1 / _GATHER`` of them, as usual) a pass gathers those keys (one table look-up per
   key routes them) and the histograms read only them; otherwise (heavy ties) they read every
   key. For each count this gives the exact threshold key ``t``, the number of keys below it and
   the number of its ties.
3. **Masks.** Per count, ``key > t``; when only some of the ties at ``t`` are pruned, the ties
   after the first ``k - below`` in flat order survive. They are searched only in the chunks
   that hold them (known from the gathered keys), with a running count in a chunk buffer.

Every temporary is chunk-sized, a bounded number of histogram bins, or gathered keys of at most
``1 / _GATHER`` of the entries (half a byte per entry), whatever the values: ties, layouts or
scores that defeat a sample cost no extra memory. Keys must be int32 (scores of at most 32
bits); the dispatcher takes int64 keys (float64 scores) one count at a time.

>>> import torch
>>> sweep_prune_smallest([torch.tensor([3, 1, 1, 2])], [None], [0, 2, 3], [torch.Size([4])])
[tensor([[ True,  True,  True,  True],
        [ True, False, False,  True],
        [ True, False, False, False]])]
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from funcprune._select.chunks import (
    SAME,
    KeyMaker,
    chunk_size,
    eligible_count,
    positions_of,
)

_BITS = 16
_BINS = 1 << _BITS
_HALF = _BINS >> 1
_LOW = _BINS - 1
_OUTSIDE = _BINS
"""The top bin of ineligible entries (one past the last digit); counted, then ignored."""
_GATHER = 8
"""The thresholds' bins are gathered (4 bytes a key) when they hold at most one eligible key in
this many; fuller bins (heavy ties) take low-digit passes over all keys instead."""
_MOST_FINE = 64
"""Most top bins per low-digit pass, to bound the counts' memory: ``bins + 1`` rows of 65,536
counts, 16.3 MiB of int32 at 64. A pass costs about the same whatever its row count, as reading
the keys dominates: on BERT-base, 128 bins took 5.9 s in passes of 15, 3.5 s in passes of 32,
2.3 s in passes of 64 and 1.4 s in one pass."""


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
    chunks = _Chunks(flat, key_maker)
    cuts, tie_chunks = _plan(flat, allowed, sorted({k for k in ks if 0 < k < total}), total, chunks)
    out = [torch.empty((len(ks), f.numel()), dtype=torch.bool, device=f.device) for f in flat]
    split: dict[int, list[tuple[int, int]]] = {}  # threshold -> (row, ties it prunes)
    for row, k in enumerate(ks):
        if k in cuts and cuts[k].ties_pruned < cuts[k].ties:
            split.setdefault(cuts[k].threshold, []).append((row, cuts[k].ties_pruned))
    seen = dict.fromkeys(split, 0)  # ties of each threshold in the chunks before
    numbers = itertools.count()  # chunks in pass order, as in tie_chunks
    for source, ok, masks in zip(flat, allowed, out, strict=True):
        for span in chunks.spans(source):
            number = next(numbers)
            part = chunks.keys(source[span])
            part_ok = None if ok is None else ok[span]
            for row, k in enumerate(ks):
                piece = masks[row, span]
                if k in cuts:
                    torch.gt(part, cuts[k].threshold, out=piece)
                else:
                    piece.fill_(k == 0)
                if part_ok is not None:
                    piece &= part_ok
            for threshold, rows in split.items():
                if tie_chunks is None or number in tie_chunks[threshold]:
                    seen[threshold] += _keep_ties(
                        chunks, part, part_ok, threshold, masks, span, rows, seen[threshold]
                    )
    return [masks.reshape(len(ks), *shape) for masks, shape in zip(out, shapes, strict=True)]


class _Chunks:
    """Chunk spans of the sources, their keys, and reusable chunk-sized buffers.

    Every pass reads the keys a chunk at a time into the same buffers, so a pass allocates no
    chunk-sized temporary per chunk (fresh pages cost more than the arithmetic on them); what
    remains per chunk is small and recycled by the allocator (the top pass's 512 KiB of counts)
    or is output (the gathered keys, copied into one buffer). A chunk's keys and buffers are
    overwritten by the next chunk.
    """

    def __init__(self, flat: list[Tensor], key_maker: KeyMaker, size: int | None = None) -> None:
        # several temporaries per entry here: a quarter of the eager kernel's chunk by default
        self.size = max(chunk_size(key_maker) // 4, 1) if size is None else size
        longest = min(self.size, max((f.numel() for f in flat), default=0))
        device = flat[0].device if flat else None
        self.key_maker = key_maker
        self._scratch = (
            None
            if key_maker.scratch_dtype is None
            else torch.empty(longest, dtype=key_maker.scratch_dtype, device=device)
        )
        self.digits = torch.empty((3, longest), dtype=torch.int32, device=device)
        width = -(-longest // 8) * 8  # each row starts on a word: positions_of scans words
        self.flags = torch.empty((2, width), dtype=torch.bool, device=device)

    def spans(self, source: Tensor) -> list[slice]:
        """The chunk spans of one flat source."""
        return [slice(start, start + self.size) for start in range(0, source.numel(), self.size)]

    def keys(self, part: Tensor) -> Tensor:
        """The keys of one chunk of a source."""
        return self.key_maker.make(part, self._scratch)

    def of_keys(self, keys: list[Tensor]) -> _Chunks:
        """A reader of ``keys`` (keys already), in chunks of this reader's size."""
        return _Chunks(keys, SAME, self.size)


class _Plan(NamedTuple):
    """Each count's cut, and per threshold whose ties some count splits, the chunks (numbered in
    pass order) that hold those ties (``None``: not known, so every chunk is searched)."""

    cuts: dict[int, _Cut]
    tie_chunks: dict[int, set[int]] | None


def _plan(
    flat: list[Tensor],
    allowed: list[Tensor | None],
    ks: list[int],
    total: int,
    chunks: _Chunks,
) -> _Plan:
    """The cut of each count in ``ks`` (each strictly between 0 and ``total``, the eligible count)."""
    if not ks:
        return _Plan({}, {})
    dtype = torch.int32 if total < 2**31 else torch.int64  # int32 counts: half the memory
    top = _top_counts(flat, allowed, chunks)
    cumulative = torch.cumsum(top, 0)
    bins = torch.searchsorted(cumulative, torch.tensor(ks, device=top.device)).tolist()
    needed = sorted(set(bins))
    keys, eligible, reader = flat, allowed, chunks  # what the low-digit passes read
    sizes = None  # gathered keys per chunk, if gathered
    near = int(top[needed].sum())
    if near <= total // _GATHER:  # few keys in the bins: read only those
        gathered, sizes = _gather(flat, allowed, chunks, needed, near)
        keys, eligible = [gathered], [None]
        reader = chunks.of_keys(keys)
    rows: dict[int, Tensor] = {}
    for start in range(0, len(needed), _MOST_FINE):
        group = needed[start : start + _MOST_FINE]
        rows.update(zip(group, _low_counts(keys, eligible, reader, group, dtype), strict=True))
    cuts = {
        k: _cut_in_bin(b, rows[b], k - (int(cumulative[b - 1]) if b > 0 else 0))
        for k, b in zip(ks, bins, strict=True)
    }
    split = {cut.threshold for cut in cuts.values() if cut.ties_pruned < cut.ties}
    return _Plan(cuts, None if sizes is None else _chunks_holding(reader, keys[0], sizes, split))


def _chunks_holding(
    reader: _Chunks, keys: Tensor, sizes: list[int], values: set[int]
) -> dict[int, set[int]]:
    """Per value, the numbers of the chunks whose gathered ``keys`` (``sizes[i]`` of them from
    chunk ``i``, in order) hold it.

    One pass in ``reader``'s chunks: a table of the values' low digits picks the few candidates,
    and only those are compared with the values.
    """
    if not values:
        return {}
    device = keys.device
    table = torch.zeros(_BINS, dtype=torch.bool, device=device)
    table[[value & _LOW for value in values]] = True
    ordered = sorted(values)
    wanted = torch.tensor(ordered, dtype=keys.dtype, device=device)
    ends = torch.tensor(sizes, device=device).cumsum(0)
    codes = []  # value index * chunks + chunk number, once per pair
    for span in reader.spans(keys):
        part = keys[span]
        low = torch.bitwise_and(part, _LOW, out=reader.digits[2, : part.numel()])
        near = positions_of(torch.index_select(table, 0, low, out=reader.flags[0, : part.numel()]))
        hits = near[torch.isin(part[near], wanted)]
        chunk = torch.searchsorted(ends, hits + span.start, right=True)
        codes.append(torch.unique(torch.searchsorted(wanted, part[hits]) * len(sizes) + chunk))
    holding: dict[int, set[int]] = {value: set() for value in values}
    for code in torch.unique(torch.cat(codes)).tolist() if codes else []:
        holding[ordered[code // len(sizes)]].add(code % len(sizes))
    return holding


def _gather(
    flat: list[Tensor], allowed: list[Tensor | None], chunks: _Chunks, bins: list[int], near: int
) -> tuple[Tensor, list[int]]:
    """The eligible keys in top bins ``bins`` (``near`` of them), in flat order, and how many
    each chunk holds: one pass, writing into one buffer (no per-chunk pieces to concatenate)."""
    table = torch.zeros(_BINS + 1, dtype=torch.bool, device=chunks.flags.device)
    table[bins] = True
    gathered = torch.empty(near, dtype=torch.int32, device=chunks.flags.device)
    sizes: list[int] = []
    start = 0
    for source, ok in zip(flat, allowed, strict=True):
        for span in chunks.spans(source):
            part = chunks.keys(source[span])
            part = _near_keys(chunks, part, None if ok is None else ok[span], table)
            gathered[start : start + part.numel()] = part
            start += part.numel()
            sizes.append(part.numel())
    return gathered, sizes


def _top_digits(chunks: _Chunks, part: Tensor, ok: Tensor | None) -> Tensor:
    """The top bin of each key of a chunk (``_OUTSIDE`` where not eligible), in a chunk buffer."""
    top = torch.bitwise_right_shift(part, _BITS, out=chunks.digits[0, : part.numel()])
    top += _HALF
    if ok is not None:
        top.masked_fill_(torch.logical_not(ok, out=chunks.flags[0, : part.numel()]), _OUTSIDE)
    return top


def _top_counts(flat: list[Tensor], allowed: list[Tensor | None], chunks: _Chunks) -> Tensor:
    """Eligible keys per top bin ``[65536]``: one pass."""
    counts = torch.zeros(_BINS + 1, dtype=torch.int64, device=chunks.digits.device)
    for source, ok in zip(flat, allowed, strict=True):
        for span in chunks.spans(source):
            top = _top_digits(chunks, chunks.keys(source[span]), None if ok is None else ok[span])
            counts += torch.bincount(top, minlength=_BINS + 1)  # half index_add_'s time
    return counts[:_BINS]


def _low_counts(
    flat: list[Tensor],
    allowed: list[Tensor | None],
    chunks: _Chunks,
    bins: list[int],
    dtype: torch.dtype,
) -> Tensor:
    """Per top bin in ``bins``, eligible keys per low digit ``[len(bins), 65536]``: one pass.

    One table look-up routes each key to a slot, without gathering anything: its low digit in the
    row of its top bin, or, for a key in none of ``bins``, the slot of its top bin in a first row
    that is then ignored (its top-bin counts are known already; distinct slots, unlike one shared
    slot, keep the additions from waiting on each other).
    """
    device = chunks.digits.device
    route = torch.arange(_BINS + 1, dtype=torch.int32, device=device)  # top bin -> slot
    chosen = torch.tensor(bins, dtype=torch.int64, device=device)
    route[chosen] = torch.arange(1, len(bins) + 1, dtype=torch.int32, device=device) << _BITS
    route[chosen] += 1  # rows start after the first row's _BINS + 1 slots
    counts = torch.zeros(((len(bins) + 1) << _BITS) + 1, dtype=dtype, device=device)
    one = torch.ones((), dtype=dtype, device=device)
    for source, ok in zip(flat, allowed, strict=True):
        for span in chunks.spans(source):
            part = chunks.keys(source[span])
            top = _top_digits(chunks, part, None if ok is None else ok[span])
            slot = torch.index_select(route, 0, top, out=chunks.digits[1, : part.numel()])
            low = torch.bitwise_and(part, _LOW, out=chunks.digits[2, : part.numel()])
            low *= torch.gt(slot, _BINS, out=chunks.flags[0, : part.numel()])
            slot += low
            counts.index_add_(0, slot, one.expand(slot.shape))
    return counts[_BINS + 1 :].view(len(bins), _BINS)


def _cut_in_bin(b: int, row: Tensor, rank: int) -> _Cut:
    """The cut of the count whose threshold is the ``rank``-th smallest key (1-based) of top bin
    ``b``; ``row`` is the bin's low-digit histogram."""
    cumulative = torch.cumsum(row, 0)
    digit = int(torch.searchsorted(cumulative, torch.tensor(rank, device=row.device)))
    below = int(cumulative[digit - 1]) if digit > 0 else 0
    ties = int(cumulative[digit]) - below
    return _Cut(((b - _HALF) << _BITS) | digit, rank - below, ties)


def _near_keys(chunks: _Chunks, part: Tensor, ok: Tensor | None, near: Tensor) -> Tensor:
    """The eligible keys of a chunk whose top bin is marked in the table ``near``."""
    top = _top_digits(chunks, part, ok)
    return part[torch.index_select(near, 0, top, out=chunks.flags[0, : top.numel()])]


def _keep_ties(
    chunks: _Chunks,
    part: Tensor,
    ok: Tensor | None,
    threshold: int,
    masks: Tensor,
    span: slice,
    rows: list[tuple[int, int]],
    seen: int,
) -> int:
    """In one chunk, set the surviving ties of ``threshold`` in each of its ``(row, pruned)``: the
    ties after the first ``pruned`` in flat order, ``seen`` of which lie in earlier chunks.
    Returns the ties in this chunk. Writes into chunk buffers only: no memory, whatever the ties.
    """
    n = part.numel()
    tie = torch.eq(part, threshold, out=chunks.flags[1, :n])
    if ok is not None:
        tie &= ok
    found = int(tie.count_nonzero())
    order = None  # the running count of ties, made once if a cut falls in this chunk
    for row, pruned in rows:
        piece = masks[row, span]
        if pruned <= seen:  # every tie here survives
            piece |= tie
        elif pruned < seen + found:  # the cut falls in this chunk
            if order is None:
                order = torch.cumsum(tie, 0, dtype=torch.int32, out=chunks.digits[1, :n])
            piece |= torch.gt(order, pruned - seen, out=chunks.flags[0, :n]).logical_and_(tie)
    return found


__all__ = ["sweep_prune_smallest"]
