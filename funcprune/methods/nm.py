"""N:M semi-structured sparsity: keep the ``n`` highest-scoring of every ``m`` consecutive entries.

The pattern sparse tensor cores accelerate (2:4 on NVIDIA Ampere and later) groups ``m``
consecutive entries along the *input* dim of a weight (dim 1 of a Linear ``(out, in)`` or a Conv
``(out, in, *kernel)`` weight) and keeps ``n`` of each group. Ranking is exact and static-shaped
(a stable sort inside each group), so it works under ``torch.func.vmap`` and
``torch.compile``; ties keep the entry with the higher index (funcprune's rule everywhere: ties
are pruned lowest flat index first; torch's own choice among ties depends on its kernel).

>>> import torch, funcprune as fp
>>> w = torch.tensor([[0.1, -4.0, 3.0, 0.2], [1.0, 2.0, 3.0, 4.0]])
>>> fp.nm_semistructured(2, 4)({"w": w})["w"]
tensor([[False,  True,  True, False],
        [False, False,  True,  True]])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from funcprune._checks import check_dim, check_int
from funcprune._select import order_keys
from funcprune.methods._base import PerKeyMethod
from funcprune.methods._rows import Rows
from funcprune.methods._scoring import score_source


def _group_dim(key: str, shape: torch.Size, dim: int, m: int) -> int:
    """The dim grouped by ``m`` for a parameter of ``shape``, checked; raises naming everything."""
    if len(shape) == 0:
        raise ValueError(
            f"{key!r}: nm_semistructured groups entries along a dim, but the parameter is 0-d; "
            "exclude it with funcprune.only(method, exclude=...)"
        )
    axis = check_dim(key, tuple(shape), dim, " (restrict the method with funcprune.only(...))")
    size = shape[axis]
    if size % m:
        raise ValueError(
            f"{key!r}: shape {tuple(shape)} has size {size} along dim={dim}, which is not "
            f"divisible by m={m}; N:M groups need a multiple of m (pad the layer, pick another "
            "dim, or exclude the key with funcprune.only(...))"
        )
    return axis


def _grouped(t: Tensor, dim: int, m: int) -> Tensor:
    """``t`` with ``dim`` moved last and split into ``(..., size // m, m)`` groups."""
    moved = t.movedim(dim, -1)
    return moved.reshape(*moved.shape[:-1], moved.shape[-1] // m, m)


def _ungrouped(t: Tensor, dim: int, shape: torch.Size) -> Tensor:
    moved_shape = [*shape[:dim], *shape[dim + 1 :], shape[dim]]
    return t.reshape(moved_shape).movedim(-1, dim).contiguous()


def nm_keep(keys: Tensor, survivors: Tensor | None, n: int, m: int, dim: int) -> Tensor:
    """Keep mask: the ``n`` largest ``keys`` among the survivors of every ``m``-group along ``dim``.

    Ties keep the higher index. A group with fewer than ``n`` survivors keeps all of them. Each
    group is sorted (stably, descending, in reversed order so that ties put the higher index
    first) and its first ``n`` survivors are kept: static shapes, exact for int32 and int64 keys.

    Args:
        keys: integer keys (from :func:`funcprune._select.order_keys`), ``dim`` divisible by ``m``.
        survivors: bool tensor of ``keys``' shape, or ``None`` when nothing is pruned yet.
        n: entries kept per group.
        m: group size.
        dim: a non-negative dim of ``keys``.

    >>> import torch
    >>> nm_keep(torch.tensor([3, 1, 1, 0]), None, 2, 4, 0)
    tensor([ True, False,  True, False])
    """
    reversed_keys = _grouped(keys, dim, m).flip(-1)
    order = torch.sort(reversed_keys, dim=-1, descending=True, stable=True).indices
    if survivors is None:
        chosen = (torch.arange(m, device=keys.device) < n).expand(order.shape)
    else:
        alive = _grouped(survivors, dim, m).flip(-1).gather(-1, order)
        chosen = alive & (alive.cumsum(-1) <= n)
    keep = torch.zeros(order.shape, dtype=torch.bool, device=keys.device).scatter(-1, order, chosen)
    return _ungrouped(keep.flip(-1), dim, keys.shape)


@dataclass(frozen=True, eq=False, repr=False)
class NMSemistructured(PerKeyMethod):
    """``n`` of every ``m`` consecutive entries along ``dim``; see :func:`nm_semistructured`.

    >>> import funcprune as fp
    >>> method = fp.nm_semistructured(2, 4)
    >>> isinstance(method, NMSemistructured), method.n, method.m, method.dim
    (True, 2, 4, 1)
    """

    n: int
    m: int
    dim: int = 1
    factory: ClassVar[str] = "nm_semistructured"
    batched: ClassVar[bool] = True

    def _prune_one(
        self, key: str, param: Tensor, survivors: Tensor | None, score: Tensor | None
    ) -> Tensor:
        return self._keep(key, param, survivors, score, 0)

    def _prune_rows(self, rows: Rows) -> Tensor:
        return self._keep(rows.keys[0], rows.params, rows.survivors, rows.scores, 1)

    def _keep(
        self, key: str, param: Tensor, survivors: Tensor | None, score: Tensor | None, lead: int
    ) -> Tensor:
        """The N:M keep mask of ``param``, whose first ``lead`` dims are batch dims."""
        dim = _group_dim(key, param.shape[lead:], self.dim, self.m)
        source = score_source(key, param, score, self.factory)
        return nm_keep(order_keys(source.abs()), survivors, self.n, self.m, dim + lead)


def nm_semistructured(n: int, m: int, *, dim: int = 1) -> NMSemistructured:
    """Keep the ``n`` largest-magnitude entries of every ``m`` consecutive entries along ``dim``.

    Scores are ``|importance_scores[key]|`` when given, else ``|param|`` (as
    :func:`funcprune.l1_unstructured`). ``dim`` defaults to 1, the input dim of Linear and Conv
    weights, which is what sparse tensor cores need (``n=2, m=4``). Every ``m``-group keeps exactly
    ``n`` entries; with incoming ``masks`` it keeps the ``n`` best *survivors* of each group, so a
    group that already lost more than ``m - n`` entries keeps the ``< n`` it has (the result is
    always a subset of the survivors and always a valid N:M pattern). Ties keep the higher index.

    Args:
        n: entries kept per group, ``0 <= n <= m``.
        m: group size, ``>= 1``.
        dim: the dim along which groups of ``m`` consecutive entries are formed; every parameter
            the method sees must have a size along it divisible by ``m`` (restrict the method with
            :func:`funcprune.only` to skip biases and odd layers).

    Raises:
        TypeError: ``n``, ``m`` or ``dim`` not ints.
        ValueError: ``m < 1`` or ``n`` outside ``[0, m]``; at call time, a parameter whose size
            along ``dim`` is not divisible by ``m`` (naming the key, shape, dim and m).

    >>> import torch, funcprune as fp
    >>> w = torch.arange(16.0).reshape(2, 8)
    >>> keep = fp.nm_semistructured(2, 4)({"w": w})["w"]
    >>> keep.reshape(2, 2, 4).sum(-1)
    tensor([[2, 2],
            [2, 2]])
    >>> fp.nm_semistructured(2, 4)({"w": torch.ones(3, 6)})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: 'w': shape (3, 6) has size 6 along dim=1, which is not divisible by m=4; ...
    """
    n, m, dim = check_int("n", n), check_int("m", m), check_int("dim", dim)
    if m < 1:
        raise ValueError(f"m={m} must be a group size >= 1 (e.g. m=4 for 2:4 sparsity)")
    if not 0 <= n <= m:
        raise ValueError(f"n={n} must be the number kept per group, between 0 and m={m}")
    return NMSemistructured(n, m, dim)


__all__ = ["NMSemistructured", "nm_keep", "nm_semistructured"]
