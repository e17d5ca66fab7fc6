"""Every funcprune method on DTensor parameters: masks placed like the parameters, exact.

:func:`prune` is what ``Method.__call__`` runs when a parameter is a DTensor. The method first
runs on ``meta`` tensors of the global shapes, which raises exactly the single-process errors
(same messages, on every rank alike) at no cost; then each method runs on the local shards:

* elementwise methods (``identity``, ``custom_from_mask``, ``nm_semistructured`` with groups
  inside shards) run the single-process method on the local shard;
* unstructured methods (``l1_unstructured``, ``random_unstructured``, ``global_unstructured``)
  select through :mod:`funcprune.distributed._select` (histogram ``all_reduce`` only); random
  keys hash each entry's **global** flat index, so they are the single-process keys;
* structured methods reduce each slice's key and liveness to a vector of one entry per slice
  (``all_reduce``), then select among the slices like one process. ``ln_structured`` takes norms
  of whole slices: when a shard cuts slices (``Shard`` on another dim), the slices are first
  exchanged with one ``all_to_all`` so that each rank holds whole slices of its share;
* combinators (``chain``, ``only``, ``per_key``) run as usual: their inner calls come back here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor
from torch.distributed.tensor import DTensor

from funcprune._select import order_keys, prune_smallest
from funcprune._select.random import random_keys, random_keys_at
from funcprune.distributed import _select
from funcprune.distributed._layout import (
    Layout,
    _chunk_sizes,
    layout_of,
    local_flat_indices,
    mesh_group,
)
from funcprune.methods._amount import units_to_prune
from funcprune.methods._base import Method
from funcprune.methods.combinators import Chain, Only
from funcprune.methods.nm import NMSemistructured
from funcprune.methods.per_key import PerKey
from funcprune.methods.structured import LnStructured, RandomStructured
from funcprune.methods.unstructured import (
    CustomFromMask,
    GlobalUnstructured,
    Identity,
    L1Unstructured,
    RandomUnstructured,
    custom_from_mask,
)
from funcprune.types import Masks, Params, Scores


@dataclass(frozen=True)
class _Shard:
    """One parameter on this rank: its layout and the local parts of it, its mask and score."""

    key: str
    layout: Layout
    param: Tensor
    survivors: Tensor | None
    score: Tensor | None


def prune(method: Method, params: Params, masks: Mapping[str, Tensor], scores: Scores) -> Masks:
    """``method(params, masks, importance_scores=scores)`` for DTensor ``params``."""
    _validate(method, params, masks, scores)
    shards = _shards(params, masks, scores)
    group = mesh_group(next(iter(shards.values())).layout.mesh)
    if type(method) in _COMBINATORS:  # their inner calls come back here
        filled = {key: masks.get(key, _all_kept(s)) for key, s in shards.items()}
        return method._prune(params, filled, scores)
    handler = _HANDLERS.get(type(method))
    if handler is None:
        supported = sorted(t.factory for t in (*_HANDLERS, *_COMBINATORS))
        raise TypeError(
            f"{method!r} does not support DTensor parameters; supported: {supported} "
            "(or run it on full tensors)"
        )
    local = handler(method, list(shards.values()), group)
    return {key: shards[key].layout.wrap(mask) for key, mask in local.items()}


def _meta(t: Tensor) -> Tensor:
    return torch.empty(t.shape, dtype=t.dtype, device="meta")


def _validate(method: Method, params: Params, masks: Mapping[str, Tensor], scores: Scores) -> None:
    """Run ``method`` on meta tensors: the single-process errors, raised alike on every rank."""
    not_dtensors = sorted(k for k, p in params.items() if not isinstance(p, DTensor))
    if not_dtensors:
        raise TypeError(
            f"params mixes DTensors and plain tensors (plain at {not_dtensors}); pass all "
            "parameters as DTensors on one device mesh (torch.distributed.tensor.distribute_tensor)"
        )
    meshes = {p.device_mesh for p in params.values()}  # type: ignore[attr-defined]
    if len(meshes) > 1:
        raise ValueError(
            f"params live on {len(meshes)} device meshes; funcprune prunes DTensors on one mesh "
            "per call (wrap the call per mesh with funcprune.only(...))"
        )
    method._prune(
        {k: _meta(p) for k, p in params.items()},
        {k: _meta(m) for k, m in masks.items()},
        {k: _meta(s) for k, s in scores.items()},
    )


def _local(key: str, what: str, tensor: Tensor | None, layout: Layout) -> Tensor | None:
    """The local part of a mask or score given for the DTensor parameter at ``key``."""
    if tensor is None:
        return None
    if not isinstance(tensor, DTensor):
        raise TypeError(
            f"{key!r}: the parameter is a DTensor but its {what} is a plain tensor; pass "
            "it as a DTensor placed like the parameter"
        )
    if tensor.device_mesh != layout.mesh or tuple(tensor.placements) != layout.placements:
        raise ValueError(
            f"{key!r}: {what} placements {tuple(tensor.placements)} differ from the parameter's "
            f"{layout.placements}; redistribute it like the parameter"
        )
    return tensor.to_local()


def _shards(params: Params, masks: Mapping[str, Tensor], scores: Scores) -> dict[str, _Shard]:
    shards = {}
    for key, param in params.items():
        assert isinstance(param, DTensor)  # checked by _validate
        layout = layout_of(key, param)
        shards[key] = _Shard(
            key,
            layout,
            param.to_local(),
            _local(key, "mask", masks.get(key), layout),
            _local(key, "importance score", scores.get(key), layout),
        )
    return shards


def _all_kept(shard: _Shard) -> DTensor:
    return shard.layout.wrap(torch.ones_like(shard.param, dtype=torch.bool))


_Handler = Callable[..., dict[str, Tensor]]


def _elementwise(
    method: Method, shards: list[_Shard], group: dist.ProcessGroup | None
) -> dict[str, Tensor]:
    """Methods whose mask of an entry depends only on entries in the same shard."""
    if isinstance(method, CustomFromMask):
        given = dict(method.masks)
        method = custom_from_mask(
            {s.key: _given_part(s, given[s.key]) for s in shards if s.key in given}
        )
    if isinstance(method, NMSemistructured):
        _check_groups_local(method, shards, group)
    return method._prune(
        {s.key: s.param for s in shards},
        {s.key: s.survivors for s in shards if s.survivors is not None},
        {s.key: s.score for s in shards if s.score is not None},
    )


def _given_part(shard: _Shard, given: Tensor) -> Tensor:
    """This rank's part of a ``custom_from_mask`` mask (a full tensor or a DTensor)."""
    if isinstance(given, DTensor):
        part = _local(shard.key, "custom_from_mask mask", given, shard.layout)
        assert part is not None
        return part
    return given[shard.layout.box()]


