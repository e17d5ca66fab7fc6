"""feature_dims / along_inputs / along_outputs: each layer type's orientation, checked by what a
method along that dim prunes in the layer's computation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import funcprune as fp
from funcprune.layers import FeatureDims, along_inputs, along_outputs, feature_dims

MATMUL, TRANSPOSED = FeatureDims(input=1, output=0), FeatureDims(input=0, output=1)


def test_feature_dims_of_every_known_layer() -> None:
    pytorch_utils = pytest.importorskip("transformers.pytorch_utils")
    model = nn.ModuleDict(
        {
            "lin": nn.Linear(3, 4),
            "c1": nn.Conv1d(2, 4, 3),
            "c3": nn.Conv3d(2, 4, 1),
            "t2": nn.ConvTranspose2d(2, 4, 3),
            "emb": nn.Embedding(5, 3),
            "bag": nn.EmbeddingBag(5, 3),
            "hf": pytorch_utils.Conv1D(4, 3),
            "mha": nn.MultiheadAttention(4, 2),
            "lstm": nn.LSTM(3, 2),
            "norm": nn.LayerNorm(3),
        }
    )
    dims = feature_dims(model)
    assert dims == {
        "lin.weight": MATMUL,
        "c1.weight": MATMUL,
        "c3.weight": MATMUL,
        "t2.weight": TRANSPOSED,
        "emb.weight": TRANSPOSED,
        "bag.weight": TRANSPOSED,
        "hf.weight": TRANSPOSED,
        "mha.in_proj_weight": MATMUL,
        "mha.out_proj.weight": MATMUL,
        "lstm.weight_ih_l0": MATMUL,
        "lstm.weight_hh_l0": MATMUL,
    }
    for key, d in dims.items():  # the input dim's size is the layer's input width
        weight = model.get_parameter(key)
        layer = model[key.split(".")[0]]
        width = {
            "lin": 3,
            "c1": 2,
            "c3": 2,
            "t2": 2,
            "emb": 5,
            "bag": 5,
            "hf": 3,
            "mha": 4,
            "lstm": 3 if "ih" in key else 2,
        }[key.split(".")[0]]
        assert weight.shape[d.input] == width, (key, layer)


class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(8, 4)
        self.head = nn.Linear(4, 8, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(ids))


def test_a_tied_weight_takes_the_orientation_of_the_product_layer() -> None:
    assert feature_dims(_Tied()) == {"emb.weight": MATMUL}  # the head multiplies, emb looks up
    model = _Tied()
    params = {k: v.detach() for k, v in model.state_dict().items()}  # both names
    masks = along_inputs(model, lambda dim: fp.nm_semistructured(2, 4, dim=dim))(params)
    assert torch.equal(masks["emb.weight"], masks["head.weight"])
    assert bool((masks["head.weight"].reshape(8, 1, 4).sum(-1) == 2).all())


def test_pruning_inputs_zeroes_input_features_of_each_layer() -> None:
    """ln_structured along inputs removes inputs: the output stops depending on them."""
    pytorch_utils = pytest.importorskip("transformers.pytorch_utils")
    torch.manual_seed(0)
    model = nn.Sequential(
        pytorch_utils.Conv1D(6, 4),
        nn.Linear(6, 6),
        nn.Unflatten(1, (6, 1)),
        nn.ConvTranspose1d(6, 2, 1),
    )
    params = {k: v.detach() for k, v in model.named_parameters()}
    masks = along_inputs(model, lambda dim: fp.ln_structured(2, n=1, dim=dim))(params)
    x = torch.randn(5, 4)
    dropped = ~masks["0.weight"].any(dim=1)  # Conv1D (in, out): pruned inputs are rows
    assert int(dropped.sum()) == 2
    noisy = x.clone()
    noisy[:, dropped] = 100.0
    sub = nn.Sequential(model[0])
    same = {"0.weight": params["0.weight"], "0.bias": params["0.bias"]}
    assert torch.equal(
        fp.masked_call(sub, same, {"0.weight": masks["0.weight"]}, x),
        fp.masked_call(sub, same, {"0.weight": masks["0.weight"]}, noisy),
    )
    assert int((~masks["1.weight"].any(dim=0)).sum()) == 2  # Linear (out, in): columns
    assert int((~masks["3.weight"].any(dim=2).any(dim=1)).sum()) == 2  # (in, out, k): dim 0
    outputs = along_outputs(model, lambda dim: fp.ln_structured(1, n=1, dim=dim))(params)
    assert int((~outputs["0.weight"].any(dim=0)).sum()) == 1  # Conv1D outputs are columns
    assert int((~outputs["1.weight"].any(dim=1)).sum()) == 1


def test_nm_along_inputs_fixes_gpt2_style_orientation() -> None:
    pytorch_utils = pytest.importorskip("transformers.pytorch_utils")
    conv1d = pytorch_utils.Conv1D(4, 8)  # weight (in=8, out=4)
    params = {"weight": conv1d.weight.detach()}
    default = fp.nm_semistructured(2, 4)(params)["weight"]  # dim=1 groups outputs here
    along = along_inputs(conv1d, lambda dim: fp.nm_semistructured(2, 4, dim=dim))(params)["weight"]
    assert bool((along.reshape(2, 4, 4).sum(1) == 2).all())  # groups of 4 consecutive inputs
    assert not bool((default.reshape(2, 4, 4).sum(1) == 2).all())


def test_feature_dims_accept_pruned_modules_and_mappings_and_refuse_junk() -> None:
    lin = nn.Linear(4, 2)
    fp.install_masks(lin, {"weight": torch.ones(2, 4, dtype=torch.bool)})
    assert feature_dims(lin) == {"weight": MATMUL}
    method = along_outputs({"weight": MATMUL}, lambda dim: fp.ln_structured(1, n=2, dim=dim))
    assert method == fp.per_key(fp.ln_structured, {"weight": 1}, n=2, dim=0)
    with pytest.raises(TypeError, match=r"nn\.Module"):
        feature_dims("model")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="function from a dim"):
        along_inputs(lin, 3)  # type: ignore[arg-type]
