"""Many small parameters of one shape, pruned as one batch: one row per parameter.

A model with thousands of tiny tensors (biases, norms, a mixture of small experts) would pay a
kernel call per key; stacked, each group of same-shaped tensors costs one. Only readable plain
tensors are batched (not under ``vmap`` or ``torch.compile``, no DTensors), and only small ones
(the stack is a copy); every other key goes through the per-key path, which gives the same masks.

>>> import torch
>>> params = {"a": torch.ones(2), "b": torch.zeros(2), "c": torch.ones(3)}
>>> row_batches(params, {}, {})
([['a', 'b']], ['c'])
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import NamedTuple

import torch
from torch import Tensor

from funcprune._tensors import is_concrete
from funcprune.types import Params

ROW_LIMIT = 1 << 12
"""Most entries of a parameter stacked with others (larger ones gain little from batching)."""
BATCH_LIMIT = 1 << 20
"""Most entries of one batch, which bounds the temporaries of its kernels."""


class Rows(NamedTuple):
    """Same-shaped parameters stacked along a new leading dim, with their survivors and scores.

    ``params`` is detached; ``survivors`` and ``scores`` are ``None`` where no key has them
    (a batch never mixes keys with and without them).
    """

    keys: list[str]
    params: Tensor
    survivors: Tensor | None
    scores: Tensor | None


def _plain(t: Tensor) -> bool:
    """Whether ``t`` may be stacked: a readable, strided, plain tensor (or Parameter)."""
    return type(t) in (Tensor, torch.nn.Parameter) and t.layout == torch.strided and is_concrete(t)


def _signature(param: Tensor, mask: Tensor | None, score: Tensor | None) -> Hashable | None:
    """What keys must share to be stacked together; ``None`` for a key left to the per-key path."""
    if not 0 < param.numel() <= ROW_LIMIT or not _plain(param):
        return None
    if (mask is not None and not _plain(mask)) or (score is not None and not _plain(score)):
        return None
    return (
        param.shape,
        param.dtype,
        param.device,
        mask is None,
        None if score is None else score.dtype,
    )


def row_batches(
    params: Params, masks: Mapping[str, Tensor], scores: Mapping[str, Tensor]
) -> tuple[list[list[str]], list[str]]:
    """Batches of two or more keys that can be stacked, and the keys left to the per-key path.

    Every batch holds at most :data:`BATCH_LIMIT` entries; keys keep ``params``' order in each.
    """
    groups: dict[Hashable, list[str]] = {}
    single: list[str] = []
    for key, param in params.items():
        signature = _signature(param, masks.get(key), scores.get(key))
        if signature is None:
            single.append(key)
        else:
            groups.setdefault(signature, []).append(key)
    batches: list[list[str]] = []
    for keys in groups.values():
        if len(keys) < 2:
            single.extend(keys)
            continue
        size = max(BATCH_LIMIT // params[keys[0]].numel(), 2)
        batches.extend(keys[start : start + size] for start in range(0, len(keys), size))
    return batches, single


def stacked(
    keys: list[str], params: Params, masks: Mapping[str, Tensor], scores: Mapping[str, Tensor]
) -> Rows:
    """The :class:`Rows` of a batch from :func:`row_batches`."""
    with torch.no_grad():  # Parameters: masks are never differentiable
        return Rows(
            keys,
            torch.stack([params[key] for key in keys]),
            torch.stack([masks[key] for key in keys]) if keys[0] in masks else None,
            torch.stack([scores[key] for key in keys]) if keys[0] in scores else None,
        )


__all__ = ["BATCH_LIMIT", "ROW_LIMIT", "Rows", "row_batches", "stacked"]
