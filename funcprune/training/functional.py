"""Pure SGD and Adam steps that keep pruned weights at zero: ``sgd`` and ``adam``.

Each factory returns an immutable optimizer with ``init(params) -> state`` and
``step(params, grads, state, masks=None) -> (params, state)``. The math is torch.optim's
(``SGD`` with momentum, dampening, Nesterov and weight decay; ``Adam``/``AdamW``); with ``masks``,
the pruned entries of the gradient (weight decay included), of every state buffer and of the
returned parameters are exactly zero, so nothing ever regrows. Nothing is mutated and every step
is plain tensor arithmetic, so it composes with ``torch.func.grad``, ``vmap`` and ``torch.compile``.

>>> import torch, funcprune as fp
>>> opt = fp.sgd(0.1, momentum=0.9, weight_decay=0.01)
>>> params = {"w": torch.tensor([1.0, 2.0])}
>>> state = opt.init(params)
>>> masks = {"w": torch.tensor([True, False])}
>>> for _ in range(3):
...     grads = {"w": torch.tensor([0.5, -4.0])}
...     params, state = opt.step(params, grads, state, masks)
>>> params["w"]
tensor([0.7141, 0.0000])
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor

from funcprune._checks import KeyMismatchError, check_masks, check_params, check_tensor_dict
from funcprune._value import Value, positional
from funcprune.types import Params


class SGDState(NamedTuple):
    """Steps taken so far (0-d int64) and one momentum buffer per key (empty without momentum).

    >>> import torch, funcprune as fp
    >>> fp.sgd(0.1, momentum=0.9).init({"w": torch.ones(2)})
    SGDState(steps=tensor(0), momentum={'w': tensor([0., 0.])})
    """

    steps: Tensor
    momentum: dict[str, Tensor]


class AdamState(NamedTuple):
    """Steps taken so far (0-d int64) and Adam's first and second moments per key.

    >>> import torch, funcprune as fp
    >>> fp.adam().init({"w": torch.ones(1)})
    AdamState(steps=tensor(0), exp_avg={'w': tensor([0.])}, exp_avg_sq={'w': tensor([0.])})
    """

    steps: Tensor
    exp_avg: dict[str, Tensor]
    exp_avg_sq: dict[str, Tensor]


def _checked(
    params: Params, grads: Mapping[str, Tensor], masks: Mapping[str, Tensor] | None
) -> Mapping[str, Tensor]:
    check_params(params)
    check_tensor_dict(params, grads, "grads")
    missing = sorted(key for key in params if key not in grads)
    if missing:
        raise KeyMismatchError(
            f"grads lacks keys {missing}; pass a gradient for every parameter (torch.func.grad does)"
        )
    masks = {} if masks is None else masks
    check_masks(params, masks)
    return masks


def _check_state(params: Params, *buffers: Mapping[str, Tensor]) -> None:
    """Every per-key state buffer must have every parameter key (a state built by ``init``)."""
    missing = sorted({key for key in params for held in buffers if key not in held})
    if missing:
        raise KeyMismatchError(
            f"state lacks keys {missing}; build the state with init(params) for the same "
            "parameters you step"
        )


def _keep(mask: Tensor | None, param: Tensor) -> Tensor | None:
    """The mask in the parameter's dtype (a same-dtype product is much faster than one with bool)."""
    return None if mask is None else mask.to(param.dtype)


def _masked(t: Tensor, keep: Tensor | None) -> Tensor:
    return t if keep is None else t * keep


def _zeros(params: Params) -> dict[str, Tensor]:
    return {key: torch.zeros_like(p) for key, p in params.items()}


