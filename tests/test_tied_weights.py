"""Tied weights (one tensor under several keys), masked_call's key checks and sparsity's checks."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune as torch_prune

import funcprune as fp
import funcprune.compat as compat
from funcprune._aliases import alias_groups


class _Tied(nn.Module):
    """An embedding whose weight is also the output projection's (GPT-2's lm_head)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(6, 4)
        self.mid = nn.Linear(4, 4)
        self.head = nn.Linear(4, 6, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.mid(self.emb(ids)))


IDS = torch.tensor([[0, 3, 5, 1]])


def _reference(model: _Tied, w_emb: torch.Tensor, w_head: torch.Tensor) -> torch.Tensor:
    h = nn.functional.linear(nn.functional.embedding(IDS, w_emb), model.mid.weight, model.mid.bias)
    return nn.functional.linear(h, w_head)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in model.state_dict().items()}


def test_alias_groups_see_objects_and_shared_storage_but_not_views_or_copies() -> None:
    w = torch.randn(3, 4)
    params = {"a": w, "b": w.detach(), "c": w.clone(), "d": w[1:], "e": w.t(), "f": w}
    assert alias_groups(params) == [["a", "b", "f"]]
    assert alias_groups({"x": torch.empty(0), "y": torch.empty(0)}) == []  # no storage to share


