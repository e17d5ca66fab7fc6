"""uniform / erk against the RigL formula (a float port of RigL's loop) and exact global counts;
per_key against calling each factory on its own key."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.func import vmap

import funcprune as fp

shapes = st.lists(st.integers(1, 6), min_size=0, max_size=4).map(tuple)
param_dicts = st.lists(shapes, min_size=1, max_size=5).map(
    lambda ss: {f"layer{i}.weight": torch.zeros(s) for i, s in enumerate(ss)}
)
fractions = st.floats(0.0, 1.0)


def rigl_densities(params: dict[str, torch.Tensor], sparsity: float) -> dict[str, float]:
    """RigL's sparse_utils.get_sparsities (erk_power_scale=1), in floats, as a reference."""
    dense: set[str] = set()
    while True:
        divisor, rhs, raw = 0.0, 0.0, {}
        for key, p in params.items():
            n = p.numel()
            if key in dense:
                rhs -= n * sparsity
            else:
                rhs += n * (1 - sparsity)
                dims = tuple(p.shape) or (1,)
                raw[key] = sum(dims) / math.prod(dims)
                divisor += raw[key] * n
        if not raw:
            return dict.fromkeys(params, 1.0)
        eps = rhs / divisor
        top = max(raw.values())
        if top * eps > 1 + 1e-12:
            dense |= {k for k, v in raw.items() if v == top}
        else:
            return {k: 1.0 if k in dense else eps * raw[k] for k in params}


@given(param_dicts, fractions)
def test_erk_densities_follow_rigl_formula(
    params: dict[str, torch.Tensor], sparsity: float
) -> None:
    ours = fp.erk_densities(params, sparsity)
    reference = rigl_densities(params, sparsity)
    assert set(ours) == set(params)
    for key in params:
        assert math.isclose(float(ours[key]), reference[key], rel_tol=1e-9, abs_tol=1e-12)
        assert 0 <= ours[key] <= 1
    kept = sum(ours[k] * p.numel() for k, p in params.items())
    assert kept == (1 - type(ours["layer0.weight"])(sparsity)) * sum(
        p.numel() for p in params.values()
    )
    sparse = [k for k in params if ours[k] < 1]
    eps = {
        ours[k] * math.prod(params[k].shape or (1,)) / sum(params[k].shape or (1,)) for k in sparse
    }
    assert len(eps) <= 1  # one epsilon for every non-dense layer


@given(param_dicts, fractions)
def test_erk_counts_exact_and_close_to_densities(
    params: dict[str, torch.Tensor], sparsity: float
) -> None:
    counts = fp.erk(params, sparsity)
    total = sum(p.numel() for p in params.values())
    assert sum(counts.values()) == round(sparsity * total)
    densities = fp.erk_densities(params, sparsity)
    for key, p in params.items():
        assert isinstance(counts[key], int) and 0 <= counts[key] <= p.numel()
        assert abs(counts[key] - p.numel() * (1 - densities[key])) < 1


@given(param_dicts, fractions)
def test_uniform_counts_exact(params: dict[str, torch.Tensor], sparsity: float) -> None:
    counts = fp.uniform(params, sparsity)
    total = sum(p.numel() for p in params.values())
    assert sum(counts.values()) == round(sparsity * total)
    for key, p in params.items():
        assert abs(counts[key] - sparsity * p.numel()) < 1


@given(param_dicts, fractions, st.sampled_from([fp.uniform, fp.erk]))
def test_per_key_with_distribution_hits_global_target(
    params: dict[str, torch.Tensor], sparsity: float, distribution: object
) -> None:
    weights = {
        k: torch.randn(p.shape, generator=torch.Generator().manual_seed(i))
        for i, (k, p) in enumerate(params.items())
    }
    counts = distribution(weights, sparsity)  # type: ignore[operator]
    masks = fp.per_key(fp.l1_unstructured, counts)(weights)
    pruned = sum(int((~m).sum()) for m in masks.values())
    assert pruned == round(sparsity * sum(p.numel() for p in params.values()))
    assert pruned == sum(
        int((~m).sum()) for m in fp.global_unstructured(sparsity)(weights).values()
    )


def test_erk_known_values() -> None:
    # conv 16x3x3x3: factor 25/432; fc 10x64: factor 74/640; eps = 0.2 * 1072 / (25 + 74)
    densities = fp.erk_densities({"conv": torch.zeros(16, 3, 3, 3), "fc": torch.zeros(10, 64)}, 0.8)
    eps = 0.2 * 1072 / 99
    assert math.isclose(float(densities["conv"]), eps * 25 / 432)
    assert math.isclose(float(densities["fc"]), eps * 74 / 640)


