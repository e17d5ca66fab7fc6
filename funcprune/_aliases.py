"""Tied parameters: keys that name the same tensor are pruned as one.

GPT-2's ``lm_head.weight`` *is* ``transformer.wte.weight``; ``state_dict()`` and
``named_parameters(remove_duplicate=False)`` list both names. Methods detect such aliases (the
same tensor object, or, eagerly, the same storage, offset, shape, stride and dtype), rank the
tensor once under its first key and give every alias an identical mask.

>>> import torch
>>> w = torch.ones(2, 2)
>>> alias_groups({"a": w, "b": torch.zeros(2), "c": w.detach()})
[['a', 'c']]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from funcprune._tensors import is_concrete
from funcprune.types import Masks, Params, Scores

if TYPE_CHECKING:
    from funcprune.methods._base import Method


def _storage_key(t: Tensor) -> tuple[object, ...] | None:
    """What makes two tensors the same values in memory; ``None`` where it cannot be read."""
    if t.layout != torch.strided or t.numel() == 0 or not is_concrete(t):
        return None
    try:
        pointer = t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # tensor subclasses without a real storage
        return None
    return (pointer, t.storage_offset(), tuple(t.shape), t.stride(), t.dtype, t.device)


def _address(t: Tensor) -> object:
    """What every alias of ``t`` shares and few others do: the address of its first entry.

    It is cheap next to :func:`_storage_key`, which then only tells apart tensors that share it.
    """
    if t.layout != torch.strided or t.numel() == 0 or not is_concrete(t):
        return ("object", id(t))
    try:
        return t.data_ptr()
    except (RuntimeError, NotImplementedError):  # tensor subclasses without a real storage
        return ("object", id(t))


def alias_groups(params: Params) -> list[list[str]]:
    """Groups of two or more keys naming the same tensor, each in ``params``' order.

    Groups are ordered by their first key.

    >>> import torch
    >>> w = torch.zeros(3)
    >>> alias_groups({"x": w, "y": w}), alias_groups({"x": w, "y": w.clone()})
    ([['x', 'y']], [])
    """
    by_address: dict[object, list[str]] = {}
    for key, t in params.items():
        by_address.setdefault(_address(t), []).append(key)
    groups: dict[object, list[str]] = {}
    for keys in by_address.values():
        if len(keys) > 1:
            for key in keys:
                t = params[key]
                groups.setdefault(_storage_key(t) or ("object", id(t)), []).append(key)
    tied = [keys for keys in groups.values() if len(keys) > 1]
    if len(tied) < 2:
        return tied
    order = {key: i for i, key in enumerate(params)}
    return sorted(tied, key=lambda keys: order[keys[0]])


def _shared_score(group: list[str], scores: Scores) -> dict[str, Tensor]:
    """The one importance score of a tied group, under its first key; refuses differing ones."""
    given = [key for key in group if key in scores]
    if len({_storage_key(scores[k]) or ("object", id(scores[k])) for k in given}) > 1:
        raise ValueError(
            f"importance_scores has different tensors for the tied keys {given} (they name one "
            "parameter, which gets one mask); pass a score for only one of them"
        )
    return {group[0]: scores[given[0]]} if given else {}


def _shared_mask(group: list[str], masks: Mapping[str, Tensor]) -> Tensor | None:
    """The survivors of a tied group: what every alias's incoming mask keeps."""
    given = [masks[key] for key in group if key in masks]
    if not given:
        return None
    survivors = given[0]
    for mask in given[1:]:
        survivors = survivors & mask
    return survivors


def _combines(method: Method) -> bool:
    """Whether ``method`` hands keys on to other methods (``chain``, ``only``, ``per_key``)."""
    from funcprune.methods._base import Method

    return getattr(type(method), "_partial", None) is not getattr(Method, "_partial", None)


def _joined(groups: list[list[str]], masks: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``masks`` with every alias of a tied group given (a copy of) what all its masks keep."""
    joined = dict(masks)
    for group in groups:
        shared = _shared_mask(group, masks)
        if shared is not None:
            joined.update({key: shared.clone() for key in group})
    return joined


def _deduplicated(
    method: Method,
    groups: list[list[str]],
    params: Params,
    masks: Mapping[str, Tensor],
    scores: Scores,
) -> Masks:
    """A selecting method on one key per tied group (its first), the mask copied to the others.

    ``masks`` already agree across each group (:func:`_joined`).
    """
    leader = {key: group[0] for group in groups for key in group[1:]}
    unique_scores = {k: s for k, s in scores.items() if k not in leader}
    for group in groups:
        unique_scores.update(_shared_score(group, scores))
    unique = {key: p for key, p in params.items() if key not in leader}
    unique_masks = {k: m for k, m in masks.items() if k not in leader}
    result = method._prune(unique, unique_masks, unique_scores)
    return {key: result[leader[key]].clone() if key in leader else result[key] for key in params}


def prune_aliased(
    method: Method, params: Params, masks: Mapping[str, Tensor], scores: Scores
) -> Masks:
    """``method._prune`` with tied keys pruned as one tensor, every alias getting the same mask.

    Selecting methods rank each tied group once, under its first key (a global ranking counts
    the tensor once); incoming masks of the aliases are intersected (an entry pruned under any
    name is pruned). Combinators run on every key and the aliases' results are intersected.

    >>> import torch, funcprune as fp
    >>> w = torch.tensor([3.0, 1.0])
    >>> fp.global_unstructured(1)({"a": w, "b": torch.tensor([2.0]), "tied": w})
    {'a': tensor([ True, False]), 'b': tensor([True]), 'tied': tensor([ True, False])}
    """
    groups = alias_groups(params)
    if not groups:
        return method._prune(params, masks, scores)
    joined = _joined(groups, masks)
    if _combines(method):  # ``per_key`` or ``only`` may address any name: what one prunes, all lose
        return _joined(groups, method._prune(params, joined, scores))
    return _deduplicated(method, groups, params, joined, scores)
