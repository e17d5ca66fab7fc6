"""Regressions from adversarial use (issue 10): snapshots, amount rules per mode, Parameters,
random methods under inductor, sparse and meta tensors, huge norm orders, empty slices."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.func import vmap

import funcprune as fp

Masks = dict[str, torch.Tensor]


def _same(a: Masks, b: Masks) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- factories snapshot their inputs ---------------------------------------------------------


def test_a_tensor_amount_is_snapshot_when_the_method_is_built() -> None:
    params = {"w": torch.randn(10)}
    amount = torch.tensor(0.3)
    method = fp.l1_unstructured(amount)
    before, shown = method(params), repr(method)
    amount.fill_(0.9)
    assert _same(method(params), before) and repr(method) == shown == "l1_unstructured(tensor(0.3))"
    assert int((~before["w"]).sum()) == 3


def test_custom_from_mask_copies_the_callers_masks() -> None:
    params = {"w": torch.zeros(4), "b": torch.zeros(2)}
    given = {"w": torch.tensor([True, False, True, True]), "b": torch.tensor([1.0, 0.0])}
    method = fp.custom_from_mask(given)
    before = method(params)
    given["w"].fill_(False)
    given["b"].fill_(1.0)
    after = method(params)
    assert _same(after, before)
    assert after["w"].tolist() == [True, False, True, True] and after["b"].tolist() == [True, False]


# -- amounts: numbers that are not floats, and one rule per mode -------------------------------


def test_numpy_and_fraction_amounts_are_converted_to_float() -> None:
    np = pytest.importorskip("numpy")
    from fractions import Fraction

    params = {"w": torch.arange(1.0, 46.0)}  # 45 entries: 0.7 of them is 31.5 in exact arithmetic
    pruned = {
        name: int((~fp.l1_unstructured(amount)(params)["w"]).sum())
        for name, amount in {
            "float": 0.7,
            "np.float32": np.float32(0.7),
            "Fraction": Fraction(7, 10),
            "np.int64": np.int64(5),
        }.items()
    }
    # float(np.float32(0.7)) is 0.699999988...: round(31.4999995) == 31, documented
    assert pruned == {"float": 31, "np.float32": 31, "Fraction": 31, "np.int64": 5}
    assert repr(fp.l1_unstructured(np.float32(0.5))) == "l1_unstructured(0.5)"


BAD_FRACTIONS = [-0.5, -math.inf, math.nan, 1.5, math.inf]
CLAMPED = [0.0, 0.0, 0.0, 1.0, 1.0]  # NaN and below 0 prune nothing, above 1 everything

FACTORIES: dict[str, Callable[[torch.Tensor], fp.PruningMethod]] = {
    "l1": fp.l1_unstructured,
    "random": lambda a: fp.random_unstructured(a, seed=1),
    "ln": lambda a: fp.only(fp.ln_structured(a, n=2, dim=0), include="w"),
    "global": fp.global_unstructured,
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_bad_fractions_raise_eagerly_and_clamp_under_vmap(name: str) -> None:
    factory = FACTORIES[name]
    params = {"w": torch.randn(5, 4), "b": torch.randn(4)}
    for bad in BAD_FRACTIONS:
        with pytest.raises(ValueError, match="not a fraction in"):
            factory(torch.tensor(bad))
    swept = vmap(lambda a: factory(a)(params))(torch.tensor(BAD_FRACTIONS))
    for index, clamped in enumerate(CLAMPED):
        expected = factory(torch.tensor(clamped))(params)
        assert all(torch.equal(swept[k][index], expected[k]) for k in params), (name, index)


def test_bad_fractions_clamp_under_compile_as_under_vmap() -> None:
    params = {"w": torch.randn(6, 5)}
    method = lambda a: fp.chain(  # noqa: E731
        fp.l1_unstructured(a), fp.global_unstructured(a, scores="random")
    )(params)
    compiled = torch.compile(method, fullgraph=True, backend="aot_eager")
    for bad, clamped in zip(BAD_FRACTIONS, CLAMPED, strict=True):
        assert _same(compiled(torch.tensor(bad)), method(torch.tensor(clamped))), bad


def test_a_count_above_the_size_raises_in_every_mode_without_masks() -> None:
    params = {"w": torch.randn(3, 2)}
    for method in (
        fp.l1_unstructured(7),
        fp.global_unstructured(7),
        fp.ln_structured(4, n=1, dim=0),
    ):
        with pytest.raises(ValueError, match=r"only (6|3) remain"):
            method(params)
        with pytest.raises(ValueError, match=r"only (6|3) remain"):
            vmap(lambda p, m=method: m({"w": p}))(torch.randn(2, 3, 2))
        with pytest.raises(ValueError, match=r"only (6|3) remain"):
            torch.compile(lambda p, m=method: m({"w": p}), backend="aot_eager")(params["w"])


def test_a_count_above_batched_survivors_is_clamped_under_vmap() -> None:
    params = {"w": torch.arange(1.0, 7.0)}
    survivors = torch.tensor([[True] * 6, [True, True, False, False, False, False]])
    swept = vmap(lambda m: fp.l1_unstructured(3)(params, {"w": m}))(survivors)["w"]
    assert swept.tolist() == [[False] * 3 + [True] * 3, [False] * 6]
    with pytest.raises(ValueError, match="only 2 remain"):
        fp.l1_unstructured(3)(params, {"w": survivors[1]})


def test_fraction_of_remaining_checks_readable_tensors_like_floats() -> None:
    for bad in (math.nan, 1.5, -0.1):
        with pytest.raises(ValueError, match="must be a sparsity"):
            fp.fraction_of_remaining(torch.tensor(bad), 0.5)
        with pytest.raises(ValueError, match="must be a sparsity"):
            fp.fraction_of_remaining(0.5, torch.tensor(bad))
    params = {"w": torch.randn(8)}
    swept = vmap(lambda t: fp.l1_unstructured(fp.fraction_of_remaining(t, 0.5))(params))(
        torch.tensor([math.nan, 0.75])
    )["w"]
    assert swept.sum(1).tolist() == [8, 4]  # unreadable NaN prunes nothing; 0.5 of 8 remaining


# -- Parameters (requires_grad) work directly ------------------------------------------------


def _big_parameters() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(272, 256), nn.Linear(256, 8))  # > 65,536 weights
    return dict(model.named_parameters())


@pytest.mark.parametrize(
    "method",
    [
        fp.l1_unstructured(0.5),
        fp.global_unstructured(0.5),
        fp.only(fp.ln_structured(0.5, n=2, dim=0), include="weight"),
        fp.only(fp.nm_semistructured(2, 4), include="weight"),
        fp.l1_unstructured(torch.tensor(0.5, requires_grad=True)),
    ],
    ids=repr,
)
def test_parameters_give_the_masks_of_their_detached_values(method: fp.PruningMethod) -> None:
    params = _big_parameters()
    detached = {k: v.detach() for k, v in params.items()}
    masks = method(params)
    assert _same(masks, method(detached))
    assert not any(m.requires_grad for m in masks.values())
    scores = {"0.weight": params["0.weight"] * 2}
    assert _same(
        method(params, masks, importance_scores=scores),
        method(detached, masks, importance_scores={"0.weight": detached["0.weight"] * 2}),
    )


def test_taylor_scores_of_parameters_rank_like_detached_ones() -> None:
    params = _big_parameters()
    grads = {k: torch.randn_like(v) for k, v in params.items()}
    scores = fp.taylor(params, grads)
    assert not any(s.requires_grad for s in scores.values())
    method = fp.global_unstructured(0.3)
    detached = {k: v.detach() for k, v in params.items()}
    assert _same(
        method(params, importance_scores=scores),
        method(detached, importance_scores=fp.taylor(detached, grads)),
    )


# -- random methods under torch.compile's inductor, fullgraph ----------------------------------


def test_random_methods_compile_fullgraph_and_match_eager() -> None:
    params = {"w": torch.randn(8, 6), "b": torch.randn(6)}
    method = lambda a: fp.chain(  # noqa: E731
        fp.random_unstructured(a, seed=3),
        fp.only(fp.random_structured(0.5, dim=0, seed=4), include="w"),
        fp.global_unstructured(0.25, scores="random", seed=5),
    )(params)
    compiled = torch.compile(method, fullgraph=True, backend="aot_eager")
    for amount in (0.0, 0.3, 0.7):
        assert _same(compiled(torch.tensor(amount)), method(torch.tensor(amount))), amount


def test_random_keys_compile_with_inductor_and_match_eager() -> None:
    params = {"w": torch.randn(8, 6), "b": torch.randn(6)}
    method = lambda a: fp.random_unstructured(a, seed=3)(params)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # raised inside torch's inductor
        compiled = torch.compile(method, fullgraph=True, backend="inductor")
        for amount in (0.3, 0.7):
            assert _same(compiled(torch.tensor(amount)), method(torch.tensor(amount))), amount


# -- sparse and meta tensors: a TypeError naming the key ---------------------------------------


def _sparse_csr(t: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return t.to_sparse_csr()


@pytest.mark.parametrize(
    "method",
    [fp.identity(), fp.l1_unstructured(0.4), fp.ln_structured(0.5, n=2, dim=0)],
    ids=repr,
)
def test_sparse_and_misplaced_tensors_are_type_errors_naming_the_key(
    method: fp.PruningMethod,
) -> None:
    w, ok = torch.randn(4, 6), torch.ones(4, 6, dtype=torch.bool)
    meta = torch.empty(4, 6, device="meta")
    cases: list[tuple[dict[str, torch.Tensor], Masks, Masks, str]] = [
        ({"w": w.to_sparse()}, {}, {}, r"params\['w'\] with layout torch.sparse_coo"),
        ({"w": _sparse_csr(w)}, {}, {}, r"params\['w'\] with layout torch.sparse_csr"),
        ({"w": w}, {"w": ok.to_sparse()}, {}, r"masks\['w'\] with layout"),
        ({"w": w}, {}, {"w": w.to_sparse()}, r"importance_scores\['w'\] with layout"),
        ({"w": w}, {"w": ok.to("meta")}, {}, r"masks\['w'\] on meta for a parameter on cpu"),
        ({"w": meta}, {"w": ok}, {}, r"masks\['w'\] on cpu for a parameter on meta"),
        ({"w": w}, {}, {"w": meta}, r"importance_scores\['w'\] on meta"),
    ]
    for params, masks, scores, message in cases:
        with pytest.raises(TypeError, match=message):
            method(params, masks, importance_scores=scores)


def test_meta_amounts_need_meta_parameters() -> None:
    amount = torch.tensor(0.5, device="meta")
    with pytest.raises(TypeError, match="'w': amount is a meta tensor"):
        fp.l1_unstructured(amount)({"w": torch.randn(4)})
    with pytest.raises(TypeError, match="'<all parameters>': amount is a meta tensor"):
        fp.global_unstructured(amount)({"w": torch.randn(4)})
    masks = fp.l1_unstructured(amount)({"w": torch.empty(4, device="meta")})
    assert masks["w"].device.type == "meta" and masks["w"].shape == (4,)
    with pytest.raises(TypeError, match=r"layout torch\.sparse_coo"):
        fp.l1_unstructured(torch.tensor(0.5).to_sparse())


# -- smaller items ----------------------------------------------------------------------------


def test_a_norm_order_beyond_the_float_range_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="within the float range"):
        fp.ln_structured(0.5, n=10**400, dim=0)
    method = fp.ln_structured(1, n=10**30, dim=0)  # in range: a float order, as torch.norm takes
    assert method.n == 1e30 and isinstance(method.n, float)
    assert fp.ln_structured(1, n=2**63 - 1, dim=0).n == 2**63 - 1


@given(
    rows=st.integers(0, 3),
    cols=st.integers(0, 4),
    dim=st.sampled_from([0, 1]),
    amount=st.one_of(st.integers(0, 4), st.floats(0, 1)),
)
def test_all_true_masks_equal_no_masks_on_empty_tensors(
    rows: int, cols: int, dim: int, amount: float
) -> None:
    params = {"w": torch.zeros(rows, cols)}
    everything = {"w": torch.ones(rows, cols, dtype=torch.bool)}
    for method in (
        *(fp.ln_structured(amount, n=n, dim=dim) for n in (2, 1, math.inf, -math.inf, "fro")),
        fp.random_structured(amount, dim=dim),
        fp.l1_unstructured(amount),
    ):
        outcomes: list[Masks | None] = []
        for masks in (None, everything):
            try:
                outcomes.append(method(params, masks))
            except ValueError:
                outcomes.append(None)
        plain, with_masks = outcomes
        assert (plain is None) == (with_masks is None), method
        if plain is not None and with_masks is not None:
            assert _same(plain, with_masks)
            assert _same(fp.chain(method)(params), plain)
