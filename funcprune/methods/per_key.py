"""``per_key``: any method factory, with a different amount for each parameter.

>>> import torch, funcprune as fp
>>> params = {"a": torch.tensor([1.0, 2.0, 3.0]), "b": torch.tensor([1.0, 2.0])}
>>> fp.per_key(fp.l1_unstructured, {"a": 2, "b": 0.5})(params)
{'a': tensor([False, False,  True]), 'b': tensor([False,  True])}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from funcprune._checks import KeyMismatchError
from funcprune.methods._base import Method, complete, positional
from funcprune.types import Amount, Masks, Params, PruningMethod, Scores


def _as_dict(methods: tuple[tuple[str, PruningMethod], ...]) -> str:
    return "{" + ", ".join(f"{key!r}: {method!r}" for key, method in methods) + "}"


@dataclass(frozen=True, eq=False, repr=False)
class PerKey(Method):
    """One method per key, each seeing only its own parameter; see :func:`per_key`.

    >>> import funcprune as fp
    >>> dict(fp.per_key(fp.l1_unstructured, {"a": 1, "b": 0.5}).methods)
    {'a': l1_unstructured(1), 'b': l1_unstructured(0.5)}
    """

    methods: tuple[tuple[str, PruningMethod], ...] = positional(_as_dict)
    factory: ClassVar[str] = "per_key"

    def _prune(self, params: Params, masks: Mapping[str, Tensor], scores: Scores) -> Masks:
        return complete(params, self._partial(params, masks, scores))

    def _partial(self, params: Params, masks: Mapping[str, Tensor], scores: Scores) -> Masks:
        chosen = dict(self.methods)
        unknown = sorted(key for key in chosen if key not in params)
        if unknown:
            raise KeyMismatchError(
                f"per_key has amounts for keys that are not parameters: {unknown}; parameter keys "
                f"are {sorted(params)} (drop those amounts, or pass those parameters)"
            )
        result: Masks = {}
        for key, param in params.items():
            if key in chosen:
                own = {key: masks[key]} if key in masks else {}
                score = {key: scores[key]} if key in scores else {}
                result[key] = chosen[key]({key: param}, own, importance_scores=score)[key]
            elif key in masks:
                result[key] = masks[key]
        return result


def per_key(
    factory: Callable[..., PruningMethod], amounts: Mapping[str, Amount], **hyperparameters: Any
) -> PerKey:
    """Build ``factory(amounts[key], **hyperparameters)`` for every key and apply each to its key.

    Works with every factory taking an amount first (:func:`funcprune.l1_unstructured`,
    :func:`funcprune.ln_structured`, :func:`funcprune.global_unstructured`, your own ...); pair it
    with :func:`funcprune.uniform` or :func:`funcprune.erk`. Each method sees only its own
    parameter, mask and importance score; keys without an amount pass through unchanged. Amounts
    are validated when the method is built; a key of ``amounts`` missing from the parameters at
    call time is a ``ValueError`` (a typo would otherwise silently prune nothing).

    Args:
        factory: a method factory called as ``factory(amount, **hyperparameters)``.
        amounts: ``{key: amount}``, each a float fraction, int count or 0-d tensor.
        **hyperparameters: the factory's keyword arguments, shared by all keys.

    >>> import torch, funcprune as fp
    >>> method = fp.per_key(fp.ln_structured, {"w": 1}, n=1, dim=0)
    >>> method
    per_key({'w': ln_structured(1, n=1, dim=0)})
    >>> method({"w": torch.tensor([[1.0, 1.0], [0.1, 0.0]]), "b": torch.zeros(2)})
    {'w': tensor([[ True,  True],
            [False, False]]), 'b': tensor([True, True])}
    """
    if not callable(factory):
        raise TypeError(
            f"per_key: factory must be a method factory such as fp.l1_unstructured; got {factory!r}"
        )
    if not isinstance(amounts, Mapping):
        raise TypeError(
            f"per_key: amounts must be a mapping from parameter names to amounts; got {type(amounts).__name__}"
        )
    not_str = sorted(repr(key) for key in amounts if not isinstance(key, str))
    if not_str:
        raise TypeError(
            f"per_key: amounts keys must be parameter names (str); got {', '.join(not_str)}"
        )
    return PerKey(
        tuple((key, factory(amount, **hyperparameters)) for key, amount in amounts.items())
    )


__all__ = ["PerKey", "per_key"]
