"""Exact smallest-k selection on order-preserving integer keys.

Scores become integer keys whose signed order equals the scores' order (:func:`order_keys`).
:func:`prune_smallest` then prunes exactly ``k`` eligible entries: all keys below the ``k``-th
smallest, then that key's ties by lowest flat index, counting through the tensors in the order
given (a global selection over many tensors breaks ties like one concatenated vector would, without
concatenating anything). Three kernels give the same masks:

* **eager** (``k`` and the keys hold readable values): a strided sample brackets the threshold;
  one chunked pass writes ``key > hi`` into the masks, counts it and gathers the few keys inside
  the bracket; ``kthvalue`` finds the threshold among those, and only their mask entries are
  patched. No sort of the whole input; the temporaries are chunk-sized scratch buffers.
* **ranks** (the keys are plain values but ``k`` is batched by ``torch.func.vmap``, e.g. a sweep of
  amounts, or there are at most ``_SAMPLE`` entries): one stable sort ranks the entries once for
  the whole batch; each mask is ``rank >= k``.
* **static** (the keys are batched or traced, under ``vmap`` or ``torch.compile``): a radix select
  that finds the threshold 16 bits at a time from fixed-size histograms, so every shape is static.

>>> import torch
>>> keys = order_keys(torch.tensor([0.3, 0.1, 0.2, 0.1]))
>>> prune_smallest([keys], [None], torch.tensor(2))[0]
tensor([ True, False,  True, False])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from funcprune._tensors import is_concrete

_DIGIT_BITS = 16
_BINS = 1 << _DIGIT_BITS
_DIGIT = _BINS - 1
_CHUNK = 1 << 24
"""Bytes of key temporaries per step of the eager passes: few steps (each is a parallel region,
costly on a busy machine), yet temporaries small enough to be reused off the page-fault path."""
_SAMPLE = 1 << 16
"""Sampled entries used to bracket the threshold."""
_RANK_LIMIT = 1 << 25
"""Most entries the rank kernel sorts (it needs 12 bytes per entry)."""


def order_keys(scores: Tensor) -> Tensor:
    """Integer keys whose signed order is the order of ``scores`` (floating, any shape).

    float16/bfloat16/float32 give int32 keys, float64 gives int64 keys. ``-0.0`` and ``0.0`` share a
    key; every NaN (of either sign) shares the largest key, above ``inf``, as in ``torch.sort``.
    When ``scores`` is float32/float64 with readable values, no negative sign bit and no NaN (e.g.
    magnitudes), the keys are its bits viewed as integers: no copy is made, so they share memory.

    >>> import torch
    >>> k = order_keys(torch.tensor([-2.0, -1.0, -0.0, 0.0, 1.0, float("inf"), float("nan")]))
    >>> bool((k[1:] >= k[:-1]).all()), bool(k[2] == k[3])
    (True, True)
    """
    wide = scores.to(torch.float64 if scores.dtype == torch.float64 else torch.float32)
    int_dtype = torch.int64 if wide.dtype == torch.float64 else torch.int32
    info = torch.iinfo(int_dtype)
    bits = wide.view(int_dtype)
    if is_concrete(bits) and bits.numel() > 0:
        low, high = torch.aminmax(bits)
        inf_bits = torch.tensor(math.inf, dtype=wide.dtype).view(int_dtype)
        if bool(low >= 0) and bool(high <= inf_bits):
            return bits
    bits = (wide + 0.0).view(int_dtype)  # + 0.0 turns -0.0 into 0.0
    keys = bits ^ ((bits >> (info.bits - 1)) & info.max)
    return torch.where(torch.isnan(wide), info.max, keys)


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
    return _prune(list(keys), eligible, k, _SAME)


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

    return _prune(list(scores), eligible, k, _KeyMaker(magnitude_keys, wide, wide.itemsize))


class _KeyMaker(NamedTuple):
    """How the eager kernel turns a slice of a source tensor into keys (into a scratch buffer of
    ``scratch`` dtype when given one), and the bytes per entry of temporaries that costs."""

    make: Callable[[Tensor, Tensor | None], Tensor]
    scratch: torch.dtype
    temp_bytes: int


def _same(keys: Tensor, scratch: Tensor | None) -> Tensor:
    return keys


_SAME = _KeyMaker(_same, torch.bool, 1)


def _prune(
    sources: list[Tensor],
    eligible: Sequence[Tensor | None],
    k: Tensor,
    to_keys: _KeyMaker,
) -> list[Tensor]:
    """Pick a kernel: eager for readable values, ranks for a batched ``k`` over readable keys or
    for small inputs, else static."""
    flat = [source.reshape(-1) for source in sources]
    allowed = [None if e is None else e.reshape(-1) for e in eligible]
    shapes = [source.shape for source in sources]
    data = flat + [ok for ok in allowed if ok is not None]
    readable = bool(flat) and all(is_concrete(t) for t in data)
    total = sum(f.numel() for f in flat)
    if readable and is_concrete(k) and total > _SAMPLE:
        return _eager(flat, allowed, int(k), shapes, to_keys)
    keys = [to_keys.make(f, None) for f in flat]
    if readable and total <= _RANK_LIMIT:  # small inputs: one sort beats the eager kernel's steps
        return rank_prune_smallest(keys, allowed, k, shapes)
    return static_prune_smallest(keys, allowed, k, shapes)


def _chunks(
    source: Tensor, ok: Tensor | None, key_bytes: int
) -> list[tuple[Tensor, Tensor | None, slice]]:
    """Slices of ``source`` (and ``ok``) whose key temporaries take at most ``_CHUNK`` bytes."""
    size = max(_CHUNK // key_bytes, 1)
    spans = [slice(start, start + size) for start in range(0, source.numel(), size)]
    return [(source[span], None if ok is None else ok[span], span) for span in spans]


def _eligible_count(flat: list[Tensor], allowed: list[Tensor | None]) -> int:
    return sum(
        key.numel() if ok is None else int(ok.count_nonzero())
        for key, ok in zip(flat, allowed, strict=True)
    )


def _bracket(
    flat: list[Tensor],
    allowed: list[Tensor | None],
    k: int,
    total: int,
    to_keys: _KeyMaker,
) -> tuple[int, int]:
    """Keys ``lo <= hi`` that very likely bracket the ``k``-th smallest, from a strided sample."""
    stride = max(1, sum(f.numel() for f in flat) // _SAMPLE) | 1  # odd: rarely aligned with rows
    picks = [
        to_keys.make(f[::stride], None)
        if ok is None
        else to_keys.make(f[::stride], None)[ok[::stride]]
        for f, ok in zip(flat, allowed, strict=True)
    ]
    sample = torch.sort(torch.cat(picks)).values
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


def _split(
    flat: list[Tensor],
    allowed: list[Tensor | None],
    out: list[Tensor],
    bracket: tuple[int, int],
    to_keys: _KeyMaker,
) -> tuple[int, list[tuple[Tensor, Tensor]], list[Tensor]]:
    """Write ``key > hi`` into the masks; gather the eligible keys in ``[lo, hi]``.

    Returns the number of eligible keys above ``hi``, per chunk its mask view and the positions
    of the keys in ``[lo, hi]`` in it, and those keys (in flat order).
    """
    lo, hi = bracket
    above = []
    spots = []
    inside = []
    size = min(max(_CHUNK // to_keys.temp_bytes, 1), max(f.numel() for f in flat))
    scratch = torch.empty(size, dtype=to_keys.scratch, device=flat[0].device)
    flags = torch.empty(size, dtype=torch.bool, device=flat[0].device)
    for source, ok, mask in zip(flat, allowed, out, strict=True):
        for chunk, part_ok, span in _chunks(source, ok, to_keys.temp_bytes):
            part = to_keys.make(chunk, scratch)
            piece = mask[span]
            torch.gt(part, hi, out=piece)
            within = torch.ge(part, lo, out=flags[: chunk.numel()])
            within ^= piece  # piece is a subset of within, as lo <= hi
            if part_ok is not None:
                piece &= part_ok
                within &= part_ok
            above.append(piece.count_nonzero())
            positions = _positions(within)
            spots.append((piece, positions))
            inside.append(part[positions])
    return int(torch.stack(above).sum()), spots, inside


def _positions(mask: Tensor) -> Tensor:
    """Ascending positions of the ``True`` entries of a fresh 1-d bool tensor.

    Scans 8 entries per int64 word first, so a sparse mask costs an eighth of a plain ``nonzero``.
    """
    if mask.numel() % 8 or mask.storage_offset() % 8:
        return mask.nonzero().reshape(-1)
    words = mask.view(torch.int64).nonzero().reshape(-1)
    cells = mask.view(-1, 8)[words].nonzero()
    return words[cells[:, 0]] * 8 + cells[:, 1]


def eager_prune_smallest(
    flat: list[Tensor], allowed: list[Tensor | None], k: int, shapes: list[torch.Size]
) -> list[Tensor]:
    """:func:`prune_smallest` for readable keys and count: bracket, split, ``kthvalue``, patch.

    A strided sample brackets the threshold; one chunked pass writes ``key > hi`` into the masks
    and gathers the few keys in ``[lo, hi]``; the threshold and its ties are found among those,
    and only their mask entries are patched.

    >>> import torch
    >>> eager_prune_smallest([torch.tensor([3, 1, 1, 2])], [None], 2, [torch.Size([4])])
    [tensor([ True, False, False,  True])]
    """
    return _eager(flat, allowed, k, shapes, _SAME)


def _eager(
    flat: list[Tensor],
    allowed: list[Tensor | None],
    k: int,
    shapes: list[torch.Size],
    to_keys: _KeyMaker,
) -> list[Tensor]:
    total = _eligible_count(flat, allowed)
    k = min(max(k, 0), total)
    out = [torch.empty(f.shape, dtype=torch.bool, device=f.device) for f in flat]
    if k == 0 or k == total:
        for ok, mask in zip(allowed, out, strict=True):
            mask.fill_(k == 0)
            if ok is not None:
                mask &= ok
        return [mask.reshape(shape) for mask, shape in zip(out, shapes, strict=True)]
    lo, hi = _bracket(flat, allowed, k, total, to_keys)
    above, spots, parts = _split(flat, allowed, out, (lo, hi), to_keys)
    below = total - above - sum(part.numel() for part in parts)
    if not below < k <= total - above:  # the sample missed: retry on the side the threshold is
        info = torch.iinfo(parts[0].dtype)
        lo, hi = (info.min, lo - 1) if k <= below else (hi + 1, info.max)
        above, spots, parts = _split(flat, allowed, out, (lo, hi), to_keys)
        below = total - above - sum(part.numel() for part in parts)
    inside = torch.cat(parts)
    t = torch.kthvalue(inside, k - below).values
    keep = inside > t
    ties_kept = int((inside <= t).count_nonzero()) - (k - below)  # the last ties at t survive
    if ties_kept:
        tie = inside == t
        keep |= tie & (torch.cumsum(tie, 0) > tie.count_nonzero() - ties_kept)
    start = 0
    for piece, positions in spots:
        piece[positions] = keep[start : start + positions.numel()]
        start += positions.numel()
    return [mask.reshape(shape) for mask, shape in zip(out, shapes, strict=True)]


def rank_prune_smallest(
    flat: list[Tensor], allowed: list[Tensor | None], k: Tensor, shapes: list[torch.Size]
) -> list[Tensor]:
    """:func:`prune_smallest` for readable keys and a batched ``k``: one stable sort, then ``rank >= k``.

    >>> import torch
    >>> rank_prune_smallest([torch.tensor([3, 1, 1, 2])], [None], torch.tensor(3), [torch.Size([4])])
    [tensor([ True, False, False, False])]
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


def static_prune_smallest(
    flat: list[Tensor], allowed: list[Tensor | None], k: Tensor, shapes: list[torch.Size]
) -> list[Tensor]:
    """:func:`prune_smallest` with static shapes only (radix select), for ``vmap`` and ``compile``.

    >>> import torch
    >>> static_prune_smallest([torch.tensor([3, 1, 1, 2])], [None], torch.tensor(1), [torch.Size([4])])
    [tensor([ True, False,  True,  True])]
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
        signed_digit = digit - (1 << (_DIGIT_BITS - 1)) if shift == bits - _DIGIT_BITS else digit
        prefix = prefix * _BINS + signed_digit
    ties = torch.clamp(remaining, 0, total).to(count)
    return _threshold_masks(flat, allowed, prefix, ties, shapes)


def _digits(key: Tensor, shift: int, top: bool) -> Tensor:
    digit = (key >> shift) & _DIGIT
    return digit ^ (1 << (_DIGIT_BITS - 1)) if top else digit


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


__all__ = ["order_keys", "prune_smallest", "prune_smallest_magnitudes"]
