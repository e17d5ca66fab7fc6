"""Module attributes that must follow their parameters' shapes after a shrink.

Each rule reads the (already sliced) parameters of one module and the attributes it had before,
and sets the attributes its ``forward`` reads: channel and feature counts, groups, head counts.

>>> from torch import nn
>>> layer = nn.Linear(4, 3)
>>> layer.weight = nn.Parameter(layer.weight[:2, :1].detach())
>>> update_attributes(layer)
>>> layer.in_features, layer.out_features
(1, 2)
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def _conv(module: nn.Module) -> None:
    assert isinstance(module, nn.modules.conv._ConvNd)
    weight, groups = module.weight, module.groups
    if groups == 1:
        shape = weight.shape[1::-1] if module.transposed else weight.shape[:2]
        module.out_channels, module.in_channels = shape
        return
    if module.transposed:
        per_group = module.in_channels // groups
        module.groups = weight.shape[0] // per_group
        module.in_channels = weight.shape[0]
        module.out_channels = weight.shape[1] * module.groups
    else:
        per_group = module.out_channels // groups
        module.groups = weight.shape[0] // per_group
        module.out_channels = weight.shape[0]
        module.in_channels = weight.shape[1] * module.groups


def _linear(module: nn.Module) -> None:
    assert isinstance(module, nn.Linear)
    module.out_features, module.in_features = module.weight.shape


def _norm(module: nn.Module) -> None:
    assert isinstance(module, (nn.modules.batchnorm._NormBase))
    source = module.weight if module.weight is not None else module.running_mean
    if source is not None:
        module.num_features = source.shape[0]


def _group_norm(module: nn.Module) -> None:
    assert isinstance(module, nn.GroupNorm)
    if module.weight is not None:
        per_group = module.num_channels // module.num_groups
        module.num_channels = module.weight.shape[0]
        module.num_groups = module.num_channels // per_group


def _layer_norm(module: nn.Module) -> None:
    weight = getattr(module, "weight", None)
    if weight is not None:
        setattr(module, "normalized_shape", tuple(weight.shape))  # noqa: B010 - typed as a Module attribute


def _embedding(module: nn.Module) -> None:
    assert isinstance(module, nn.Embedding)
    module.num_embeddings, module.embedding_dim = module.weight.shape


def _prelu(module: nn.Module) -> None:
    assert isinstance(module, nn.PReLU)
    module.num_parameters = module.weight.numel()


def _hf_conv1d(module: nn.Module) -> None:
    """transformers' ``Conv1D`` (GPT-2): weight is ``(in, out)``; ``nf`` is the output width."""
    inputs, outputs = getattr(module, "weight").shape  # noqa: B009
    setattr(module, "nx", inputs)  # noqa: B010
    setattr(module, "nf", outputs)  # noqa: B010


def _heads(module: nn.Module) -> None:
    """Attention modules that keep their head count or projection width as attributes."""
    head_dim = getattr(module, "head_dim", None) or getattr(module, "attention_head_size", None)
    if not isinstance(head_dim, int):
        return
    c_attn = getattr(module, "c_attn", None)
    if c_attn is not None and hasattr(module, "split_size"):  # GPT-2
        cross = getattr(module, "is_cross_attention", False)
        query = getattr(module, "q_attn") if cross else c_attn  # noqa: B009
        width = query.weight.shape[1] // (1 if cross else 3)
        setattr(module, "split_size", width)  # noqa: B010
        setattr(module, "num_heads", width // head_dim)  # noqa: B010
        return
    query = getattr(module, "query", None) or getattr(module, "q_proj", None)
    if isinstance(query, nn.Linear):
        width = query.out_features
        for name in ("num_heads", "num_attention_heads"):
            if isinstance(getattr(module, name, None), int):
                setattr(module, name, width // head_dim)
        if isinstance(getattr(module, "all_head_size", None), int):
            setattr(module, "all_head_size", width)  # noqa: B010


_RULES: tuple[tuple[Callable[[nn.Module], bool], Callable[[nn.Module], None]], ...] = (
    (lambda m: isinstance(m, nn.modules.conv._ConvNd), _conv),
    (lambda m: isinstance(m, nn.Linear), _linear),
    (lambda m: isinstance(m, nn.modules.batchnorm._NormBase), _norm),
    (lambda m: isinstance(m, nn.GroupNorm), _group_norm),
    (lambda m: isinstance(m, (nn.LayerNorm, nn.RMSNorm)), _layer_norm),
    (lambda m: isinstance(m, nn.Embedding), _embedding),
    (lambda m: isinstance(m, nn.PReLU), _prelu),
    (lambda m: type(m).__name__ == "Conv1D" and hasattr(m, "nf"), _hf_conv1d),
)


def update_attributes(model: nn.Module) -> None:
    """Set the shape attributes of every submodule of ``model`` from its current parameters."""
    for module in model.modules():
        for applies, rule in _RULES:
            if applies(module):
                rule(module)
        _heads(module)
