"""Lossless interop between torch-style pruned modules / state dicts and ``(params, masks)``.

A module pruned by ``torch.nn.utils.prune`` or :mod:`funcprune.compat` holds ``<name>_orig``
(the parameter), ``<name>_mask`` (a 0/1 buffer) and a forward pre-hook. In the pure API the same
state is ``params[name]`` and a bool ``masks[name]``; :func:`funcprune.masked_call` on it computes
``param * mask``, the hook's arithmetic, so outputs agree bit for bit.

>>> import torch, funcprune as fp
>>> from funcprune import compat as prune
>>> lin = prune.l1_unstructured(torch.nn.Linear(3, 2), "weight", amount=3)
>>> params, masks = fp.from_module(lin)
>>> sorted(params), sorted(masks), masks["weight"].dtype
(['bias', 'weight'], ['weight'], torch.bool)
>>> plain = torch.nn.Linear(3, 2)
>>> x = torch.randn(4, 3)
>>> torch.equal(fp.masked_call(plain, params, masks, x), lin(x))
True
>>> fp.to_state_dict(params, masks).keys() == lin.state_dict().keys()
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import prune as torch_prune

from funcprune._checks import check_masks, check_params
from funcprune._tensors import is_concrete
from funcprune.compat import BasePruningMethod, custom_from_mask
from funcprune.types import Masks, Params


def _pruning_hook_types() -> tuple[type, ...]:
    """torch's and funcprune.compat's pruning-method base classes."""

    return (torch_prune.BasePruningMethod, BasePruningMethod)


def _bool_mask(key: str, mask: Tensor) -> Tensor:
    """``mask`` as bool; refuses values other than 0 and 1 where they can be read (not ``meta``)."""
    if mask.dtype == torch.bool:
        return mask.clone()
    if is_concrete(mask) and not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(
            f"{key!r}: the pruning mask holds values other than 0 and 1 (a custom mask that scales "
            "entries); a bool mask cannot represent it losslessly"
        )
    return mask != 0


def _pruned_names(module: nn.Module, kinds: tuple[type, ...] | None = None) -> list[str]:
    """Qualified names of the tensors that carry a pruning hook of ``kinds`` (torch's or compat's)."""
    kinds = _pruning_hook_types() if kinds is None else kinds
    names = []
    for prefix, sub in module.named_modules():
        hooks: list[Any] = [h for h in sub._forward_pre_hooks.values() if isinstance(h, kinds)]
        names += [prefix + ("." if prefix else "") + hook._tensor_name for hook in hooks]
    return names


def from_module(module: nn.Module) -> tuple[dict[str, Tensor], Masks]:
    """``(params, masks)`` of a plain or a pruned module.

    ``params`` holds the module's own Parameter objects (no copies; ``.detach()`` them for pure
    use), keyed by ``named_parameters()`` names with a pruned tensor's ``_orig`` dropped. ``masks``
    holds a bool mask for every pruned tensor (its hook may be torch's or funcprune.compat's).

    Raises:
        ValueError: a mask with values other than 0 and 1.

    >>> import torch, funcprune as fp
    >>> params, masks = fp.from_module(torch.nn.Linear(2, 1))
    >>> list(params), masks
    (['weight', 'bias'], {})
    """
    pruned = _pruned_names(module)
    originals = {name + "_orig": name for name in pruned}
    params: dict[str, Tensor] = {originals.get(k, k): p for k, p in module.named_parameters()}
    masks = {name: _bool_mask(name, module.get_buffer(name + "_mask")) for name in pruned}
    return params, masks


def from_state_dict(state_dict: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], Masks]:
    """Split a torch-prune style state dict into ``(params, masks)``.

    Every ``<key>_orig`` that has a ``<key>_mask`` beside it becomes ``params[key]`` with the bool
    ``masks[key]``; every other entry (parameters and buffers alike) goes to ``params`` as is.

    Raises:
        TypeError: ``state_dict`` is not a mapping.
        ValueError: a mask with values other than 0 and 1.

    >>> import torch, funcprune as fp
    >>> sd = {"bias": torch.zeros(1), "weight_orig": torch.ones(1, 2), "weight_mask": torch.tensor([[1.0, 0.0]])}
    >>> params, masks = fp.from_state_dict(sd)
    >>> list(params), masks
    (['bias', 'weight'], {'weight': tensor([[ True, False]])})
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"state_dict must be a mapping from names to tensors; got {type(state_dict).__name__}"
        )
    pruned = {
        key[: -len("_mask")]
        for key in state_dict
        if key.endswith("_mask") and key[: -len("_mask")] + "_orig" in state_dict
    }
    params: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.endswith("_orig") and key[: -len("_orig")] in pruned:
            params[key[: -len("_orig")]] = value
        elif not (key.endswith("_mask") and key[: -len("_mask")] in pruned):
            params[key] = value
    masks = {base: _bool_mask(base, state_dict[base + "_mask"]) for base in sorted(pruned)}
    return params, masks


