"""``group_structured``: prune whole channel groups, every member slice of each pruned channel.

>>> import torch
>>> from torch import nn
>>> from funcprune.structure import channel_groups
>>> model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
>>> groups = channel_groups(model, (torch.zeros(1, 2),))
>>> masks = group_structured(2, groups)(dict(model.named_parameters()))
>>> masks["0.bias"].sum().item(), masks["2.weight"].sum().item()
(2, 2)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor

from funcprune._checks import check_int
from funcprune._select import order_keys, prune_smallest
from funcprune.methods._amount import check_amount, units_to_prune
from funcprune.methods._base import Method, all_kept, positional
from funcprune.methods._scoring import current, score_source
from funcprune.structure.groups import ChannelGroups
from funcprune.types import Amount, Masks, Params, Scores

Importance = Callable[[Params, ChannelGroups], Tensor]
"""``importance(params, groups)`` -> one floating score per group; the smallest are pruned."""
Scope = Literal["global", "local"]


@dataclass(frozen=True, eq=False, repr=False)
class GroupStructured(Method):
    """Whole channel groups with the smallest importance; see :func:`group_structured`."""

    amount: Amount = positional()
    groups: ChannelGroups = positional()
    n: int | float = 2
    importance: Importance | None = None
    scope: Scope = "global"
    round_to: int = 1
    factory: ClassVar[str] = "group_structured"

    def _prune(self, params: Params, masks: Mapping[str, Tensor], scores: Scores) -> Masks:
        maps = _index_maps(self.groups, params)
        device = next(iter(params.values())).device if params else torch.device("cpu")
        total = len(self.groups)
        selectable = _selectable(self.groups, params, device)
        alive = _alive(maps, masks, total, device) & selectable
        importance = self._scores(params, masks, scores, maps, device)
        keys = order_keys(importance)
        protected = _protected(self.groups, keys, alive)
        eligible = alive & ~protected
        if self.scope == "global":
            count = units_to_prune(
                self.amount, eligible.sum(), key="<channel groups>", unit="groups"
            )
            kept = prune_smallest([keys], [eligible], count)[0]
        else:
            kept = _per_family(
                self.groups,
                keys,
                eligible,
                lambda left: units_to_prune(
                    self.amount, left, key="<channel groups of one layer>", unit="groups"
                ),
            )
        kept = kept | protected
        if self.round_to > 1:
            kept = _round_kept(self.groups, keys, alive, eligible, kept, self.round_to) | protected
        kept = torch.cat([kept | ~selectable, torch.ones(1, dtype=torch.bool, device=device)])
        return {
            key: _mask(key, param, masks.get(key), maps.get(key, []), kept)
            for key, param in params.items()
        }

    def _scores(
        self,
        params: Params,
        masks: Mapping[str, Tensor],
        scores: Scores,
        maps: dict[str, list[tuple[int, Tensor]]],
        device: torch.device,
    ) -> Tensor:
        total = len(self.groups)
        if self.importance is not None:
            result = self.importance(params, self.groups)
            if (
                not isinstance(result, Tensor)
                or result.shape != (total,)
                or not result.is_floating_point()
            ):
                raise ValueError(
                    f"importance must return a floating tensor of shape ({total},), one score per "
                    f"group; got {result.dtype, tuple(result.shape) if isinstance(result, Tensor) else type(result).__name__}"
                )
            return result
        acc = torch.zeros(total + 1, dtype=torch.float64, device=device)
        for key, entries in maps.items():
            source = score_source(
                key, current(params[key], masks.get(key)), scores.get(key), self.factory
            )
            for dim, gid in entries:
                others = [d for d in range(source.dim()) if d != dim]
                magnitude = source.detach().abs().to(torch.float64)
                if math.isinf(self.n):
                    part = magnitude.amax(dim=others) if others else magnitude
                    acc = acc.scatter_reduce(0, gid, part, "amax")
                else:
                    power = magnitude.pow(self.n)
                    acc = acc.index_add(0, gid, power.sum(dim=others) if others else power)
        return acc[:total]


def _index_maps(groups: ChannelGroups, params: Params) -> dict[str, list[tuple[int, Tensor]]]:
    shapes = dict(groups.shapes)
    maps: dict[str, list[tuple[int, Tensor]]] = {}
    for key, dim, ids in groups.index_maps:
        if key not in params:
            continue
        param = params[key]
        if tuple(param.shape) != shapes[key]:
            raise ValueError(
                f"{key!r}: params has shape {tuple(param.shape)} but the channel groups were found "
                f"for shape {shapes[key]}; compute channel_groups on the model these params belong to"
            )
        maps.setdefault(key, []).append(
            (dim, torch.tensor(ids, dtype=torch.long, device=param.device))
        )
    return maps


def _selectable(groups: ChannelGroups, params: Params, device: torch.device) -> Tensor:
    """Groups whose members are all in ``params`` (``only`` may hide some keys)."""
    flags = [all(s.key in params for s in group.params) for group in groups]
    return torch.tensor(flags, dtype=torch.bool, device=device)


def _alive(
    maps: dict[str, list[tuple[int, Tensor]]],
    masks: Mapping[str, Tensor],
    total: int,
    device: torch.device,
) -> Tensor:
    """Groups with at least one surviving entry among their members."""
    count = torch.zeros(total + 1, dtype=torch.float32, device=device)
    for key, entries in maps.items():
        survivors = masks.get(key)
        for dim, gid in entries:
            if survivors is None:
                count = count.index_add(0, gid, torch.ones(gid.shape, device=device))
                continue
            others = [d for d in range(survivors.dim()) if d != dim]
            alive = survivors.any(dim=others) if others else survivors
            count = count.index_add(0, gid, alive.to(torch.float32))
    return count[:total] > 0


def _families(groups: ChannelGroups, device: torch.device) -> list[Tensor]:
    return [torch.tensor(ids, dtype=torch.long, device=device) for ids in groups.families]


def _per_family(
    groups: ChannelGroups, keys: Tensor, alive: Tensor, count: Callable[[Tensor], Tensor]
) -> Tensor:
    """Kept groups when each family (one layer's channels) prunes ``count(alive in family)``."""
    families = _families(groups, keys.device)
    if not families:
        return alive
    parts = [
        prune_smallest([keys[ids]], [alive[ids]], count(alive[ids].sum()))[0] for ids in families
    ]
    order = torch.cat(families)
    return torch.cat(parts)[torch.argsort(order)]


def _protected(groups: ChannelGroups, keys: Tensor, alive: Tensor) -> Tensor:
    """Per layer, its most important alive group (ties: lowest index): a layer never empties."""
    protected = torch.zeros_like(alive)
    lowest = torch.iinfo(keys.dtype).min
    for ids in _families(groups, keys.device):
        ranked = torch.where(alive[ids], keys[ids], lowest)
        best = ids[torch.argmax(ranked)]
        protected = protected.index_put((best.reshape(1),), alive[best].reshape(1))
    return protected


def _round_kept(
    groups: ChannelGroups, keys: Tensor, alive: Tensor, eligible: Tensor, kept: Tensor, k: int
) -> Tensor:
    """Per family, keep the kept count rounded up to a multiple of ``k`` (at most what is alive)."""
    families = _families(groups, keys.device)
    parts = []
    for ids in families:
        left, have = alive[ids].sum(), (kept[ids] & alive[ids]).sum()
        target = torch.minimum((have + k - 1) // k * k, left)
        parts.append(prune_smallest([keys[ids]], [eligible[ids]], left - target)[0])
    if not parts:
        return kept
    return torch.cat(parts)[torch.argsort(torch.cat(families))]


def _mask(
    key: str,
    param: Tensor,
    survivors: Tensor | None,
    entries: list[tuple[int, Tensor]],
    kept: Tensor,
) -> Tensor:
    mask = all_kept(param) if survivors is None else survivors
    for dim, gid in entries:
        view = [1] * param.dim()
        view[dim] = param.shape[dim]
        mask = mask & kept[gid].reshape(view)
    return mask


def _check_n(n: object) -> int | float:
    if isinstance(n, bool) or not isinstance(n, numbers.Real) or math.isnan(float(n)) or n <= 0:
        raise ValueError(f"n={n!r} is not a norm order; allowed: an int or float > 0, or math.inf")
    return n if isinstance(n, int) else float(n)


def group_structured(
    amount: Amount,
    groups: ChannelGroups,
    *,
    n: int | float = 2,
    importance: Importance | None = None,
    scope: Scope = "global",
    round_to: int = 1,
) -> GroupStructured:
    """Prune ``amount`` of the remaining channel groups: every member slice of each pruned channel.

    A group's importance is the L``n`` norm of all its parameter slices together (weights, biases,
    norm affine parameters; pruned entries count as zero; ``importance_scores[key]`` replaces a
    parameter's values where given), or ``importance(params, groups)`` (one score per group).
    Exactly the asked number of groups is pruned, ties by lowest group index. A layer (the groups
    touching the same parameter dims) is never emptied: its most important group is kept and
    amounts count among the others, so a shrunk layer keeps at least one channel.

    Args:
        amount: fraction of the remaining groups, or a count (a 0-d tensor works under vmap).
        groups: from :func:`channel_groups`.
        n: norm order (> 0, ``math.inf`` for the largest magnitude).
        importance: optional callable replacing the norm.
        scope: ``"global"`` counts over all groups together; ``"local"`` prunes the same fraction
            of each layer's groups (groups touching the same parameter dims form one layer).
        round_to: keep, per layer, a multiple of ``round_to`` channels (rounded up, at most the
            channels that remain), e.g. 8 for tensor cores.

    Groups some of whose parameters are not in ``params`` (e.g. under :func:`funcprune.only`) are
    left alone.

    >>> import torch
    >>> from torch import nn
    >>> from funcprune.structure import channel_groups
    >>> model = nn.Sequential(nn.Conv2d(1, 4, 1), nn.ReLU(), nn.Conv2d(4, 1, 1))
    >>> groups = channel_groups(model, (torch.zeros(1, 1, 2, 2),))
    >>> method = group_structured(0.5, groups)
    >>> method
    group_structured(0.5, ChannelGroups(<4 groups over 3 parameters>), n=2, importance=None, scope='global', round_to=1)
    >>> masks = method(dict(model.named_parameters()))
    >>> int(masks["0.weight"].sum()), int(masks["2.weight"].sum())
    (2, 2)
    """
    if not isinstance(groups, ChannelGroups):
        raise TypeError(
            f"groups must be a ChannelGroups from channel_groups(...); got {type(groups).__name__}"
        )
    if scope not in ("global", "local"):
        raise ValueError(f"scope={scope!r} is not supported; allowed: 'global' or 'local'")
    if importance is not None and not callable(importance):
        raise TypeError(
            f"importance must be a callable (params, groups) -> Tensor or None; got {importance!r}"
        )
    round_to = check_int("round_to", round_to, "the multiple of kept channels")
    if round_to < 1:
        raise ValueError(f"round_to={round_to} must be >= 1 (1: no rounding)")
    return GroupStructured(check_amount(amount), groups, _check_n(n), importance, scope, round_to)
