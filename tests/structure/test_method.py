"""group_structured: exact counts against a plain reference, vmap, composition, options, errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor, nn

import funcprune as fp
from funcprune.structure import ChannelGroups, channel_groups, group_structured

MODEL = nn.Sequential(nn.Linear(4, 10), nn.ReLU(), nn.Linear(10, 6), nn.ReLU(), nn.Linear(6, 2))
GROUPS = channel_groups(MODEL, (torch.zeros(1, 4),))
SIZES = {k: tuple(v.shape) for k, v in MODEL.named_parameters()}


def _params(seed: int, ties: bool = False) -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    params = {k: torch.randn(shape, generator=generator) for k, shape in SIZES.items()}
    return {k: v.round() if ties else v for k, v in params.items()}


def _pruned(masks: dict[str, Tensor], groups: ChannelGroups = GROUPS) -> list[int]:
    """Groups all of whose slices are entirely pruned."""
    out = []
    for number, group in enumerate(groups):
        dead = [
            not bool(masks[s.key].index_select(s.dim, torch.tensor(s.indices)).any())
            for s in group.params
        ]
        if all(dead):
            out.append(number)
        else:
            assert not any(dead), f"group {number} pruned in part"
    return out


def _reference(params: dict[str, Tensor], amount: float) -> list[int]:
    """Plain loops: squared L2 of every member slice, the best group of each layer protected."""
    scores = [
        sum(
            float((params[s.key].index_select(s.dim, torch.tensor(s.indices)).double() ** 2).sum())
            for s in g.params
        )
        for g in GROUPS
    ]
    families: dict[object, list[int]] = {}
    for number, group in enumerate(GROUPS):
        families.setdefault(group.family, []).append(number)
    protected = {max(ids, key=lambda i: (scores[i], -i)) for ids in families.values()}
    eligible = [i for i in range(len(GROUPS)) if i not in protected]
    count = round(amount * len(eligible))
    return sorted(sorted(eligible, key=lambda i: (scores[i], i))[:count])


def test_groups_of_the_mlp() -> None:
    assert len(GROUPS) == 16
    assert [m.key for m in GROUPS[0].params] == ["0.weight", "0.bias", "2.weight"]


@given(st.floats(0, 1), st.integers(0, 2**16), st.booleans())
def test_prunes_exactly_the_smallest_groups(amount: float, seed: int, ties: bool) -> None:
    params = _params(seed, ties)
    masks = group_structured(amount, GROUPS)(params)
    assert _pruned(masks) == _reference(params, amount)


@given(st.floats(0, 1), st.integers(0, 2**16))
def test_prunes_only_among_survivors(amount: float, seed: int) -> None:
    params = _params(seed)
    before = fp.l1_unstructured(0.3)(params)
    after = group_structured(amount, GROUPS)(params, before)
    assert all(bool((after[k] <= before[k]).all()) for k in params)


def test_vmap_over_amounts_equals_one_call_per_amount() -> None:
    params = _params(3)
    amounts = torch.linspace(0, 1, 5, dtype=torch.float64)
    swept = torch.func.vmap(lambda a: group_structured(a, GROUPS)(params))(amounts)
    for index, amount in enumerate(amounts):
        one = group_structured(float(amount), GROUPS)(params)
        assert all(torch.equal(swept[k][index], one[k]) for k in params)


def test_composes_with_chain_and_only() -> None:
    params = _params(4)
    method = fp.chain(group_structured(0.5, GROUPS), fp.l1_unstructured(0.2))
    masks = method(params)
    assert (
        _pruned({k: m | ~group_structured(0.5, GROUPS)(params)[k] | True for k, m in masks.items()})
        == []
    )
    first = fp.only(group_structured(4, GROUPS), include=r"^[02]\.")(params)
    assert (
        len(_pruned({**{k: torch.ones(s, dtype=torch.bool) for k, s in SIZES.items()}, **first}))
        == 4
    )
    assert all(bool(first[k].all()) for k in first if k.startswith("4."))


def test_local_scope_prunes_the_same_fraction_of_each_layer() -> None:
    masks = group_structured(0.5, GROUPS, scope="local")(_params(5))
    pruned = _pruned(masks)
    assert sum(i < 10 for i in pruned) == round(0.5 * 9)
    assert sum(i >= 10 for i in pruned) == round(0.5 * 5)


@pytest.mark.parametrize("k", [2, 4])
def test_round_to_keeps_multiples(k: int) -> None:
    masks = group_structured(0.7, GROUPS, round_to=k)(_params(6))
    pruned = _pruned(masks)
    kept_first, kept_second = 10 - sum(i < 10 for i in pruned), 6 - sum(i >= 10 for i in pruned)
    assert (kept_first % k == 0 and kept_second % k == 0) or kept_second == 6
    assert kept_first >= 10 - round(0.7 * 14)


def test_importance_callable_and_importance_scores() -> None:
    params = _params(7)
    order = torch.arange(16, dtype=torch.float32)
    masks = group_structured(3, GROUPS, importance=lambda p, g: order)(params)
    assert _pruned(masks) == [0, 1, 2]
    scores = {k: torch.ones_like(v) for k, v in params.items()}
    scores["2.weight"] = torch.zeros_like(params["2.weight"])
    scores["2.bias"] = torch.zeros_like(params["2.bias"])
    scores["4.weight"] = torch.zeros_like(params["4.weight"])
    masks = group_structured(2, GROUPS)(params, importance_scores=scores)
    assert _pruned(masks) == [11, 12]  # all tie: group 10 is the layer's kept one
    with pytest.raises(ValueError, match=r"shape \(16,\)"):
        group_structured(1, GROUPS, importance=lambda p, g: torch.zeros(3))(params)


def test_inf_norm_and_value_semantics() -> None:
    params = _params(8)
    assert _pruned(group_structured(1, GROUPS, n=math.inf)(params))
    method = group_structured(0.25, GROUPS, n=1, scope="local", round_to=2)
    assert method == group_structured(0.25, GROUPS, n=1, scope="local", round_to=2)
    assert method != group_structured(0.25, GROUPS)
    assert hash(method) == hash(group_structured(0.25, GROUPS, n=1, scope="local", round_to=2))
    assert repr(method) == (
        "group_structured(0.25, ChannelGroups(<16 groups over 5 parameters>), n=1, "
        "importance=None, scope='local', round_to=2)"
    )


def test_bad_hyperparameters_and_params() -> None:
    with pytest.raises(TypeError, match="ChannelGroups"):
        group_structured(0.5, [])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scope"):
        group_structured(0.5, GROUPS, scope="layer")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="round_to"):
        group_structured(0.5, GROUPS, round_to=0)
    with pytest.raises(ValueError, match="norm order"):
        group_structured(0.5, GROUPS, n=0)
    with pytest.raises(ValueError, match="amount"):
        group_structured(1.5, GROUPS)
    wrong = {**_params(0), "0.weight": torch.zeros(3, 4)}
    with pytest.raises(ValueError, match=r"'0.weight': params has shape \(3, 4\)"):
        group_structured(0.5, GROUPS)(wrong)