@dataclass(frozen=True, eq=False, repr=False)
class SGD(Value):
    """torch.optim.SGD as a pure function, masked; see :func:`sgd`.

    >>> import funcprune as fp
    >>> fp.sgd(0.1, momentum=0.9)
    sgd(0.1, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=False)
    """

    lr: float = positional()
    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False
    factory: ClassVar[str] = "sgd"

    def init(self, params: Params) -> SGDState:
        """Zero step count and (with momentum) zero buffers shaped like ``params``.

        >>> import torch, funcprune as fp
        >>> fp.sgd(0.1).init({"w": torch.ones(2)}).momentum  # no momentum, no buffers
        {}
        """
        check_params(params)
        return SGDState(torch.zeros((), dtype=torch.int64), _zeros(params) if self.momentum else {})

    def step(
        self,
        params: Params,
        grads: Mapping[str, Tensor],
        state: SGDState,
        masks: Mapping[str, Tensor] | None = None,
    ) -> tuple[dict[str, Tensor], SGDState]:
        """One SGD step; pruned entries of params and buffers come back exactly zero.

        >>> import torch, funcprune as fp
        >>> opt, params = fp.sgd(1.0), {"w": torch.tensor([2.0, 2.0])}
        >>> opt.step(params, {"w": torch.ones(2)}, opt.init(params), {"w": torch.tensor([True, False])})[0]
        {'w': tensor([1., 0.])}
        """
        masks = _checked(params, grads, masks)
        if self.momentum:
            _check_state(params, state.momentum)
        new_params, buffers = {}, {}
        for key, p in params.items():
            keep = _keep(masks.get(key), p)
            d_p = grads[key].add(p, alpha=self.weight_decay) if self.weight_decay else grads[key]
            d_p = _masked(d_p, keep)
            if self.momentum:
                buffer = state.momentum[key].mul(self.momentum).add(d_p, alpha=1 - self.dampening)
                if self.dampening:  # torch starts the buffer at d_p, undamped
                    buffer = torch.where(state.steps == 0, d_p, buffer)
                buffers[key] = _masked(buffer, keep)
                d_p = d_p.add(buffers[key], alpha=self.momentum) if self.nesterov else buffers[key]
            new_params[key] = _masked(p.add(d_p, alpha=-self.lr), keep)
        return new_params, SGDState(state.steps + 1, buffers)


@dataclass(frozen=True, eq=False, repr=False)
class Adam(Value):
    """torch.optim.Adam / AdamW as a pure function, masked; see :func:`adam`.

    >>> import funcprune as fp
    >>> fp.adam(0.01, weight_decay=0.1, decoupled_weight_decay=True).decoupled_weight_decay
    True
    """

    lr: float = positional(default=1e-3)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    decoupled_weight_decay: bool = False
    factory: ClassVar[str] = "adam"

    def init(self, params: Params) -> AdamState:
        """Zero step count and zero moments shaped like ``params``.

        >>> import torch, funcprune as fp
        >>> int(fp.adam().init({"w": torch.ones(2)}).steps)
        0
        """
        check_params(params)
        return AdamState(torch.zeros((), dtype=torch.int64), _zeros(params), _zeros(params))

    def step(
        self,
        params: Params,
        grads: Mapping[str, Tensor],
        state: AdamState,
        masks: Mapping[str, Tensor] | None = None,
    ) -> tuple[dict[str, Tensor], AdamState]:
        """One Adam step; pruned entries of params and moments come back exactly zero.

        >>> import torch, funcprune as fp
        >>> opt, params = fp.adam(0.5), {"w": torch.tensor([2.0, 2.0])}
        >>> opt.step(params, {"w": torch.ones(2)}, opt.init(params), {"w": torch.tensor([True, False])})[0]
        {'w': tensor([1.5000, 0.0000])}
        """
        masks = _checked(params, grads, masks)
        _check_state(params, state.exp_avg, state.exp_avg_sq)
        beta1, beta2 = self.betas
        steps = state.steps + 1
        correction1 = 1 - beta1 ** steps.to(torch.float64)
        correction2_sqrt = (1 - beta2 ** steps.to(torch.float64)).sqrt()
        new_params, exp_avg, exp_avg_sq = {}, {}, {}
        step_size = self.lr / correction1
        for key, p in params.items():
            keep = _keep(masks.get(key), p)
            grad = grads[key]
            if self.weight_decay and self.decoupled_weight_decay:
                p = p.mul(1 - self.lr * self.weight_decay)
            elif self.weight_decay:
                grad = grad.add(p, alpha=self.weight_decay)
            grad = _masked(grad, keep)
            exp_avg[key] = _masked(state.exp_avg[key].lerp(grad, 1 - beta1), keep)
            second = state.exp_avg_sq[key].mul(beta2).addcmul(grad, grad, value=1 - beta2)
            exp_avg_sq[key] = _masked(second, keep)
            denom = (exp_avg_sq[key].sqrt() / correction2_sqrt.to(p.dtype)).add(self.eps)
            update = step_size.to(p.dtype) * exp_avg[key] / denom
            new_params[key] = _masked(p - update, keep)
        return new_params, AdamState(steps, exp_avg, exp_avg_sq)


