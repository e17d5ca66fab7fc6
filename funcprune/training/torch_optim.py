"""Training ``torch.optim`` optimizers without regrowth: pruned weights stay exactly zero.

Momentum and weight decay would otherwise move pruned weights again: a momentum buffer filled
before pruning keeps pushing them, and Adam's running averages do too. :func:`masked_step` zeroes
the pruned gradients, steps, then zeroes the pruned weights and every per-entry optimizer state
(momentum buffers, Adam moments); :func:`keep_pruned` does the same from the optimizer's own step
hooks, for training loops you do not write yourself.

Zeroing costs a pass over each tensor, so the helpers remember what they zeroed: for optimizers
whose step keeps zero entries zero when the gradient is zero (SGD, Adam, AdamW, NAdam, RAdam,
Adagrad, RMSprop, Adadelta), a later step zeroes only the gradients, unless the weight, a state
tensor or the mask was written or replaced since (tensor version counters), or a closure
recomputes the gradients. Other optimizers are zeroed after every step.

torch's CPU square root is several times slower on zeros, so a plain step on pruned state (half
its second moments zero) is slower than on dense state. :func:`masked_step` raises the known-zero
pruned entries of the state a step divides by the square root of (Adam's ``exp_avg_sq``) to one
for the duration of the step, which leaves every update exactly as it was, and zeroes them again.

>>> import torch, funcprune as fp
>>> w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
>>> opt = torch.optim.SGD([w], lr=0.1, momentum=0.9, weight_decay=0.1)
>>> masks = {"w": torch.tensor([True, False])}
>>> for _ in range(3):
...     opt.zero_grad()
...     (w * torch.tensor([1.0, -5.0])).sum().backward()
...     _ = fp.masked_step(opt, {"w": w}, masks)
>>> w[1].item()
0.0
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.optim import Optimizer

from funcprune._checks import check_masks, check_params
from funcprune.training._chunked import mask_and_lift_, zero_pruned_


def _checked(
    optimizer: Optimizer, params: Mapping[str, Tensor], masks: Mapping[str, Tensor]
) -> None:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer; got {type(optimizer).__name__}"
        )
    check_params(params)
    check_masks(params, masks)
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    missing = sorted(key for key in masks if id(params[key]) not in held)
    if missing:
        raise ValueError(
            f"masked parameters {missing} are not among the optimizer's parameters; pass the same "
            "tensors the optimizer was built with (e.g. dict(model.named_parameters()))"
        )


def _mask_grads(
    params: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    lifted: Mapping[str, Tensor] | None = None,
) -> None:
    """Zero the pruned gradient entries; add one to the pruned entries of ``lifted`` state (by
    key) in the same pass."""
    grads = {key: grad for key in masks if (grad := params[key].grad) is not None}
    mask_and_lift_(
        list(grads.values()),
        [None if lifted is None else lifted.get(key) for key in grads],
        [masks[key] for key in grads],
    )


_ZERO_PRESERVING = (
    torch.optim.SGD,
    torch.optim.Adam,
    torch.optim.AdamW,
    torch.optim.NAdam,
    torch.optim.RAdam,
    torch.optim.Adagrad,
    torch.optim.RMSprop,
    torch.optim.Adadelta,
)
"""Optimizers whose step leaves an entry and its state at exactly zero when its gradient, weight
and state entries are zero (every update is a product with the gradient or the state)."""


_ROOTED = {
    torch.optim.Adam: "exp_avg_sq",
    torch.optim.AdamW: "exp_avg_sq",
    torch.optim.NAdam: "exp_avg_sq",
    torch.optim.RAdam: "exp_avg_sq",
    torch.optim.RMSprop: "square_avg",
    torch.optim.Adagrad: "sum",
}
"""The state whose square root each optimizer's step divides by. At pruned entries it is zero,
and torch's CPU square root (MKL's) runs about five times slower on zeros than on normal numbers:
a GPT-2 AdamW step with half its second moments zero took 1.8x as long as on dense state. So
during a step, known-zero pruned entries of this state read one. The step's update there stays
exactly zero (its numerator, a gradient or first moment, is zero), and they are zeroed again
after the step."""


def _rooted(
    optimizer: Optimizer, params: Mapping[str, Tensor], untouched: set[str]
) -> dict[str, Tensor]:
    """By key, the CPU state tensor of :data:`_ROOTED` whose pruned entries are known to be zero
    (the ``untouched`` keys) and that this step divides by (the parameter has a gradient); none
    for groups with ``amsgrad``, whose running maximum would keep the lifted value."""
    name = _ROOTED.get(type(optimizer))
    if name is None or not untouched:
        return {}
    plain = {
        id(p)
        for group in optimizer.param_groups
        if not group.get("amsgrad")
        for p in group["params"]
    }
    rooted = {}
    for key in sorted(untouched):
        param = params[key]
        state = optimizer.state.get(param, {}).get(name)
        if (
            id(param) in plain
            and param.grad is not None
            and isinstance(state, Tensor)
            and state.device.type == "cpu"
            and state.shape == param.shape
        ):
            rooted[key] = state
    return rooted


class _Zeroed(NamedTuple):
    """A parameter whose pruned weight and state entries were zero at the end of a masked step:
    the mask used (held, so that its identity stays unique), then the versions of the mask, the
    weight and each state tensor (held weakly), in the optimizer's state order."""

    mask: Tensor
    versions: tuple[int, ...]
    state: tuple[weakref.ref[Tensor], ...]


