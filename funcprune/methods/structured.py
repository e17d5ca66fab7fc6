"""Structured methods: each prunes whole slices along ``dim``, by their Ln norm or at random.

A slice that is not entirely pruned yet survives (torch's PruningContainer rule), and pruning a
slice prunes its every remaining entry.

>>> import torch, funcprune as fp
>>> params = {"w": torch.tensor([[0.1, -2.0], [0.5, 3.0]])}
>>> fp.ln_structured(1, n=1, dim=0)(params)["w"]
tensor([[False, False],
        [ True,  True]])
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor

from funcprune._checks import check_int
from funcprune._select import order_keys, random_keys, random_keys_of
from funcprune.methods._amount import check_amount
from funcprune.methods._base import PerKeyMethod, positional
from funcprune.methods._rows import Rows
from funcprune.methods._scoring import (
    channel_dim,
    current,
    prune_slice_rows,
    prune_slices,
    score_source,
)
from funcprune.types import Amount

Norm = int | float | Literal["fro", "nuc"]
"""A norm order accepted by :func:`torch.norm`'s ``p``: a number, ``±inf``, ``'fro'`` or ``'nuc'``."""


@dataclass(frozen=True, eq=False, repr=False)
class RandomStructured(PerKeyMethod):
    """Random slices along ``dim``; see :func:`random_structured`."""

    amount: Amount = positional()
    dim: int = -1
    seed: int = 0
    factory: ClassVar[str] = "random_structured"
    batched: ClassVar[bool] = True

    def _prune_one(
        self, key: str, param: Tensor, survivors: Tensor | None, score: Tensor | None
    ) -> Tensor:
        dim = channel_dim(key, param.shape, self.dim, self.factory)
        keys = random_keys(self.seed, key, param.shape[dim], param.device)
        return prune_slices(key, param, survivors, keys, self.amount, dim)

    def _prune_rows(self, rows: Rows) -> Tensor:
        shape = rows.params.shape[1:]
        dim = channel_dim(rows.keys[0], shape, self.dim, self.factory)
        sizes = [shape[dim]] * len(rows.keys)
        keys = random_keys_of(self.seed, rows.keys, sizes, rows.params.device)
        return prune_slice_rows(rows, keys.reshape(len(rows.keys), -1), self.amount, dim)


def _check_matrix_norm(key: str, n: Norm, shape: torch.Size, dim: int) -> None:
    """torch.norm takes 'nuc' over exactly two dims and 'fro' over at most two."""
    others = len(shape) - 1
    if (n == "nuc" and others != 2) or (n == "fro" and others > 2):
        needs = "exactly two dims" if n == "nuc" else "at most two dims"
        raise ValueError(
            f"{key!r}: n={n!r} needs {needs} besides dim={dim}, but shape {tuple(shape)} has "
            f"{others}; use a vector norm such as n=2 (the same as 'fro' over any dims)"
        )


@dataclass(frozen=True, eq=False, repr=False)
class LnStructured(PerKeyMethod):
    """Slices along ``dim`` with the smallest L``n`` norm; see :func:`ln_structured`."""

    amount: Amount = positional()
    n: Norm = 2
    dim: int = -1
    factory: ClassVar[str] = "ln_structured"
    batched: ClassVar[bool] = True

    def _prune_one(
        self, key: str, param: Tensor, survivors: Tensor | None, score: Tensor | None
    ) -> Tensor:
        dim = channel_dim(key, param.shape, self.dim, self.factory)
        keys = self._norm_keys(key, param, survivors, score, dim, 0)
        return prune_slices(key, param, survivors, keys, self.amount, dim)

    def _prune_rows(self, rows: Rows) -> Tensor:
        key = rows.keys[0]
        dim = channel_dim(key, rows.params.shape[1:], self.dim, self.factory)
        keys = self._norm_keys(key, rows.params, rows.survivors, rows.scores, dim, 1)
        return prune_slice_rows(rows, keys, self.amount, dim)

    def _norm_keys(
        self,
        key: str,
        param: Tensor,
        survivors: Tensor | None,
        score: Tensor | None,
        dim: int,
        lead: int,
    ) -> Tensor:
        """Order keys of the slices' norms along ``dim`` of ``param`` after ``lead`` batch dims."""
        source = score_source(key, current(param, survivors), score, self.factory)
        _check_matrix_norm(key, self.n, param.shape[lead:], dim)
        others = [d for d in range(lead, param.dim()) if d != dim + lead]
        if source.numel() == 0:  # empty slices: torch.norm refuses +-inf over an empty dim, but
            return order_keys(source.sum(dim=others))  # no slice holds an entry to prune anyway
        return order_keys(torch.norm(source, p=self.n, dim=others))


def _float_or_none(n: numbers.Real) -> float | None:
    """``float(n)``, or ``None`` for NaN and for numbers beyond the float range."""
    try:
        value = float(n)
    except OverflowError:
        return None
    return None if math.isnan(value) else value


def _check_norm(n: object) -> Norm:
    """A norm order: ``'fro'``, ``'nuc'``, an int in the int64 range, or a float (``±inf`` too)."""
    if n == "fro" or n == "nuc":
        return n
    value = None
    if not isinstance(n, bool) and isinstance(n, numbers.Real):
        value = _float_or_none(n)
    if value is None:
        raise ValueError(
            f"n={n!r} is not a norm order; allowed: an int or float within the float range "
            "(inf and -inf included, math.inf for the max norm), 'fro' or 'nuc' (as torch.norm's p)"
        )
    return int(n) if isinstance(n, numbers.Integral) and abs(int(n)) < 2**63 else value


def random_structured(amount: Amount, *, dim: int, seed: int = 0) -> RandomStructured:
    """Prune ``amount`` of the remaining slices along ``dim`` at random (counter-based, seeded).

    >>> import torch, funcprune as fp
    >>> m = fp.random_structured(1, dim=0)({"w": torch.ones(3, 2)})["w"]
    >>> m.all(dim=1).sum().item(), (~m).all(dim=1).sum().item()
    (2, 1)
    """
    return RandomStructured(
        check_amount(amount),
        check_int("dim", dim, "the dim whose slices are pruned"),
        check_int("seed", seed),
    )


def ln_structured(amount: Amount, *, n: Norm, dim: int) -> LnStructured:
    """Prune ``amount`` of the remaining slices along ``dim`` with the smallest L``n`` norm.

    Norms are ``torch.norm(scores, p=n, dim=<all other dims>)``, where the scores are
    ``importance_scores[key]`` when given, else the parameter as currently pruned (pruned entries
    count as zero), as torch computes them. ``n`` is any ``p`` that :func:`torch.norm` takes;
    ``'fro'`` over at most two dims and ``'nuc'`` over exactly two, as in torch.

    >>> import torch, funcprune as fp
    >>> w = torch.tensor([[1.0, 1.0], [0.1, 0.1], [2.0, 0.0]])
    >>> fp.ln_structured(1, n=2, dim=0)({"w": w})["w"]
    tensor([[ True,  True],
            [False, False],
            [ True,  True]])
    """
    return LnStructured(
        check_amount(amount),
        _check_norm(n),
        check_int("dim", dim, "the dim whose slices are pruned"),
    )
