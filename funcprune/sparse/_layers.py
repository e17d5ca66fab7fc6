"""The layers the sparse converters handle, and a finalized copy of a model to swap them in.

Handled: ``torch.nn.Linear`` (weight ``(out, in)``) and Hugging Face ``transformers``'
``Conv1D`` (GPT-2's; weight ``(in, out)``, ``y = x @ weight + bias``).

>>> import torch
>>> model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
>>> sorted(linear_layers(model))
['0.weight', '2.weight']
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from funcprune._checks import check_masks, check_params, check_tensor_dict
from funcprune.io import finalize
from funcprune.types import Params

WEIGHT = ".weight"


def _conv1d_type() -> type | None:
    """``transformers``' Conv1D class when transformers is imported (a model using it imports it)."""
    module = sys.modules.get("transformers.pytorch_utils")
    return getattr(module, "Conv1D", None)


def is_conv1d(module: nn.Module) -> bool:
    """Whether ``module`` is a ``transformers`` Conv1D (weight stored ``(in, out)``)."""
    conv1d = _conv1d_type()
    return conv1d is not None and isinstance(module, conv1d)


def linear_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Linear and Conv1D layers by their weight's key (``"<module name>.weight"``)."""
    return {
        _weight_key(name): module
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) or is_conv1d(module)
    }


def _weight_key(name: str) -> str:
    return f"{name}{WEIGHT}" if name else WEIGHT[1:]


def module_name(key: str) -> str:
    """The module name of a weight key: ``"fc.weight"`` -> ``"fc"``, ``"weight"`` -> ``""``."""
    return key[: -len(WEIGHT)] if key.endswith(WEIGHT) else ""


def dense_weight(module: nn.Module) -> Tensor:
    """The layer's weight as ``(out, in)`` (Conv1D's transposed), detached."""
    weight = module.weight
    if not isinstance(weight, Tensor):
        raise TypeError(f"{type(module).__name__} has no weight tensor")
    return (weight.T if is_conv1d(module) else weight).detach()


def bias_of(module: nn.Module) -> Tensor | None:
    """The layer's bias, detached, or ``None``."""
    bias = getattr(module, "bias", None)
    return bias.detach() if isinstance(bias, Tensor) else None


def finalized_copy(model: nn.Module, params: Params, masks: Mapping[str, Tensor]) -> nn.Module:
    """A deep copy of ``model`` holding ``finalize(params, masks)``; ``model`` is untouched.

    Raises:
        KeyMismatchError (a ``ValueError``): ``params`` keys that are not the model's parameters
            (or masks of other keys).
        ValueError: shapes that differ from the model's or the params'.
        TypeError: ``params`` or ``masks`` of the wrong types.
    """
    check_params(params)
    check_masks(params, masks)
    check_tensor_dict(dict(model.named_parameters()), params, "params")
    result = copy.deepcopy(model)
    targets = dict(result.named_parameters())
    with torch.no_grad():
        for key, value in finalize(params, masks).items():
            targets[key].copy_(value)
    return result


def swap(root: nn.Module, key: str, new: nn.Module) -> nn.Module:
    """Put ``new`` in place of the layer whose weight is ``key``; returns the (new) root."""
    name = module_name(key)
    if not name:
        return new
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent), child, new)
    return root


def plan(
    model: nn.Module,
    masks: Mapping[str, Tensor],
    layout: str | Mapping[str, str],
    allowed: tuple[str, ...],
) -> dict[str, str]:
    """The layout for each layer to convert: ``layout`` for every layer whose mask prunes
    something, or the mapping's choices.

    Raises:
        ValueError: a mapping key that is not a Linear/Conv1D weight, a layout not in
            ``allowed`` (the message names the key), or nothing to convert (no layer's mask
            prunes an entry, or an empty mapping; a mapping of only ``"dense"`` is a choice).
    """
    layers = linear_layers(model)
    if isinstance(layout, str):
        chosen = {k: layout for k in layers if k in masks and not bool(masks[k].all())}
    else:
        chosen = dict(layout)
    others = sorted(k for k in chosen if k not in layers)
    if others:
        raise ValueError(
            f"keys {others} are not weights of torch.nn.Linear or transformers Conv1D layers; "
            f"convertible keys are {sorted(layers)}"
        )
    bad = sorted(f"{k!r}: {v!r}" for k, v in chosen.items() if v not in allowed)
    if bad:
        raise ValueError(f"layouts must be one of {list(allowed)}; got {', '.join(bad)}")
    if not chosen:
        why = (
            "layout is an empty mapping"
            if not isinstance(layout, str)
            else "no torch.nn.Linear or transformers Conv1D weight has a mask that prunes an entry"
        )
        raise ValueError(
            f"nothing to convert: {why} (masked keys: {sorted(masks)}; "
            f"layer weights: {sorted(layers)})"
        )
    return {k: v for k, v in chosen.items() if v != "dense"}