def test_erk_makes_small_layers_dense_and_resolves() -> None:
    params = {"tiny": torch.zeros(2, 2), "big": torch.zeros(100, 100)}
    densities = fp.erk_densities(params, 0.5)
    assert densities["tiny"] == 1
    assert densities["big"] * 10000 == 10004 * 0.5 - 4  # the rest carries the whole budget
    assert fp.erk(params, 0.5) == {"tiny": 0, "big": 5002}


def test_empty_and_scalar_parameters() -> None:
    params = {"empty": torch.zeros(0, 3), "scalar": torch.tensor(1.0), "w": torch.zeros(4)}
    assert fp.erk(params, 0.6)["empty"] == 0
    assert sum(fp.erk(params, 0.6).values()) == 3
    assert fp.uniform({}, 0.3) == {} == fp.erk({}, 0.3)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), float("inf")])
def test_sparsity_out_of_range(bad: float) -> None:
    with pytest.raises(ValueError, match="is not a fraction in"):
        fp.erk({"w": torch.zeros(2)}, bad)
    with pytest.raises(ValueError, match="is not a fraction in"):
        fp.uniform({"w": torch.zeros(2)}, bad)


@pytest.mark.parametrize("bad", [True, "0.5", torch.tensor(0.5)])
def test_sparsity_wrong_type(bad: object) -> None:
    with pytest.raises(TypeError, match="must be a float"):
        fp.erk({"w": torch.zeros(2)}, bad)  # type: ignore[arg-type]


@given(st.data())
def test_per_key_equals_each_factory_on_its_own_key(data: st.DataObject) -> None:
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 1000)))
    params = {
        "a": torch.randn(3, 4, generator=gen),
        "b": torch.randn(5, generator=gen),
        "c": torch.randn(2, 2, generator=gen),
    }
    masks = {"a": torch.rand(3, 4, generator=gen) > 0.3}
    scores = {"b": torch.randn(5, generator=gen)}
    chosen = data.draw(st.lists(st.sampled_from(["a", "b"]), unique=True))
    amounts = {k: data.draw(st.floats(0, 1)) for k in chosen}
    result = fp.per_key(fp.l1_unstructured, amounts)(params, masks, importance_scores=scores)
    assert set(result) == set(params)
    for key, param in params.items():
        own_masks = {key: masks[key]} if key in masks else {}
        own_scores = {key: scores[key]} if key in scores else {}
        method = fp.l1_unstructured(amounts[key]) if key in amounts else fp.identity()
        assert torch.equal(
            result[key], method({key: param}, own_masks, importance_scores=own_scores)[key]
        )


def test_per_key_hyperparameters_repr_equality() -> None:
    method = fp.per_key(fp.random_structured, {"w": 0.5}, dim=0, seed=3)
    assert method == fp.per_key(fp.random_structured, {"w": 0.5}, dim=0, seed=3)
    assert method != fp.per_key(fp.random_structured, {"w": 0.5}, dim=0, seed=4)
    assert repr(method) == "per_key({'w': random_structured(0.5, dim=0, seed=3)})"
    assert hash(method) == hash(fp.per_key(fp.random_structured, {"w": 0.5}, dim=0, seed=3))
    keep = method({"w": torch.ones(4, 2)})["w"]
    assert int(keep.all(dim=1).sum()) == 2


def test_per_key_under_vmap_with_tensor_amounts() -> None:
    params = {"a": torch.arange(1.0, 9.0), "b": torch.arange(1.0, 5.0)}
    sweep = vmap(lambda x, y: fp.per_key(fp.l1_unstructured, {"a": x, "b": y})(params))
    masks = sweep(torch.tensor([0.25, 0.5]), torch.tensor([0.5, 1.0]))
    assert masks["a"].sum(-1).tolist() == [6, 4]
    assert masks["b"].sum(-1).tolist() == [2, 0]


def test_per_key_errors() -> None:
    with pytest.raises(KeyError, match=r"not parameters: \['typo'\]"):
        fp.per_key(fp.l1_unstructured, {"typo": 0.5})({"w": torch.ones(2)})
    with pytest.raises(ValueError, match="amount=-1"):
        fp.per_key(fp.l1_unstructured, {"w": -1})
    with pytest.raises(TypeError, match="mapping"):
        fp.per_key(fp.l1_unstructured, [0.5])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="parameter names"):
        fp.per_key(fp.l1_unstructured, {1: 0.5})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="factory"):
        fp.per_key("l1", {"w": 0.5})  # type: ignore[arg-type]
