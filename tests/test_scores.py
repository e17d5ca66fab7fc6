"""Scores against their reference formulas, written out independently (numpy / module hooks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call, grad

import funcprune as fp


@st.composite
def params_and_grads(draw: st.DrawFn) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    shapes = draw(st.lists(st.lists(st.integers(1, 4), max_size=3), min_size=1, max_size=3))
    tied = draw(st.booleans())
    params, grads = {}, {}
    for i, shape in enumerate(shapes):
        params[f"p{i}"] = torch.randn(shape, generator=gen, dtype=torch.float64)
        g = (
            torch.randint(-2, 3, shape, generator=gen).double()
            if tied
            else torch.randn(shape, generator=gen)
        )
        if draw(st.booleans()):
            grads[f"p{i}"] = g.to(torch.float64)
    return params, grads


@given(params_and_grads())
def test_magnitude_taylor_movement_formulas(
    case: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]],
) -> None:
    params, grads = case
    for key, score in fp.magnitude(params).items():
        np.testing.assert_array_equal(score.numpy(), np.abs(params[key].numpy()))
    taylor, movement = fp.taylor(params, grads), fp.movement(params, grads)
    assert set(taylor) == set(movement) == set(grads)
    for key, g in grads.items():
        w = params[key].numpy()
        np.testing.assert_array_equal(taylor[key].numpy(), np.abs(w * g.numpy()))
        np.testing.assert_array_equal(movement[key].numpy(), -(w * g.numpy()))


@given(params_and_grads())
def test_ranks_preserve_order_across_keys(
    case: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]],
) -> None:
    _, grads = case
    ranked = fp.ranks(grads)
    assert set(ranked) == set(grads)
    flat = np.concatenate([g.reshape(-1).numpy() for g in grads.values()] + [np.zeros(0)])
    ranks = np.concatenate([r.reshape(-1).numpy() for r in ranked.values()] + [np.zeros(0)])
    assert (ranks >= 0).all()
    np.testing.assert_array_equal(
        np.sign(flat[:, None] - flat[None, :]), np.sign(ranks[:, None] - ranks[None, :])
    )
    if flat.size:
        assert ranks.max() == len(np.unique(flat)) - 1


@given(params_and_grads(), st.floats(0, 1))
def test_movement_ranks_prune_most_negative(
    case: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]], amount: float
) -> None:
    params, grads = case
    if not grads:
        return
    scores = fp.movement(params, grads)
    chosen = {k: params[k] for k in grads}
    masks = fp.global_unstructured(amount)(chosen, importance_scores=fp.ranks(scores))
    flat = torch.cat([scores[k].reshape(-1) for k in grads])
    kept = torch.cat([masks[k].reshape(-1) for k in grads])
    pruned = flat.numel() - int(kept.sum())
    assert pruned == round(amount * flat.numel())
    if 0 < pruned < flat.numel():
        assert float(flat[~kept].max()) <= float(flat[kept].min())


def test_taylor_with_functional_grad() -> None:
    params = {"w": torch.tensor([1.0, -2.0, 3.0])}
    x = torch.tensor([0.5, 1.0, -1.0])
    grads = grad(lambda p: (p["w"] * x).sum() ** 2)(params)
    expected = (params["w"] * 2 * float((params["w"] * x).sum()) * x).abs()
    torch.testing.assert_close(fp.taylor(params, grads)["w"], expected)


class _Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(5, 4), nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x * scale)))


def _hooked_inputs(
    model: nn.Module, batches: list[tuple[torch.Tensor, float]]
) -> dict[str, torch.Tensor]:
    """The usual stateful way: forward hooks store every linear input."""
    seen: dict[str, list[torch.Tensor]] = {"fc1.weight": [], "fc2.weight": []}
    handles = [
        getattr(model, name).register_forward_hook(
            lambda _m, inputs, _o, name=name: seen[f"{name}.weight"].append(
                inputs[0].reshape(-1, inputs[0].shape[-1])
            )
        )
        for name in ("fc1", "fc2")
    ]
    with torch.no_grad():
        for batch in batches:
            model(*batch)
    for handle in handles:
        handle.remove()
    return {key: torch.cat(xs) for key, xs in seen.items()}


def test_activation_norms_and_wanda_match_hooks() -> None:
    torch.manual_seed(0)
    model = _Mlp()
    batches = [(torch.randn(2, 3, 5), 1.0), (torch.randn(4, 5), 0.5)]  # token dims are flattened
    inputs = _hooked_inputs(model, batches)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    before = {k: v.clone() for k, v in params.items()}
    norms = fp.activation_norms(model, params, batches)
    assert set(norms) == {"fc1.weight", "fc2.weight"}
    assert not model.fc1._forward_hooks and not model._forward_pre_hooks
    for key, x in inputs.items():
        torch.testing.assert_close(norms[key], x.norm(dim=0))
        reference = params[key].abs() * torch.sqrt((x**2).sum(0))  # Wanda: |W_ij| * ||X_j||_2
        torch.testing.assert_close(fp.wanda(params, norms)[key], reference)
        assert torch.equal(params[key], before[key])


def test_activation_norms_on_masked_params_and_tensor_batches() -> None:
    model = nn.Linear(3, 2)
    params = fp.apply_masks(
        dict(model.named_parameters()), {"weight": torch.ones(2, 3, dtype=torch.bool)}
    )
    x = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]])
    norms = fp.activation_norms(model, params, [x])
    torch.testing.assert_close(norms["weight"], torch.tensor([1.0, 2.0, 3.0]))
    assert norms["weight"].requires_grad is False
    out = functional_call(model, params, (x,))
    assert out.shape == (2, 2)


def test_wanda_with_nm_keeps_per_group() -> None:
    params = {"w": torch.tensor([[1.0, 1.0, 1.0, 1.0]])}
    scores = fp.wanda(params, {"w": torch.tensor([4.0, 1.0, 3.0, 2.0])})
    assert fp.nm_semistructured(2, 4)(params, importance_scores=scores)["w"].tolist() == [
        [True, False, True, False]
    ]


def test_errors() -> None:
    params = {"w": torch.ones(2, 3), "b": torch.ones(2)}
    with pytest.raises(ValueError, match=r"'w': weight \(2, 3\), norms \(2,\)"):
        fp.wanda(params, {"w": torch.ones(2)})
    with pytest.raises(ValueError, match=r"'b': weight \(2,\)"):
        fp.wanda(params, {"b": torch.ones(2)})
    with pytest.raises(KeyError, match="not parameters"):
        fp.wanda(params, {"x": torch.ones(3)})
    with pytest.raises(TypeError, match=r"norms must be a mapping .* got list"):
        fp.wanda(params, [torch.ones(3)])  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"norms values must be tensors; not tensors at keys \['w'\]"
    ):
        fp.wanda(params, {"w": [1.0, 2.0, 3.0]})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match=r"scores must be a mapping .* got list"):
        fp.ranks([torch.ones(2)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mismatched"):
        fp.taylor(params, {"w": torch.ones(3, 2)})
    with pytest.raises(KeyError, match="not parameters"):
        fp.movement(params, {"v": torch.ones(2)})
    with pytest.raises(TypeError, match="'i': ranks needs a floating score"):
        fp.ranks({"i": torch.ones(2, dtype=torch.int64)})
    with pytest.raises(ValueError, match="no parameter among"):
        fp.activation_norms(nn.ReLU(), {}, [torch.ones(2)])


def test_ranks_put_every_nan_one_past_the_largest_value() -> None:
    nan = float("nan")
    ranked = fp.ranks({"a": torch.tensor([nan, 1.0, nan]), "b": torch.tensor([-2.0, nan])})
    assert ranked["a"].tolist() == [2.0, 1.0, 2.0] and ranked["b"].tolist() == [0.0, 2.0]


def _conv_input_norms(x: torch.Tensor) -> torch.Tensor:
    """Per-channel L2 norm of an (N, C, *spatial) conv input, over batch and positions."""
    return x.transpose(0, 1).reshape(x.shape[1], -1).norm(dim=1)


def test_activation_norms_cover_convolutions_hf_conv1d_and_transposed_convs() -> None:
    pytorch_utils = pytest.importorskip("transformers.pytorch_utils")
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(4, 6, 3, padding=1),
        nn.Conv2d(6, 4, 1, groups=2),
        nn.ConvTranspose2d(4, 2, 2),
        nn.Flatten(2),
        pytorch_utils.Conv1D(3, 25),  # (in=25, out=3): GPT-2's orientation, runs torch.addmm
    )
    x = torch.randn(2, 4, 4, 4)
    inputs: dict[str, torch.Tensor] = {}
    handles = [
        layer.register_forward_hook(
            lambda _m, i, _o, name=name: inputs.__setitem__(f"{name}.weight", i[0].detach())
        )
        for name, layer in model.named_children()
        if name != "3"
    ]
    model(x)
    for handle in handles:
        handle.remove()
    params = {k: v.detach() for k, v in model.named_parameters()}
    norms = fp.activation_norms(model, params, [x])
    assert sorted(norms) == ["0.weight", "1.weight", "2.weight", "4.weight"]
    torch.testing.assert_close(
        norms["0.weight"], _conv_input_norms(inputs["0.weight"]).reshape(1, 4, 1, 1)
    )
    grouped = _conv_input_norms(inputs["1.weight"]).reshape(2, 1, 3).expand(2, 2, 3)
    torch.testing.assert_close(norms["1.weight"], grouped.reshape(4, 3, 1, 1))
    torch.testing.assert_close(
        norms["2.weight"], _conv_input_norms(inputs["2.weight"]).reshape(4, 1, 1, 1)
    )
    torch.testing.assert_close(
        norms["4.weight"], inputs["4.weight"].reshape(-1, 25).norm(dim=0).reshape(25, 1)
    )
    scores = fp.wanda(params, norms)
    for key, n in norms.items():  # |W| times the norm of the input feature each entry reads
        torch.testing.assert_close(scores[key], params[key].abs() * n)
    w1, n1 = params["1.weight"], grouped.reshape(4, 3)
    assert torch.equal(scores["1.weight"][3, 2, 0, 0], w1[3, 2, 0, 0].abs() * n1[3, 2])


class _Einsum(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Parameter(torch.randn(3, 2))
        self.fc = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.einsum("bi,io->bo", x, self.proj))


def test_activation_norms_name_weights_used_by_functions_they_do_not_cover() -> None:
    model = _Einsum()
    params = dict(model.named_parameters())
    with pytest.raises(ValueError, match=r"'proj' \(in einsum\)"):
        fp.activation_norms(model, params, [torch.randn(4, 3)])
    without = {k: v for k, v in params.items() if k != "proj"}
    assert sorted(fp.activation_norms(model, without, [torch.randn(4, 3)])) == ["fc.weight"]
    attention = nn.MultiheadAttention(4, 2)
    x = torch.randn(3, 1, 4)
    with pytest.raises(ValueError, match="in_proj_weight"):
        fp.activation_norms(attention, dict(attention.named_parameters()), [(x, x, x)])


def test_wanda_accepts_norms_that_broadcast_against_the_weight() -> None:
    params = {"conv": torch.ones(2, 3, 1, 1), "hf": torch.ones(3, 2)}
    scores = fp.wanda(
        params, {"conv": torch.tensor([1.0, 2, 3]).reshape(1, 3, 1, 1), "hf": torch.ones(3, 1)}
    )
    assert scores["conv"][1, :, 0, 0].tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match=r"'conv': weight \(2, 3, 1, 1\), norms \(3,\)"):
        fp.wanda(params, {"conv": torch.ones(3)})
