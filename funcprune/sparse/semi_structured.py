"""``to_semi_structured``: 2:4-pruned Linear layers on NVIDIA's sparse tensor cores.

Needs a CUDA GPU of compute capability 8.0 or newer (Ampere, Hopper, ...). Anywhere else it
raises, naming the layer and what is missing: it never falls back to dense silently.

See :func:`to_semi_structured`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from funcprune.sparse._layers import (
    bias_of,
    dense_weight,
    finalized_copy,
    is_conv1d,
    linear_layers,
    module_name,
    plan,
    swap,
)
from funcprune.types import Params

_MIN_CAPABILITY = (8, 0)


def to_semi_structured(model: nn.Module, params: Params, masks: Mapping[str, Tensor]) -> nn.Module:
    """A copy of ``model`` whose 2:4-pruned Linear weights are ``torch.sparse`` semi-structured.

    Every Linear (or ``transformers`` Conv1D, turned into an equivalent Linear) whose mask
    prunes something is converted with ``torch.sparse.to_sparse_semi_structured``; its mask must
    keep at most 2 of every 4 consecutive entries along the input features (as
    ``fp.nm_semistructured(2, 4)`` makes). The parameters must already be on a CUDA GPU of
    compute capability >= 8.0; torch's own limits on dtypes (float16, bfloat16, int8, and
    float32 with cuSPARSELt) and minimum shapes apply and raise torch's errors. ``model`` is
    untouched; the copy is for inference (its sparse weights do not require grad).

    Raises:
        ValueError: a mask that is not 2:4 along the input features, or nothing to convert
            (the message names the keys).
        RuntimeError: CUDA absent, or the weight is not on a GPU of compute capability >= 8.0
            (names the key and its device).

    >>> import torch, funcprune as fp
    >>> from funcprune.sparse import to_semi_structured
    >>> model = torch.nn.Sequential(torch.nn.Linear(64, 64))
    >>> params = dict(model.named_parameters())
    >>> masks = fp.only(fp.nm_semistructured(2, 4), include=r".*weight")(params)
    >>> to_semi_structured(model, params, masks)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    RuntimeError: 2:4 semi-structured sparsity needs a CUDA GPU of compute capability >= 8.0 ...
    """
    keys = plan(model, masks, "2:4", ("2:4",))
    layers = linear_layers(model)
    _check_two_four(keys, layers, masks)
    for key in keys:
        _check_hardware(key, dense_weight(layers[key]))
    result = finalized_copy(model, params, masks)
    for key in keys:
        layer = result.get_submodule(module_name(key))
        result = swap(result, key, _semi_structured_linear(dense_weight(layer), bias_of(layer)))
    return result


def _check_two_four(
    keys: Mapping[str, str], layers: Mapping[str, nn.Module], masks: Mapping[str, Tensor]
) -> None:
    problems = []
    for key in keys:
        mask = masks[key].T if is_conv1d(layers[key]) else masks[key]
        if mask.shape[1] % 4:
            problems.append(f"{key!r}: {mask.shape[1]} input features are not a multiple of 4")
            continue
        dense_groups = int((mask.reshape(mask.shape[0], -1, 4).sum(-1) > 2).sum())
        if dense_groups:
            problems.append(f"{key!r}: {dense_groups} groups of 4 keep more than 2 entries")
    if problems:
        raise ValueError(
            "2:4 semi-structured weights keep at most 2 of every 4 consecutive input features; "
            f"{'; '.join(problems)}. Prune them with funcprune.nm_semistructured(2, 4) first"
        )


def _check_hardware(key: str, weight: Tensor) -> None:
    need = "2:4 semi-structured sparsity needs a CUDA GPU of compute capability >= 8.0 (Ampere or newer)"
    if weight.device.type != "cuda":
        where = (
            "no CUDA device is available"
            if not torch.cuda.is_available()
            else "move the model there"
        )
        raise RuntimeError(
            f"{need}; {key!r} is on {weight.device} ({where}). On CPU use funcprune.sparse.to_sparse"
        )
    capability = torch.cuda.get_device_capability(weight.device)
    if capability < _MIN_CAPABILITY:
        raise RuntimeError(
            f"{need}; {key!r} is on {weight.device}, of compute capability "
            f"{capability[0]}.{capability[1]}. Use funcprune.sparse.to_sparse instead"
        )


def _semi_structured_linear(weight: Tensor, bias: Tensor | None) -> nn.Linear:
    out_features, in_features = weight.shape
    layer = nn.Linear(in_features, out_features, bias=bias is not None, device="meta")
    sparse = torch.sparse.to_sparse_semi_structured(weight.contiguous())
    layer.weight = nn.Parameter(sparse, requires_grad=False)
    if bias is not None:
        layer.bias = nn.Parameter(bias.clone(), requires_grad=False)
    return layer


__all__ = ["to_semi_structured"]
