"""``prune_smallest`` and ``prune_smallest_magnitudes``: pick the kernel that fits the inputs.

Every kernel prunes exactly ``k`` eligible entries: all keys below the ``k``-th smallest, then
that key's ties by lowest flat index, counting through the tensors in the order given (a global
selection over many tensors breaks ties like one concatenated vector would, without concatenating
anything). They give the same masks; there are several because of what can be read:

* **eager** (:mod:`.eager`): keys and ``k`` readable, every plain call. Brackets the threshold from
  a sample and gathers only the keys near it; no sort, chunk-sized temporaries. When the bracket
  would hold too many keys (heavy ties, a layout that fools the sample) it hands over to sweep.
* **sweep** (:mod:`.sweep`): keys readable, ``k`` batched by ``vmap`` (a sweep of amounts). The
  batch's counts reach this kernel together through the ``vmap`` rule of an
  ``autograd.Function``: two histogram passes find every count's cut, then one compare per count.
  Constant extra memory, so it is also eager's fallback.
* **rank** (:mod:`.rank`): readable inputs of at most ``_SAMPLE`` entries, where one sort beats
  the passes of the others (also under ``vmap`` over counts).
* **radix** (:mod:`.radix`): keys batched or traced (``vmap`` over parameters, ``torch.compile``):
  static shapes only, so a 16-bit radix select from fixed-size histograms.

>>> import torch
>>> from funcprune._select.keys import order_keys
>>> prune_smallest([order_keys(torch.tensor([0.3, 0.1, 0.2, 0.1]))], [None], torch.tensor(2))[0]
tensor([ True, False,  True, False])
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from funcprune._select import eager
from funcprune._select.chunks import SAME, KeyMaker, key_dtype
from funcprune._select.keys import order_keys
from funcprune._select.radix import static_prune_smallest
from funcprune._select.random import random_keys, random_keys_into, random_keys_of
from funcprune._select.rank import RANK_LIMIT, rank_prune_smallest
from funcprune._select.sweep import sweep_prune_smallest
from funcprune._tensors import is_concrete

_SMALL = 1 << 12
"""Most entries of a tensor merged with its neighbours (larger ones gain little from merging)."""
_MERGED = 1 << 20
"""Most entries of a merged run of small tensors."""


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
    return _prune(list(keys), eligible, k, SAME)


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

    flat = [s.reshape(-1) for s in scores]
    runs = _runs(flat)
    merged = [torch.cat([flat[i] for i in run]) if len(run) > 1 else flat[run[0]] for run in runs]
    key_maker = KeyMaker(magnitude_keys, wide, wide.itemsize)
    masks = _prune(merged, _merged_eligible(eligible, flat, runs), k, key_maker)
    return _unmerged(masks, runs, [s.shape for s in scores])


def prune_smallest_random(
    seed: int, params: Mapping[str, Tensor], eligible: Sequence[Tensor | None], k: Tensor
) -> list[Tensor]:
    """:func:`prune_smallest` on the :func:`random_keys` of each ``(seed, key)``, made chunk by chunk.

    On readable parameters whose memory does not overlap, the parameters only carry the flat
    positions: each chunk's keys are hashed from its positions, so no full-size key tensor exists.
    Otherwise (``vmap``, ``torch.compile``, aliased parameters) the keys are made up front.

    >>> import torch
    >>> params = {"a": torch.zeros(3), "b": torch.zeros(2)}
    >>> masks = prune_smallest_random(0, params, [None, None], torch.tensor(2))
    >>> keys = [random_keys(0, key, p.numel(), p.device) for key, p in params.items()]
    >>> all(torch.equal(m, e) for m, e in zip(masks, prune_smallest(keys, [None, None], torch.tensor(2))))
    True
    """
    names, flat = list(params), [p.reshape(-1) for p in params.values()]
    runs = _runs(flat)
    merged = [
        random_keys_of(seed, [names[i] for i in run], [flat[i].numel() for i in run], device)
        if len(run) > 1
        else flat[run[0]]
        for run in runs
        for device in [flat[run[0]].device]
    ]
    key_maker = _position_keys(seed, [names[r[0]] if len(r) == 1 else None for r in runs], merged)
    if key_maker is None:
        keys = [random_keys(seed, key, p.numel(), p.device) for key, p in params.items()]
        return prune_smallest(
            [key.reshape(p.shape) for key, p in zip(keys, params.values(), strict=True)],
            eligible,
            k,
        )
    masks = _prune(merged, _merged_eligible(eligible, flat, runs), k, key_maker)
    return _unmerged(masks, runs, [p.shape for p in params.values()])


def _position_keys(seed: int, names: list[str | None], flat: list[Tensor]) -> KeyMaker | None:
    """A key maker hashing the flat positions of slices of ``flat``, or ``None`` if it cannot.

    A slice is told apart by its address: the tensor whose memory holds it names its key, the
    distance from that tensor's start its first position, and its stride the step between them.
    A tensor named ``None`` holds keys already (merged small parameters): its slices are returned.
    The positions and the hash's temporaries live in the scratch buffer (two int64 words per
    entry, hence its complex128 dtype), so the passes make no chunk-sized allocations.
    """
    if not all(is_concrete(f) for f in flat) or any(
        f.numel() > 1 and f.stride(0) != 1 for f in flat
    ):
        return None
    spans = sorted(
        [
            (f.data_ptr(), f.data_ptr() + f.numel() * f.element_size(), f.element_size(), name)
            for f, name in zip(flat, names, strict=True)
            if f.numel()
        ],
        key=lambda span: span[:2],
    )
    if any(after[0] < before[1] for before, after in itertools.pairwise(spans)):
        return None  # aliased parameters: an address would not name one key
    starts = [span[0] for span in spans]

    def make(part: Tensor, scratch: Tensor | None) -> Tensor:
        n = part.numel()
        if n == 0:
            return torch.empty(0, dtype=torch.int32, device=part.device)
        start, _, size, name = spans[bisect.bisect_right(starts, part.data_ptr()) - 1]
        if name is None:
            return part
        first, step = (part.data_ptr() - start) // size, part.stride(0) if n > 1 else 1
        words = (
            torch.empty(2 * n, dtype=torch.int64, device=part.device)
            if scratch is None
            else scratch.view(torch.int64)  # complex128: two int64 words per entry
        )
        half = words.numel() // 2
        positions = torch.arange(first, first + n * step, step, out=words[:n])
        return random_keys_into(seed, name, positions, words[half : half + n])

    return KeyMaker(make, torch.complex128, 16)


def _runs(flat: list[Tensor]) -> list[list[int]]:
    """Indices of ``flat`` in order, in runs: readable small neighbours together, others alone.

    A run of several tensors is merged into one (their values, or their keys, concatenated),
    which the kernels then pass over as one tensor: many tiny parameters cost a few operations,
    not a few each. A merged run holds at most ``_MERGED`` entries, so the copies stay small.
    """
    runs: list[list[int]] = []
    size = _MERGED + 1  # no open run
    for i, f in enumerate(flat):
        n = f.numel()
        if n > _SMALL or not is_concrete(f):
            runs.append([i])
            size = _MERGED + 1
        elif size + n <= _MERGED and f.device == flat[runs[-1][0]].device:
            runs[-1].append(i)
            size += n
        else:
            runs.append([i])
            size = n
    return runs


def _merged_eligible(
    eligible: Sequence[Tensor | None], flat: list[Tensor], runs: list[list[int]]
) -> list[Tensor | None]:
    """The eligible entries of each run, flat: ``None`` where all of its tensors' are."""
    merged: list[Tensor | None] = []
    for run in runs:
        given = [eligible[i] for i in run]
        if len(run) == 1 or all(ok is None for ok in given):
            merged.append(None if given[0] is None else given[0].reshape(-1))
            continue
        parts = [
            torch.ones(flat[i].numel(), dtype=torch.bool, device=flat[i].device)
            if ok is None
            else ok.reshape(-1)
            for i, ok in zip(run, given, strict=True)
        ]
        merged.append(torch.cat(parts))
    return merged


