"""Sparsity schedules: pure functions of the training step (``constant``, ``one_shot``, ``polynomial``).

A schedule maps a step to a target sparsity. An ``int`` step gives a ``float``; a tensor step (0-d
or batched, integer or floating) gives a float64 tensor of its shape computed without Python
branching, so schedules run under ``torch.func.vmap`` and ``torch.compile`` and their output is a
valid tensor amount. Schedules are immutable values that compare equal by hyperparameters.

>>> import torch, funcprune as fp
>>> schedule = fp.polynomial(0.9, start=0, end=100, frequency=10)
>>> schedule(0), schedule(55), schedule(100)
(0.0, 0.7875, 0.9)
>>> schedule(torch.tensor([0, 50, 200]))
tensor([0.0000, 0.7875, 0.9000], dtype=torch.float64)
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import ClassVar, overload

import torch
from torch import Tensor

from funcprune._checks import check_fraction
from funcprune._tensors import is_concrete
from funcprune._value import Value, positional_metadata


def _as_tensor(step: int | Tensor) -> Tensor:
    if isinstance(step, Tensor):
        if step.dtype == torch.bool or step.is_complex():
            raise TypeError(
                f"step must be an int or an integer/floating tensor; got a {step.dtype} tensor"
            )
        return step.to(torch.float64)
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TypeError(f"step={step!r} must be an int or a tensor of steps")
    return torch.tensor(float(step), dtype=torch.float64)


class Schedule(Value):
    """Base of schedules: ``schedule(step) -> sparsity``; subclasses implement ``_at``.

    >>> import funcprune as fp
    >>> isinstance(fp.constant(0.5), Schedule)
    True
    """

    @overload
    def __call__(self, step: int) -> float: ...

    @overload
    def __call__(self, step: Tensor) -> Tensor: ...

    def __call__(self, step: int | Tensor) -> float | Tensor:
        """The target sparsity at ``step`` (a float for an int step, else a float64 tensor).

        >>> import torch, funcprune as fp
        >>> fp.one_shot(0.5, at=2)(3), fp.one_shot(0.5, at=2)(torch.tensor([1, 2]))
        (0.5, tensor([0.0000, 0.5000], dtype=torch.float64))
        """
        value = self._at(_as_tensor(step))
        return value if isinstance(step, Tensor) else float(value)

    def _at(self, step: Tensor) -> Tensor:
        raise NotImplementedError


@dataclass(frozen=True, eq=False, repr=False)
class Constant(Schedule):
    """The same sparsity at every step; see :func:`constant`.

    >>> import funcprune as fp
    >>> fp.constant(0.25) == Constant(0.25), fp.constant(0.25)
    (True, constant(0.25))
    """

    sparsity: float = field(metadata=positional_metadata())
    factory: ClassVar[str] = "constant"

    def _at(self, step: Tensor) -> Tensor:
        return torch.full_like(step, self.sparsity)


@dataclass(frozen=True, eq=False, repr=False)
class OneShot(Schedule):
    """0 before ``at``, ``sparsity`` from ``at`` on; see :func:`one_shot`.

    >>> import funcprune as fp
    >>> fp.one_shot(0.5, at=7).at
    7
    """

    sparsity: float = field(metadata=positional_metadata())
    at: int
    factory: ClassVar[str] = "one_shot"

    def _at(self, step: Tensor) -> Tensor:
        return (step >= self.at).to(torch.float64) * self.sparsity


@dataclass(frozen=True, eq=False, repr=False)
class Polynomial(Schedule):
    """Zhu & Gupta's gradual schedule; see :func:`polynomial`.

    >>> import funcprune as fp
    >>> fp.polynomial(0.9, start=0, end=10).power
    3.0
    """

    final: float = field(metadata=positional_metadata())
    initial: float
    start: int
    end: int
    frequency: int
    power: float
    factory: ClassVar[str] = "polynomial"

    def _at(self, step: Tensor) -> Tensor:
        clamped = step.clamp(self.start, self.end)
        last_update = (
            self.start + torch.floor((clamped - self.start) / self.frequency) * self.frequency
        )
        last_update = torch.where(step >= self.end, float(self.end), last_update)
        progress = (last_update - self.start) / (self.end - self.start)
        weight = 1.0 - (1.0 - progress) ** self.power
        # lerp is exact at both ends and monotone in its weight
        return torch.lerp(
            torch.full_like(step, self.initial), torch.full_like(step, self.final), weight
        )


def _step(name: str, value: object, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}={value!r} must be an int step")
    if value < minimum:
        raise ValueError(f"{name}={value} must be >= {minimum}")
    return int(value)


def constant(sparsity: float) -> Constant:
    """A schedule that is ``sparsity`` at every step.

    >>> import funcprune as fp
    >>> fp.constant(0.5)(1000)
    0.5
    """
    return Constant(check_fraction("sparsity", sparsity, what="sparsity"))


def one_shot(sparsity: float, *, at: int) -> OneShot:
    """A schedule that is 0 before step ``at`` and ``sparsity`` from step ``at`` on.

    >>> import funcprune as fp
    >>> schedule = fp.one_shot(0.8, at=10)
    >>> schedule(9), schedule(10)
    (0.0, 0.8)
    """
    return OneShot(check_fraction("sparsity", sparsity, what="sparsity"), _step("at", at))


def polynomial(
    final: float,
    *,
    initial: float = 0.0,
    start: int,
    end: int,
    frequency: int = 1,
    power: float = 3.0,
) -> Polynomial:
    """Gradual pruning (Zhu & Gupta, 2017): ``s_f + (s_i - s_f) * (1 - progress) ** power``.

    ``initial`` before ``start``; from ``start`` the sparsity changes only every ``frequency``
    steps (at ``start + k * frequency``), with ``progress = (k * frequency) / (end - start)``; from
    ``end`` on it is ``final``. ``power=3`` is the paper's cubic schedule: fast pruning early, slow
    near the end. Non-decreasing when ``final >= initial``.

    Args:
        final: sparsity from step ``end`` on.
        initial: sparsity up to and including step ``start``.
        start: first pruning step.
        end: step where ``final`` is reached, ``> start``.
        frequency: steps between sparsity updates (``Δt`` in the paper), ``>= 1``.
        power: exponent of the decay, ``> 0``.

    >>> import funcprune as fp
    >>> schedule = fp.polynomial(0.5, start=10, end=20, frequency=5)
    >>> [schedule(t) for t in (0, 10, 14, 15, 19, 20)]
    [0.0, 0.0, 0.0, 0.4375, 0.4375, 0.5]
    """
    final, initial = (
        check_fraction("final", final, what="sparsity"),
        check_fraction("initial", initial, what="sparsity"),
    )
    start, end = _step("start", start), _step("end", end)
    if end <= start:
        raise ValueError(f"end={end} must be after start={start} (use one_shot for a single step)")
    if isinstance(power, bool) or not isinstance(power, numbers.Real):
        raise TypeError(f"power={power!r} must be a positive number (3 is Zhu & Gupta's cubic)")
    if not power > 0:
        raise ValueError(f"power={power!r} must be a positive number (3 is Zhu & Gupta's cubic)")
    return Polynomial(final, initial, start, end, _step("frequency", frequency, 1), float(power))


def _tensor(x: Tensor | float) -> Tensor:
    """``x`` itself if it is a tensor, else a 0-d float64 tensor of it."""
    return x if isinstance(x, Tensor) else torch.tensor(x, dtype=torch.float64)


_SPARSITY = "a sparsity: a float in [0, 1] or a 0-d tensor"


def _sparsity(name: str, value: object) -> Tensor | float:
    """A sparsity: a float in [0, 1] or a 0-d tensor, checked like a float when it is readable.

    Under ``vmap`` or ``torch.compile`` a tensor cannot be read and passes unchecked; a NaN then
    reaches the method, which prunes nothing for it (the amount rule for unreadable values).
    """
    if isinstance(value, Tensor):
        if value.dim() == 0 and is_concrete(value):
            check_fraction(name, float(value), what="sparsity", allowed=_SPARSITY)
        return value
    return check_fraction(name, value, what="sparsity", allowed=_SPARSITY)


@overload
def fraction_of_remaining(target: float, current: float) -> float: ...


@overload
def fraction_of_remaining(target: Tensor | float, current: Tensor | float) -> Tensor | float: ...


def fraction_of_remaining(target: Tensor | float, current: Tensor | float) -> Tensor | float:
    """The amount (a fraction of the *remaining* entries) taking sparsity ``current`` to ``target``.

    Amounts are fractions of what survives, schedules give overall sparsities; chain the two with
    ``(target - current) / (1 - current)``, clamped to [0, 1] (0 once everything is pruned).

    >>> import torch, funcprune as fp
    >>> fp.fraction_of_remaining(0.75, 0.5)
    0.5
    >>> fp.fraction_of_remaining(torch.tensor(0.9), torch.tensor(1.0))
    tensor(0.)
    """
    target, current = _sparsity("target", target), _sparsity("current", current)
    if isinstance(target, Tensor) or isinstance(current, Tensor):
        goal, now = _tensor(target), _tensor(current)
        left = 1 - now
        ratio = (goal - now) / torch.where(left > 0, left, 1)
        return torch.where(left > 0, ratio.clamp(0.0, 1.0), 0.0)
    left_now = 1 - current
    return min(max((target - current) / left_now, 0.0), 1.0) if left_now > 0 else 0.0


__all__ = [
    "Constant",
    "OneShot",
    "Polynomial",
    "Schedule",
    "constant",
    "fraction_of_remaining",
    "one_shot",
    "polynomial",
]
