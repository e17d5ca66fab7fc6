"""Running models on masked parameters: ``apply_masks``, ``masked_call`` and ``sparsity``.

>>> import torch, funcprune as fp
>>> fp.apply_masks({"w": torch.tensor([1.0, 2.0])}, {"w": torch.tensor([True, False])})
{'w': tensor([1., 0.])}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor, nn
from torch.func import functional_call

from funcprune._checks import KeyMismatchError, check_masks, check_params, check_tensor_dict
from funcprune.distributed._detect import any_dtensor
from funcprune.types import Params


def apply_masks(params: Params, masks: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Parameters with pruned entries set to zero; keys without a mask pass through unchanged.

    Differentiable in ``params``: the gradient of a pruned entry is exactly zero. The product is
    ``mask.to(param.dtype) * param``, the same arithmetic as torch's pruning hook, so outputs match
    it bit for bit.

    >>> import torch, funcprune as fp
    >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> fp.apply_masks({"w": w}, {"w": torch.tensor([False, True])})["w"].sum().backward()
    >>> w.grad
    tensor([0., 1.])
    """
    check_params(params)
    check_masks(params, masks)
    return {key: _masked(p, masks[key]) if key in masks else p for key, p in params.items()}


def _masked(param: Tensor, mask: Tensor) -> Tensor:
    """``mask.to(param.dtype) * param``, the cast done the fastest way measured on CPU.

    Casting first keeps the product and its backward float-by-float (a mixed bool product is
    slower both ways). Eagerly the cast goes through uint8 (same 0/1 values; about twice as fast
    as bool's); under ``torch.compile`` it stays an ATen call (:func:`_mask_to`), because
    inductor's fused bool loads are several times slower.
    """
    if torch.compiler.is_compiling():
        return cast(Tensor, _mask_to(mask, param.dtype)) * param
    return mask.view(torch.uint8).to(param.dtype) * param


