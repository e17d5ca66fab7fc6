"""Layer orientation: which dim of each weight indexes the layer's input and output features.

``nn.Linear`` stores ``(out, in)`` and convolutions ``(out, in / groups, *kernel)``, but
transposed convolutions store ``(in, out / groups, *kernel)``, embeddings ``(vocabulary, dim)``
and HF ``Conv1D`` (GPT-2) ``(in, out)``. A structured method's ``dim`` is a tensor dim, so one
``dim`` means inputs for some layers and outputs for others. :func:`feature_dims` reads the
orientation off the modules; :func:`along_inputs` and :func:`along_outputs` build a method with
the right ``dim`` for each key.

>>> import torch, funcprune as fp
>>> from funcprune.layers import along_inputs, along_outputs, feature_dims
>>> model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ConvTranspose1d(4, 8, 3))
>>> feature_dims(model)
{'0.weight': FeatureDims(input=1, output=0), '1.weight': FeatureDims(input=0, output=1)}
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import NamedTuple

from torch import Tensor, nn

from funcprune.methods.per_key import PerKey
from funcprune.types import PruningMethod


class FeatureDims(NamedTuple):
    """The dims of a weight along its layer's input features and output features."""

    input: int
    output: int


_MATMUL = FeatureDims(input=1, output=0)
"""``(out, in, ...)``: Linear, convolutions, recurrent and attention projections."""
_TRANSPOSED = FeatureDims(input=0, output=1)
"""``(in, out, ...)``: transposed convolutions and HF ``Conv1D``."""
_LOOKUP = FeatureDims(input=0, output=1)
"""``(vocabulary, dim)``: embeddings (a lookup: loses to a product layer tied to the same weight)."""


def _is_hf_conv1d(module: nn.Module) -> bool:
    """transformers' ``Conv1D`` (GPT-2's projections), recognized without importing transformers."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def _oriented(module: nn.Module) -> Iterator[tuple[str, FeatureDims, bool]]:
    """``(tensor name, dims, is_lookup)`` for the weights of ``module`` itself that we know."""
    if isinstance(module, nn.Linear):
        yield "weight", _MATMUL, False
    elif isinstance(module, nn.modules.conv._ConvNd):
        yield "weight", _TRANSPOSED if module.transposed else _MATMUL, False
    elif _is_hf_conv1d(module):
        yield "weight", _TRANSPOSED, False
    elif isinstance(module, nn.Embedding | nn.EmbeddingBag):
        yield "weight", _LOOKUP, True
    elif isinstance(module, nn.MultiheadAttention):
        for name in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
            if getattr(module, name, None) is not None:
                yield name, _MATMUL, False
    elif isinstance(module, nn.RNNBase):
        for name in module._flat_weights_names:
            if name.startswith("weight_"):
                yield name, _MATMUL, False


def _tensor(module: nn.Module, name: str) -> object:
    """The parameter behind ``name`` (its ``_orig`` once pruned), to tell tied weights apart."""
    original = getattr(module, name + "_orig", None)
    return getattr(module, name) if original is None else original


def feature_dims(module: nn.Module) -> dict[str, FeatureDims]:
    """The input- and output-feature dims of every weight of a known layer, by parameter key.

    Known layers: ``nn.Linear``, ``nn.Conv1d/2d/3d`` (input dim 1, output dim 0),
    ``nn.ConvTranspose1d/2d/3d`` and HF ``Conv1D`` (input 0, output 1), ``nn.Embedding`` and
    ``nn.EmbeddingBag`` (rows are the vocabulary: input 0, output 1), ``nn.MultiheadAttention``'s
    input projections and recurrent layers' weights (input 1, output 0); subclasses included.
    Other parameters (biases, norms, unknown layers) are absent. Keys are ``named_parameters()``
    names (``from_module`` names for pruned modules); a weight tied to several layers appears
    once, under its first name, with the orientation of a layer that multiplies with it rather
    than an embedding that only looks rows up (GPT-2's ``transformer.wte.weight`` gets
    ``lm_head``'s: input 1). Its other names follow it in every method (see tied weights in
    ``docs/semantics.md``).

    >>> import torch, funcprune as fp
    >>> from funcprune.layers import along_inputs, along_outputs, feature_dims
    >>> feature_dims(torch.nn.Conv2d(3, 8, 3))
    {'weight': FeatureDims(input=1, output=0)}
    >>> feature_dims(torch.nn.Embedding(10, 4))
    {'weight': FeatureDims(input=0, output=1)}
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"feature_dims takes an nn.Module; got {type(module).__name__}")
    first: dict[int, str] = {}
    found: dict[str, tuple[FeatureDims, bool]] = {}
    for prefix, sub in module.named_modules(remove_duplicate=False):
        for name, dims, lookup in _oriented(sub):
            tensor = _tensor(sub, name)
            if not isinstance(tensor, Tensor):
                continue
            key = first.setdefault(id(tensor), prefix + ("." if prefix else "") + name)
            if key not in found or (found[key][1] and not lookup):
                found[key] = (dims, lookup)
    return {key: dims for key, (dims, _) in found.items()}


