"""Pure SGD and Adam steps that keep pruned weights at zero: ``sgd`` and ``adam``.

Each factory returns an immutable optimizer with ``init(params) -> state`` and
``step(params, grads, state, masks=None, *, donate=False) -> (params, state)``. The math is
torch.optim's (``SGD`` with momentum, dampening, Nesterov and weight decay; ``Adam``/``AdamW``);
with ``masks``, the pruned entries of every state buffer and of the returned parameters are
exactly zero, so nothing ever regrows. Unless donated, nothing is mutated and every step
is plain tensor arithmetic, so it composes with ``torch.func.grad``, ``vmap`` and ``torch.compile``.

Donation. A pure step must return fresh tensors, and on a large model fresh memory is what a step
costs most: the kernel zeroes every new page (on GPT-2, three fresh parameter-sized buffers cost
more than torch's whole in-place step). A loop that drops the old values anyway,
``params, state = opt.step(params, grads, state, masks, donate=True)``, lets the step write into
the donated ``params`` and ``state`` tensors instead, as ``torch.optim`` does, outside autograd.
Donated tensors must not be used afterwards; read what the step returns. Donation is a permission,
as in JAX: under ``vmap``/``grad`` the step allocates as usual, with the same results.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor

from funcprune._checks import KeyMismatchError, check_masks, check_params, check_tensor_dict
from funcprune._threads import one_thread
from funcprune._value import Value, positional
from funcprune.training._chunked import Scratch, in_chunks, multiply_
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


class _Lists(NamedTuple):
    """Elementwise ops over lists of tensors: torch's ``_foreach`` kernels (one call for all the
    tensors, not a Python loop of small ops) where they run, else one op per tensor (under
    ``vmap``/``grad``, which have no batching rule for them).

    ``reuse=True`` lets a fused op write into its first list, which must then be fresh (made by
    this step) or donated; the per-tensor ops always return new tensors. Either way, use what an op
    returns. ``donate`` says whether the caller donated the state and parameters.
    """

    fused: bool
    donate: bool
    scratch: Scratch | None = None

    def add(self, xs: list[Tensor], ys: list[Tensor], alpha: float, reuse: bool) -> list[Tensor]:
        """``x + alpha * y``."""
        if self.fused and reuse:
            torch._foreach_add_(xs, ys, alpha=alpha)
            return xs
        if self.fused:
            return list(torch._foreach_add(xs, ys, alpha=alpha))
        return [x.add(y, alpha=alpha) for x, y in zip(xs, ys, strict=True)]

    def scale(self, xs: list[Tensor], factor: float, reuse: bool) -> list[Tensor]:
        if self.fused and reuse:
            torch._foreach_mul_(xs, factor)
            return xs
        if self.fused:
            return list(torch._foreach_mul(xs, factor))
        return [x.mul(factor) for x in xs]

    def lerp(self, xs: list[Tensor], ys: list[Tensor], weight: float, reuse: bool) -> list[Tensor]:
        if self.fused and reuse:
            torch._foreach_lerp_(xs, ys, weight)
            return xs
        if self.fused:
            return list(torch._foreach_lerp(xs, ys, weight))
        return [x.lerp(y, weight) for x, y in zip(xs, ys, strict=True)]

    def addcmul(self, xs: list[Tensor], ys: list[Tensor], value: float) -> list[Tensor]:
        """``x + value * y * y``, into ``xs`` (fresh or donated) when fused."""
        if self.fused:
            torch._foreach_addcmul_(xs, ys, ys, value=value)
            return xs
        return [x.addcmul(y, y, value=value) for x, y in zip(xs, ys, strict=True)]

    def adam_update(
        self, ps: list[Tensor], moments: tuple[list[Tensor], list[Tensor]], adam: _AdamScalars
    ) -> list[Tensor]:
        """``decay * p + size * exp_avg / (sqrt(exp_avg_sq) / c2 + eps)``: written into the
        donated ``ps`` (torch's own order of ops), else into the fresh denominator."""
        exp_avg, exp_avg_sq = moments
        if not self.fused:
            return [
                adam.decay * p + adam.size * (m * ((v.sqrt() / adam.c2 + adam.eps).reciprocal()))
                for p, m, v in zip(ps, exp_avg, exp_avg_sq, strict=True)
            ]
        denom = self._square_roots(exp_avg_sq, adam.floor)
        torch._foreach_div_(denom, adam.c2)
        torch._foreach_add_(denom, adam.eps)
        if self.donate:
            torch._foreach_div_(denom, adam.size)
            if adam.decay != 1.0:
                torch._foreach_mul_(ps, adam.decay)
            torch._foreach_addcdiv_(ps, exp_avg, denom)
            return ps
        torch._foreach_reciprocal_(denom)
        torch._foreach_mul_(denom, exp_avg)
        torch._foreach_mul_(denom, adam.size)
        torch._foreach_add_(denom, ps, alpha=adam.decay)
        return denom

    def _square_roots(self, xs: list[Tensor], floor: float | None) -> list[Tensor]:
        """``sqrt(max(x, floor))`` (``floor`` from :func:`_sqrt_floor`), in fresh tensors or, for
        one chunk of a donated tensor, in scratch; torch's square root of zero is about ten
        times slower than of a normal number, and pruned entries are zero."""
        if self.scratch is not None:
            outs = [self.scratch.buffer("denom", x) for x in xs]
            if floor is None:
                return [torch.sqrt(x, out=out) for x, out in zip(xs, outs, strict=True)]
            return [
                torch.clamp_min(x, floor, out=out).sqrt_() for x, out in zip(xs, outs, strict=True)
            ]
        if floor is None:
            return list(torch._foreach_sqrt(xs))
        roots = list(torch._foreach_clamp_min(xs, floor))
        torch._foreach_sqrt_(roots)
        return roots

    def where(self, condition: Tensor, xs: list[Tensor], ys: list[Tensor]) -> list[Tensor]:
        """``x if condition else y`` (a 0-d bool), into ``ys`` (fresh or donated) when fused."""
        if self.fused:
            return [torch.where(condition, x, y, out=y) for x, y in zip(xs, ys, strict=True)]
        return [torch.where(condition, x, y) for x, y in zip(xs, ys, strict=True)]

    def mask(self, xs: list[Tensor], masks: list[Tensor | None]) -> list[Tensor]:
        """Zero the pruned entries (``None``: nothing pruned), in ``xs`` (fresh or donated) when
        fused."""
        if self.fused:
            with one_thread():
                multiply_(xs, masks, self.scratch)
            return xs
        return [
            x if mask is None else x * mask.to(x.dtype) for x, mask in zip(xs, masks, strict=True)
        ]


class _AdamScalars(NamedTuple):
    """The step's scalars: bias corrections (0-d tensors), eps, the signed step size (a 0-d
    tensor: ``-lr / c1``), the decoupled decay factor and the second moment's floor."""

    c2: Tensor
    eps: float
    size: Tensor
    decay: float
    floor: float | None


def _sqrt_floor(dtypes: set[torch.dtype], eps: float, beta2: float) -> float | None:
    """The smallest normal number, when raising the second moment to it before the square root
    cannot change Adam's denominator ``fl(sqrt(v) / c2 + eps)``; else ``None``.

    Only zero and subnormal ``v`` move, and both ``sqrt(v) / c2`` and ``sqrt(tiny) / c2`` lie in
    ``[0, d]`` with ``d = sqrt(tiny) / sqrt(1 - beta2)`` (``c2 = sqrt(1 - beta2 ** t)`` is at least
    ``sqrt(1 - beta2)``). When ``d`` is at most a quarter of the spacing of floats at ``eps``, the
    sum with ``eps`` rounds to ``eps`` either way. One dtype only: a floor fits one format.

    >>> import torch
    >>> _sqrt_floor({torch.float32}, 1e-8, 0.999) == torch.finfo(torch.float32).tiny
    True
    >>> _sqrt_floor({torch.float16}, 1e-8, 0.999) is None  # its tiny is 6e-5
    True
    """
    if len(dtypes) != 1 or not next(iter(dtypes)).is_floating_point:
        return None
    info = torch.finfo(next(iter(dtypes)))
    spread = math.sqrt(info.tiny) / math.sqrt(1 - beta2)
    return info.tiny if spread <= eps * info.eps / 8 else None  # spacing at eps >= eps*info.eps/2


def _lists(donate: bool, *groups: list[Tensor]) -> _Lists:
    """Fused ops unless some tensor is wrapped by a functorch transform (``vmap``, ``grad``),
    where a donation is not taken up (the step allocates as usual)."""
    wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    fused = not any(wrapped(t) for group in groups for t in group)
    return _Lists(fused, donate and fused)


_Update = Callable[
    [_Lists, list[Tensor], list[Tensor], list[list[Tensor]], list[Tensor | None]],
    tuple[list[Tensor], list[list[Tensor]]],
]
"""A step's arithmetic: (ops, params, grads, state lists, masks) -> (new params, new state
lists)."""


def _run(
    lists: _Lists,
    update: _Update,
    ps: list[Tensor],
    gs: list[Tensor],
    held: list[list[Tensor]],
    pruned: list[Tensor | None],
) -> tuple[list[Tensor], list[list[Tensor]]]:
    """``update`` over the whole lists; donated tensors are written in place instead, outside
    autograd (leaf parameters may require grad), one cache-sized chunk at a time, so that not even
    a temporary the size of a parameter is allocated."""
    if not lists.donate:
        return update(lists, ps, gs, held, pruned)
    with torch.no_grad(), one_thread():
        for [p_part, g_part, *held_part], mask_part, scratch in in_chunks([ps, gs, *held], pruned):
            update(lists._replace(scratch=scratch), p_part, g_part, held_part, mask_part)
    return ps, held


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
        *,
        donate: bool = False,
    ) -> tuple[dict[str, Tensor], SGDState]:
        """One SGD step; pruned entries of params and buffers come back exactly zero.

        ``donate=True`` hands ``params`` and ``state`` over to the step, which may then write its
        results into their memory (see the module docs).

        >>> import torch, funcprune as fp
        >>> opt, params = fp.sgd(1.0), {"w": torch.tensor([2.0, 2.0])}
        >>> opt.step(params, {"w": torch.ones(2)}, opt.init(params), {"w": torch.tensor([True, False])})[0]
        {'w': tensor([1., 0.])}
        """
        masks = _checked(params, grads, masks)
        if self.momentum:
            _check_state(params, state.momentum)
        keys = list(params)
        ps, gs = list(params.values()), [grads[key] for key in keys]
        held = [[state.momentum[key] for key in keys]] if self.momentum else []
        lists = _lists(donate, ps, gs, list(masks.values()), *held)
        pruned = [masks.get(key) for key in keys]
        update = partial(self._update, state.steps == 0)
        new_params, buffers = _run(lists, update, ps, gs, held, pruned)
        return dict(zip(keys, new_params, strict=True)), SGDState(
            state.steps + 1, dict(zip(keys, buffers[0], strict=True)) if self.momentum else {}
        )

    def _update(
        self,
        first: Tensor,
        lists: _Lists,
        ps: list[Tensor],
        gs: list[Tensor],
        held: list[list[Tensor]],
        pruned: list[Tensor | None],
    ) -> tuple[list[Tensor], list[list[Tensor]]]:
        """The step's arithmetic on aligned lists: new params and ``[momentum buffers]``."""
        d_p = lists.add(gs, ps, self.weight_decay, reuse=False) if self.weight_decay else gs
        if not self.momentum:
            return lists.mask(lists.add(ps, d_p, -self.lr, reuse=lists.donate), pruned), []
        buffers = lists.scale(held[0], self.momentum, reuse=lists.donate)
        buffers = lists.add(buffers, d_p, 1 - self.dampening, reuse=True)
        if self.dampening:  # torch starts the buffer at d_p, undamped
            buffers = lists.where(first, d_p, buffers)
        buffers = lists.mask(buffers, pruned)
        if self.nesterov:  # d_p is fresh only when weight decay made it
            d_p = lists.add(d_p, buffers, self.momentum, reuse=bool(self.weight_decay))
        else:
            d_p = buffers
        return lists.mask(lists.add(ps, d_p, -self.lr, reuse=lists.donate), pruned), [buffers]


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
        *,
        donate: bool = False,
    ) -> tuple[dict[str, Tensor], AdamState]:
        """One Adam step; pruned entries of params and moments come back exactly zero.

        ``donate=True`` hands ``params`` and ``state`` over to the step, which may then write its
        results into their memory (see the module docs).

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
        decay = 1 - self.lr * self.weight_decay if self.decoupled_weight_decay else 1.0
        floor = _sqrt_floor({p.dtype for p in params.values()}, self.eps, beta2)
        scalars = _AdamScalars(correction2_sqrt, self.eps, -self.lr / correction1, decay, floor)
        keys = list(params)
        ps, gs = list(params.values()), [grads[key] for key in keys]
        moments = [[state.exp_avg[key] for key in keys], [state.exp_avg_sq[key] for key in keys]]
        lists = _lists(donate, ps, gs, list(masks.values()), *moments)
        update = partial(self._update, scalars)
        pruned = [masks.get(key) for key in keys]
        new_params, (exp_avg, exp_avg_sq) = _run(lists, update, ps, gs, moments, pruned)
        return dict(zip(keys, new_params, strict=True)), AdamState(
            steps, dict(zip(keys, exp_avg, strict=True)), dict(zip(keys, exp_avg_sq, strict=True))
        )

    def _update(
        self,
        scalars: _AdamScalars,
        lists: _Lists,
        ps: list[Tensor],
        gs: list[Tensor],
        moments: list[list[Tensor]],
        pruned: list[Tensor | None],
    ) -> tuple[list[Tensor], list[list[Tensor]]]:
        """The step's arithmetic on aligned lists: new params and ``[exp_avg, exp_avg_sq]``."""
        beta1, beta2 = self.betas
        if self.weight_decay and not self.decoupled_weight_decay:
            gs = lists.add(gs, ps, self.weight_decay, reuse=False)
        exp_avg = lists.mask(lists.lerp(moments[0], gs, 1 - beta1, reuse=lists.donate), pruned)
        exp_avg_sq = lists.scale(moments[1], beta2, reuse=lists.donate)
        exp_avg_sq = lists.mask(lists.addcmul(exp_avg_sq, gs, 1 - beta2), pruned)
        new_params = lists.adam_update(ps, (exp_avg, exp_avg_sq), scalars)
        return lists.mask(new_params, pruned), [exp_avg, exp_avg_sq]


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
