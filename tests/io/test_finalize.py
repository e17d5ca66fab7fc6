"""finalize: exact zeros baked in, new tensors, inputs untouched, dtype and device kept."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import funcprune as fp
import funcprune.testing as fpt
from funcprune.io import finalize


@given(data=st.data())
def test_equals_apply_masks_on_finite_params(data: st.DataObject) -> None:
    params = data.draw(fpt.params())
    masks = data.draw(fpt.masks(params))
    copies = {k: v.clone() for k, v in params.items()}
    result = finalize(params, masks)
    expected = fp.apply_masks(params, masks)
    assert list(result) == list(params)
    for key, value in result.items():
        assert value.dtype == params[key].dtype and value.device == params[key].device
        assert torch.equal(value, expected[key]), key
        assert value.untyped_storage().data_ptr() != params[key].untyped_storage().data_ptr()
        assert torch.equal(params[key], copies[key])  # not mutated


def test_pruned_nan_and_inf_become_exact_zeros() -> None:
    w = torch.tensor([float("nan"), float("inf"), -float("inf"), 2.0])
    mask = torch.tensor([False, False, False, True])
    assert finalize({"w": w}, {"w": mask})["w"].tolist() == [0.0, 0.0, 0.0, 2.0]
    assert (
        fp.apply_masks({"w": w}, {"w": mask})["w"].isnan().any()
    )  # why finalize does not multiply


def test_requires_grad_parameters_come_back_detached() -> None:
    model = torch.nn.Linear(3, 2)
    params = dict(model.named_parameters())
    masks = {"weight": torch.tensor([[True, False, True], [False, True, True]])}
    result = finalize(params, masks)
    assert not any(v.requires_grad for v in result.values())
    assert type(result["weight"]) is torch.Tensor
    assert torch.equal(result["weight"], model.weight.detach() * masks["weight"])
    assert torch.equal(result["bias"], model.bias.detach())
    assert model.weight.requires_grad and model.weight.grad is None


def test_integer_params_and_loading_into_a_module() -> None:
    assert finalize(
        {"i": torch.tensor([3, -4], dtype=torch.int8)}, {"i": torch.tensor([True, False])}
    )["i"].tolist() == [3, 0]
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    params = {k: v.detach() for k, v in model.named_parameters()}
    masks = fp.global_unstructured(0.6)(params)
    x = torch.randn(4, 6)
    expected = fp.masked_call(model, params, masks, x)
    model.load_state_dict(finalize(params, masks))
    assert torch.equal(model(x), expected)


def test_bad_masks_are_named() -> None:
    params = {"w": torch.ones(2, 2)}
    with pytest.raises(ValueError, match=r"'w': \(3,\) vs parameter \(2, 2\)"):
        finalize(params, {"w": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(TypeError, match=r"'w' \(torch.float32\)"):
        finalize(params, {"w": torch.ones(2, 2)})
    with pytest.raises(KeyError, match=r"\['v'\]"):
        finalize(params, {"v": torch.ones(2, 2, dtype=torch.bool)})