def _check_groups_local(
    method: NMSemistructured, shards: list[_Shard], group: dist.ProcessGroup | None
) -> None:
    """Every N:M group must lie in one shard (shard boundaries along ``dim`` multiples of m)."""
    cut = []
    for s in shards:
        dim = method.dim % len(s.layout.shape)
        if s.layout.offset[dim] % method.m or s.layout.local_shape[dim] % method.m:
            cut.append(s.key)
    flags = torch.tensor([s.key in cut for s in shards], dtype=torch.int64)
    dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=group)
    split = [s.key for s, flag in zip(shards, flags.tolist(), strict=True) if flag]
    if split:
        raise ValueError(
            f"nm_semistructured: the shards of {split} split groups of m={method.m} along "
            f"dim={method.dim}; shard another dim, or make each shard's size along it a multiple "
            "of m"
        )


def _magnitude_keys(sources: list[Tensor]) -> list[Tensor]:
    """Order keys of ``|s|``, compared in float64 if any source is float64 (as one process)."""
    wide = torch.float64 if any(s.dtype == torch.float64 for s in sources) else torch.float32
    return [order_keys(s.abs().to(wide)) for s in sources]


def _random_keys(seed: int, shard: _Shard) -> Tensor:
    return random_keys_at(seed, shard.key, local_flat_indices(shard.layout, shard.param.device))


def _select_entries(
    problems: list[list[tuple[_Shard, Tensor]]],
    amounts: list[object],
    names: list[str],
    group: dist.ProcessGroup | None,
) -> dict[str, Tensor]:
    """Prune ``amount`` of the eligible entries of each problem (shards with their keys)."""
    segments = []
    for problem in problems:
        start = 0
        segment = []
        for shard, keys in problem:
            eligible = None if shard.survivors is None else shard.survivors.reshape(-1)
            segment.append(_select.Segment(keys.reshape(-1), eligible, shard.layout, start))
            start += shard.layout.shape.numel()
        segments.append(segment)
    totals = _select.eligible_totals(segments, group)
    counts = [
        int(units_to_prune(a, torch.tensor(t), key=n, unit="entries"))  # type: ignore[arg-type]
        for a, t, n in zip(amounts, totals, names, strict=True)
    ]
    kept = _select.prune_smallest(segments, counts, group)
    return {
        shard.key: keep.reshape(shard.param.shape)
        for problem, masks in zip(problems, kept, strict=True)
        for (shard, _), keep in zip(problem, masks, strict=True)
    }


def _l1(
    method: L1Unstructured, shards: list[_Shard], group: dist.ProcessGroup | None
) -> dict[str, Tensor]:
    problems = [[(s, _magnitude_keys([_source(s)])[0])] for s in shards]
    return _select_entries(problems, [method.amount] * len(shards), [s.key for s in shards], group)


def _random(
    method: RandomUnstructured, shards: list[_Shard], group: dist.ProcessGroup | None
) -> dict[str, Tensor]:
    problems = [[(s, _random_keys(method.seed, s))] for s in shards]
    return _select_entries(problems, [method.amount] * len(shards), [s.key for s in shards], group)


def _global(
    method: GlobalUnstructured, shards: list[_Shard], group: dist.ProcessGroup | None
) -> dict[str, Tensor]:
    if method.scores == "random":
        keys = [_random_keys(method.seed, s) for s in shards]
    else:
        keys = _magnitude_keys([_source(s) for s in shards])
    problem = list(zip(shards, keys, strict=True))
    return _select_entries([problem], [method.amount], ["<all parameters>"], group)


