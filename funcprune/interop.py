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
from funcprune.compat._hooks import Snapshot, pruning_hooks
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


def from_module(module: nn.Module, *, buffers: bool = True) -> tuple[dict[str, Tensor], Masks]:
    """``(params, masks)`` of a plain or a pruned module: its ``state_dict``, split.

    ``params`` holds every tensor of ``module.state_dict()`` (parameters, persistent buffers such
    as BatchNorm's running statistics, and every name of a tied weight, e.g. GPT-2's
    ``lm_head.weight`` beside ``transformer.wte.weight``), as the module's own objects (no copies;
    ``.detach()`` them for pure use), with a pruned tensor's ``<name>_orig`` renamed ``<name>``
    and its ``<name>_mask`` moved to ``masks`` as bool (its hook may be torch's or
    funcprune.compat's). So ``to_state_dict(*from_module(model))`` is ``model.state_dict()``,
    which ``load_state_dict`` accepts strictly. With ``buffers=False`` only parameters are kept,
    which is what pruning methods should see (they would prune float buffers too).

    Raises:
        ValueError: a mask with values other than 0 and 1.

    >>> import torch, funcprune as fp
    >>> params, masks = fp.from_module(torch.nn.BatchNorm1d(2))
    >>> list(params), masks
    (['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked'], {})
    >>> list(fp.from_module(torch.nn.BatchNorm1d(2), buffers=False)[0])
    ['weight', 'bias']
    """
    pruned = _pruned_names(module)
    state = module.state_dict(keep_vars=True)
    kept = set(state)
    if not buffers:
        kept = {name for name, _ in module.named_parameters(remove_duplicate=False)}
    mask_names = {name + "_mask" for name in pruned}
    originals = {name + "_orig": name for name in pruned}
    params: dict[str, Tensor] = {
        originals.get(k, k): v
        for k, v in state.items()
        if k in kept and k not in mask_names and isinstance(v, Tensor)
    }
    masks = {name: _bool_mask(name, module.get_buffer(name + "_mask")) for name in pruned}
    return params, masks


def _state_dict_problems(state_dict: Mapping[str, object], pruned: set[str]) -> list[str]:
    """What makes a torch-prune style state dict ambiguous or corrupt, one line per key."""
    problems = [
        f"{key!r} has no {key[: -len('_mask')] + '_orig'!r} beside it while "
        f"{key[: -len('_mask')]!r} is there (a mask without its _orig)"
        for key in state_dict
        if key.endswith("_mask")
        and key[: -len("_mask")] in state_dict
        and key[: -len("_mask")] not in pruned
    ]
    problems += [
        f"{base!r} is there beside {base + '_orig'!r} and {base + '_mask'!r} (a plain tensor "
        "and a pruned one of the same name)"
        for base in sorted(pruned)
        if base in state_dict
    ]
    shapes = {
        base: (state_dict[base + "_orig"], state_dict[base + "_mask"]) for base in sorted(pruned)
    }
    problems += [
        f"{base + '_mask'!r} has shape {tuple(mask.shape)}, {base + '_orig'!r} {tuple(orig.shape)}"
        for base, (orig, mask) in shapes.items()
        if isinstance(orig, Tensor) and isinstance(mask, Tensor) and orig.shape != mask.shape
    ]
    return problems