def to_state_dict(params: Params, masks: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A torch-prune style state dict: masked keys become ``<key>_orig`` and ``<key>_mask``.

    Masks are written in their parameter's dtype (torch's rule), so ``load_state_dict`` accepts
    the result on a module pruned the same way.

    Raises:
        KeyError, TypeError, ValueError: masks that do not fit ``params``; ``ValueError`` also
            for a parameter named like the ``<key>_orig`` or ``<key>_mask`` of a masked key.

    >>> import torch, funcprune as fp
    >>> fp.to_state_dict({"w": torch.tensor([2.0, 3.0])}, {"w": torch.tensor([True, False])})
    {'w_orig': tensor([2., 3.]), 'w_mask': tensor([1., 0.])}
    """
    check_params(params)
    check_masks(params, masks)
    clashes = sorted(
        k + suffix for k in masks for suffix in ("_orig", "_mask") if k + suffix in params
    )
    if clashes:
        raise ValueError(
            f"parameters {clashes} have the names the masked parameters' <key>_orig/<key>_mask "
            "entries take; rename them or leave their masked keys out"
        )
    out: dict[str, Tensor] = {}
    for key, value in params.items():
        if key in masks:
            out[key + "_orig"] = value
            out[key + "_mask"] = masks[key].to(dtype=value.dtype)
        else:
            out[key] = value
    return out


def install_masks(module: nn.Module, masks: Mapping[str, Tensor]) -> nn.Module:
    """Prune ``module`` in place with ``masks``, exactly as ``torch.nn.utils.prune`` would.

    Each masked tensor gets torch's reparametrization (``<name>_orig``, a ``<name>_mask`` buffer
    in the parameter's dtype, a :class:`funcprune.compat.CustomFromMask` forward pre-hook), on top
    of any pruning it already has. Keys are ``from_module`` names; all are checked first.

    Raises:
        KeyError: keys that are not (possibly pruned) parameters of ``module``.
        TypeError, ValueError: masks that are not bool or not of their parameter's shape.
        ValueError: keys pruned by ``torch.nn.utils.prune`` (its hooks and compat's cannot be
            stacked); nothing is changed.

    >>> import torch, funcprune as fp
    >>> lin = fp.install_masks(torch.nn.Linear(2, 2), {"bias": torch.tensor([True, False])})
    >>> lin.bias_mask, list(lin.state_dict())
    (tensor([1., 0.]), ['weight', 'bias_orig', 'bias_mask'])
    """

    params, _ = from_module(module)
    check_masks(params, masks)
    by_torch = sorted(set(masks) & set(_pruned_names(module, (torch_prune.BasePruningMethod,))))
    if by_torch:
        raise ValueError(
            f"{by_torch} are pruned by torch.nn.utils.prune, whose hooks funcprune.compat's cannot "
            "extend; make that pruning permanent with torch.nn.utils.prune.remove(submodule, name) "
            "first, or leave those keys out"
        )
    for key, mask in masks.items():
        owner, _, name = key.rpartition(".")
        custom_from_mask(module.get_submodule(owner), name, mask)
    return module


__all__ = ["from_module", "from_state_dict", "install_masks", "to_state_dict"]