def _nonnegative(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}={value!r} must be a finite number >= 0")
    if not (math.isfinite(float(value)) and float(value) >= 0):
        raise ValueError(f"{name}={value!r} must be a finite number >= 0")
    return float(value)


def sgd(
    lr: float,
    *,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
) -> SGD:
    """A pure, masked ``torch.optim.SGD``: same hyperparameters, same arithmetic.

    ``d = g + weight_decay * w``; with momentum ``b = d`` on the first step, then
    ``b = momentum * b + (1 - dampening) * d``; ``d = d + momentum * b`` (Nesterov) or ``b``;
    ``w = w - lr * d``. Masked entries of ``d``, ``b`` and ``w`` are zero.

    >>> import torch, funcprune as fp
    >>> opt = fp.sgd(0.5)
    >>> params, state = opt.step({"w": torch.ones(2)}, {"w": torch.ones(2)}, opt.init({"w": torch.ones(2)}))
    >>> params
    {'w': tensor([0.5000, 0.5000])}
    """
    momentum = _nonnegative("momentum", momentum)
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError("nesterov=True needs momentum > 0 and dampening=0 (as torch.optim.SGD)")
    return SGD(
        _nonnegative("lr", lr),
        momentum,
        _nonnegative("dampening", dampening),
        _nonnegative("weight_decay", weight_decay),
        bool(nesterov),
    )


def adam(
    lr: float = 1e-3,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
) -> Adam:
    """A pure, masked ``torch.optim.Adam`` (``decoupled_weight_decay=True``: ``AdamW``).

    Adam adds ``weight_decay * w`` to the gradient; AdamW multiplies ``w`` by
    ``1 - lr * weight_decay`` before the update. Masked gradient, moment and weight entries are
    zero (``torch.optim.AdamW(..., weight_decay=0.01)`` is ``adam(..., weight_decay=0.01,
    decoupled_weight_decay=True)``).

    >>> import torch, funcprune as fp
    >>> opt = fp.adam(0.1)
    >>> params = {"w": torch.tensor([1.0, 1.0])}
    >>> new, state = opt.step(params, {"w": torch.tensor([3.0, -3.0])}, opt.init(params))
    >>> new["w"], int(state.steps)
    (tensor([0.9000, 1.1000]), 1)
    """
    if not (
        isinstance(betas, tuple)
        and len(betas) == 2
        and all(0 <= _nonnegative("betas", b) < 1 for b in betas)
    ):
        raise ValueError(f"betas={betas!r} must be a pair of numbers in [0, 1)")
    return Adam(
        _nonnegative("lr", lr),
        (float(betas[0]), float(betas[1])),
        _nonnegative("eps", eps),
        _nonnegative("weight_decay", weight_decay),
        bool(decoupled_weight_decay),
    )


__all__ = ["SGD", "Adam", "AdamState", "SGDState", "adam", "sgd"]