def from_state_dict(state_dict: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], Masks]:
    """Split a torch-prune style state dict into ``(params, masks)``.

    Every ``<key>_orig`` that has a ``<key>_mask`` beside it becomes ``params[key]`` with the bool
    ``masks[key]``; every other entry (parameters and buffers alike) goes to ``params`` as is. The
    whole dict is checked before anything is converted.

    Raises:
        TypeError: ``state_dict`` is not a mapping of ``str`` keys to tensors.
        ValueError: a corrupt or ambiguous checkpoint, every problem listed: a ``<key>_mask``
            beside a plain ``<key>`` without ``<key>_orig``; a plain ``<key>`` beside a pruned
            one; a mask whose shape differs from its ``_orig``'s; a mask with values other than
            0 and 1.

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
    check_params(state_dict)
    pruned = {
        key[: -len("_mask")]
        for key in state_dict
        if key.endswith("_mask") and key[: -len("_mask")] + "_orig" in state_dict
    }
    problems = _state_dict_problems(state_dict, pruned)
    if problems:
        raise ValueError(
            "state_dict is not a consistent torch-prune checkpoint: "
            + "; ".join(problems)
            + " (a pruned tensor is exactly <key>_orig and <key>_mask, of one shape)"
        )
    masks = {base: _bool_mask(base, state_dict[base + "_mask"]) for base in sorted(pruned)}
    params: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.endswith("_orig") and key[: -len("_orig")] in pruned:
            params[key[: -len("_orig")]] = value
        elif not (key.endswith("_mask") and key[: -len("_mask")] in pruned):
            params[key] = value
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


def _snapshots(module: nn.Module, keys: list[str]) -> list[Snapshot]:
    """The state ``install_masks`` may change for ``keys``: each owner module and its hooks."""
    snapshots = []
    for key in keys:
        owner = module.get_submodule(key.rpartition(".")[0])
        containers = [
            hook
            for _, hook in pruning_hooks(owner)
            if hook._tensor_name == key.rpartition(".")[2] and hasattr(hook, "_pruning_methods")
        ]
        snapshots.append(Snapshot.take(owner, owner=containers[0] if containers else None))
    return snapshots


def install_masks(module: nn.Module, masks: Mapping[str, Tensor]) -> nn.Module:
    """Prune ``module`` in place with ``masks``, exactly as ``torch.nn.utils.prune`` would.

    Each masked tensor gets torch's reparametrization (``<name>_orig``, a ``<name>_mask`` buffer
    in the parameter's dtype, a :class:`funcprune.compat.CustomFromMask` forward pre-hook), on top
    of any pruning it already has. Keys are ``from_module`` parameter names (a tied weight under
    any of its names). All or nothing: every mask is checked first, and if installing one still
    fails, the modules pruned before it are put back as they were.

    Raises:
        KeyError: keys that are not (possibly pruned) parameters of ``module`` (buffers included).
        TypeError, ValueError: masks that are not bool, not of their parameter's shape, or on
            another device than their parameter.
        ValueError: keys pruned by ``torch.nn.utils.prune`` (its hooks and compat's cannot be
            stacked); nothing is changed.

    >>> import torch, funcprune as fp
    >>> lin = fp.install_masks(torch.nn.Linear(2, 2), {"bias": torch.tensor([True, False])})
    >>> lin.bias_mask, list(lin.state_dict())
    (tensor([1., 0.]), ['weight', 'bias_orig', 'bias_mask'])
    """

    params, _ = from_module(module, buffers=False)
    check_masks(params, masks)
    by_torch = sorted(set(masks) & set(_pruned_names(module, (torch_prune.BasePruningMethod,))))
    if by_torch:
        raise ValueError(
            f"{by_torch} are pruned by torch.nn.utils.prune, whose hooks funcprune.compat's cannot "
            "extend; make that pruning permanent with torch.nn.utils.prune.remove(submodule, name) "
            "first, or leave those keys out"
        )
    elsewhere = sorted(
        f"{k!r} (mask on {m.device}, parameter on {params[k].device})"
        for k, m in masks.items()
        if m.device != params[k].device
    )
    if elsewhere:
        raise ValueError(f"masks must be on their parameter's device: {', '.join(elsewhere)}")
    snapshots = _snapshots(module, list(masks))
    try:
        for key, mask in masks.items():
            owner, _, name = key.rpartition(".")
            custom_from_mask(module.get_submodule(owner), name, mask)
    except BaseException:
        for snapshot in reversed(snapshots):
            snapshot.restore()
        raise
    return module


__all__ = ["from_module", "from_state_dict", "install_masks", "to_state_dict"]
