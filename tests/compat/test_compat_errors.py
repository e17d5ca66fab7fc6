"""Every error torch.nn.utils.prune raises for bad input, funcprune.compat raises with the same type."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

import funcprune.compat as compat


def _linear() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(3, 4)


def _pruned(p: ModuleType) -> nn.Linear:
    return p.l1_unstructured(_linear(), "weight", amount=2)  # type: ignore[no-any-return]


def _method_class(p: ModuleType, pruning_type: str, with_dim: bool = True) -> type:
    def compute_mask(self: Any, t: torch.Tensor, default_mask: torch.Tensor) -> torch.Tensor:
        return default_mask

    attrs: dict[str, Any] = {"PRUNING_TYPE": pruning_type, "compute_mask": compute_mask}
    if with_dim:
        attrs["dim"] = 0
    return type("Custom", (p.BasePruningMethod,), attrs)


CASES: dict[str, Callable[[ModuleType], object]] = {
    "amount negative": lambda p: p.l1_unstructured(_linear(), "weight", amount=-1),
    "amount above 1": lambda p: p.l1_unstructured(_linear(), "weight", amount=1.5),
    "amount inf": lambda p: p.random_unstructured(_linear(), "weight", amount=float("inf")),
    "amount string": lambda p: p.l1_unstructured(_linear(), "weight", amount="0.5"),
    "amount tensor": lambda p: p.l1_unstructured(_linear(), "weight", amount=torch.tensor(0.5)),
    "amount None": lambda p: p.RandomStructured(None),
    "count too large": lambda p: p.l1_unstructured(_linear(), "weight", amount=13),
    "count too large, random": lambda p: p.random_unstructured(_linear(), "bias", amount=5),
    "channels too many": lambda p: p.ln_structured(_linear(), "weight", amount=5, n=2, dim=0),
    "channels too many, random": lambda p: p.random_structured(_linear(), "weight", 4, dim=1),
    "structured on 1-d": lambda p: p.random_structured(_linear(), "bias", amount=1, dim=0),
    "ln structured on 1-d": lambda p: p.ln_structured(_linear(), "bias", amount=1, n=1, dim=0),
    "dim too large": lambda p: p.ln_structured(_linear(), "weight", amount=1, n=2, dim=2),
    "dim too negative": lambda p: p.random_structured(_linear(), "weight", amount=1, dim=-3),
    "dim too large in container": lambda p: p.ln_structured(_pruned(p), "weight", 1, n=2, dim=5),
    "dim too negative in container": lambda p: p.random_structured(_pruned(p), "weight", 1, dim=-3),
    "norm order unknown": lambda p: p.ln_structured(_linear(), "weight", amount=1, n="abc", dim=0),
    "nuclear norm on a vector": lambda p: p.ln_structured(_linear(), "weight", 1, n="nuc", dim=0),
    "scores of another shape": lambda p: p.l1_unstructured(
        _linear(), "weight", amount=1, importance_scores=torch.ones(3, 4)
    ),
    "ln scores of another shape": lambda p: p.ln_structured(
        _linear(), "weight", 1, n=2, dim=0, importance_scores=torch.ones(4)
    ),
    "prune() scores of another shape": lambda p: p.L1Unstructured(1).prune(
        torch.ones(3), importance_scores=torch.ones(4)
    ),
    "custom mask of another shape": lambda p: p.custom_from_mask(_linear(), "bias", torch.ones(3)),
    "missing tensor": lambda p: p.l1_unstructured(_linear(), "nothing", amount=1),
    "pruning a buffer": lambda p: p.l1_unstructured(nn.BatchNorm1d(3), "running_mean", amount=1),
    "pruning an attribute that is not there": lambda p: p.identity(_linear(), "weight_orig"),
    "remove unpruned": lambda p: p.remove(_linear(), "weight"),
    "remove twice": lambda p: p.remove(p.remove(_pruned(p), "weight"), "weight"),
    "remove another tensor": lambda p: p.remove(_pruned(p), "bias"),
    "global not iterable": lambda p: p.global_unstructured(3, p.L1Unstructured, amount=1),
    "global scores not a dict": lambda p: p.global_unstructured(
        [(_linear(), "weight")], p.L1Unstructured, importance_scores=[1], amount=1
    ),
    "global structured method": lambda p: p.global_unstructured(
        [(_linear(), "weight")], p.LnStructured, amount=1, n=2, dim=0
    ),
    "global nothing": lambda p: p.global_unstructured([], p.L1Unstructured, amount=1),
    "global count too large": lambda p: p.global_unstructured(
        [(_linear(), "weight"), (_linear(), "bias")], p.L1Unstructured, amount=17
    ),
    "global missing kwarg": lambda p: p.global_unstructured(
        [(_linear(), "weight")], p.L1Unstructured
    ),
    "global missing tensor": lambda p: p.global_unstructured(
        [(_linear(), "w")], p.L1Unstructured, amount=1
    ),
    "abstract base": lambda p: p.BasePruningMethod(),
    "subclass without compute_mask": lambda p: type("M", (p.BasePruningMethod,), {})(),
    "container of a non-method": lambda p: p.PruningContainer(_pruned_method(p)).add_pruning_method(
        3
    ),
    "container of another tensor": lambda p: p.PruningContainer(
        _pruned_method(p)
    ).add_pruning_method(_pruned_method(p, "bias")),
    "empty container has no tensor": lambda p: p.PruningContainer().add_pruning_method(
        p.Identity()
    ),
    "structured method without dim": lambda p: _container_with(
        p, _method_class(p, "structured", with_dim=False)
    ),
    "unknown PRUNING_TYPE": lambda p: _container_with(p, _method_class(p, "diagonal")),
    "apply_mask of an unbound method": lambda p: p.L1Unstructured(1).apply_mask(_linear()),
    "remove of an unbound method": lambda p: p.L1Unstructured(1).remove(_linear()),
    "two hooks on one tensor": lambda p: _two_hooks(p),
    "wrong apply arguments": lambda p: p.L1Unstructured.apply(_linear(), "weight", 0.5, 2),
    "wrong function arguments": lambda p: p.random_unstructured(_linear(), "weight"),
}


def _pruned_method(p: ModuleType, name: str = "weight") -> Any:
    method = p.L1Unstructured(1)
    method._tensor_name = name
    return method


def _container_with(p: ModuleType, cls: type) -> object:
    module = _pruned(p)
    return cls.apply(module, "weight")


def _two_hooks(p: ModuleType) -> object:
    module = _pruned(p)
    module.register_forward_pre_hook(_pruned_method(p))
    return p.l1_unstructured(module, "weight", amount=1)


def _error(p: ModuleType, case: Callable[[ModuleType], object]) -> type[BaseException] | None:
    try:
        case(p)
    except Exception as error:
        return type(error)
    return None


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_error_type(name: str) -> None:
    theirs = _error(torch_prune, CASES[name])
    assert theirs is not None, f"torch raises nothing for {name!r}: not a bad-input case"
    assert _error(compat, CASES[name]) is theirs


def test_frobenius_over_three_dims_follows_the_installed_torch() -> None:
    """torch up to 2.13 refuses 'fro' over 3 dims; 2.14 takes it as the flat 2-norm. compat follows."""

    def prune_conv(p: ModuleType) -> nn.Conv2d:
        torch.manual_seed(0)
        return p.ln_structured(nn.Conv2d(2, 4, 2), "weight", 2, n="fro", dim=0)  # type: ignore[no-any-return]

    theirs = _error(torch_prune, prune_conv)
    assert _error(compat, prune_conv) is theirs
    if theirs is None:
        assert torch.equal(prune_conv(compat).weight_mask, prune_conv(torch_prune).weight_mask)


def test_error_messages_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"'weight'.*amount=13.*only 12 remain"):
        compat.l1_unstructured(_linear(), "weight", amount=13)
    with pytest.raises(IndexError, match=r"allowed dims are -2 to 1"):
        compat.random_structured(_linear(), "weight", amount=1, dim=2)
    with pytest.raises(ValueError, match=r"unstructured method"):
        compat.random_structured(_linear(), "bias", amount=1, dim=0)
