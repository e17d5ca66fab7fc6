"""Validation at the boundary: every offending key is named in one message, nothing is mutated.

Every check of its kind lives here once: parameter, mask and score dicts, the [0, 1] fraction,
ints and dims. A key that does not match the parameters (unknown or missing) is a
:class:`KeyMismatchError`, a ``ValueError`` (as ``torch.func.functional_call``'s) listing every
offending key.

>>> import torch
>>> check_params({"w": torch.ones(2)})
>>> check_masks({"w": torch.ones(2)}, {"b": torch.ones(2, dtype=torch.bool)})
Traceback (most recent call last):
...
funcprune._checks.KeyMismatchError: masks has keys that are not parameters: ['b']; parameter keys are ['w']
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

from funcprune.types import Params


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


class KeyMismatchError(ValueError, KeyError):
    """Keys that do not match the parameters: a ``ValueError`` that lists every offending key.

    It is also a ``KeyError``, which funcprune raised before, so ``except KeyError`` keeps working.

    >>> str(KeyMismatchError("masks has keys that are not parameters: ['b']"))
    "masks has keys that are not parameters: ['b']"
    """

    __str__ = ValueError.__str__  # a KeyError would print the message quoted


def check_known_keys(what: str, keys: Iterable[object], known: Iterable[str]) -> None:
    """Every key of ``keys`` must be in ``known`` (the parameter keys); all others are listed.

    >>> check_known_keys("grads", ["w", "x", "y"], ["w"])
    Traceback (most recent call last):
    ...
    funcprune._checks.KeyMismatchError: grads has keys that are not parameters: ['x', 'y']; parameter keys are ['w']
    """
    allowed = set(known)
    unknown = sorted(map(str, (k for k in keys if k not in allowed)))
    if unknown:
        raise KeyMismatchError(
            f"{what} has keys that are not parameters: {unknown}; parameter keys are {sorted(allowed)}"
        )


def check_fraction(
    name: str, value: object, *, what: str = "fraction", allowed: str = "a float in [0, 1]"
) -> float:
    """A Python real number in [0, 1] (a fraction or a sparsity), as a ``float``.

    Args:
        name: the argument's name, for messages.
        value: what was passed.
        what: what the number is, for messages (``"fraction"``, ``"sparsity"``).
        allowed: what the caller accepts, for the ``TypeError``'s message.

    Raises:
        TypeError: a bool or anything that is not a real number.
        ValueError: NaN, an infinity, or a number outside [0, 1].

    >>> check_fraction("sparsity", 0.5)
    0.5
    >>> check_fraction("sparsity", 1.5, what="sparsity")
    Traceback (most recent call last):
    ...
    ValueError: sparsity=1.5 is not a sparsity in [0, 1]; it must be a float in [0, 1]
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}={value!r} must be {allowed}")
    if not (math.isfinite(float(value)) and 0.0 <= float(value) <= 1.0):
        raise ValueError(f"{name}={value!r} is not a {what} in [0, 1]; it must be {allowed}")
    return float(value)


def check_tensor_mapping(what: str, other: object) -> Mapping[str, Tensor]:
    """``other`` must be a mapping with tensor values (keys and shapes are the caller's to check).

    >>> check_tensor_mapping("grads", {"w": 1.0})
    Traceback (most recent call last):
    ...
    TypeError: grads values must be tensors; not tensors at keys ['w']
    """
    if not isinstance(other, Mapping):
        raise TypeError(
            f"{what} must be a mapping from parameter names to tensors; got {type(other).__name__}"
        )
    not_tensors = sorted(repr(k) for k, v in other.items() if not isinstance(v, Tensor))
    if not_tensors:
        raise TypeError(
            f"{what} values must be tensors; not tensors at keys [{', '.join(not_tensors)}]"
        )
    return other


