"""The pruning-method factories: each returns an immutable, comparable method value.

Every method is called as ``method(params, masks=None, *, importance_scores=None) -> Masks`` and
prunes only among the survivors of ``masks`` (torch's PruningContainer rule): unpruned entries for
unstructured methods, slices along ``dim`` that are not entirely pruned for structured ones.

>>> import torch, funcprune as fp
>>> params = {"w": torch.tensor([[0.1, -2.0], [0.5, 3.0]])}
>>> fp.l1_unstructured(0.5)(params)["w"]
tensor([[False,  True],
        [False,  True]])
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor

from funcprune._checks import check_dim, check_floating, check_int, check_tensor_dict
from funcprune._method import Method, PerKeyMethod, all_kept, positional
from funcprune._random import random_keys
from funcprune.amount import check_amount, units_to_prune
from funcprune.select import order_keys, prune_smallest, prune_smallest_magnitudes
from funcprune.types import Amount, Masks, Params, Scores

Norm = int | float | Literal["fro", "nuc"]
"""A norm order accepted by :func:`torch.norm`'s ``p``: a number, ``±inf``, ``'fro'`` or ``'nuc'``."""


def _unit_count(param: Tensor, survivors: Tensor | None) -> Tensor:
    if survivors is None:
        return torch.tensor(param.numel(), device=param.device)
    return survivors.sum()


def _entry_count(key: str, param: Tensor, survivors: Tensor | None, amount: Amount) -> Tensor:
    """How many of the surviving entries ``amount`` prunes."""
    return units_to_prune(amount, _unit_count(param, survivors), key=key, unit="entries")


def score_source(key: str, default: Tensor, score: Tensor | None, method: str) -> Tensor:
    """The tensor a magnitude or norm is taken of: ``score`` when given, else ``default``; floating.

    >>> import torch
    >>> score_source("w", torch.ones(2), None, "l1_unstructured")
    tensor([1., 1.])
    """
    source = default if score is None else score
    check_floating(key, source, "parameter" if score is None else "importance score", method)
    return source


def _current(param: Tensor, survivors: Tensor | None) -> Tensor:
    """The parameter as currently pruned (torch's default importance scores)."""
    return param if survivors is None else param * survivors


def _channel_dim(key: str, shape: torch.Size, dim: int, method: str) -> int:
    if len(shape) < 2:
        raise ValueError(
            f"{key!r}: {method} prunes slices of tensors with >= 2 dims; got shape {tuple(shape)}. "
            "Restrict it to such parameters with funcprune.only(method, include=...)"
        )
    return check_dim(key, tuple(shape), dim)


def _prune_slices(
    key: str,
    param: Tensor,
    survivors: Tensor | None,
    channel_keys: Tensor,
    amount: Amount,
    dim: int,
) -> Tensor:
    others = tuple(d for d in range(param.dim()) if d != dim)
    alive = None if survivors is None else survivors.any(dim=others)
    remaining = (
        torch.tensor(param.shape[dim], device=param.device) if alive is None else alive.sum()
    )
    count = units_to_prune(amount, remaining, key=key, unit=f"slices along dim {dim}")
    kept = prune_smallest([channel_keys], [alive], count)[0]
    view = [1] * param.dim()
    view[dim] = param.shape[dim]
    keep = kept.reshape(view).expand(param.shape)
    return keep.contiguous() if survivors is None else keep & survivors


@dataclass(frozen=True, eq=False, repr=False)
class Identity(PerKeyMethod):
    """Prunes nothing; see :func:`identity`."""

    factory: ClassVar[str] = "identity"

    def _prune_one(
        self, key: str, param: Tensor, survivors: Tensor | None, score: Tensor | None
    ) -> Tensor:
        return all_kept(param) if survivors is None else survivors


@dataclass(frozen=True, eq=False, repr=False)
class RandomUnstructured(PerKeyMethod):
    """Random entries; see :func:`random_unstructured`."""

    amount: Amount = positional()
    seed: int = 0
    factory: ClassVar[str] = "random_unstructured"

    def _prune_one(
        self, key: str, param: Tensor, survivors: Tensor | None, score: Tensor | None
    ) -> Tensor:
        keys = random_keys(self.seed, key, param.numel(), param.device).reshape(param.shape)
        count = _entry_count(key, param, survivors, self.amount)
        return prune_smallest([keys], [survivors], count)[0]