def _unmerged(masks: list[Tensor], runs: list[list[int]], shapes: list[torch.Size]) -> list[Tensor]:
    """Per tensor, its mask: a merged run's mask split back into its tensors' shapes."""
    out: list[Tensor] = []
    for mask, run in zip(masks, runs, strict=True):
        sizes = [shapes[i].numel() for i in run]
        out.extend(
            part.reshape(shapes[i])
            for part, i in zip(torch.split(mask.reshape(-1), sizes), run, strict=True)
        )
    return out


def _prune(
    sources: list[Tensor],
    eligible: Sequence[Tensor | None],
    k: Tensor,
    key_maker: KeyMaker,
) -> list[Tensor]:
    flat = [source.reshape(-1) for source in sources]
    allowed = [None if e is None else e.reshape(-1) for e in eligible]
    shapes = [source.shape for source in sources]
    data = flat + [ok for ok in allowed if ok is not None]
    readable = bool(flat) and all(is_concrete(t) for t in data)
    if readable and not is_concrete(k) and sum(f.numel() for f in flat) > eager._SAMPLE:
        oks = [torch.ones((), dtype=torch.bool) if ok is None else ok for ok in allowed]
        given = tuple(ok is not None for ok in allowed)
        return list(_Counts.apply(k, key_maker, shapes, given, *flat, *oks))
    return _select(flat, allowed, k, shapes, key_maker)