@torch.library.custom_op("funcprune::mask_to", mutates_args=())
def _mask_to(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """A bool mask as 0/1 of ``dtype``, opaque to ``torch.compile`` (runs as ATen's cast)."""
    return mask.view(torch.uint8).to(dtype)


@_mask_to.register_fake
def _mask_to_fake(mask: Tensor, dtype: torch.dtype) -> Tensor:
    return torch.empty_like(mask, dtype=dtype)


@_mask_to.register_vmap
def _mask_to_vmap(
    info: object, in_dims: tuple[int | None, None], mask: Tensor, dtype: torch.dtype
) -> tuple[Tensor, int | None]:
    return _mask_to(mask, dtype), in_dims[0]


def _module_tensors(module: nn.Module) -> dict[str, Tensor]:
    """Every parameter and buffer of ``module`` under every name, tied names included."""
    named: dict[str, Tensor] = dict(module.named_parameters(remove_duplicate=False))
    named.update(module.named_buffers(remove_duplicate=False))
    return named


def _attribute_tensor(module: nn.Module, key: str) -> Tensor | None:
    """The tensor attribute ``key`` names (e.g. a torch-pruned ``weight``), or ``None``."""
    owner, _, name = key.rpartition(".")
    try:
        value = getattr(module.get_submodule(owner), name, None)
    except AttributeError:
        return None
    return value if isinstance(value, Tensor) else None


def _tie_groups(named: Mapping[str, Tensor]) -> list[list[str]]:
    """Names sharing one tensor object (``functional_call``'s notion of tied), module order."""
    groups: dict[int, list[str]] = {}
    for name, t in named.items():
        groups.setdefault(id(t), []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def _call_values(
    module: nn.Module, params: Params, masks: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """The tensors ``masked_call`` hands ``functional_call``, every tied name spelled out.

    A masked key missing from ``params`` (``from_module`` keys a mask by the pruned alias, e.g.
    ``lm_head.weight``, while ``named_parameters()`` lists only ``transformer.wte.weight``) is its
    tied alias's parameter (or the module's own tensor) times its mask; a tied name given neither
    a parameter nor a mask takes the value of the first tied name that was given.
    """
    named = _module_tensors(module)
    known = {
        key: named[key] if key in named else _attribute_tensor(module, key)
        for key in {*params, *masks}
    }
    unknown = sorted(key for key, t in known.items() if t is None)
    if unknown:
        shown = sorted(named)
        listed = f"{shown[:10]} ... ({len(shown)} in all)" if len(shown) > 10 else f"{shown}"
        raise KeyMismatchError(
            f"masked_call: {unknown} name no parameter or buffer of the module (check the "
            f"spelling); its tensors are {listed}"
        )
    groups = _tie_groups(named)
    group_of = {name: group for group in groups for name in group}
    sources = dict(params)
    for key in masks:
        if key not in params:
            alias = next((n for n in group_of.get(key, []) if n in params), None)
            sources[key] = params[alias] if alias is not None else cast(Tensor, known[key])
    values = apply_masks(sources, masks)
    for group in groups:
        given = next((name for name in group if name in values), None)
        if given is not None:
            values.update({name: values[given] for name in group if name not in values})
    return values


def masked_call(
    module: nn.Module, params: Params, masks: Mapping[str, Tensor], *args: Any, **kwargs: Any
) -> Any:
    """``functional_call(module, apply_masks(params, masks), args, kwargs)``, tied weights included.

    ``params`` may hold a subset of the module's parameters and buffers; the rest come from the
    module. Tied weights (GPT-2's ``lm_head.weight`` is ``transformer.wte.weight``) follow the
    keys given: a tied name left out of ``params`` and ``masks`` uses the tied tensor as given
    (masked if its key is masked); keys given separately are used separately, and a mask keyed by
    a tied name missing from ``params`` (what :func:`funcprune.from_module` returns for a module
    whose ``lm_head`` torch pruned) masks that name's use of its alias's parameter.

    Pure in the parameters; **not** in the buffers: in ``train()`` mode BatchNorm updates its
    running statistics in place, like ``functional_call`` does (the module's own buffers, or the
    buffers passed in ``params``). Run in ``eval()`` mode, or pass copies of the buffers (see
    ``docs/semantics.md``) to leave them untouched.

    On an FSDP2 module (``fully_shard``), which gathers its own parameters, it zeroes the pruned
    entries of the module's sharded parameters in place, then calls the module (see
    ``docs/distributed.md``).

    Raises:
        KeyError: keys of ``params`` or ``masks`` that name no parameter or buffer of ``module``
            (all listed at once), or masks that fit no parameter.
        TypeError, ValueError: masks that are not bool or not of their parameter's shape.

    >>> import torch, funcprune as fp
    >>> lin = torch.nn.Linear(2, 1, bias=False)
    >>> params = {"weight": torch.tensor([[1.0, 2.0]])}
    >>> fp.masked_call(lin, params, {"weight": torch.tensor([[True, False]])}, torch.ones(1, 2))
    tensor([[1.]])
    """
    check_params(params)
    if any_dtensor(params.values()):  # FSDP2 gathers its own parameters: funcprune.distributed
        from funcprune.distributed._fsdp import fsdp_masked_call, is_fsdp

        if is_fsdp(module):
            return fsdp_masked_call(module, params, masks, args, kwargs)
    values = _call_values(module, params, masks)
    return functional_call(module, values, args, kwargs, tie_weights=False)


class Sparsity(NamedTuple):
    """Fractions of pruned entries: ``overall`` and ``per_key``."""

    overall: float
    per_key: dict[str, float]


def sparsity(masks: Mapping[str, Tensor], params: Params | None = None) -> Sparsity:
    """The fraction of entries pruned, overall and per key.

    With ``params``, every parameter counts (keys without a mask are dense) and mask shapes are
    checked against them; without, only the masks count. Either way masks must be bool tensors.

    Raises:
        TypeError: ``masks`` not a mapping of bool tensors (or ``params`` not one of tensors).
        KeyError, ValueError: with ``params``, masks that do not fit them.

    >>> import torch, funcprune as fp
    >>> s = fp.sparsity({"w": torch.tensor([True, False, False, True])}, {"w": torch.zeros(4), "b": torch.zeros(4)})
    >>> s.overall, s.per_key
    (0.25, {'w': 0.5, 'b': 0.0})
    """
    if params is None:
        check_tensor_dict(masks, masks, "masks", bool_only=True)
        sizes = {key: m.numel() for key, m in masks.items()}
    else:
        check_params(params)
        check_masks(params, masks)
        sizes = {key: p.numel() for key, p in params.items()}
    pruned = {key: int((~masks[key]).sum()) if key in masks else 0 for key in sizes}
    total = sum(sizes.values())
    return Sparsity(
        overall=sum(pruned.values()) / total if total else 0.0,
        per_key={key: pruned[key] / n if n else 0.0 for key, n in sizes.items()},
    )


__all__ = ["Sparsity", "apply_masks", "masked_call", "sparsity"]
