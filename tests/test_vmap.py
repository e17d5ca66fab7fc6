"""vmap over amounts and over stacked models equals the Python loop; torch.compile has no breaks."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import tensors
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

import funcprune as fp

Factory = Callable[[torch.Tensor], fp.PruningMethod]

FACTORIES: dict[str, Factory] = {
    "l1": fp.l1_unstructured,
    "random": lambda a: fp.random_unstructured(a, seed=7),
    "ln": lambda a: fp.only(fp.ln_structured(a, n=2, dim=0), include="weight"),
    "random_structured": lambda a: fp.only(
        fp.random_structured(a, dim=1, seed=3), include="weight"
    ),
    "global": fp.global_unstructured,
    "global_random": lambda a: fp.global_unstructured(a, scores="random", seed=5),
    "chain": lambda a: fp.chain(
        fp.l1_unstructured(a), fp.only(fp.ln_structured(0.5, n=1, dim=0), include="weight")
    ),
    "chain_after": lambda a: fp.chain(fp.random_unstructured(0.3), fp.global_unstructured(a)),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
@given(
    weight=tensors(min_dims=2, max_dims=2, min_side=1, max_side=6),
    bias=tensors(min_dims=1, max_dims=1, max_side=6),
    amounts=st.lists(st.floats(0.0, 1.0, width=32), min_size=1, max_size=6),
)
def test_vmap_over_amounts_equals_loop(
    name: str, weight: torch.Tensor, bias: torch.Tensor, amounts: list[float]
) -> None:
    factory = FACTORIES[name]
    params = {"weight": weight, "bias": bias.to(weight.dtype)}
    stacked = torch.tensor(amounts)
    swept = vmap(lambda a: factory(a)(params))(stacked)
    for index, amount in enumerate(stacked):
        looped = factory(amount)(params)
        for key in params:
            assert torch.equal(swept[key][index], looped[key]), (key, index)


def test_vmap_over_amounts_equals_python_float_amounts() -> None:
    params = {"w": torch.randn(33, 17)}
    stacked = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
    swept = vmap(lambda a: fp.l1_unstructured(a)(params))(stacked)["w"]
    for index, amount in enumerate(stacked.tolist()):
        assert torch.equal(swept[index], fp.l1_unstructured(amount)(params)["w"])


def test_vmap_over_stacked_models_equals_loop() -> None:
    torch.manual_seed(0)
    models = [nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)) for _ in range(4)]
    params, _buffers = stack_module_state(models)  # type: ignore[arg-type]
    method = fp.chain(
        fp.only(fp.l1_unstructured(0.4), include="weight"), fp.global_unstructured(0.2)
    )
    base = models[0]
    x = torch.randn(7, 6)

    def prune_and_run(p: dict[str, torch.Tensor]) -> tuple[fp.Masks, torch.Tensor]:
        masks = method(p)
        return masks, fp.masked_call(base, p, masks, x)

    masks, outputs = vmap(prune_and_run)(params)
    for index, model in enumerate(models):
        own = {k: v.detach() for k, v in model.named_parameters()}
        own_masks = method(own)
        for key in own:
            assert torch.equal(masks[key][index], own_masks[key])
        expected = functional_call(model, fp.apply_masks(own, own_masks), (x,))
        assert torch.allclose(outputs[index], expected, atol=1e-6)


def test_compile_has_no_graph_breaks_and_matches_eager() -> None:
    params = {"w": torch.randn(8, 6), "b": torch.randn(6)}
    method = lambda a: fp.chain(  # noqa: E731
        fp.l1_unstructured(a), fp.only(fp.ln_structured(0.5, n=2, dim=0), include="w")
    )(params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # raised inside torch's inductor
        explanation = torch._dynamo.explain(method)(torch.tensor(0.3))
        assert explanation.graph_break_count == 0
        compiled = torch.compile(method, fullgraph=True)
        for amount in (0.0, 0.3, 0.75, 1.0):
            got, want = compiled(torch.tensor(amount)), method(torch.tensor(amount))
            assert all(torch.equal(got[k], want[k]) for k in params)