@given(amount=st.integers(0, 30), seed=st.integers(0, 100))
def test_global_ranking_counts_a_tied_tensor_once(amount: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    w, b = torch.randn(4, 5, generator=generator), torch.randn(10, generator=generator)
    tied = fp.global_unstructured(amount)({"w": w, "b": b, "alias": w.detach()})
    once = fp.global_unstructured(amount)({"w": w, "b": b})
    assert torch.equal(tied["w"], once["w"]) and torch.equal(tied["b"], once["b"])
    assert torch.equal(tied["alias"], once["w"])
    assert tied["alias"].data_ptr() != tied["w"].data_ptr()  # copies, not one shared buffer


def test_every_method_gives_aliases_identical_masks() -> None:
    model = _Tied()
    params = _state(model)
    methods = [
        fp.random_unstructured(0.5, seed=3),  # per-key random streams would differ by name
        fp.l1_unstructured(0.3),
        fp.only(fp.ln_structured(2, n=2, dim=0), include="weight"),
        fp.per_key(fp.l1_unstructured, {"head.weight": 5}),  # addresses the second name only
        fp.chain(fp.only(fp.l1_unstructured(4), include="head"), fp.global_unstructured(0.5)),
    ]
    for method in methods:
        masks = method(params)
        assert torch.equal(masks["emb.weight"], masks["head.weight"]), method
    addressed = fp.per_key(fp.l1_unstructured, {"head.weight": 5})(params)
    assert int((~addressed["emb.weight"]).sum()) == 5


def test_incoming_masks_of_aliases_are_intersected() -> None:
    w = torch.tensor([4.0, 3.0, 2.0, 1.0])
    first, second = torch.tensor([False, True, True, True]), torch.tensor([True, True, True, False])
    masks = fp.l1_unstructured(1)({"a": w, "b": w}, {"a": first, "b": second})
    assert masks["a"].tolist() == masks["b"].tolist() == [False, True, False, False]


def test_aliases_with_different_scores_are_refused() -> None:
    w = torch.ones(3)
    with pytest.raises(ValueError, match=r"tied keys \['a', 'b'\]"):
        fp.l1_unstructured(1)({"a": w, "b": w}, importance_scores={"a": w, "b": w.clone()})
    one = fp.l1_unstructured(1)(
        {"a": w, "b": w}, importance_scores={"b": torch.tensor([3.0, 1, 2])}
    )
    assert one["a"].tolist() == one["b"].tolist() == [True, False, True]


def test_vmap_and_compile_keep_aliases_together() -> None:
    w = torch.randn(8)
    params = {"a": w, "b": torch.randn(4), "c": w}
    amounts = torch.tensor([0.25, 0.5, 0.75])
    swept = torch.func.vmap(lambda a: fp.global_unstructured(a)(params))(amounts)
    for i, amount in enumerate(amounts.tolist()):
        one = fp.global_unstructured(amount)(params)
        assert all(torch.equal(swept[k][i], one[k]) for k in params)
    assert torch.equal(swept["a"], swept["c"])
    compiled = torch.compile(lambda p: fp.global_unstructured(0.5)(p), fullgraph=True)
    eager = fp.global_unstructured(0.5)(params)
    assert all(torch.equal(compiled(params)[k], eager[k]) for k in params)


def test_masked_call_runs_state_dict_params_of_a_tied_model() -> None:
    model = _Tied()
    params = _state(model)  # both names of the tied weight: functional_call refused them
    method = fp.only(fp.l1_unstructured(0.5), include="emb|head")
    masks = method(params)
    w = params["emb.weight"] * masks["emb.weight"]
    assert torch.equal(fp.masked_call(model, params, masks, IDS), _reference(model, w, w))
    deduplicated = {k: v.detach() for k, v in model.named_parameters()}  # "emb.weight" only
    masks = method(deduplicated)
    w = deduplicated["emb.weight"] * masks["emb.weight"]
    assert torch.equal(fp.masked_call(model, deduplicated, masks, IDS), _reference(model, w, w))


@pytest.mark.parametrize("library", [torch_prune, compat], ids=["torch", "compat"])
def test_a_model_whose_tied_head_torch_pruned_round_trips(library: object) -> None:
    model = _Tied()
    plain = copy.deepcopy(model)
    library.l1_unstructured(model.head, "weight", amount=7)  # type: ignore[attr-defined]
    expected = model(IDS)  # the embedding still reads the dense weight
    params, masks = fp.from_module(model)
    assert list(masks) == ["head.weight"] and params["head.weight"] is params["emb.weight"]
    assert torch.equal(fp.masked_call(plain, params, masks, IDS), expected)
    named = {k: v for k, v in plain.named_parameters()}  # no "head.weight" key at all
    assert torch.equal(
        fp.masked_call(plain, named | {"emb.weight": params["emb.weight"]}, masks, IDS), expected
    )
    state = fp.to_state_dict(params, masks)
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    fp.install_masks(plain, masks)
    assert torch.equal(plain(IDS), expected)


def test_masked_call_names_keys_the_module_does_not_have() -> None:
    lin = nn.Linear(2, 1)
    x = torch.ones(1, 2)
    with pytest.raises(KeyError, match=r"\['wieght'\] name no parameter or buffer"):
        fp.masked_call(lin, {"wieght": torch.ones(1, 2)}, {"wieght": torch.ones(1, 2).bool()}, x)
    with pytest.raises(KeyError, match=r"\['bais', 'wieght'\]"):
        fp.masked_call(lin, {"wieght": torch.ones(1, 2), "bais": torch.ones(1)}, {}, x)
    with pytest.raises(KeyError, match="'nope'"):
        fp.masked_call(lin, {}, {"nope": torch.ones(1).bool()}, x)
    with pytest.raises(TypeError, match="params must be a mapping"):
        fp.masked_call(lin, [torch.ones(1, 2)], {}, x)  # type: ignore[arg-type]
    mask = torch.tensor([[True, False]])
    only_mask = fp.masked_call(lin, {}, {"weight": mask}, x)  # the module's own weight, masked
    assert torch.equal(only_mask, nn.functional.linear(x, lin.weight * mask, lin.bias))


def test_sparsity_without_params_validates_masks() -> None:
    with pytest.raises(TypeError, match=r"'w' \(torch.int64\)"):
        fp.sparsity({"w": torch.tensor([1, 0, 2])})
    with pytest.raises(TypeError, match="mapping"):
        fp.sparsity([torch.ones(2, dtype=torch.bool)])  # type: ignore[arg-type]
    assert fp.sparsity({"w": torch.tensor([True, False])}).overall == 0.5
