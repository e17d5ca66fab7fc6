"""Baking pruning in: parameters whose pruned entries are stored zeros.

>>> import torch
>>> from funcprune.io import finalize
>>> finalize({"w": torch.tensor([1.0, 2.0])}, {"w": torch.tensor([True, False])})
{'w': tensor([1., 0.])}
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from funcprune._checks import check_masks, check_params
from funcprune.types import Params


def finalize(params: Params, masks: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """New, detached tensors with every pruned entry an exact zero; the inputs are untouched.

    Unlike :func:`funcprune.apply_masks` (which multiplies, keeps the autograd graph and so lets
    ``nan`` or ``inf`` weights through as ``nan``), the result is ``torch.where(mask, param, 0)``:
    a pruned entry is ``0`` whatever it held, and nothing is attached to a graph (the results
    do not require grad, even for ``requires_grad`` or ``nn.Parameter`` inputs). Keys without a
    mask are copied. Dtype and device are kept; masks may be on another device than their
    parameters. Use the result as a checkpoint or to ``load_state_dict`` into a module.

    Raises:
        TypeError: ``params`` is not ``str`` to tensor, or a mask is not a bool tensor.
        KeyError: a mask of a key that is not a parameter.
        ValueError: a mask of another shape than its parameter.

    >>> import torch
    >>> from funcprune.io import finalize
    >>> w = torch.tensor([float("nan"), 2.0], requires_grad=True)
    >>> finalize({"w": w}, {"w": torch.tensor([False, True])})
    {'w': tensor([0., 2.])}
    """
    check_params(params)
    check_masks(params, masks)
    with torch.no_grad():
        return {
            key: _zeroed(p, masks[key]) if key in masks else p.detach().clone()
            for key, p in params.items()
        }


def _zeroed(param: Tensor, mask: Tensor) -> Tensor:
    return torch.where(mask.to(param.device), param.detach(), param.new_zeros(()))


__all__ = ["finalize"]