@dataclass(frozen=True, eq=False, repr=False)
class L1Unstructured(PerKeyMethod):
    """Smallest-magnitude entries; see :func:`l1_unstructured`."""

    amount: Amount = positional()
    factory: ClassVar[str] = "l1_unstructured"

    def _prune_one(
        self, key: str, param: Tensor, survivors: Tensor | None, score: Tensor | None
    ) -> Tensor:
        source = score_source(key, param, score, self.factory)
        count = _entry_count(key, param, survivors, self.amount)
        return prune_smallest_magnitudes([source], [survivors], count)[0]


@dataclass(frozen=True, eq=False, repr=False)
class RandomStructured(PerKeyMethod):
    """Random slices along ``dim``; see :func:`random_structured`."""

    amount: Amount = positional()
    dim: int = -1
    seed: int = 0
    factory: ClassVar[str] = "random_structured"

    def _prune_one(
        self, key: str, param: Tensor, survivors: Tensor | None, score: Tensor | None
    ) -> Tensor:
        dim = _channel_dim(key, param.shape, self.dim, self.factory)
        keys = random_keys(self.seed, key, param.shape[dim], param.device)
        return _prune_slices(key, param, survivors, keys, self.amount, dim)


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

    def _prune_one(
        self, key: str, param: Tensor, survivors: Tensor | None, score: Tensor | None
    ) -> Tensor:
        dim = _channel_dim(key, param.shape, self.dim, self.factory)
        source = score_source(key, _current(param, survivors), score, self.factory)
        others = [d for d in range(param.dim()) if d != dim]
        _check_matrix_norm(key, self.n, param.shape, dim)
        norms = torch.norm(source, p=self.n, dim=others)
        return _prune_slices(key, param, survivors, order_keys(norms), self.amount, dim)


@dataclass(frozen=True, eq=False, repr=False)
class CustomFromMask(PerKeyMethod):
    """Given masks intersected with the survivors; see :func:`custom_from_mask`."""

    masks: tuple[tuple[str, Tensor], ...] = positional()
    factory: ClassVar[str] = "custom_from_mask"

    def _prune(self, params: Params, masks: Mapping[str, Tensor], scores: Scores) -> Masks:
        check_tensor_dict(params, dict(self.masks), "custom_from_mask's masks")
        return super()._prune(params, masks, scores)

    def _prune_one(
        self, key: str, param: Tensor, survivors: Tensor | None, score: Tensor | None
    ) -> Tensor:
        given = dict(self.masks).get(key)
        if given is None:
            return all_kept(param) if survivors is None else survivors
        given = given.to(param.device)
        return given.clone() if survivors is None else given & survivors

    def __repr__(self) -> str:
        return f"custom_from_mask(<masks for {[key for key, _ in self.masks]}>)"


@dataclass(frozen=True, eq=False, repr=False)
class GlobalUnstructured(Method):
    """Smallest-score entries across all parameters together; see :func:`global_unstructured`."""

    amount: Amount = positional()
    scores: Literal["l1", "random"] = "l1"
    seed: int = 0
    factory: ClassVar[str] = "global_unstructured"

    def _prune(self, params: Params, masks: Mapping[str, Tensor], scores: Scores) -> Masks:
        survivors = [masks.get(key) for key in params]
        remaining = sum(
            (_unit_count(p, s) for p, s in zip(params.values(), survivors, strict=True)),
            start=torch.tensor(0),
        )
        count = units_to_prune(self.amount, remaining, key="<all parameters>", unit="entries")
        if self.scores == "random":
            keys = [
                random_keys(self.seed, k, p.numel(), p.device).reshape(p.shape)
                for k, p in params.items()
            ]
            return dict(zip(params, prune_smallest(keys, survivors, count), strict=True))
        sources = [score_source(k, p, scores.get(k), self.factory) for k, p in params.items()]
        kept = prune_smallest_magnitudes(sources, survivors, count)
        return dict(zip(params, kept, strict=True))