def _source(shard: _Shard) -> Tensor:
    return shard.param if shard.score is None else shard.score


def _slice_vector(
    shard: _Shard,
    dim: int,
    start: int,
    local: Tensor,
    op: dist.ReduceOp.RedOpType,
    group: dist.ProcessGroup | None,
) -> Tensor:
    """A vector with one entry per slice along ``dim``, the same on every rank.

    Each owner puts ``local`` (its values for the slices from ``start`` on) into a vector of
    zeros; one ``all_reduce`` with ``op`` combines them (non-owners contribute only zeros).
    """
    full = torch.zeros(shard.layout.shape[dim], dtype=local.dtype, device=local.device)
    if shard.layout.owner:
        full[start : start + local.numel()] = local
    dist.all_reduce(full, op=op, group=group)
    return full


def _structured(
    method: RandomStructured | LnStructured, shards: list[_Shard], group: dist.ProcessGroup | None
) -> dict[str, Tensor]:
    result = {}
    for s in shards:
        dim = method.dim % len(s.layout.shape)
        others = tuple(d for d in range(len(s.layout.shape)) if d != dim)
        start, size = s.layout.offset[dim], s.layout.local_shape[dim]
        alive = None
        if s.survivors is not None:
            local_alive = s.survivors.any(dim=others).to(torch.int32)
            alive = _slice_vector(s, dim, start, local_alive, dist.ReduceOp.MAX, group).bool()
        if isinstance(method, RandomStructured):
            keys = random_keys(method.seed, s.key, s.layout.shape[dim], s.param.device)
        else:
            source = _source(s)
            if s.score is None and s.survivors is not None:
                source = source * s.survivors  # the parameter as pruned, as one process does
            whole, first = _whole_slices(s, source, dim)
            norms = order_keys(torch.norm(whole, p=method.n, dim=others))
            keys = _slice_vector(s, dim, first, norms, dist.ReduceOp.SUM, group)
        remaining = torch.tensor(s.layout.shape[dim]) if alive is None else alive.sum()
        count = units_to_prune(method.amount, remaining, key=s.key, unit=f"slices along dim {dim}")
        kept = prune_smallest([keys], [alive], count)[0]
        view = [1] * len(s.layout.shape)
        view[dim] = size
        keep = kept[start : start + size].reshape(view).expand(s.param.shape)
        result[s.key] = keep.contiguous() if s.survivors is None else keep & s.survivors
    return result


def _whole_slices(shard: _Shard, source: Tensor, dim: int) -> tuple[Tensor, int]:
    """Whole slices along ``dim`` of a share of this rank's slice range, and the first's index.

    A shard cut across another dim by one mesh dim is exchanged with one ``all_to_all`` in that
    mesh dim's group: each rank sends every peer the part of its shard in the peer's share of
    the slice range and receives the rest of its own share's slices (O(local shard) memory).
    """
    layout = shard.layout
    cutting = [(m, d) for m, d in layout.sharded_dims if d != dim]
    if not cutting:
        return source, layout.offset[dim]
    if len(cutting) > 1:
        raise ValueError(
            f"{shard.key!r}: ln_structured needs whole slices along dim {dim}, but placements "
            f"{layout.placements} shard it on several other dims; shard at most one other dim"
        )
    mesh_dim, cut = cutting[0]
    parts = layout.mesh.size(mesh_dim)
    me = layout.mesh.get_local_rank(mesh_dim)
    shares = _chunk_sizes(layout.local_shape[dim], parts)
    peers = _chunk_sizes(layout.shape[cut], parts)
    per_slice = math.prod(n for d, n in enumerate(layout.local_shape) if d != dim)
    per_cut = math.prod(n for d, n in enumerate(layout.local_shape) if d not in (dim, cut))
    received = source.new_empty(sum(shares[me] * per_cut * n for n in peers))
    dist.all_to_all_single(
        received,
        torch.cat([p.reshape(-1) for p in torch.split(source, shares, dim=dim)]),
        [shares[me] * per_cut * n for n in peers],
        [n * per_slice for n in shares],
        group=layout.mesh.get_group(mesh_dim),
    )
    piece_shapes = []
    for n in peers:
        shape = list(layout.local_shape)
        shape[dim], shape[cut] = shares[me], n
        piece_shapes.append(shape)
    pieces = torch.split(received, [math.prod(shape) for shape in piece_shapes])
    whole = torch.cat([p.reshape(s) for p, s in zip(pieces, piece_shapes, strict=True)], dim=cut)
    return whole, layout.offset[dim] + sum(shares[:me])


_COMBINATORS: tuple[type[Method], ...] = (Chain, Only, PerKey)

_HANDLERS: dict[type[Method], _Handler] = {
    Identity: _elementwise,
    CustomFromMask: _elementwise,
    NMSemistructured: _elementwise,
    L1Unstructured: _l1,
    RandomUnstructured: _random,
    GlobalUnstructured: _global,
    RandomStructured: _structured,
    LnStructured: _structured,
}


__all__ = ["prune"]
