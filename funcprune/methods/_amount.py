"""Amounts: validation at the factory, conversion to a count of units at call time.

An amount is a fraction of the **remaining** units (a float in [0, 1] or a 0-d floating tensor),
rounded half-to-even like Python's ``round`` (torch's rule), or a non-negative ``int`` count.

>>> import torch
>>> int(units_to_prune(0.5, torch.tensor(5), key="w", unit="entries"))  # round(2.5) == 2
2
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

from funcprune._checks import check_fraction
from funcprune._tensors import concrete_int, is_concrete
from funcprune.types import Amount

_ALLOWED = "a float in [0, 1], a non-negative int, or a 0-d floating tensor in [0, 1]"


def check_amount(amount: object, *, allowed: str = _ALLOWED) -> Amount:
    """Validate ``amount`` when a method is built; return it in canonical form.

    ``allowed`` describes what the caller accepts, for messages (compat takes no tensors).

    Raises:
        TypeError: for a bool, a string, a non-0-d or non-floating tensor, or any other type.
        ValueError: for a float outside [0, 1], NaN, inf, or a negative int.

    >>> check_amount(3), check_amount(0.25)
    (3, 0.25)
    >>> check_amount(-1)
    Traceback (most recent call last):
    ...
    ValueError: amount=-1 is a negative count; expected a float in [0, 1], a non-negative int, or a 0-d floating tensor in [0, 1]
    """
    if isinstance(amount, bool):
        raise TypeError(f"amount={amount!r} is a bool; expected {allowed}")
    if isinstance(amount, Tensor):
        if amount.dim() != 0 or not amount.is_floating_point() or amount.layout != torch.strided:
            raise TypeError(
                f"amount is a tensor of shape {tuple(amount.shape)}, dtype {amount.dtype} and "
                f"layout {amount.layout}; expected {allowed} (use an int for a count)"
            )
        amount = (
            amount.detach().clone()
        )  # a snapshot: later edits to the caller's tensor are not seen
        if is_concrete(amount):
            check_fraction("amount", float(amount), allowed=allowed)
        return amount
    if isinstance(amount, numbers.Integral):
        if amount < 0:
            raise ValueError(f"amount={amount} is a negative count; expected {allowed}")
        return int(amount)
    if isinstance(amount, numbers.Real):
        return check_fraction("amount", float(amount), allowed=allowed)
    raise TypeError(f"amount={amount!r} has type {type(amount).__name__}; expected {allowed}")


def units_to_prune(
    amount: Amount, remaining: Tensor, *, key: str, unit: str, known: int | None = None
) -> Tensor:
    """How many of ``remaining`` units to prune, as a 0-d int64 tensor (vmap- and compile-safe).

    Fractions round half-to-even in float64, exactly as Python's ``round(amount * remaining)``.
    A tensor fraction whose value could not be checked when the method was built (under ``vmap``
    or ``torch.compile``) is clamped instead: NaN and values below 0 prune nothing, values above 1
    (``inf`` included) prune everything. An int count is checked against the remaining units
    whenever that number is known: from shapes alone (``known``, so also under ``vmap`` and
    ``compile``), or from readable masks; against traced or batched masks it is clamped.

    Args:
        amount: a value accepted by :func:`check_amount`.
        remaining: 0-d integer tensor, the number of units still unpruned.
        key: the parameter name, for error messages (``"<all parameters>"`` for global methods).
        unit: what a unit is (``"entries"`` or ``"slices along dim 0"``), for error messages.
        known: ``remaining`` as a Python int when it follows from shapes (no incoming masks).

    Raises:
        ValueError: an int count larger than the remaining units.
        TypeError: a ``meta`` tensor amount for parameters that hold values.

    >>> import torch
    >>> int(units_to_prune(0.7, torch.tensor(10), key="w", unit="entries"))
    7
    """
    remaining = remaining.to(torch.int64)
    if isinstance(amount, int):
        _check_count(amount, concrete_int(remaining) if known is None else known, key, unit)
    return _count(amount, remaining, key)


def row_units_to_prune(
    amount: Amount, remaining: Tensor, *, keys: Sequence[str], unit: str, known: int | None = None
) -> Tensor:
    """:func:`units_to_prune` for a batch of readable parameters: ``remaining[i]`` is ``keys[i]``'s.

    An int count larger than a row's remaining units raises naming the key with the fewest.

    >>> import torch
    >>> row_units_to_prune(0.5, torch.tensor([5, 4]), keys=["a", "b"], unit="entries").tolist()
    [2, 2]
    """
    remaining = remaining.to(torch.int64)
    if isinstance(amount, int):
        fewest = 0 if known is not None else int(remaining.argmin())
        left = known if known is not None else int(remaining[fewest])
        _check_count(amount, left, keys[fewest], unit)
    return _count(amount, remaining, keys[0])


def _check_count(amount: int, left: int | None, key: str, unit: str) -> None:
    """An int count may not exceed the ``left`` remaining units (when that number is known)."""
    if left is not None and amount > left:
        raise ValueError(
            f"{key!r}: amount={amount} asks to prune {amount} {unit} but only {left} remain "
            f"unpruned; pass a count <= {left} or a fraction"
        )


def _count(amount: Amount, remaining: Tensor, key: str) -> Tensor:
    """``amount`` of int64 ``remaining`` as a count of units, rounded half-to-even and clamped."""
    if isinstance(amount, int):
        return torch.minimum(torch.full_like(remaining, amount), remaining)
    fraction = _tensor_fraction(amount, remaining, key) if isinstance(amount, Tensor) else amount
    count = torch.round(remaining.to(torch.float64) * fraction).to(torch.int64)
    return torch.minimum(count.clamp(min=0), remaining)


def _tensor_fraction(amount: Tensor, remaining: Tensor, key: str) -> Tensor:
    """A tensor amount on ``remaining``'s device in float64, NaN as 0, clamped to [0, 1]."""
    if amount.device.type == "meta" and remaining.device.type != "meta":
        raise TypeError(
            f"{key!r}: amount is a meta tensor, which holds no value, but the parameter is on "
            f"{remaining.device}; pass the amount as a float or a tensor on a real device"
        )
    fraction = amount.to(device=remaining.device, dtype=torch.float64)
    return torch.nan_to_num(fraction, nan=0.0).clamp(0.0, 1.0)
