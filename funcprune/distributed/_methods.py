"""Every funcprune method on DTensor parameters: masks placed like the parameters, exact.

:func:`prune` is what ``Method.__call__`` runs when a parameter is a DTensor. Each handler
first makes the single-process checks on the global shapes and dtypes (the same errors with the
same messages, raised on every rank alike, before anything is computed), then runs on the local
shards:

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

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor
from torch.distributed.tensor import DTensor

from funcprune._checks import check_tensor_dict
from funcprune._select import order_keys, prune_smallest
from funcprune._select.random import random_keys, random_keys_at
from funcprune._tensors import is_concrete
from funcprune.distributed import _select
from funcprune.distributed._layout import (
    Layout,
    chunk_sizes,
    layout_of,
    local_flat_indices,
    mesh_group,
)
from funcprune.methods._amount import units_to_prune
from funcprune.methods._base import Method, one_error
from funcprune.methods._scoring import channel_dim, score_source
from funcprune.methods.combinators import Chain, Only
from funcprune.methods.nm import NMSemistructured, _group_dim
from funcprune.methods.per_key import PerKey
from funcprune.methods.structured import LnStructured, RandomStructured, _check_matrix_norm
from funcprune.methods.unstructured import (
    CustomFromMask,
    GlobalUnstructured,
    Identity,
    L1Unstructured,
    RandomUnstructured,
    custom_from_mask,
)
from funcprune.types import Amount, Masks, Params, Scores


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
    if _traced(method):
        raise ValueError(
            f"{method!r}: an amount is batched by torch.func.vmap (or traced), which DTensor "
            "parameters do not support (the selection runs collectives on concrete counts); "
            "loop over the amounts in Python instead"
        )
    _validate(params)
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


def _traced(value: object) -> bool:
    """Whether a method (or a hyperparameter in it, nested methods included) holds a tensor
    without readable values, e.g. an amount batched by ``vmap``."""
    if isinstance(value, Tensor):
        return not is_concrete(value)
    if isinstance(value, tuple):
        return any(_traced(v) for v in value)
    if isinstance(value, Method):
        return any(_traced(getattr(value, f.name)) for f in dataclasses.fields(value))  # type: ignore[arg-type]
    return False


def _validate(params: Params) -> None:
    """All parameters are DTensors on one mesh (the method's own checks come in its handler)."""
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


def _raise_for(method: Method, shards: list[_Shard], errors: Mapping[str, Exception]) -> None:
    """Raise what one process raises for these per-key errors: one error listing them all."""
    if errors:
        raise one_error(repr(method), [errors[s.key] for s in shards if s.key in errors])


def _errors(shards: list[_Shard], check: Callable[[_Shard], object]) -> dict[str, Exception]:
    """The ``ValueError``/``TypeError`` that ``check`` raises for each shard's parameter."""
    errors: dict[str, Exception] = {}
    for s in shards:
        try:
            check(s)
        except (ValueError, TypeError) as error:
            errors[s.key] = error
    return errors


def _global_view(shard: _Shard) -> Tensor:
    """A meta tensor with the global shape and dtype, for the single-process checks."""
    return torch.empty(shard.layout.shape, dtype=shard.param.dtype, device="meta")


def _elementwise(
    method: Method, shards: list[_Shard], group: dist.ProcessGroup | None
) -> dict[str, Tensor]:
    """Methods whose mask of an entry depends only on entries in the same shard."""
    if isinstance(method, CustomFromMask):
        given = dict(method.masks)
        check_tensor_dict(
            {s.key: _global_view(s) for s in shards}, given, "custom_from_mask's masks"
        )
        method = custom_from_mask(
            {s.key: _given_part(s, given[s.key]) for s in shards if s.key in given}
        )
    if isinstance(method, NMSemistructured):
        nm = method
        _raise_for(nm, shards, _errors(shards, lambda s: _nm_check(nm, s)))
        _check_groups_local(nm, shards, group)
    return method._prune(
        {s.key: s.param for s in shards},
        {s.key: s.survivors for s in shards if s.survivors is not None},
        {s.key: s.score for s in shards if s.score is not None},
    )


def _nm_check(method: NMSemistructured, shard: _Shard) -> None:
    _group_dim(shard.key, shard.layout.shape, method.dim, method.m)
    _score(shard, method.factory)


def _score(shard: _Shard, factory: str) -> Tensor:
    """The scored tensor (importance score, else the parameter), checked floating as one process."""
    return score_source(shard.key, shard.param, shard.score, factory)


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
    flags = torch.tensor(
        [s.key in cut for s in shards], dtype=torch.int64, device=shards[0].param.device
    )
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


def _eligible_totals(problems: list[list[_Shard]], group: dist.ProcessGroup | None) -> list[int]:
    """Global number of unpruned entries of every problem (one ``all_reduce``; owners count)."""
    local = [
        sum(
            (s.param.numel() if s.survivors is None else int(s.survivors.count_nonzero()))
            for s in problem
            if s.layout.owner
        )
        for problem in problems
    ]
    device = problems[0][0].param.device  # NCCL reduces device tensors only
    totals = torch.tensor(local, dtype=torch.int64, device=device)
    dist.all_reduce(totals, group=group)
    return [int(t) for t in totals.tolist()]


def _entry_count(amount: Amount, total: int, key: str) -> int:
    return int(units_to_prune(amount, torch.tensor(total), key=key, unit="entries"))


def _select_entries(
    problems: list[list[tuple[_Shard, Tensor]]], counts: list[int], group: dist.ProcessGroup | None
) -> dict[str, Tensor]:
    """Prune ``counts`` of the eligible entries of each problem (shards with their keys)."""
    segments = []
    for problem in problems:
        start = 0
        segment = []
        for shard, keys in problem:
            eligible = None if shard.survivors is None else shard.survivors.reshape(-1)
            segment.append(_select.Segment(keys.reshape(-1), eligible, shard.layout, start))
            start += shard.layout.shape.numel()
        segments.append(segment)
    kept = _select.prune_smallest(segments, counts, group)
    return {
        shard.key: keep.reshape(shard.param.shape)
        for problem, masks in zip(problems, kept, strict=True)
        for (shard, _), keep in zip(problem, masks, strict=True)
    }


def _per_tensor(
    method: L1Unstructured | RandomUnstructured,
    shards: list[_Shard],
    group: dist.ProcessGroup | None,
) -> dict[str, Tensor]:
    """``l1_unstructured`` and ``random_unstructured``: one selection per parameter, batched."""
    factory = method.factory
    errors = (
        _errors(shards, lambda s: _score(s, factory)) if isinstance(method, L1Unstructured) else {}
    )
    counts = {}
    for s, total in zip(shards, _eligible_totals([[s] for s in shards], group), strict=True):
        if s.key not in errors:
            try:
                counts[s.key] = _entry_count(method.amount, total, s.key)
            except ValueError as error:
                errors[s.key] = error
    _raise_for(method, shards, errors)
    if isinstance(method, L1Unstructured):
        problems = [[(s, _magnitude_keys([_score(s, factory)])[0])] for s in shards]
    else:
        problems = [[(s, _random_keys(method.seed, s))] for s in shards]
    return _select_entries(problems, [counts[s.key] for s in shards], group)


def _global(
    method: GlobalUnstructured, shards: list[_Shard], group: dist.ProcessGroup | None
) -> dict[str, Tensor]:
    [total] = _eligible_totals([shards], group)
    count = _entry_count(method.amount, total, "<all parameters>")
    if method.scores == "random":
        keys = [_random_keys(method.seed, s) for s in shards]
    else:
        keys = _magnitude_keys([_score(s, method.factory) for s in shards])
    return _select_entries([list(zip(shards, keys, strict=True))], [count], group)


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


def _structured_check(method: RandomStructured | LnStructured, shard: _Shard) -> int:
    """The single-process checks of one parameter, in its order; returns the pruned dim."""
    shape = shard.layout.shape
    dim = channel_dim(shard.key, shape, method.dim, method.factory)
    if isinstance(method, LnStructured):
        _score(shard, method.factory)
        _check_matrix_norm(shard.key, method.n, shape, dim)
    return dim


def _structured(
    method: RandomStructured | LnStructured, shards: list[_Shard], group: dist.ProcessGroup | None
) -> dict[str, Tensor]:
    """Slices: per-slice liveness and keys reduced to a vector, then one process's selection."""
    errors = _errors(shards, lambda s: _structured_check(method, s))
    plans = {}
    for s in shards:
        if s.key in errors:
            continue
        dim = _structured_check(method, s)
        start = s.layout.offset[dim]
        alive = None
        if s.survivors is not None:
            others = tuple(d for d in range(len(s.layout.shape)) if d != dim)
            local_alive = s.survivors.any(dim=others).to(torch.int32)
            alive = _slice_vector(s, dim, start, local_alive, dist.ReduceOp.MAX, group).bool()
        remaining = (
            torch.tensor(s.layout.shape[dim], device=s.param.device)
            if alive is None
            else alive.sum()
        )
        try:
            unit = f"slices along dim {dim}"
            count = units_to_prune(method.amount, remaining, key=s.key, unit=unit)
        except ValueError as error:
            errors[s.key] = error
            continue
        plans[s.key] = (dim, alive, count)
    _raise_for(method, shards, errors)
    result = {}
    for s in shards:
        dim, alive, count = plans[s.key]
        if isinstance(method, RandomStructured):
            keys = random_keys(method.seed, s.key, s.layout.shape[dim], s.param.device)
        else:
            keys = _norm_keys(method, s, dim, group)
        kept = prune_smallest([keys], [alive], count)[0]
        start, size = s.layout.offset[dim], s.layout.local_shape[dim]
        view = [1] * len(s.layout.shape)
        view[dim] = size
        keep = kept[start : start + size].reshape(view).expand(s.param.shape)
        result[s.key] = keep.contiguous() if s.survivors is None else keep & s.survivors
    return result


def _norm_keys(
    method: LnStructured, shard: _Shard, dim: int, group: dist.ProcessGroup | None
) -> Tensor:
    """Order keys of every slice's norm, as one process computes them, on every rank."""
    source = _score(shard, method.factory)
    if shard.score is None and shard.survivors is not None:
        source = source * shard.survivors  # the parameter as pruned, as one process does
    whole, first = _whole_slices(shard, source, dim)
    others = [d for d in range(len(shard.layout.shape)) if d != dim]
    norms = order_keys(torch.norm(whole, p=method.n, dim=others))
    return _slice_vector(shard, dim, first, norms, dist.ReduceOp.SUM, group)


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
            f"{layout.placements} cut them on more than one mesh dim; shard the other dims on "
            "at most one mesh dim"
        )
    mesh_dim, cut = cutting[0]
    parts = layout.mesh.size(mesh_dim)
    me = layout.mesh.get_local_rank(mesh_dim)
    shares = chunk_sizes(layout.local_shape[dim], parts)
    peers = chunk_sizes(layout.shape[cut], parts)
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
    L1Unstructured: _per_tensor,
    RandomUnstructured: _per_tensor,
    GlobalUnstructured: _global,
    RandomStructured: _structured,
    LnStructured: _structured,
}


__all__ = ["prune"]
