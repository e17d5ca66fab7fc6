"""Module effects of funcprune.compat: torch's reparametrization, extension points, and the fixes."""

from __future__ import annotations

import copy
import inspect
import io
import pickle
from types import ModuleType
from typing import Any
from unittest import mock

import pytest
import torch
from compat_ops import assert_same, snapshot
from torch import nn
from torch.nn.utils import prune as torch_prune

import funcprune.compat as compat

BOTH = pytest.mark.parametrize("prune", [torch_prune, compat], ids=["torch", "compat"])


def _twins(factory: Any = lambda: nn.Linear(3, 4)) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    base = factory()
    return copy.deepcopy(base), copy.deepcopy(base)


def _same(theirs: nn.Module, ours: nn.Module) -> None:
    assert_same(snapshot(theirs), snapshot(ours), ordered=True)


@BOTH
def test_orig_is_the_same_parameter_and_mask_a_persistent_buffer(prune: ModuleType) -> None:
    lin = nn.Linear(3, 4)
    weight = lin.weight
    prune.l1_unstructured(lin, "weight", amount=0.5)
    assert lin.weight_orig is weight
    assert "weight_mask" in lin.state_dict() and "weight" not in dict(lin.named_parameters())
    assert list(lin.state_dict()) == ["bias", "weight_orig", "weight_mask"]
    prune.remove(lin, "weight")
    assert lin.weight is weight and list(lin.state_dict()) == ["bias", "weight"]


@pytest.mark.parametrize(
    ("param_dtype", "scores_dtype"),
    [(torch.float32, torch.float64), (torch.float64, torch.float32), (torch.float64, None)],
)
def test_mask_dtypes_follow_torch(
    param_dtype: torch.dtype, scores_dtype: torch.dtype | None
) -> None:
    theirs, ours = _twins(lambda: nn.Conv2d(2, 3, 2).to(param_dtype))
    scores = None if scores_dtype is None else torch.randn(3, 2, 2, 2, dtype=scores_dtype)
    for prune, model in ((torch_prune, theirs), (compat, ours)):
        torch.manual_seed(3)
        prune.ln_structured(model, "weight", 1, n=2, dim=0, importance_scores=scores)
        prune.l1_unstructured(model, "weight", 0.3, importance_scores=scores)
        prune.random_structured(model, "weight", 1, dim=1)
        prune.custom_from_mask(model, "bias", torch.tensor([True, False, True]))
        prune.l1_unstructured(
            model,
            "bias",
            1,
            importance_scores=scores if scores is None else torch.ones(3, dtype=scores.dtype),
        )
    _same(theirs, ours)


def test_methods_are_looked_up_through_their_class() -> None:
    def keep_all(self: Any, t: torch.Tensor, default_mask: torch.Tensor) -> torch.Tensor:
        return default_mask

    with mock.patch("funcprune.compat.L1Unstructured.compute_mask", keep_all):
        lin = compat.l1_unstructured(nn.Linear(3, 4), "weight", amount=0.9)
        compat.global_unstructured([(lin, "bias")], compat.L1Unstructured, amount=2)
    assert bool((lin.weight_mask == 1).all()) and bool((lin.bias_mask == 1).all())
    compat.l1_unstructured(lin, "weight", amount=0.5)
    assert int((lin.weight_mask == 0).sum()) == 6


def _every_other(base: type) -> type:
    class EveryOther(base):  # type: ignore[valid-type, misc]
        """The seed paper's custom method: prune every other remaining entry."""

        PRUNING_TYPE = "unstructured"

        def compute_mask(self, t: torch.Tensor, default_mask: torch.Tensor) -> torch.Tensor:
            mask = default_mask.clone()
            mask.view(-1)[::2] = 0
            return mask

    return EveryOther


