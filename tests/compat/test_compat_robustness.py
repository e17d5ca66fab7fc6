"""compat against torch on inputs found by adversarial testing (issue 10): amounts that are numpy
floats, Fractions or NaN, and global pruning that fails on a later tensor."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from types import ModuleType
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune as torch_prune

import funcprune.compat as compat

np = pytest.importorskip("numpy")

AMOUNT_TYPES: dict[str, Callable[[int, int], Any]] = {
    "np.float32": lambda num, den: np.float32(num / den),
    "np.float16": lambda num, den: np.float16(num / den),
    "np.float64": lambda num, den: np.float64(num / den),
    "Fraction": Fraction,
    "float": lambda num, den: num / den,
}


@pytest.mark.parametrize("kind", sorted(AMOUNT_TYPES))
@given(den=st.integers(1, 40), data=st.data(), size=st.integers(0, 64))
def test_count_is_torchs_round_in_the_amounts_own_type(
    kind: str, den: int, data: st.DataObject, size: int
) -> None:
    amount = AMOUNT_TYPES[kind](data.draw(st.integers(0, den)), den)
    if not 0 <= float(amount) <= 1:  # float16 may round 0.9995 up past 1: torch rejects it too
        return
    assert compat._compute_nparams_toprune(amount, size) == torch_prune._compute_nparams_toprune(
        amount, size
    )


def test_np_float32_of_45_prunes_32_entries_as_in_torch() -> None:
    def pruned(p: ModuleType) -> int:
        module = p.l1_unstructured(nn.Linear(9, 5), "weight", amount=np.float32(0.7))
        return int((module.weight_mask == 0).sum())

    assert pruned(compat) == pruned(torch_prune) == 32  # np.float32(0.7) * 45 == 31.5 -> 32


def _outcome(call: Callable[[ModuleType], object], p: ModuleType) -> type | str:
    try:
        call(p)
    except Exception as error:
        return type(error)
    return "no error"


NAN_CASES: dict[str, Callable[[ModuleType], object]] = {
    "count": lambda p: p._compute_nparams_toprune(float("nan"), 5),
    "init": lambda p: p.RandomStructured(float("nan"), dim=5),
    "bad dim": lambda p: p.random_structured(nn.Linear(3, 4), "weight", float("nan"), dim=5),
    "bad dim, ln": lambda p: p.ln_structured(nn.Linear(3, 4), "weight", float("nan"), 2, dim=-3),
    "1-d": lambda p: p.ln_structured(nn.Linear(3, 4), "bias", float("nan"), n=2, dim=0),
    "unstructured": lambda p: p.l1_unstructured(nn.Linear(3, 4), "weight", float("nan")),
    "np.float32": lambda p: p.random_unstructured(nn.Linear(3, 4), "weight", np.float32("nan")),
}


@pytest.mark.parametrize("case", sorted(NAN_CASES))
def test_nan_amounts_raise_torchs_error_types(case: str) -> None:
    assert _outcome(NAN_CASES[case], compat) == _outcome(NAN_CASES[case], torch_prune)


def test_a_nan_amount_leaves_the_module_as_it_was() -> None:
    module = nn.Linear(3, 4)
    before = dict(module.state_dict())
    with pytest.raises(ValueError, match="NaN"):
        compat.l1_unstructured(module, "weight", float("nan"))
    assert module.state_dict().keys() == before.keys() and not module._forward_pre_hooks


def _state(module: nn.Module) -> tuple[Any, ...]:
    hooks = tuple(
        (type(h).__name__, len(h) if isinstance(h, compat.PruningContainer) else 0)
        for h in module._forward_pre_hooks.values()
    )
    tensors = tuple((k, v.clone()) for k, v in module.state_dict().items())
    return tuple(module._parameters), tuple(module._buffers), hooks, tensors


def _same_state(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    *names_a, tensors_a = a
    *names_b, tensors_b = b
    return names_a == names_b and all(
        ka == kb and torch.equal(va, vb)
        for (ka, va), (kb, vb) in zip(tensors_a, tensors_b, strict=True)
    )


def test_global_unstructured_failing_on_a_later_tensor_changes_no_module() -> None:
    torch.manual_seed(0)
    first, second, norm = nn.Linear(3, 4), nn.Linear(4, 2), nn.BatchNorm1d(3)
    compat.l1_unstructured(first, "bias", amount=1)
    compat.l1_unstructured(second, "weight", amount=1)
    compat.l1_unstructured(second, "weight", amount=1)  # a container of two methods
    weight = first.weight
    before = [_state(m) for m in (first, second, norm)]
    pairs = [(first, "weight"), (first, "bias"), (second, "weight"), (norm, "running_mean")]
    with pytest.raises(TypeError):  # running_mean is a buffer: torch raises the same
        compat.global_unstructured(pairs, compat.L1Unstructured, amount=5)
    after = [_state(m) for m in (first, second, norm)]
    assert all(_same_state(a, b) for a, b in zip(before, after, strict=True))
    assert first.weight is weight
    hook = next(iter(second._forward_pre_hooks.values()))
    assert isinstance(hook, compat.PruningContainer) and len(hook) == 2
    with pytest.raises(TypeError):  # torch itself leaves the earlier modules pruned
        torch_prune.global_unstructured(
            [(nn.Linear(3, 4), "weight"), (nn.BatchNorm1d(3), "running_mean")],
            torch_prune.L1Unstructured,
            amount=1,
        )