def check_params(params: object) -> None:
    """``params`` must be a mapping from ``str`` to ``Tensor``.

    >>> check_params([1, 2])
    Traceback (most recent call last):
    ...
    TypeError: params must be a mapping from parameter names to tensors (e.g. dict(model.named_parameters())); got list
    """
    if not isinstance(params, Mapping):
        raise TypeError(
            "params must be a mapping from parameter names to tensors "
            f"(e.g. dict(model.named_parameters())); got {type(params).__name__}"
        )
    bad = sorted(
        f"{k!r} ({type(v).__name__})"
        for k, v in params.items()
        if not (isinstance(k, str) and isinstance(v, Tensor))
    )
    if bad:
        raise TypeError(f"params must map str keys to tensors; offending entries: {', '.join(bad)}")


def check_tensor_dict(
    params: Params, other: Mapping[str, object], what: str, *, bool_only: bool = False
) -> None:
    """Keys of ``other`` must be parameter keys, its values tensors of the parameters' shapes.

    Args:
        params: the parameters ``other`` refers to.
        other: masks or importance scores.
        what: its name in messages (``"masks"``, ``"importance_scores"``).
        bool_only: require ``torch.bool`` values (masks).

    Raises:
        TypeError: not a mapping, a value that is not a tensor, or (``bool_only``) not bool.
        KeyMismatchError: keys that are not in ``params`` (a ``ValueError``).
        ValueError: values whose shapes differ from their parameters'.
    """
    if not isinstance(other, Mapping):
        raise TypeError(
            f"{what} must be a mapping from parameter names to tensors; got {type(other).__name__}"
        )
    check_known_keys(what, other, params)
    tensors = check_tensor_mapping(what, other)
    mismatched = sorted(
        f"{k!r}: {_shape(v)} vs parameter {_shape(params[k])}"
        for k, v in tensors.items()
        if v.shape != params[k].shape
    )
    if mismatched:
        raise ValueError(
            f"{what} must match their parameters' shapes; mismatched: {'; '.join(mismatched)}"
        )
    if bool_only:
        not_bool = sorted(f"{k!r} ({v.dtype})" for k, v in tensors.items() if v.dtype != torch.bool)
        if not_bool:
            raise TypeError(
                f"{what} must be bool tensors (True keeps, False prunes); got {', '.join(not_bool)}; "
                "convert with mask != 0"
            )


def check_masks(params: Params, masks: Mapping[str, object]) -> None:
    """Masks: parameter keys only, bool, parameter shapes."""
    check_tensor_dict(params, masks, "masks", bool_only=True)


def check_floating(key: str, t: Tensor, role: str, method: str) -> None:
    """Norm- and magnitude-based scores need floating tensors.

    >>> import torch
    >>> check_floating("w", torch.ones(2, dtype=torch.int64), "parameter", "l1_unstructured")
    Traceback (most recent call last):
    ...
    TypeError: 'w': l1_unstructured needs a floating parameter, got torch.int64; pass floating importance_scores for it, or exclude it with funcprune.only(...)
    """
    if not t.is_floating_point():
        raise TypeError(
            f"{key!r}: {method} needs a floating {role}, got {t.dtype}; pass floating "
            "importance_scores for it, or exclude it with funcprune.only(...)"
        )


def check_int(name: str, value: object, meaning: str = "") -> int:
    """A hyperparameter that must be an ``int`` (not a bool).

    >>> check_int("seed", 3)
    3
    >>> check_int("dim", 0.5, "the dim whose slices are pruned")
    Traceback (most recent call last):
    ...
    TypeError: dim=0.5 must be an int (the dim whose slices are pruned)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}={value!r} must be an int" + (f" ({meaning})" if meaning else ""))
    return int(value)


def check_dim(key: str, shape: tuple[int, ...], dim: int, hint: str = "") -> int:
    """``dim`` normalized to ``[0, len(shape))``; a ValueError naming the key when out of range.

    >>> check_dim("w", (2, 3), -1)
    1
    >>> check_dim("w", (2, 3), 2)
    Traceback (most recent call last):
    ...
    ValueError: 'w': dim=2 is out of range for shape (2, 3); allowed dims are -2 to 1
    """
    if not -len(shape) <= dim < len(shape):
        raise ValueError(
            f"{key!r}: dim={dim} is out of range for shape {tuple(shape)}; "
            f"allowed dims are {-len(shape)} to {len(shape) - 1}" + hint
        )
    return dim % len(shape)