def test_user_subclass_works_like_torch_everywhere() -> None:
    theirs, ours = _twins()
    for prune, model in ((torch_prune, theirs), (compat, ours)):
        custom = _every_other(prune.BasePruningMethod)
        custom.apply(model, "bias")
        prune.l1_unstructured(model, "weight", amount=3)
        custom.apply(model, "weight")  # into the container
        custom.apply(model, "bias")
        prune.global_unstructured([(model, "weight"), (model, "bias")], custom)
        model(torch.ones(1, 3))
    _same(theirs, ours)
    hook = next(iter(ours._forward_pre_hooks.values()))
    assert [type(m).__name__ for m in hook] == ["L1Unstructured", "EveryOther", "CustomFromMask"]


def test_deepcopy_of_a_freshly_pruned_module_works() -> None:
    theirs, ours = _twins(lambda: nn.LSTM(3, 2))
    for prune, model in ((torch_prune, theirs), (compat, ours)):
        prune.l1_unstructured(model, "weight_ih_l0", amount=4)
        prune.ln_structured(model, "weight_ih_l0", amount=1, n=1, dim=0)
        prune.random_unstructured(model, "bias_hh_l0", amount=2)
    with pytest.raises(RuntimeError):
        copy.deepcopy(theirs)  # pytorch issue 37322, fixed in compat
    twin = copy.deepcopy(ours)
    again = copy.deepcopy(twin)
    x = torch.randn(2, 1, 3)
    for model in (twin, again):
        assert torch.equal(model(x)[0], ours(x)[0])
        assert model.weight_ih_l0_orig is not ours.weight_ih_l0_orig
        assert model._flat_weights[0] is model.weight_ih_l0  # one tensor, copied once
        compat.l1_unstructured(model, "weight_ih_l0", amount=1)
        model(x)[0].sum().backward()
        assert model.weight_ih_l0_orig.grad is not None
    assert ours.weight_ih_l0_orig.grad is None  # the copies share nothing with the original


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_serialization_round_trip(how: str) -> None:
    theirs, ours = _twins(lambda: nn.Conv2d(2, 3, 2))
    for prune, model in ((torch_prune, theirs), (compat, ours)):
        torch.manual_seed(1)
        prune.random_structured(model, "weight", amount=1, dim=0)
        prune.l1_unstructured(model, "bias", amount=1)
    if how == "pickle":
        loaded = pickle.loads(pickle.dumps(ours))
    else:
        buffer = io.BytesIO()
        torch.save(ours, buffer)
        buffer.seek(0)
        loaded = torch.load(buffer, weights_only=False)
    loaded_torch = pickle.loads(pickle.dumps(theirs))
    _same(loaded_torch, loaded)
    x = torch.randn(1, 2, 3, 3)
    assert torch.equal(loaded(x), theirs(x))
    for prune, model in ((torch_prune, loaded_torch), (compat, loaded)):
        torch.manual_seed(2)
        prune.random_structured(model, "weight", amount=1, dim=0)
        prune.remove(model, "bias")
    _same(loaded_torch, loaded)


def test_state_dicts_load_across_libraries() -> None:
    theirs, ours = _twins()
    torch_prune.l1_unstructured(theirs, "weight", amount=5)
    compat.identity(ours, "weight")
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3)
    assert torch.equal(ours(x), theirs(x))


def test_failed_prunes_leave_the_module_exactly_as_it_was() -> None:
    lin = nn.Linear(3, 4)
    before = snapshot(lin)
    for bad in (dict(amount=13), dict(amount=2, importance_scores=torch.ones(2))):
        with pytest.raises((ValueError, AssertionError)):
            compat.l1_unstructured(lin, "weight", **bad)
        assert_same(before, snapshot(lin), ordered=True)  # torch re-registers `weight` last
    compat.l1_unstructured(lin, "weight", amount=2)
    compat.random_unstructured(lin, "weight", amount=1)
    container = next(iter(lin._forward_pre_hooks.values()))
    before = snapshot(lin)
    for call in (
        lambda: compat.l1_unstructured(lin, "weight", amount=10),
        lambda: compat.l1_unstructured(lin, "weight", amount="all"),
        lambda: compat.ln_structured(lin, "weight", amount=1, n="nuc", dim=0),
    ):
        with pytest.raises((ValueError, TypeError, RuntimeError)):
            call()
        assert_same(before, snapshot(lin), ordered=True)  # torch drops the hook here
        assert len(container) == 2 and compat.is_pruned(lin)


