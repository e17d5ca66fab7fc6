"""Channel groups and shrink on small models, one per op kind: groups checked, outputs compared."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from funcprune.structure import ChannelGroups, channel_groups, shrink
from tests.structure.models import (
    CatSplit,
    ConvNet,
    Grouped,
    GroupedTranspose,
    HeadAttention,
    MatmulAttention,
    Tokens,
    TorchMHA,
    prune_and_shrink,
    randomize,
)


def _image(channels: int, size: int, dims: int = 2) -> torch.Tensor:
    return torch.randn(2, channels, *([size] * dims), generator=torch.Generator().manual_seed(1))


def _tokens(shape: tuple[int, ...], high: int = 20) -> torch.Tensor:
    return torch.randint(0, high, shape, generator=torch.Generator().manual_seed(1))


def _group_with(
    groups: ChannelGroups, key: str, dim: int, index: int
) -> dict[tuple[str, int], tuple[int, ...]]:
    for group in groups:
        for s in group.params:
            if (s.key, s.dim) == (key, dim) and index in s.indices:
                return {(m.key, m.dim): m.indices for m in group.params}
    raise AssertionError(f"no group holds {key}[dim {dim}] index {index}")


CASES = {
    "conv1d": (lambda: ConvNet(1), lambda: _image(3, 4, 1)),
    "conv2d": (lambda: ConvNet(2), lambda: _image(3, 4, 2)),
    "conv3d-no-bias": (lambda: ConvNet(3, bias=False), lambda: _image(3, 4, 3)),
    "grouped-depthwise-transpose-norms": (Grouped, lambda: _image(3, 5)),
    "grouped-transpose": (GroupedTranspose, lambda: _image(3, 4)),
    "cat-chunk-se": (CatSplit, lambda: _image(3, 5)),
    "embedding-layernorm": (Tokens, lambda: _tokens((2, 5))),
    "head-attention": (HeadAttention, lambda: torch.randn(2, 5, 12)),
    "matmul-attention": (MatmulAttention, lambda: torch.randn(2, 5, 12)),
    "torch-mha": (TorchMHA, lambda: torch.randn(2, 5, 8)),
}


@pytest.mark.parametrize("name", CASES)
def test_shrunk_model_computes_the_masked_model(name: str) -> None:
    build, inputs = CASES[name]
    torch.manual_seed(0)
    model = randomize(build())
    groups, small, _, _ = prune_and_shrink(model, (inputs(),))
    assert len(groups) > 0
    before = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in small.parameters()) < before


def test_flatten_maps_a_channel_to_a_block_of_columns() -> None:
    groups = channel_groups(ConvNet(2), (_image(3, 4),))
    members = _group_with(groups, "b.weight", 0, 3)
    assert members[("head.weight", 1)] == tuple(range(3 * 16, 4 * 16))
    assert {("stem.weight", 0), ("bn.weight", 0), ("bn2.bias", 0), ("a.weight", 1)} <= set(members)


def test_graph_input_and_output_dims_are_left_out_with_reasons() -> None:
    groups = channel_groups(ConvNet(2), (_image(3, 4),))
    reasons = {(e.key, e.dim): e.reason for e in groups.excluded}
    assert "graph output" in reasons["head.weight", 0]
    assert "input channels are fixed" in reasons["stem.weight", 1]
    assert "head.weight dim 0 (5 of 5): graph output" in groups.report()


def test_cat_offsets_and_chunk_halves() -> None:
    groups = channel_groups(CatSplit(), (_image(3, 5),))
    assert _group_with(groups, "left.weight", 0, 2)[("mix.weight", 1)] == (2,)
    assert _group_with(groups, "right.weight", 0, 1)[("mix.weight", 1)] == (5,)
    value_and_gate = _group_with(groups, "mix.weight", 0, 1)
    assert value_and_gate[("mix.weight", 0)] == (1, 7)
    assert value_and_gate[("excite.weight", 0)] == (1,)
    assert value_and_gate[("out.weight", 1)] == (1,)


def test_grouped_convs_and_group_norm_prune_whole_groups() -> None:
    groups = channel_groups(Grouped(), (_image(3, 5),))
    stem = _group_with(groups, "stem.weight", 0, 0)
    assert stem[("grouped.weight", 0)] == (0, 1)
    assert stem[("depthwise.weight", 0)] == (0, 1, 2, 3)
    assert stem[("prelu.weight", 0)] == (0, 1, 2, 3)
    assert _group_with(groups, "up.weight", 1, 0)[("norm.weight", 0)] == (0, 1)
    _, small, _, _ = prune_and_shrink(randomize(Grouped()), (_image(3, 5),), 0.5)
    assert small.grouped.in_channels == small.grouped.out_channels == 2 * small.grouped.groups
    assert (
        small.depthwise.out_channels
        == 2 * small.depthwise.groups
        == 2 * small.depthwise.in_channels
    )
    assert small.norm.num_channels == 2 * small.norm.num_groups == small.up.out_channels
    assert small.prelu.num_parameters == small.depthwise.out_channels


def test_layer_norm_keeps_the_residual_stream_and_embedding_rows() -> None:
    groups = channel_groups(Tokens(), (_tokens((2, 5)),))
    assert len(groups) == 16
    reasons = {(e.key, e.dim): e.reason for e in groups.excluded}
    assert "layer-norm statistics" in reasons["embed.weight", 1]
    assert "embedding rows" in groups.report()


@pytest.mark.parametrize("build", [HeadAttention, MatmulAttention])
def test_attention_prunes_whole_heads(build: type[nn.Module]) -> None:
    model = randomize(build())
    groups = channel_groups(model, (torch.randn(2, 5, 12),))
    assert len(groups) == 3
    for head, group in enumerate(groups):
        rows = {m.key: m.indices for m in group.params if m.dim == 0}
        columns = {m.key: m.indices for m in group.params if m.dim == 1}
        q_rows = tuple(range(4 * head, 4 * head + 4))
        if build is HeadAttention:
            assert rows["q_proj.weight"] == rows["k_proj.weight"] == rows["v_proj.weight"] == q_rows
            assert columns["o_proj.weight"] == q_rows
        else:
            assert rows["qkv.weight"] == (
                *q_rows,
                *(i + 12 for i in q_rows),
                *(i + 24 for i in q_rows),
            )
            assert columns["out.weight"] == q_rows
    _, small, _, _ = prune_and_shrink(model, (torch.randn(2, 5, 12),), 1)
    first = small.q_proj if build is HeadAttention else small.qkv
    assert first.out_features in (8, 24)


def test_code_with_a_fixed_size_is_refused_not_silently_wrong() -> None:
    model = HeadAttention(fixed=True)
    x = torch.randn(2, 5, 12)
    params = {k: v.detach() for k, v in model.named_parameters()}
    groups = channel_groups(model, (x,))
    from funcprune.structure import group_structured

    masks = group_structured(1, groups)(params)
    with pytest.raises(RuntimeError, match="fixed size"):
        shrink(model, params, masks, (x,), groups=groups)


def test_multihead_attention_module_is_left_out() -> None:
    groups = channel_groups(TorchMHA(), (torch.randn(2, 5, 8),))
    keys = {m.key for g in groups for m in g.params}
    assert {"mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "attn.out_proj.weight"} <= keys
    assert not any("in_proj" in key for key in keys)
    assert "attn.in_proj_weight dim 0" in groups.report()


def test_model_and_inputs_are_checked() -> None:
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        channel_groups(lambda x: x, (torch.zeros(1),))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tuple of positional arguments"):
        channel_groups(nn.Linear(2, 2), torch.zeros(1, 2))  # type: ignore[arg-type]


def test_partial_group_is_refused_by_name() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(2, 3)
    params = dict(model.named_parameters())
    mask = torch.ones(4, 3, dtype=torch.bool)
    mask[1] = False
    with pytest.raises(ValueError, match=r"channel group 1 only in part: \['0.weight\[1\]'\]"):
        shrink(model, params, {"0.weight": mask}, (x,))


def test_masks_outside_groups_stay_as_zeros_and_the_model_is_untouched() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3)
    params = {k: v.detach() for k, v in model.named_parameters()}
    keep = torch.ones(2, 4, dtype=torch.bool)
    keep[0, 0] = False
    small = shrink(model, params, {"2.weight": keep}, (x,))
    assert small[2].weight[0, 0] == 0 and small[2].weight.shape == (2, 4)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


def test_wrong_mask_keys_and_shapes() -> None:
    model = nn.Linear(2, 2)
    params = dict(model.named_parameters())
    with pytest.raises(KeyError, match="not parameters of model"):
        shrink(model, params, {"nope": torch.ones(2, dtype=torch.bool)}, (torch.zeros(1, 2),))
    with pytest.raises(ValueError, match="bool tensor of shape"):
        shrink(model, params, {"bias": torch.ones(3, dtype=torch.bool)}, (torch.zeros(1, 2),))


def test_make_fx_fallback_finds_the_same_groups() -> None:
    from funcprune.structure._capture import _make_fx, capture
    from funcprune.structure.groups import groups_of

    model, x = randomize(CatSplit()).eval(), _image(3, 5)
    exported = groups_of(capture(model, (x,)))
    traced = groups_of(_make_fx(model, (x,), "forced"))
    assert "make_fx" in traced.tracer
    assert traced.groups == exported.groups


def test_uncapturable_model_says_why() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.a(x)
            return h * 2 if h.sum() > 0 else h

    with pytest.raises(RuntimeError, match=r"cannot capture the model.*torch\.cond"):
        channel_groups(Branchy(), (torch.randn(2, 4),))


class RandomNet(nn.Module):
    """A stack of (grouped) convs with optional batch norm and residual adds, then a classifier."""

    def __init__(
        self, widths: list[int], groups: list[int], norms: list[bool], skips: list[bool]
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, widths[0], 1)
        self.convs = nn.ModuleList(
            nn.Conv2d(w, w, 3, padding=1, groups=g) for w, g in zip(widths, groups, strict=True)
        )
        self.norms = nn.ModuleList(
            nn.BatchNorm2d(w) if n else nn.Identity() for w, n in zip(widths, norms, strict=True)
        )
        self.skips = skips
        self.head = nn.Linear(widths[0] * 9, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for conv, norm, skip in zip(self.convs, self.norms, self.skips, strict=True):
            y = torch.relu(norm(conv(x)))
            x = x + y if skip else y
        return self.head(x.flatten(1))


@st.composite
def random_nets(draw: st.DrawFn) -> RandomNet:
    depth = draw(st.integers(1, 3))
    base = draw(st.sampled_from([4, 6, 8]))
    divisors = [g for g in (1, 2, base) if base % g == 0]
    groups = [draw(st.sampled_from(divisors)) for _ in range(depth)]
    norms = [draw(st.booleans()) for _ in range(depth)]
    skips = [draw(st.booleans()) for _ in range(depth)]
    return RandomNet([base] * depth, groups, norms, skips)


@settings(max_examples=12)
@given(random_nets(), st.sampled_from([0.25, 0.5, 1.0]), st.integers(0, 100))
def test_random_conv_stacks_shrink_to_the_masked_model(
    net: RandomNet, amount: float, seed: int
) -> None:
    torch.manual_seed(seed)
    prune_and_shrink(randomize(net, seed), (_image(3, 3),), amount)