def _select(
    flat: list[Tensor],
    allowed: list[Tensor | None],
    k: Tensor,
    shapes: list[torch.Size],
    key_maker: KeyMaker,
) -> list[Tensor]:
    """Eager for readable values, rank for small readable inputs, else radix."""
    data = flat + [ok for ok in allowed if ok is not None]
    readable = bool(flat) and all(is_concrete(t) for t in data)
    total = sum(f.numel() for f in flat)
    if readable and is_concrete(k) and total > eager._SAMPLE:
        return eager.eager_prune_smallest(flat, allowed, int(k), shapes, key_maker)
    keys = [key_maker.make(f, None) for f in flat]
    if readable and total <= RANK_LIMIT:  # small inputs: one sort beats the eager kernel's steps
        return rank_prune_smallest(keys, allowed, k, shapes)
    return static_prune_smallest(keys, allowed, k, shapes)


class _Counts(torch.autograd.Function):
    """A selection whose ``vmap`` rule sends a batch of counts over readable keys to the sweep
    kernel (once for the whole batch) instead of batching every operation of a kernel."""

    generate_vmap_rule = False

    @staticmethod
    def forward(
        k: Tensor,
        key_maker: KeyMaker,
        shapes: list[torch.Size],
        given: tuple[bool, ...],
        *tensors: Tensor,
    ) -> tuple[Tensor, ...]:
        flat, allowed = _unpack(tensors, given)
        return tuple(_select(flat, allowed, k, shapes, key_maker))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        """Nothing to save: the masks have no gradient."""

    @staticmethod
    def vmap(
        info: Any,
        in_dims: tuple[int | None, ...],
        k: Tensor,
        key_maker: KeyMaker,
        shapes: list[torch.Size],
        given: tuple[bool, ...],
        *tensors: Tensor,
    ) -> tuple[tuple[Tensor, ...], tuple[int, ...]]:
        flat, allowed = _unpack(tensors, given)
        k_dim = in_dims[0]
        if k_dim is None or any(d is not None for d in in_dims[4:]) or not is_concrete(k):
            dims = (k_dim, None, None, None, *in_dims[4:])
            batched = torch.vmap(_Counts.apply, in_dims=dims, randomness="error")
            result = batched(k, key_maker, shapes, given, *tensors)
            return tuple(result), tuple(0 for _ in result)
        counts = [int(c) for c in k.movedim(k_dim, 0).reshape(-1).tolist()]
        if key_dtype(flat, key_maker) == torch.int32:
            masks = sweep_prune_smallest(flat, allowed, counts, shapes, key_maker)
        else:  # int64 keys: one eager selection per count
            each = [eager.eager_prune_smallest(flat, allowed, c, shapes, key_maker) for c in counts]
            masks = [torch.stack(per_tensor) for per_tensor in zip(*each, strict=True)]
        return tuple(masks), tuple(0 for _ in masks)


def _unpack(
    tensors: tuple[Tensor, ...], given: tuple[bool, ...]
) -> tuple[list[Tensor], list[Tensor | None]]:
    n = len(given)
    flat = list(tensors[:n])
    allowed = [ok if has else None for ok, has in zip(tensors[n:], given, strict=True)]
    return flat, allowed


__all__ = ["prune_smallest", "prune_smallest_magnitudes", "prune_smallest_random"]
