"""apply_masks / masked_call / sparsity: bit-for-bit with torch's hooked modules, exact zero grads."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from reference import torch_prune
from torch import nn
from torch.func import functional_call, grad

import funcprune as fp


def _model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 5))


@given(seed=st.integers(0, 10_000), amount=st.floats(0.0, 1.0))
def test_masked_call_equals_torch_pruned_forward_bit_for_bit(seed: int, amount: float) -> None:
    torch.manual_seed(seed)
    model = _model()
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    masks = fp.chain(
        fp.global_unstructured(amount),
        fp.only(fp.ln_structured(0.25, n=1, dim=0), include="0.weight"),
    )(params)
    x = torch.randn(3, 2, 6, 6)
    ours = fp.masked_call(model, params, masks, x)
    for key, mask in masks.items():
        module_name, name = key.rsplit(".", 1)
        torch_prune.custom_from_mask(model.get_submodule(module_name), name, mask=mask)
    with torch.no_grad():
        theirs = model(x)
    assert torch.equal(ours, theirs)


def test_masked_call_with_partial_params_and_kwargs() -> None:
    lin = nn.Linear(3, 2)
    params = {"weight": lin.weight.detach()}
    masks = {"weight": torch.tensor([[True, False, True], [False, True, True]])}
    x = torch.randn(4, 3)
    expected = functional_call(lin, {"weight": lin.weight.detach() * masks["weight"]}, (x,))
    assert torch.equal(fp.masked_call(lin, params, masks, input=x), expected)


@given(seed=st.integers(0, 10_000), amount=st.floats(0.0, 1.0))
def test_grad_is_exactly_zero_on_pruned_entries(seed: int, amount: float) -> None:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    params = {k: v.detach() for k, v in model.named_parameters()}
    masks = fp.global_unstructured(amount)(params)
    x, y = torch.randn(6, 5), torch.randint(0, 3, (6,))

    def loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return nn.functional.cross_entropy(fp.masked_call(model, p, masks, x), y)

    grads = grad(loss)(params)
    for key, mask in masks.items():
        assert torch.equal(grads[key][~mask], torch.zeros_like(grads[key][~mask]))


def test_parameters_that_require_grad_give_the_masks_of_their_values() -> None:
    w = torch.randn(4, 4, requires_grad=True)
    method = fp.chain(fp.l1_unstructured(0.5), fp.only(fp.ln_structured(1, n=2, dim=0)))
    masks = method({"w": w})
    assert masks["w"].dtype == torch.bool  # bool: no gradient can flow through a mask
    assert torch.equal(masks["w"], method({"w": w.detach()})["w"])


def test_sparsity_overall_and_per_key() -> None:
    params = {"a": torch.zeros(2, 5), "b": torch.zeros(10), "c": torch.zeros(0)}
    masks = fp.l1_unstructured(3)({"a": params["a"]})
    report = fp.sparsity(masks, params)
    assert report.overall == 3 / 20
    assert report.per_key == {"a": 0.3, "b": 0.0, "c": 0.0}
    assert fp.sparsity(masks).overall == 0.3
    assert fp.sparsity({}).overall == 0.0