_ZEROED: weakref.WeakKeyDictionary[Optimizer, dict[int, _Zeroed]] = weakref.WeakKeyDictionary()
"""Per optimizer and parameter id: what :class:`_Zeroed` recorded at its last masked step."""


def _state_tensors(optimizer: Optimizer, param: Tensor) -> list[Tensor]:
    return [
        value
        for name, value in optimizer.state.get(param, {}).items()
        if name != "step" and isinstance(value, Tensor) and value.shape == param.shape
    ]


def _record(optimizer: Optimizer, param: Tensor, mask: Tensor) -> _Zeroed:
    state = _state_tensors(optimizer, param)
    versions = (mask._version, param._version, *(t._version for t in state))
    return _Zeroed(mask, versions, tuple(weakref.ref(t) for t in state))


def _still_zeroed(optimizer: Optimizer, param: Tensor, mask: Tensor) -> bool:
    """Whether nothing touched ``param``, its state or ``mask`` since its last masked step."""
    known = _ZEROED.get(optimizer, {}).get(id(param))
    if known is None or known.mask is not mask:
        return False
    now = _record(optimizer, param, mask)
    same_state = len(now.state) == len(known.state) and all(
        old() is new() for old, new in zip(known.state, now.state, strict=True)
    )
    return same_state and now.versions == known.versions


def _untouched(
    optimizer: Optimizer, params: Mapping[str, Tensor], masks: Mapping[str, Tensor]
) -> set[str]:
    """Keys whose pruned weight and state entries are known to be zero before this step, for an
    optimizer that keeps them zero given zero gradients (checked before the step runs)."""
    if type(optimizer) not in _ZERO_PRESERVING:
        return set()
    return {key for key, mask in masks.items() if _still_zeroed(optimizer, params[key], mask)}


def _mask_weights_and_state(
    optimizer: Optimizer,
    params: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    untouched: set[str],
) -> None:
    """Zero the pruned weight and state entries, except for ``untouched`` keys (the step kept
    them zero), and record every key as zeroed."""
    tensors: list[Tensor] = []
    their_masks: list[Tensor] = []
    for key, mask in masks.items():
        if key not in untouched:
            held = [params[key], *_state_tensors(optimizer, params[key])]
            tensors.extend(held)
            their_masks.extend([mask] * len(held))
    zero_pruned_(tensors, their_masks)
    zeroed = _ZEROED.setdefault(optimizer, {})
    for key, mask in masks.items():
        zeroed[id(params[key])] = _record(optimizer, params[key], mask)


