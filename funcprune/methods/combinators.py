"""Combinators: ``chain`` (torch's PruningContainer as a value) and ``only`` (restrict to keys).

>>> import torch, funcprune as fp
>>> m = fp.chain(fp.l1_unstructured(0.5), fp.l1_unstructured(1))({"w": torch.arange(1.0, 5.0)})
>>> m["w"]
tensor([False, False, False,  True])
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from funcprune.methods._base import Method, check_given_masks, complete, positional
from funcprune.types import Masks, Params, PruningMethod, Scores

KeyFilter = str | Callable[[str], bool] | None
"""A regular expression (matched with :func:`re.search`), a predicate on keys, or ``None``."""


def _splat(methods: tuple[PruningMethod, ...]) -> str:
    return ", ".join(map(repr, methods))


@dataclass(frozen=True, eq=False, repr=False)
class Chain(Method):
    """Methods applied in order, each among the survivors of the previous; see :func:`chain`."""

    methods: tuple[PruningMethod, ...] = positional(_splat)
    factory: ClassVar[str] = "chain"

    def _prune(self, params: Params, masks: Mapping[str, Tensor], scores: Scores) -> Masks:
        return complete(params, self._partial(params, masks, scores))

    def _partial(self, params: Params, masks: Mapping[str, Tensor], scores: Scores) -> Masks:
        current: Mapping[str, Tensor] = masks
        for stage, method in enumerate(self.methods):
            if isinstance(method, Method):  # a method's masks need no checks
                current = method._partial(params, current, scores)
            else:
                current = method(params, current, importance_scores=scores)
                _check_returned(params, current, scores, f"chain: stage {stage} ({method!r})")
        return dict(current)


def _check_returned(params: Params, masks: Mapping[str, Tensor], scores: Scores, who: str) -> None:
    """The masks a plain callable (not a funcprune method, whose masks are checked already)
    returned must be what a call accepts as masks; the error starts with ``who``.

    >>> import torch
    >>> _check_returned({"w": torch.ones(2)}, {"w": torch.ones(2)}, {}, "chain: stage 1 (f)")
    Traceback (most recent call last):
    ...
    TypeError: chain: stage 1 (f) returned masks that do not fit: masks must be bool tensors (True keeps, False prunes); got 'w' (torch.float32); convert with mask != 0
    """
    try:
        check_given_masks(params, masks, scores)
    except (TypeError, ValueError, KeyError) as error:
        message = error.args[0] if error.args else str(error)
        raise type(error)(f"{who} returned masks that do not fit: {message}") from None


def chain(*methods: PruningMethod) -> Chain:
    """Compose methods like torch's PruningContainer: ``chain(a, b)(p, m) == b(p, a(p, m))``.

    Later methods prune only among what earlier ones left. ``chain()`` prunes nothing, nested
    chains flatten (so ``chain`` is associative as a value too), and ``importance_scores`` reach
    every method.

    >>> import funcprune as fp
    >>> fp.chain(fp.chain(fp.identity(), fp.l1_unstructured(2)), fp.l1_unstructured(0.5))
    chain(identity(), l1_unstructured(2), l1_unstructured(0.5))
    """
    flat: list[PruningMethod] = []
    for method in methods:
        if not callable(method):
            raise TypeError(
                f"chain takes pruning methods (callables such as fp.l1_unstructured(0.5)); "
                f"got {type(method).__name__}: {method!r}"
            )
        flat.extend(method.methods if isinstance(method, Chain) else (method,))
    return Chain(tuple(flat))


def _check_filter(name: str, value: object) -> KeyFilter:
    if value is None or callable(value):
        return value
    if isinstance(value, str):
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(
                f"{name}={value!r} is not a valid regular expression: {error}"
            ) from None
        return value
    raise TypeError(
        f"{name} must be a regular expression string, a predicate on keys, or None; "
        f"got {type(value).__name__}"
    )


def _matches(key_filter: KeyFilter, key: str, default: bool) -> bool:
    if key_filter is None:
        return default
    if isinstance(key_filter, str):
        return re.search(key_filter, key) is not None
    return bool(key_filter(key))


@dataclass(frozen=True, eq=False, repr=False)
class Only(Method):
    """A method restricted to some keys; see :func:`only`."""

    method: PruningMethod = positional()
    include: KeyFilter = None
    exclude: KeyFilter = None
    allow_empty: bool = False
    factory: ClassVar[str] = "only"

    def selects(self, key: str) -> bool:
        """Whether ``key`` is pruned by the wrapped method."""
        return _matches(self.include, key, True) and not _matches(self.exclude, key, False)

    def _prune(self, params: Params, masks: Mapping[str, Tensor], scores: Scores) -> Masks:
        return complete(params, self._partial(params, masks, scores))

    def _partial(self, params: Params, masks: Mapping[str, Tensor], scores: Scores) -> Masks:
        chosen = {key: p for key, p in params.items() if self.selects(key)}
        if not chosen and params and not self.allow_empty:
            raise ValueError(
                f"only: include={self.include!r}, exclude={self.exclude!r} selects none of the "
                f"keys {sorted(params)}; fix the pattern, or pass allow_empty=True to let a "
                "parameter dict without such keys pass through unpruned"
            )
        given = {key: s for key, s in scores.items() if key in chosen}
        inner = self.method(
            chosen, {key: m for key, m in masks.items() if key in chosen}, importance_scores=given
        )
        if not isinstance(self.method, Method):
            _check_returned(chosen, inner, given, f"only: method {self.method!r}")
        return {
            key: inner[key] if key in chosen else masks[key]
            for key in params
            if (key in inner if key in chosen else key in masks)  # else all kept, as in chain
        }


def only(
    method: PruningMethod,
    include: KeyFilter = None,
    exclude: KeyFilter = None,
    *,
    allow_empty: bool = False,
) -> Only:
    """Apply ``method`` to the keys matching ``include`` and not ``exclude``; others pass through.

    Strings are regular expressions found anywhere in the key (:func:`re.search`); callables are
    predicates. A global method wrapped in ``only`` ranks only the selected keys together.

    A call whose filters select none of the (non-empty) parameters is a ``ValueError`` naming the
    filters and the keys, as :func:`funcprune.per_key` refuses amounts for missing keys: an
    LSTM's ``weight_ih_l0`` does not match ``r"weight$"``, and a typo would otherwise prune
    nothing, silently. The check runs at every call, on that call's keys, so one ``only`` value
    applied to the parameters of several models raises for a model it selects nothing of; pass
    ``allow_empty=True`` when that is intended.

    >>> import torch, funcprune as fp
    >>> params = {"0.weight": torch.tensor([1.0, 2.0]), "0.bias": torch.tensor([1.0, 2.0])}
    >>> fp.only(fp.l1_unstructured(1), include=r"weight$")(params)
    {'0.weight': tensor([False,  True]), '0.bias': tensor([True, True])}
    >>> fp.only(fp.l1_unstructured(1), include="kernel")(params)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: only: include='kernel', exclude=None selects none of the keys ['0.bias', '0.weight']; ...
    """
    if not callable(method):
        raise TypeError(f"only: method must be a pruning method; got {type(method).__name__}")
    if not isinstance(allow_empty, bool):
        raise TypeError(f"only: allow_empty must be a bool; got {type(allow_empty).__name__}")
    return Only(
        method, _check_filter("include", include), _check_filter("exclude", exclude), allow_empty
    )


__all__ = ["Chain", "KeyFilter", "Only", "chain", "only"]
