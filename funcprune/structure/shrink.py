"""Physically remove pruned channel groups: a smaller module computing what the masked one does.

>>> import torch, funcprune as fp
>>> from torch import nn
>>> from funcprune.structure import channel_groups, group_structured, shrink
>>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
>>> x = torch.randn(3, 4)
>>> params = dict(model.named_parameters())
>>> masks = group_structured(0.5, channel_groups(model, (x,)))(params)
>>> small = shrink(model, params, masks, (x,))
>>> small[0], small[2]
(Linear(in_features=4, out_features=4, bias=True), Linear(in_features=4, out_features=2, bias=True))
>>> torch.allclose(small(x), fp.masked_call(model, params, masks, x), atol=1e-6)
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils import _pytree as pytree

from funcprune._checks import KeyMismatchError
from funcprune.masking import masked_call
from funcprune.structure._attributes import update_attributes
from funcprune.structure._capture import capture_eval, eval_copy
from funcprune.structure.groups import ChannelGroups, groups_of

Kept = dict[tuple[str, int], Tensor]
"""Per ``(key, dim)`` that loses indices: the indices kept, ascending."""


def shrink(
    model: nn.Module,
    params: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    example_inputs: Sequence[object],
    *,
    groups: ChannelGroups | None = None,
) -> nn.Module:
    """A new, physically smaller copy of ``model`` whose forward equals the masked model's.

    Channel groups (:func:`channel_groups` on ``example_inputs``) whose every member slice is
    entirely pruned by ``masks`` are removed from a deep copy: parameters (taken from ``params``,
    masks applied), buffers (running statistics) and the attributes ``forward`` reads
    (``in_features``, ``out_channels``, ``groups``, ``num_features``, head counts, ...). What
    ``masks`` prunes outside whole groups stays as zeros. The result is checked on
    ``example_inputs`` against ``masked_call(model, params, masks, *example_inputs)`` in eval mode;
    it keeps ``model``'s train/eval flags. Deterministic: a function of its arguments only.

    Args:
        model: the dense module; not modified.
        params: parameter values by ``named_parameters()`` key (missing keys: the model's own).
        masks: bool masks by key, ``True`` keeps (missing keys: nothing pruned).
        example_inputs: positional arguments for one forward call.
        groups: ``channel_groups(model, example_inputs)`` when already at hand (saves a capture).

    Raises:
        ValueError: a group is only partly pruned (names the group and the slices that remain),
            or keys of ``params``/``masks`` are not parameters of ``model``.
        RuntimeError: the shrunk model does not reproduce the masked model on ``example_inputs``
            (its code uses a fixed size for a pruned dim); nothing is returned then.
    """
    own = dict(model.named_parameters())
    _check_keys(own, params, masks)
    work = eval_copy(model)
    if groups is None:
        groups = groups_of(capture_eval(work, example_inputs))
    values = {key: params.get(key, value).detach() for key, value in own.items()}
    kept = _kept_indices(groups, masks)
    with torch.no_grad():
        expected = masked_call(work, values, dict(masks), *example_inputs)
        _replace(work, values, masks, kept)
        update_attributes(work)
        got = _run(work, example_inputs)
    _check_same(expected, got)
    for new, old in zip(work.modules(), model.modules(), strict=True):
        new.training = old.training
    return work


def _check_keys(
    own: Mapping[str, Tensor], params: Mapping[str, Tensor], masks: Mapping[str, Tensor]
) -> None:
    for name, given in (("params", params), ("masks", masks)):
        unknown = sorted(set(given) - set(own))
        if unknown:
            raise KeyMismatchError(f"{name} has keys that are not parameters of model: {unknown}")
    for key, mask in masks.items():
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != own[key].shape:
            raise ValueError(
                f"masks[{key!r}] must be a bool tensor of shape {tuple(own[key].shape)}; got "
                f"{type(mask).__name__ if not isinstance(mask, Tensor) else (mask.dtype, tuple(mask.shape))}"
            )


def _alive_slices(mask: Tensor, dim: int, kept: Kept, key: str) -> np.ndarray:
    """Per index along ``dim``: does the mask keep an entry among the indices kept on other dims."""
    for other in range(mask.dim()):
        index = kept.get((key, other))
        if other != dim and index is not None:
            mask = mask.index_select(other, index.to(mask.device))
    others = [d for d in range(mask.dim()) if d != dim]
    if mask.numel() == 0:
        return np.ones(mask.shape[dim], dtype=bool)
    return (mask.any(dim=others) if others else mask).cpu().numpy()


def _kept_indices(groups: ChannelGroups, masks: Mapping[str, Tensor]) -> Kept:
    """Indices that stay, per ``(key, dim)``; raises on a group pruned only in part.

    A group goes when every member slice is entirely pruned. A group that stays may not have a
    member slice entirely pruned among the entries that stay (that would be half a channel).
    """
    sizes = dict(groups.shapes)
    removed = np.flatnonzero(_dead_slices(groups, masks, {}) == _slice_counts(groups))
    drop: dict[tuple[str, int], set[int]] = {}
    for number in removed.tolist():
        group = groups[number]
        for s in (*group.params, *group.buffers):
            drop.setdefault((s.key, s.dim), set()).update(s.indices)
    kept = {
        (key, dim): torch.tensor(sorted(set(range(sizes[key][dim])) - lost), dtype=torch.long)
        for (key, dim), lost in drop.items()
    }
    dead = _dead_slices(groups, masks, kept)
    dead[removed] = 0
    partial = np.flatnonzero(dead)
    if partial.size:
        raise ValueError(_partial_message(groups, masks, kept, int(partial[0])))
    return kept


def _slice_counts(groups: ChannelGroups) -> np.ndarray:
    counts = np.zeros(len(groups) + 1, dtype=np.int64)
    for _, _, ids in groups.index_maps:
        counts[np.unique(np.asarray(ids))] += 1
    counts[-1] = -1
    return counts[:-1]


def _dead_slices(groups: ChannelGroups, masks: Mapping[str, Tensor], kept: Kept) -> np.ndarray:
    """Per group, how many of its member slices keep no entry (among the kept indices)."""
    dead = np.zeros(len(groups) + 1, dtype=np.int64)
    for key, dim, ids in groups.index_maps:
        if key not in masks:
            continue
        gid = np.asarray(ids)
        alive = np.bincount(
            gid, weights=_alive_slices(masks[key], dim, kept, key), minlength=len(groups) + 1
        )
        present = np.bincount(gid, minlength=len(groups) + 1) > 0
        dead += present & (alive == 0)
    return dead[:-1]


def _partial_message(
    groups: ChannelGroups, masks: Mapping[str, Tensor], kept: Kept, number: int
) -> str:
    group = groups[number]
    status = [
        key in masks and not _alive_slices(masks[key], dim, kept, key)[list(indices)].any()
        for key, dim, indices in ((s.key, s.dim, s.indices) for s in group.params)
    ]
    pruned = [repr(s) for s, d in zip(group.params, status, strict=True) if d]
    left = [repr(s) for s, d in zip(group.params, status, strict=True) if not d]
    return (
        f"masks prune channel group {number} only in part: {pruned} are entirely pruned but "
        f"{left} are not; prune every member of a group (fp.group_structured does) or none"
    )


def _sliced(tensor: Tensor, key: str, kept: Kept) -> Tensor:
    for dim in range(tensor.dim()):
        index = kept.get((key, dim))
        if index is not None:
            tensor = tensor.index_select(dim, index.to(tensor.device))
    return tensor.clone()


def _replace(
    work: nn.Module, values: Mapping[str, Tensor], masks: Mapping[str, Tensor], kept: Kept
) -> None:
    """Put the masked, sliced parameters and sliced buffers into ``work`` (tied ones stay tied)."""
    new_params: dict[int, nn.Parameter] = {}
    for key, old in work.named_parameters():
        value = values[key] * masks[key] if key in masks else values[key]
        new_params[id(old)] = nn.Parameter(
            _sliced(value.to(old.dtype), key, kept), old.requires_grad
        )
    for module in work.modules():
        for name, param in list(module._parameters.items()):
            if param is not None:
                module._parameters[name] = new_params[id(param)]
    sliced = {key for key, _ in kept}
    for key, buffer in list(work.named_buffers()):
        if key in sliced:
            owner, _, name = key.rpartition(".")
            module = work.get_submodule(owner)
            module._buffers[name] = _sliced(buffer, key, kept)


def _run(work: nn.Module, example_inputs: Sequence[object]) -> object:
    try:
        return work(*example_inputs)
    except Exception as error:
        raise RuntimeError(
            f"shrink: the shrunk model fails on example_inputs ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); its code uses a fixed size for "
            "a pruned dim. Keep those parameters out of pruning (fp.only(..., exclude=...))"
        ) from error


def _check_same(expected: object, got: object) -> None:
    want, want_spec = pytree.tree_flatten(expected)
    have, have_spec = pytree.tree_flatten(got)
    if want_spec != have_spec:
        raise RuntimeError("shrink: the shrunk model returns a different output structure")
    for index, (a, b) in enumerate(zip(want, have, strict=True)):
        if isinstance(a, Tensor):
            if not isinstance(b, Tensor) or a.shape != b.shape:
                raise RuntimeError(
                    f"shrink: output {index} has shape {tuple(b.shape) if isinstance(b, Tensor) else b} "
                    f"instead of {tuple(a.shape)}"
                )
            if not _close(a, b):
                diff = (a.double() - b.double()).abs().max().item()
                raise RuntimeError(
                    f"shrink: the shrunk model's output {index} differs from masked_call by {diff:.3g}; "
                    "its code uses a fixed size or offset for a pruned dim. Keep those parameters "
                    "out of pruning (fp.only(..., exclude=...))"
                )


def _close(a: Tensor, b: Tensor) -> bool:
    if not a.is_floating_point():
        return bool(torch.equal(a, b))
    scale = a.detach().abs().max().item() if a.numel() else 0.0
    tolerance = 1e-5 + 1e-4 * scale
    return bool(
        ((a.double() - b.double()).abs() <= tolerance).all() and torch.equal(a.isnan(), b.isnan())
    )
