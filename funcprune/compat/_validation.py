"""torch's private validation helpers, on the core's amount rules (:mod:`funcprune.methods._amount`).

Downstream code and tests call these by their torch names, so they keep torch's names, signatures
and error types (``TypeError`` for a non-number amount, ``ValueError`` for a bad value or a count
larger than the tensor, ``IndexError`` for a dim out of range).

>>> _compute_nparams_toprune(0.25, 10)  # round(2.5) == 2, half-to-even like torch
2
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from funcprune.methods._amount import check_amount, units_to_prune

TorchAmount = int | float
"""What torch accepts as an amount: a Python (or numpy) real number; ``bool`` counts as an int."""

_ALLOWED = "a float in [0, 1] or a non-negative int"

Norm = int | float | str | None
"""A norm order as :func:`torch.norm`'s ``p`` takes it."""


def _canonical(amount: TorchAmount) -> int | float:
    return int(amount) if isinstance(amount, numbers.Integral) else float(amount)


def _validate_pruning_amount_init(amount: object) -> None:
    """Check an amount when a method is built: a real number, a fraction in [0, 1] or a count >= 0.

    A NaN passes, as in torch (its range check compares), and fails when the count is computed
    (:func:`_compute_nparams_toprune`), after the structured checks: the error types stay torch's.

    Raises:
        TypeError: ``amount`` is not a real number (a tensor or a string, say), as in torch.
        ValueError: a float outside [0, 1], or a negative int.

    >>> _validate_pruning_amount_init(1.5)
    Traceback (most recent call last):
    ...
    ValueError: amount=1.5 is not a fraction in [0, 1]; it must be a float in [0, 1] or a non-negative int
    """
    if not isinstance(amount, numbers.Real):
        raise TypeError(
            f"Invalid type for amount: {amount!r}. Must be int or float (funcprune.compat, like "
            "torch.nn.utils.prune, takes Python numbers; the pure API also takes 0-d tensors)."
        )
    if isinstance(amount, numbers.Integral) or not math.isnan(float(amount)):
        check_amount(_canonical(amount), allowed=_ALLOWED)  # type: ignore[arg-type]


def count_to_prune(
    amount: TorchAmount, size: int, *, key: str = "<tensor>", unit: str = "entries"
) -> int:
    """How many of ``size`` units an amount prunes; ``ValueError`` for a count above ``size``.

    >>> count_to_prune(3, 4), count_to_prune(0.5, 5)
    (3, 2)
    """
    count = _compute_nparams_toprune(amount, size)
    return int(units_to_prune(count, torch.tensor(size), key=key, unit=unit, known=size))


def _validate_pruning_amount(amount: TorchAmount, tensor_size: int) -> None:
    """An int count must not exceed ``tensor_size`` (``ValueError``); fractions always fit.

    >>> _validate_pruning_amount(5, 4)
    Traceback (most recent call last):
    ...
    ValueError: '<tensor>': amount=5 asks to prune 5 entries but only 4 remain unpruned; pass a count <= 4 or a fraction
    """
    if isinstance(amount, numbers.Integral):
        count_to_prune(amount, tensor_size)


def _compute_nparams_toprune(amount: TorchAmount, tensor_size: int) -> int:
    """The number of units to prune: an int as is, else ``round(amount * tensor_size)``.

    The product is taken in the amount's own type, as torch does: ``np.float32(0.7)`` of 45 is
    ``np.float32(31.5)``, which rounds (half-to-even) to 32, where the float ``0.7`` gives 31.
    ``Fraction`` amounts are exact. A NaN amount raises ``ValueError``, as torch's ``round`` does.

    >>> _compute_nparams_toprune(7, 10), _compute_nparams_toprune(0.35, 10)
    (7, 4)
    """
    if isinstance(amount, numbers.Integral):
        return int(amount)
    product = amount * tensor_size
    if math.isnan(product):
        raise ValueError(
            f"amount={amount} is NaN, which is no number of units to prune; "
            "pass a float in [0, 1] or a non-negative int"
        )
    return round(float(product))  # exact: float64 holds every float32 or float16 product


def _validate_structured_pruning(t: Tensor) -> None:
    """Structured pruning needs slices: ``t`` must have at least two dims (``ValueError``).

    >>> _validate_structured_pruning(torch.zeros(3))
    Traceback (most recent call last):
    ...
    ValueError: Structured pruning can only be applied to multidimensional tensors. Found tensor of shape (3,) with 1 dims; prune 1-d tensors with an unstructured method
    """
    if t.dim() <= 1:
        raise ValueError(
            "Structured pruning can only be applied to multidimensional tensors. Found tensor "
            f"of shape {tuple(t.shape)} with {t.dim()} dims; prune 1-d tensors with an "
            "unstructured method"
        )


def _validate_pruning_dim(t: Tensor, dim: int) -> None:
    """``dim`` must index a dim of ``t`` (``IndexError``, torch's type), negatives included.

    >>> _validate_pruning_dim(torch.zeros(2, 3), 2)
    Traceback (most recent call last):
    ...
    IndexError: Invalid index 2 for tensor of size (2, 3); allowed dims are -2 to 1
    """
    if not -t.dim() <= dim < t.dim():
        raise IndexError(
            f"Invalid index {dim} for tensor of size {tuple(t.shape)}; "
            f"allowed dims are {-t.dim()} to {t.dim() - 1}"
        )


_TORCH_SPLITS_NORMS = tuple(int(part) for part in torch.__version__.split(".")[:2]) >= (2, 14)
"""torch 2.14 stopped calling ``torch.norm`` in ``_compute_norm``: its ``'fro'`` over other than two
dims became the flat 2-norm, and other orders go to ``linalg.vector_norm`` (another error type)."""


def _compute_norm(t: Tensor, n: Norm, dim: int) -> Tensor:
    """The ``n``-norm of every slice of ``t`` along ``dim`` (over all other dims), as torch's.

    It follows the installed torch: ``torch.norm`` up to 2.13, and from 2.14 a matrix norm for
    ``'nuc'`` and for ``'fro'`` over two dims, ``torch.linalg.vector_norm`` otherwise.

    >>> _compute_norm(torch.tensor([[3.0, 4.0], [0.0, 1.0]]), 2, 0)
    tensor([5., 1.])
    """
    _validate_pruning_dim(t, dim)
    channel = dim % t.dim()
    others = [d for d in range(t.dim()) if d != channel]
    norms: Tensor
    matrix = len(others) == 2
    if not _TORCH_SPLITS_NORMS:
        norms = torch.norm(t, p=n, dim=others)
    elif n == "nuc" or (n == "fro" and matrix):
        norms = torch.linalg.matrix_norm(t, ord=n, dim=others if matrix else (-2, -1))
    else:
        norms = torch.linalg.vector_norm(t, ord=2 if n == "fro" else n, dim=others)
    return norms


__all__ = [
    "Norm",
    "TorchAmount",
    "_compute_norm",
    "_compute_nparams_toprune",
    "_validate_pruning_amount",
    "_validate_pruning_amount_init",
    "_validate_pruning_dim",
    "_validate_structured_pruning",
    "count_to_prune",
]
