"""SparseLinear and to_sparse: outputs equal the masked dense model's; the input is untouched."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import funcprune as fp
from funcprune.sparse import SparseLinear, fastest_layouts, to_sparse


def pruned_weight(out: int, inp: int, sparsity: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(out, inp, generator=gen, dtype=torch.float64)
    return weight * (torch.rand(out, inp, generator=gen) >= sparsity)


@given(
    out=st.sampled_from([1, 4, 8, 12]),
    inp=st.sampled_from([1, 4, 8, 20]),
    lead=st.lists(st.integers(0, 3), max_size=3).map(tuple),
    sparsity=st.sampled_from([0.0, 0.5, 0.9, 1.0]),
    layout=st.sampled_from(["csr", "bsr"]),
    with_bias=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_equals_dense_linear(
    out: int,
    inp: int,
    lead: tuple[int, ...],
    sparsity: float,
    layout: str,
    with_bias: bool,
    seed: int,
) -> None:
    weight = pruned_weight(out, inp, sparsity, seed)
    bias = torch.randn(out, dtype=torch.float64) if with_bias else None
    layer = SparseLinear.from_dense(weight, bias, layout=layout, blocksize=(1, 1))  # type: ignore[arg-type]
    x = torch.randn(*lead, inp, dtype=torch.float64)
    expected = torch.nn.functional.linear(x, weight, bias)
    result = layer(x)
    assert result.shape == expected.shape and result.is_contiguous()
    torch.testing.assert_close(result, expected, rtol=1e-12, atol=1e-12)


def test_bsr_blocks_and_what_is_stored() -> None:
    weight = pruned_weight(32, 48, 0.0, 0)
    weight[:16] = 0  # the top row of blocks is empty
    layer = SparseLinear.from_dense(weight, layout="bsr", blocksize=(16, 16))
    assert layer.layout == "bsr" and layer.values.shape == (3, 16, 16)
    x = torch.randn(5, 48, dtype=torch.float64)
    torch.testing.assert_close(layer(x), x @ weight.T)
    assert torch.equal(layer.weight.to_dense(), weight)


def test_copies_moves_and_state_dicts() -> None:
    layer = SparseLinear.from_dense(pruned_weight(6, 5, 0.7, 1).float(), torch.randn(6))
    x = torch.randn(3, 5)
    assert torch.equal(copy.deepcopy(layer)(x), layer(x))
    assert layer.to(torch.float64)(x.double()).dtype == torch.float64
    other = SparseLinear.from_dense(torch.ones(6, 5), torch.zeros(6))
    other.load_state_dict(SparseLinear.from_dense(torch.ones(6, 5) * 2, torch.ones(6)).state_dict())
    torch.testing.assert_close(other(x), x.sum(-1, keepdim=True).expand(3, 6) * 2 + 1)
    assert "layout=csr, stored=" in repr(layer)


def test_bad_weights() -> None:
    with pytest.raises(ValueError, match=r"2-d sparse CSR or BSR weight; got a 2-d torch\.strided"):
        SparseLinear(torch.ones(2, 2))
    with pytest.raises(ValueError, match=r"bias has shape \(3,\); this weight needs \(2,\)"):
        SparseLinear.from_dense(torch.ones(2, 2), torch.ones(3))
    with pytest.raises(ValueError, match=r"'weight': layout='coo' is not one of"):
        SparseLinear.from_dense(torch.ones(2, 2), layout="coo")  # type: ignore[arg-type]


def mlp() -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 32), torch.nn.Linear(32, 4)
    )
    return model, {k: v.detach().clone() for k, v in model.named_parameters()}


def test_to_sparse_equals_the_masked_model_and_leaves_it_alone() -> None:
    model, params = mlp()
    masks = fp.only(fp.l1_unstructured(0.9), include=r"^[01]\.weight$")(params)
    before = copy.deepcopy(model.state_dict())
    sparse = to_sparse(model, params, masks)
    assert [type(m).__name__ for m in sparse] == ["SparseLinear", "GELU", "Linear", "Linear"]
    x = torch.randn(2, 3, 32)
    torch.testing.assert_close(sparse(x), fp.masked_call(model, params, masks, x))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(type(m) is not SparseLinear for m in model.modules())


def test_to_sparse_with_a_layout_per_key() -> None:
    model, params = mlp()
    masks = fp.l1_unstructured(0.8)(params)
    sparse = to_sparse(
        model, params, masks, layout={"0.weight": "bsr", "2.weight": "csr", "3.weight": "dense"}
    )
    assert (sparse[0].layout, sparse[2].layout, type(sparse[3])) == ("bsr", "csr", torch.nn.Linear)
    x = torch.randn(7, 32)
    torch.testing.assert_close(sparse(x), fp.masked_call(model, params, masks, x))
    assert torch.equal(sparse[3].weight, fp.apply_masks(params, masks)["3.weight"])


def test_a_model_that_is_one_linear_layer() -> None:
    layer = torch.nn.Linear(8, 3)
    params = dict(layer.named_parameters())
    masks = fp.l1_unstructured(0.5)(params)
    sparse = to_sparse(layer, params, masks)
    x = torch.randn(4, 8)
    assert isinstance(sparse, SparseLinear)
    torch.testing.assert_close(sparse(x), fp.masked_call(layer, params, masks, x))


def test_to_sparse_errors_name_the_keys() -> None:
    model, params = mlp()
    masks = fp.l1_unstructured(0.5)(params)
    with pytest.raises(ValueError, match=r"keys \['1.weight'\] are not weights of torch.nn.Linear"):
        to_sparse(model, params, masks, layout={"1.weight": "csr"})
    with pytest.raises(ValueError, match=r"'0.weight': 'coo'"):
        to_sparse(model, params, masks, layout={"0.weight": "coo"})
    with pytest.raises(ValueError, match=r"'3.weight': BSR blocks of \(16, 16\) must divide"):
        to_sparse(model, params, masks, layout="bsr")
    with pytest.raises(ValueError, match=r"nothing to convert: no torch\.nn\.Linear"):
        to_sparse(model, params, {"0.bias": masks["0.bias"]})
    with pytest.raises(ValueError, match="nothing to convert: layout is an empty mapping"):
        to_sparse(model, params, masks, layout={})
    with pytest.raises(KeyError, match=r"\['9.weight'\]"):
        to_sparse(model, {**params, "9.weight": torch.ones(1)}, masks)


def test_fastest_layouts_returns_a_working_choice() -> None:
    model, params = mlp()
    masks = fp.only(fp.l1_unstructured(0.95), include=r"\.weight$")(params)
    x = torch.randn(1, 32)
    choice = fastest_layouts(model, params, masks, (x,), candidates=("csr", "bsr"), repeats=2)
    assert set(choice) == {"0.weight", "2.weight", "3.weight"}
    assert set(choice.values()) <= {"dense", "csr", "bsr"}
    assert choice["3.weight"] != "bsr"  # (4, 32) does not split into 16x16 blocks
    fast = to_sparse(model, params, masks, layout=choice)
    torch.testing.assert_close(fast(x), fp.masked_call(model, params, masks, x))


def test_fastest_layouts_leaves_unreached_layers_dense() -> None:
    class Skips(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used, self.unused = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    model = Skips()
    params = dict(model.named_parameters())
    masks = fp.l1_unstructured(0.5)(params)
    choice = fastest_layouts(model, params, masks, (torch.randn(2, 4),), repeats=1)
    assert choice["unused.weight"] == "dense" and choice["used.weight"] in ("dense", "csr")


def test_fastest_layouts_checks_its_arguments() -> None:
    model, params = mlp()
    masks = fp.l1_unstructured(0.5)(params)
    x = (torch.randn(1, 32),)
    with pytest.raises(ValueError, match=r"candidates must be a non-empty subset.*\['coo'\]"):
        fastest_layouts(model, params, masks, x, candidates=("coo",))
    with pytest.raises(ValueError, match="repeats=0 must be at least 1"):
        fastest_layouts(model, params, masks, x, repeats=0)