def masked_step(
    optimizer: Optimizer,
    params: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    closure: Callable[[], Any] | None = None,
) -> Any:
    """``optimizer.step(closure)`` that keeps the pruned entries of ``params`` at exactly zero.

    Before the step, pruned gradient entries are zeroed; after it, pruned weights and the pruned
    entries of every optimizer state tensor shaped like its parameter (``momentum_buffer``,
    ``exp_avg``, ``exp_avg_sq``, ...) are zeroed, so no later step can move them either. Unpruned
    entries step exactly as with ``optimizer.step()`` (torch's optimizers are elementwise).
    During the step, known-zero pruned second moments (Adam's ``exp_avg_sq``, RMSprop's
    ``square_avg``, Adagrad's ``sum``) read one, which leaves every update as it was and spares
    torch's CPU square root its slow path on zeros; they are zero again when it returns or raises.

    Args:
        optimizer: any ``torch.optim`` optimizer holding the tensors of ``params``.
        params: the parameters by name (the same tensor objects, e.g. ``dict(model.named_parameters())``).
        masks: bool masks by name; keys without a mask are not touched.
        closure: passed to ``optimizer.step``.

    Returns:
        What ``optimizer.step`` returns (the closure's loss, if any).

    Raises:
        KeyError, ValueError, TypeError: masks that do not fit ``params``, or masked tensors the
            optimizer does not hold.

    >>> import torch, funcprune as fp
    >>> w = torch.nn.Parameter(torch.ones(3))
    >>> opt = torch.optim.AdamW([w], lr=0.5)
    >>> w.grad = torch.ones(3)
    >>> _ = fp.masked_step(opt, {"w": w}, {"w": torch.tensor([True, False, True])})
    >>> w.detach(), opt.state[w]["exp_avg"]
    (tensor([0.4950, 0.0000, 0.4950]), tensor([0.1000, 0.0000, 0.1000]))
    """
    _checked(optimizer, params, masks)
    untouched = set() if closure is not None else _untouched(optimizer, params, masks)
    rooted = _rooted(optimizer, params, untouched)
    _mask_grads(params, masks, rooted)
    try:
        loss = optimizer.step(closure)
    finally:
        zero_pruned_(list(rooted.values()), [masks[key] for key in rooted])
    _mask_weights_and_state(optimizer, params, masks, untouched)
    return loss


class KeepPruned:
    """The hooks installed by :func:`keep_pruned`; ``remove()`` uninstalls them.

    >>> import torch, funcprune as fp
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> opt = torch.optim.SGD([w], lr=0.5)
    >>> isinstance(fp.keep_pruned(opt, {"w": w}, {}), KeepPruned)
    True
    """

    def __init__(
        self, optimizer: Optimizer, params: Mapping[str, Tensor], masks: Mapping[str, Tensor]
    ) -> None:
        untouched: set[str] = set()

        def before(_opt: Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            untouched.clear()
            # torch passes the step's arguments, self included: the closure is the callable one
            closure = next((a for a in args if callable(a)), kwargs.get("closure"))
            if closure is None:  # a closure recomputes the gradients after they were masked
                untouched.update(_untouched(optimizer, params, masks))
            _mask_grads(params, masks)

        def after(opt: Optimizer, _args: tuple[Any, ...], _kwargs: dict[str, Any]) -> None:
            _mask_weights_and_state(opt, params, masks, untouched)

        self._handles = (
            optimizer.register_step_pre_hook(before),
            optimizer.register_step_post_hook(after),
        )

    def remove(self) -> None:
        """Stop masking: later ``optimizer.step()`` calls are plain steps again.

        >>> import torch, funcprune as fp
        >>> w = torch.nn.Parameter(torch.ones(2))
        >>> opt = torch.optim.SGD([w], lr=0.5)
        >>> fp.keep_pruned(opt, {"w": w}, {"w": torch.tensor([True, False])}).remove()
        >>> w.grad = torch.ones(2)
        >>> opt.step()
        >>> w.detach()
        tensor([0.5000, 0.5000])
        """
        for handle in self._handles:
            handle.remove()


def keep_pruned(
    optimizer: Optimizer, params: Mapping[str, Tensor], masks: Mapping[str, Tensor]
) -> KeepPruned:
    """Make every later ``optimizer.step()`` a :func:`masked_step` (via step pre/post hooks).

    For training loops you do not control (Lightning, HF ``Trainer``...). The masks are captured
    as given: to change them, ``remove()`` the returned handle and call ``keep_pruned`` again.
    The weights are not touched until the next step; apply the masks first (e.g.
    ``p.data.mul_(mask)``) if they are not zero yet. Unlike :func:`masked_step`, the hooks do not
    lift pruned second moments during the step: a step that raises skips the post-hook, which
    would leave them lifted.

    >>> import torch, funcprune as fp
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> opt = torch.optim.SGD([w], lr=0.5, momentum=0.9)
    >>> handle = fp.keep_pruned(opt, {"w": w}, {"w": torch.tensor([True, False])})
    >>> w.grad = torch.ones(2)
    >>> opt.step()
    >>> w.detach()
    tensor([0.5000, 0.0000])
    >>> handle.remove()
    """
    _checked(optimizer, params, masks)
    return KeepPruned(optimizer, dict(params), dict(masks))


__all__ = ["KeepPruned", "keep_pruned", "masked_step"]
