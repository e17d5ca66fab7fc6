"""Straight-through masking: the forward pass sees masked parameters, the gradient is dense.

Methods that let pruned weights compete again (dynamic sparse training, STE-based N:M training)
need the gradient of the loss with respect to *every* weight, although the model runs on the
masked ones. :func:`straight_through` is :func:`funcprune.apply_masks` with that gradient.

>>> import torch, funcprune as fp
>>> w = torch.tensor([1.0, 2.0], requires_grad=True)
>>> masked = fp.straight_through({"w": w}, {"w": torch.tensor([False, True])})["w"]
>>> masked.detach(), torch.autograd.grad((masked * 3).sum(), w)[0]
(tensor([0., 2.]), tensor([3., 3.]))
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from funcprune._checks import check_masks, check_params
from funcprune.types import Params


def straight_through(params: Params, masks: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Parameters whose values are ``param * mask`` but whose gradient passes as if unmasked.

    Each masked value is ``param + (param * mask - param).detach()``: the values equal
    :func:`funcprune.apply_masks`' exactly (``x + -x`` is ``0``), and the derivative with respect
    to ``param`` is the identity. Works under ``torch.func.grad`` and ``vmap``. Keys without a
    mask pass through unchanged.

    >>> import torch, funcprune as fp
    >>> from torch.func import grad
    >>> masks = {"w": torch.tensor([True, False])}
    >>> loss = lambda p: (fp.straight_through(p, masks)["w"] * torch.tensor([3.0, 4.0])).sum()
    >>> grad(loss)({"w": torch.tensor([1.0, 5.0])})  # apply_masks would give [3., 0.]
    {'w': tensor([3., 4.])}
    """
    check_params(params)
    check_masks(params, masks)
    return {
        key: p + (p * masks[key] - p).detach() if key in masks else p for key, p in params.items()
    }


__all__ = ["straight_through"]
