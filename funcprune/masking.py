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

from funcprune._checks import check_masks, check_params
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


def masked_call(
    module: nn.Module, params: Params, masks: Mapping[str, Tensor], *args: Any, **kwargs: Any
) -> Any:
    """``functional_call(module, apply_masks(params, masks), args, kwargs)``.

    ``params`` may hold a subset of the module's parameters; the rest come from the module.

    >>> import torch, funcprune as fp
    >>> lin = torch.nn.Linear(2, 1, bias=False)
    >>> params = {"weight": torch.tensor([[1.0, 2.0]])}
    >>> fp.masked_call(lin, params, {"weight": torch.tensor([[True, False]])}, torch.ones(1, 2))
    tensor([[1.]])
    """
    return functional_call(module, apply_masks(params, masks), args, kwargs)


class Sparsity(NamedTuple):
    """Fractions of pruned entries: ``overall`` and ``per_key``."""

    overall: float
    per_key: dict[str, float]


def sparsity(masks: Mapping[str, Tensor], params: Params | None = None) -> Sparsity:
    """The fraction of entries pruned, overall and per key.

    With ``params``, every parameter counts (keys without a mask are dense) and mask shapes are
    checked against them; without, only the masks count.

    >>> import torch, funcprune as fp
    >>> s = fp.sparsity({"w": torch.tensor([True, False, False, True])}, {"w": torch.zeros(4), "b": torch.zeros(4)})
    >>> s.overall, s.per_key
    (0.25, {'w': 0.5, 'b': 0.0})
    """
    if params is None:
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
