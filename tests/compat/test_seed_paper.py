"""The seed paper's usage patterns (arXiv 2004.13770, torch's pruning tutorial), run through both
torch.nn.utils.prune and funcprune.compat from the same seeds: the models must end up identical."""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F
from compat_ops import assert_same, snapshot
from torch import nn
from torch.nn.utils import prune as torch_prune

import funcprune.compat as compat


class LeNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3)
        self.conv2 = nn.Conv2d(6, 16, 3)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(-1, int(x.nelement() / x.shape[0]))
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def basic(prune: ModuleType, model: LeNet) -> None:
    prune.random_unstructured(model.conv1, name="weight", amount=0.3)
    prune.l1_unstructured(model.conv1, name="bias", amount=3)


def iterative(prune: ModuleType, model: LeNet) -> None:
    basic(prune, model)
    prune.ln_structured(model.conv1, name="weight", amount=0.5, n=2, dim=0)


def many_parameters(prune: ModuleType, model: LeNet) -> None:
    for _, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            prune.l1_unstructured(module, name="weight", amount=0.2)
        elif isinstance(module, nn.Linear):
            prune.l1_unstructured(module, name="weight", amount=0.4)


def global_pruning(prune: ModuleType, model: LeNet) -> None:
    parameters = [(getattr(model, n), "weight") for n in ("conv1", "conv2", "fc1", "fc2", "fc3")]
    prune.global_unstructured(parameters, pruning_method=prune.L1Unstructured, amount=0.2)
    prune.global_unstructured(parameters, pruning_method=prune.RandomUnstructured, amount=0.1)


def custom(prune: ModuleType, model: LeNet) -> None:
    class FooBarPruningMethod(prune.BasePruningMethod):  # type: ignore[misc, name-defined]
        PRUNING_TYPE = "unstructured"

        def compute_mask(self, t: torch.Tensor, default_mask: torch.Tensor) -> torch.Tensor:
            mask = default_mask.clone()
            mask.view(-1)[::2] = 0
            return mask

    FooBarPruningMethod.apply(model.fc3, "bias")
    prune.l1_unstructured(model.fc3, "bias", amount=1)


def remove(prune: ModuleType, model: LeNet) -> None:
    iterative(prune, model)
    prune.remove(model.conv1, "weight")
    prune.remove(model.conv1, "bias")


PATTERNS: dict[str, Callable[[ModuleType, LeNet], None]] = {
    f.__name__: f for f in (basic, iterative, many_parameters, global_pruning, custom, remove)
}


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_pattern_matches_torch(pattern: str) -> None:
    torch.manual_seed(0)
    base = LeNet()
    x = torch.randn(2, 1, 28, 28)
    models = copy.deepcopy(base), copy.deepcopy(base)
    for prune, model in zip((torch_prune, compat), models, strict=True):
        torch.manual_seed(1)
        PATTERNS[pattern](prune, model)
    theirs, ours = models
    assert torch.equal(theirs(x), ours(x))
    for name, module in theirs.named_children():
        assert_same(snapshot(module), snapshot(getattr(ours, name)), ordered=True)
    assert list(theirs.state_dict()) == list(ours.state_dict())


def test_serialized_state_dicts_load_across_libraries() -> None:
    torch.manual_seed(0)
    base = LeNet()
    theirs, ours = copy.deepcopy(base), copy.deepcopy(base)
    torch.manual_seed(1)
    iterative(torch_prune, theirs)
    buffer = io.BytesIO()
    torch.save(theirs.state_dict(), buffer)
    buffer.seek(0)
    compat.identity(ours.conv1, "weight")
    compat.identity(ours.conv1, "bias")
    ours.load_state_dict(torch.load(buffer))
    x = torch.randn(1, 1, 28, 28)
    assert torch.equal(theirs(x), ours(x))