def test_container_from_several_methods() -> None:
    first, second = compat.L1Unstructured(1), compat.RandomUnstructured(2)
    first._tensor_name = second._tensor_name = "weight"
    container = compat.PruningContainer(first, second)  # AttributeError in torch
    assert container._tensor_name == "weight" and list(container) == [first, second]
    assert len(container) == 2 and container[-1] is second and container[:1] == (first,)


def test_global_accepts_a_generator_and_non_contiguous_scores() -> None:
    theirs, ours = _twins()
    scores = torch.randn(3, 4).t()  # not contiguous: torch's view(-1) fails on it
    with pytest.raises(RuntimeError):
        torch_prune.l1_unstructured(copy.deepcopy(theirs), "weight", 5, importance_scores=scores)
    pairs = [(theirs, "weight"), (theirs, "bias")]
    torch_prune.global_unstructured(pairs, torch_prune.L1Unstructured, amount=3)
    torch_prune.l1_unstructured(theirs, "weight", 5, importance_scores=scores.contiguous())
    compat.global_unstructured(
        ((ours, n) for n in ("weight", "bias")), compat.L1Unstructured, amount=3
    )
    compat.l1_unstructured(ours, "weight", 5, importance_scores=scores)
    _same(theirs, ours)


def test_is_pruned_and_remove_on_nested_modules() -> None:
    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2)))
    assert not compat.is_pruned(net)
    compat.identity(net[1][0], "bias")
    assert compat.is_pruned(net) and not torch_prune.is_pruned(net)
    assert compat.remove(net[1][0], "bias") is net[1][0]
    assert not compat.is_pruned(net)


@pytest.mark.parametrize(
    "name",
    [
        *(n for n in compat.__all__ if not isinstance(getattr(compat, n), type)),
        *(
            f"{c}.{m}"
            for c in compat.__all__
            if isinstance(getattr(compat, c), type)
            for m in ("__init__", "apply", "compute_mask", "prune", "remove", "apply_mask")
        ),
    ],
)
def test_signatures_match_torch(name: str) -> None:
    def resolve(module: ModuleType) -> Any:
        obj: Any = module
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj

    theirs, ours = inspect.signature(resolve(torch_prune)), inspect.signature(resolve(compat))
    assert [(p.name, p.kind, p.default) for p in theirs.parameters.values()] == [
        (p.name, p.kind, p.default) for p in ours.parameters.values()
    ]


def test_same_public_names_as_torch() -> None:
    torch_names = {n for n in vars(torch_prune) if not n.startswith("__")} - {
        "ABC",
        "Iterable",
        "abstractmethod",
        "numbers",
        "torch",
    }
    assert torch_names == set(compat.__all__)


@pytest.mark.parametrize(
    "prune_op",
    [
        lambda p, m: p.l1_unstructured(m, "weight", amount=0.5),
        lambda p, m: p.random_unstructured(m, "weight", amount=2),
        lambda p, m: p.ln_structured(m, "weight", amount=1, n=2, dim=0),
        lambda p, m: p.random_structured(m, "weight", amount=0.5, dim=1),
    ],
    ids=["l1", "random", "ln", "random_structured"],
)
def test_meta_modules_prune_like_torch(prune_op: Any) -> None:
    """Models built on the meta device (deferred init) get the same meta reparametrization."""
    for prune in (torch_prune, compat):
        lin = nn.Linear(4, 3, device="meta")
        prune_op(prune, lin)
        assert lin.weight_mask.device.type == "meta" and lin.weight_mask.shape == (3, 4)
        assert lin.weight_mask.dtype == lin.weight_orig.dtype
        assert lin(torch.ones(2, 4, device="meta")).shape == (2, 3)