def _check_norm(n: object) -> Norm:
    if n == "fro" or n == "nuc":
        return n
    if isinstance(n, bool) or not isinstance(n, numbers.Real) or math.isnan(float(n)):
        raise ValueError(
            f"n={n!r} is not a norm order; allowed: an int or float (inf and -inf included), "
            "'fro' or 'nuc' (as torch.norm's p)"
        )
    return n if isinstance(n, int) else float(n)


def identity() -> Identity:
    """A method that prunes nothing: it returns the incoming masks (all-``True`` where missing).

    >>> import torch, funcprune as fp
    >>> fp.identity()({"b": torch.zeros(2)})
    {'b': tensor([True, True])}
    """
    return Identity()


def random_unstructured(amount: Amount, *, seed: int = 0) -> RandomUnstructured:
    """Prune ``amount`` of the remaining entries of each parameter at random.

    Randomness is a counter-based hash of ``(seed, key, flat index)``: the same on every run,
    thread count and device, independent of the global RNG, and nested across amounts.

    >>> import torch, funcprune as fp
    >>> m = fp.random_unstructured(2, seed=1)({"w": torch.zeros(5)})["w"]
    >>> int((~m).sum())
    2
    """
    return RandomUnstructured(check_amount(amount), check_int("seed", seed))


def l1_unstructured(amount: Amount) -> L1Unstructured:
    """Prune ``amount`` of the remaining entries with the smallest magnitude.

    Scores are ``|importance_scores[key]|`` when given, else ``|param|``. Ties at the threshold
    are pruned lowest flat index first.

    >>> import torch, funcprune as fp
    >>> fp.l1_unstructured(0.5)({"w": torch.tensor([3.0, -1.0, 2.0, 0.5])})["w"]
    tensor([ True, False,  True, False])
    """
    return L1Unstructured(check_amount(amount))


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


def custom_from_mask(masks: Mapping[str, Tensor]) -> CustomFromMask:
    """Prune what the given masks prune (nonzero keeps), on top of the incoming masks.

    Keys not in ``masks`` are left as they are. Applying it twice changes nothing more.

    >>> import torch, funcprune as fp
    >>> fp.custom_from_mask({"b": torch.tensor([1, 0, 1])})({"b": torch.zeros(3)})["b"]
    tensor([ True, False,  True])
    """
    if not isinstance(masks, Mapping):
        raise TypeError(
            f"masks must be a mapping from parameter names to tensors; got {type(masks).__name__}"
        )
    not_tensors = sorted(k for k, v in masks.items() if not isinstance(v, Tensor))
    if not_tensors:
        raise TypeError(
            f"custom_from_mask: masks values must be tensors; not tensors at {not_tensors}"
        )
    items = tuple(
        (key, mask if mask.dtype == torch.bool else mask != 0) for key, mask in masks.items()
    )
    return CustomFromMask(items)


def global_unstructured(
    amount: Amount, *, scores: Literal["l1", "random"] = "l1", seed: int = 0
) -> GlobalUnstructured:
    """Prune ``amount`` of the remaining entries across all parameters together.

    A float is a fraction of all remaining entries of all keys. ``scores="l1"`` ranks by
    ``|importance_scores[key]|`` (else ``|param|``); ``"random"`` by the seeded counter hash. Ties
    are pruned lowest index first in the order of ``params``' keys, as if concatenated.

    >>> import torch, funcprune as fp
    >>> params = {"a": torch.tensor([1.0, 4.0]), "b": torch.tensor([2.0, 3.0])}
    >>> fp.global_unstructured(0.5)(params)
    {'a': tensor([False,  True]), 'b': tensor([False,  True])}
    """
    if scores not in ("l1", "random"):
        raise ValueError(f"scores={scores!r} is not supported; allowed: 'l1' or 'random'")
    return GlobalUnstructured(check_amount(amount), scores, check_int("seed", seed))


__all__ = [
    "CustomFromMask",
    "GlobalUnstructured",
    "Identity",
    "L1Unstructured",
    "LnStructured",
    "Norm",
    "RandomStructured",
    "RandomUnstructured",
    "custom_from_mask",
    "global_unstructured",
    "identity",
    "l1_unstructured",
    "ln_structured",
    "random_structured",
    "random_unstructured",
]
