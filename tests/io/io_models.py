"""Models shared by the io tests: a small CNN and a shrunk copy of any model."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

import funcprune as fp
from funcprune.structure import channel_groups, group_structured, shrink

Build = Callable[[], nn.Module]


def shrunk_of(
    build: Build, x: object, method: Callable[..., fp.PruningMethod] | None = None
) -> tuple[nn.Module, nn.Module, dict[str, torch.Tensor]]:
    """The original (seeded), its group masks and its shrunk copy."""
    torch.manual_seed(0)
    model = build().eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    groups = channel_groups(model, (x,))
    prune = group_structured(0.5, groups, scope="local")
    masks = (method(prune) if method else prune)(params)
    return model, shrink(model, params, masks, (x,)), masks


def fresh(build: Build) -> nn.Module:
    torch.manual_seed(123)  # other weights than the original's
    return build().eval()


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )
