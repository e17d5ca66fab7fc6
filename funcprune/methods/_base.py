"""The base every pruning method shares: boundary checks, value equality and a factory-style repr.

A method is a frozen dataclass: its fields are its hyperparameters, it compares and hashes by
value (tensors by shape, dtype and contents) and prints as the factory call that builds it.

>>> import funcprune as fp
>>> fp.l1_unstructured(0.5) == fp.l1_unstructured(0.5), fp.l1_unstructured(0.5)
(True, l1_unstructured(0.5))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from funcprune._checks import check_masks, check_params, check_tensor_dict
from funcprune._tensors import is_concrete
from funcprune.distributed._detect import any_dtensor
from funcprune.types import Masks, Params, Scores


def _comparable(value: object) -> object:
    if isinstance(value, Tensor):
        return (
            "tensor",
            tuple(value.shape),
            value.dtype,
            value.device,
            value.detach().cpu().tolist(),
        )
    if isinstance(value, tuple):
        return tuple(_comparable(v) for v in value)
    return value


def _hashable(value: object) -> object:
    if isinstance(value, Tensor):
        return ("tensor", tuple(value.shape), value.dtype)
    if isinstance(value, tuple):
        return tuple(_hashable(v) for v in value)
    return value


def _show(value: object) -> str:
    if isinstance(value, Tensor):
        if value.dim() == 0 and is_concrete(value):
            return f"tensor({value.item():g})"
        return f"tensor(shape={tuple(value.shape)}, dtype={value.dtype})"
    return repr(value)


class Method:
    """Base class of pruning methods; subclasses are frozen dataclasses implementing ``_prune``."""

    factory: ClassVar[str]
    """The public factory's name, used by ``repr``."""

    def __call__(
        self,
        params: Params,
        masks: Mapping[str, Tensor] | None = None,
        *,
        importance_scores: Scores | None = None,
    ) -> Masks:
        """Masks for every key of ``params``, pruning only among the survivors of ``masks``."""
        check_params(params)
        masks = {} if masks is None else masks
        check_masks(params, masks)
        scores = {} if importance_scores is None else importance_scores
        check_tensor_dict(params, scores, "importance_scores")
        if any_dtensor(params.values()):  # torch.distributed DTensors: see funcprune.distributed
            from funcprune.distributed._methods import prune

            return prune(self, params, masks, scores)
        return self._prune(params, masks, scores)

    def _prune(self, params: Params, masks: Mapping[str, Tensor], scores: Scores) -> Masks:
        raise NotImplementedError

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self))  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Method) or type(self) is not type(other):
            return NotImplemented
        return _comparable(self._values()) == _comparable(other._values())

    def __hash__(self) -> int:
        return hash((type(self), _hashable(self._values())))

    def __repr__(self) -> str:
        fields = dataclasses.fields(self)  # type: ignore[arg-type]
        parts = []
        for index, field in enumerate(fields):
            value = getattr(self, field.name)
            if field.metadata.get("hidden"):
                continue
            shown = _show(value)
            parts.append(
                shown
                if index == 0 and field.metadata.get("positional")
                else f"{field.name}={shown}"
            )
        return f"{self.factory}({', '.join(parts)})"


class PerKeyMethod(Method):
    """A method that prunes each parameter on its own: subclasses implement ``_prune_one``."""

    def _prune(self, params: Params, masks: Mapping[str, Tensor], scores: Scores) -> Masks:
        return {
            key: self._prune_one(key, param, masks.get(key), scores.get(key))
            for key, param in params.items()
        }

    def _prune_one(
        self, key: str, param: Tensor, survivors: Tensor | None, score: Tensor | None
    ) -> Tensor:
        """The mask of one parameter, given its survivors and importance score (if any)."""
        raise NotImplementedError


def positional() -> Any:
    """Dataclass field shown positionally in ``repr`` (the ``amount``)."""
    return dataclasses.field(metadata={"positional": True})


def all_kept(param: Tensor) -> Tensor:
    """A mask keeping every entry of ``param``.

    >>> import torch
    >>> all_kept(torch.zeros(2))
    tensor([True, True])
    """
    return torch.ones(param.shape, dtype=torch.bool, device=param.device)
