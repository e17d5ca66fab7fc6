"""The benchmark inputs: a GPT-2-small-shaped weight stack, square weights, an MLP, and torch twins.

Each funcprune input is a plain ``dict[str, Tensor]``; each torch twin is a module whose
parameters hold copies of the same values, in the same order (so ties would break alike).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.nn.utils import prune

GPT2_LAYERS = 12
GPT2_SHAPES = {
    "attn.c_attn": (2304, 768),
    "attn.c_proj": (768, 768),
    "mlp.c_fc": (3072, 768),
    "mlp.c_proj": (768, 3072),
}
"""The four weight matrices of a GPT-2-small block, as ``nn.Linear`` weights (out, in)."""


def gpt2_weights(seed: int = 0) -> dict[str, Tensor]:
    """The 48 block weights of GPT-2 small (~85M entries), drawn N(0, 0.02) like its init."""
    generator = torch.Generator().manual_seed(seed)
    return {
        f"h.{layer}.{name}.weight": torch.empty(shape).normal_(0.0, 0.02, generator=generator)
        for layer in range(GPT2_LAYERS)
        for name, shape in GPT2_SHAPES.items()
    }


def flat_weights(total: int, block: int = 1 << 21, seed: int = 0) -> dict[str, Tensor]:
    """``total`` N(0, 1) entries split into 1-d tensors of at most ``block`` entries."""
    generator = torch.Generator().manual_seed(seed)
    sizes = [min(block, total - start) for start in range(0, total, block)]
    return {f"p{i}": torch.randn(size, generator=generator) for i, size in enumerate(sizes)}


class Holder(nn.Module):
    """A bare module holding copies of some tensors as parameters (dots in names become ``_``)."""

    def __init__(self, params: Mapping[str, Tensor]) -> None:
        super().__init__()
        self.names = {key: key.replace(".", "_") for key in params}
        for key, value in params.items():
            self.register_parameter(self.names[key], nn.Parameter(value.detach().clone()))

    def targets(self) -> list[tuple[nn.Module, str]]:
        """``(module, name)`` pairs for ``torch.nn.utils.prune``, in the order of the given dict."""
        return [(self, name) for name in self.names.values()]

    def restore(self, params: Mapping[str, Tensor]) -> None:
        """Undo torch's pruning (if any) and put the original values back."""
        for key, name in self.names.items():
            if prune.is_pruned(self) and hasattr(self, name + "_orig"):
                prune.remove(self, name)
            with torch.no_grad():
                getattr(self, name).copy_(params[key])

    def masks(self) -> dict[str, Tensor]:
        """The bool masks torch installed, keyed like the given dict (all-True where unpruned)."""
        return {
            key: getattr(self, name + "_mask").bool()
            if hasattr(self, name + "_mask")
            else torch.ones_like(getattr(self, name), dtype=torch.bool)
            for key, name in self.names.items()
        }


def mlp(width: int = 1024, depth: int = 3, seed: int = 0) -> nn.Sequential:
    """``depth`` Linear layers of ``width`` -> ``width`` with ReLU between them."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for index in range(depth):
        layers.append(nn.Linear(width, width))
        if index < depth - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)