def _along(
    layers: nn.Module | Mapping[str, FeatureDims],
    make: Callable[[int], PruningMethod],
    side: str,
) -> PerKey:
    dims = feature_dims(layers) if isinstance(layers, nn.Module) else layers
    if not isinstance(dims, Mapping) or not callable(make):
        raise TypeError(
            f"along_{side}s takes a module (or feature_dims' mapping) and a function from a dim "
            f"to a pruning method, e.g. lambda dim: fp.nm_semistructured(2, 4, dim=dim); got "
            f"{type(layers).__name__} and {type(make).__name__}"
        )
    return PerKey(tuple((key, make(getattr(d, side))) for key, d in dims.items()))


def along_inputs(
    layers: nn.Module | Mapping[str, FeatureDims], make: Callable[[int], PruningMethod]
) -> PerKey:
    """``make(dim)`` for each layer weight, ``dim`` being the weight's input-feature dim.

    A :func:`funcprune.per_key` method over the weights :func:`feature_dims` knows; other keys
    pass through unpruned. Use it for N:M sparsity (sparse tensor cores group along inputs) and
    for pruning input features (``ln_structured`` along inputs removes columns of a Linear and
    rows of a GPT-2 ``Conv1D``). Every weight key must be among the parameters it is called on.

    Args:
        layers: the model, or a ``{key: FeatureDims}`` mapping (e.g. :func:`feature_dims`'s,
            filtered).
        make: builds the method for one weight from its dim.

    >>> import torch, funcprune as fp
    >>> from funcprune.layers import along_inputs, along_outputs, feature_dims
    >>> torch.manual_seed(0) and None
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ConvTranspose1d(4, 8, 1))
    >>> params = {k: v.detach() for k, v in model.named_parameters()}
    >>> masks = along_inputs(model, lambda dim: fp.nm_semistructured(2, 4, dim=dim))(params)
    >>> masks["0.weight"].reshape(4, 2, 4).sum(-1).unique().tolist()  # 2 of 4 inputs per group
    [2]
    >>> masks["1.weight"].reshape(1, 4, 8).sum(1).unique().tolist()  # (in, out, k): along dim 0
    [2]
    """
    return _along(layers, make, "input")


def along_outputs(
    layers: nn.Module | Mapping[str, FeatureDims], make: Callable[[int], PruningMethod]
) -> PerKey:
    """``make(dim)`` for each layer weight, ``dim`` being the weight's output-feature dim.

    As :func:`along_inputs`; e.g. ``ln_structured`` along outputs prunes whole neurons or
    channels (rows of a Linear, columns of a GPT-2 ``Conv1D``).

    >>> import torch, funcprune as fp
    >>> from funcprune.layers import along_inputs, along_outputs, feature_dims
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4))
    >>> along_outputs(model, lambda dim: fp.ln_structured(1, n=2, dim=dim))
    per_key({'0.weight': ln_structured(1, n=2, dim=0)})
    """
    return _along(layers, make, "output")


__all__ = ["FeatureDims", "along_inputs", "along_outputs", "feature_dims"]
