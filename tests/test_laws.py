"""Laws of methods and chain: neutral elements, associativity, shrinking, nesting, exact counts."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import count_of, tensors

import funcprune as fp


@st.composite
def param_dicts(draw: st.DrawFn) -> dict[str, torch.Tensor]:
    keys = draw(
        st.lists(st.sampled_from(["a", "b.weight", "c.bias"]), min_size=1, max_size=3, unique=True)
    )
    return {key: draw(tensors(min_dims=2, max_dims=3, min_side=1, max_side=4)) for key in keys}


def methods() -> st.SearchStrategy[fp.PruningMethod]:
    fraction = st.floats(0.0, 1.0)
    return st.one_of(
        st.builds(fp.l1_unstructured, fraction),
        st.builds(lambda a, s: fp.random_unstructured(a, seed=s), fraction, st.integers(0, 9)),
        st.builds(lambda a, d: fp.ln_structured(a, n=2, dim=d), fraction, st.integers(-2, 1)),
        st.builds(lambda a, d: fp.random_structured(a, dim=d), fraction, st.integers(-2, 1)),
        st.builds(fp.global_unstructured, fraction),
        st.builds(lambda a: fp.global_unstructured(a, scores="random"), fraction),
        st.just(fp.identity()),
    )


def _equal(x: fp.Masks, y: fp.Masks) -> bool:
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@given(params=param_dicts(), method=methods())
def test_identity_and_empty_chain_are_neutral(
    params: dict[str, torch.Tensor], method: fp.PruningMethod
) -> None:
    masks = method(params)
    for neutral in (fp.identity(), fp.chain()):
        assert _equal(fp.chain(neutral, method)(params), masks)
        assert _equal(fp.chain(method, neutral)(params), masks)
        assert _equal(neutral(params, masks), masks)


@given(params=param_dicts(), a=methods(), b=methods(), c=methods())
def test_chain_is_associative_and_sequential(
    params: dict[str, torch.Tensor], a: fp.PruningMethod, b: fp.PruningMethod, c: fp.PruningMethod
) -> None:
    left = fp.chain(fp.chain(a, b), c)
    right = fp.chain(a, fp.chain(b, c))
    assert left == right
    assert _equal(left(params), right(params))
    assert _equal(fp.chain(a, b)(params), b(params, a(params)))


@given(params=param_dicts(), a=methods(), b=methods())
def test_results_only_shrink(
    params: dict[str, torch.Tensor], a: fp.PruningMethod, b: fp.PruningMethod
) -> None:
    first = a(params)
    second = b(params, first)
    assert second.keys() == params.keys()
    for key in params:
        assert second[key].dtype == torch.bool and second[key].shape == params[key].shape
        assert not (second[key] & ~first[key]).any()


@given(params=param_dicts(), x=st.floats(0, 1), y=st.floats(0, 1), seed=st.integers(0, 9))
def test_masks_nest_across_amounts(
    params: dict[str, torch.Tensor], x: float, y: float, seed: int
) -> None:
    low, high = min(x, y), max(x, y)
    for factory in (
        fp.l1_unstructured,
        lambda a: fp.random_unstructured(a, seed=seed),
        lambda a: fp.ln_structured(a, n=1, dim=0),
        lambda a: fp.random_structured(a, dim=-1, seed=seed),
        fp.global_unstructured,
        lambda a: fp.global_unstructured(a, scores="random", seed=seed),
    ):
        light, heavy = factory(low)(params), factory(high)(params)
        for key in params:
            assert not (heavy[key] & ~light[key]).any()


@given(params=param_dicts(), method=methods(), seed=st.integers(0, 999))
def test_custom_from_mask_is_idempotent(
    params: dict[str, torch.Tensor], method: fp.PruningMethod, seed: int
) -> None:
    generator = torch.Generator().manual_seed(seed)
    given_masks = {k: torch.rand(p.shape, generator=generator) > 0.5 for k, p in params.items()}
    custom = fp.custom_from_mask(given_masks)
    once = custom(params, method(params))
    assert _equal(custom(params, once), once)
    for key in params:
        assert not (once[key] & ~given_masks[key]).any()


@given(w=tensors(min_side=0), a=st.floats(0, 1), b=st.one_of(st.floats(0, 1), st.integers(0, 3)))
def test_chained_l1_counts_are_exact(w: torch.Tensor, a: float, b: float | int) -> None:
    remaining = w.numel() - count_of(a, w.numel())
    if isinstance(b, int) and b > remaining:
        b = remaining
    masks = fp.chain(fp.l1_unstructured(a), fp.l1_unstructured(b))({"w": w})
    assert int(masks["w"].sum()) == remaining - count_of(b, remaining)


@given(params=param_dicts(), method=methods())
def test_only_leaves_other_keys_alone(
    params: dict[str, torch.Tensor], method: fp.PruningMethod
) -> None:
    restricted = fp.only(
        method, include=r"weight", exclude=lambda key: key.startswith("c"), allow_empty=True
    )
    chosen = {k: p for k, p in params.items() if "weight" in k and not k.startswith("c")}
    prior = fp.random_unstructured(0.3, seed=1)(params)
    masks = restricted(params, prior)
    inner = method(chosen, {k: prior[k] for k in chosen})
    for key in params:
        assert torch.equal(masks[key], inner[key] if key in chosen else prior[key])


def test_methods_are_comparable_values_with_readable_repr() -> None:
    assert fp.l1_unstructured(0.5) == fp.l1_unstructured(0.5) != fp.l1_unstructured(0.25)
    assert hash(fp.ln_structured(0.5, n=2, dim=0)) == hash(fp.ln_structured(0.5, n=2, dim=0))
    assert fp.random_unstructured(3, seed=1) != fp.random_unstructured(3, seed=2)
    assert repr(fp.ln_structured(0.25, n=2, dim=0)) == "ln_structured(0.25, n=2, dim=0)"
    assert repr(fp.global_unstructured(0.8)) == "global_unstructured(0.8, scores='l1', seed=0)"
    assert (
        repr(fp.chain(fp.identity(), fp.l1_unstructured(2)))
        == "chain(identity(), l1_unstructured(2))"
    )
    assert "include='weight'" in repr(fp.only(fp.identity(), include="weight"))
    assert fp.l1_unstructured(torch.tensor(0.5)) == fp.l1_unstructured(torch.tensor(0.5))
    assert repr(fp.l1_unstructured(torch.tensor(0.5))) == "l1_unstructured(tensor(0.5))"
    assert fp.custom_from_mask({"w": torch.ones(2)}) == fp.custom_from_mask(
        {"w": torch.ones(2, dtype=torch.bool)}
    )
    assert len({fp.identity(), fp.identity(), fp.chain()}) == 2


def test_methods_are_frozen() -> None:
    method = fp.l1_unstructured(0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        method.amount = 0.1  # type: ignore[misc]
    assert method == fp.l1_unstructured(0.5)


VALUES = [
    fp.identity(),
    fp.l1_unstructured(0.5),
    fp.l1_unstructured(3),
    fp.random_unstructured(0.25, seed=3),
    fp.global_unstructured(0.5, scores="random", seed=2),
    fp.ln_structured(0.5, n=2, dim=0),
    fp.random_structured(1, dim=1, seed=4),
    fp.nm_semistructured(2, 4, dim=1),
    fp.chain(fp.l1_unstructured(0.5), fp.identity()),
    fp.only(fp.l1_unstructured(0.5), include="weight", allow_empty=True),
    fp.sgd(0.1, momentum=0.9, nesterov=True),
    fp.adam(0.01, betas=(0.8, 0.9), decoupled_weight_decay=True),
    fp.constant(0.5),
    fp.one_shot(0.25, at=3),
    fp.polynomial(0.9, initial=0.1, start=2, end=10, frequency=2, power=2.0),
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_values_print_as_the_factory_call_that_builds_them(value: object) -> None:
    namespace = {name: getattr(fp, name) for name in fp.__all__}
    rebuilt = eval(repr(value), namespace)
    assert rebuilt == value and hash(rebuilt) == hash(value)
    assert rebuilt is not value


def test_values_of_different_kinds_or_fields_differ() -> None:
    assert fp.sgd(0.1) != fp.adam(0.1) and fp.constant(0.5) != fp.one_shot(0.5, at=0)
    assert fp.l1_unstructured(1) != fp.l1_unstructured(1.0)
    assert fp.l1_unstructured(torch.tensor(0.5)) != fp.l1_unstructured(
        torch.tensor(0.5, dtype=torch.float64)
    )
    assert fp.l1_unstructured(torch.tensor(0.5)) != fp.l1_unstructured(torch.tensor(0.25))
    assert fp.adam(0.1, betas=(0.9, 0.99)) != fp.adam(0.1)


def test_tensor_fields_compare_without_python_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    """Equality reads tensors with torch.equal; hashing reads only shape, dtype and device."""
    big = torch.rand(1000, 1000) > 0.5
    a, b = fp.custom_from_mask({"w": big}), fp.custom_from_mask({"w": big.clone()})
    flipped = big.clone()
    flipped[-1, -1] = ~flipped[-1, -1]
    c = fp.custom_from_mask({"w": flipped})

    def refuse(self: torch.Tensor) -> None:
        raise AssertionError("a tensor field was converted to a Python list")

    monkeypatch.setattr(torch.Tensor, "tolist", refuse)
    assert a == b and hash(a) == hash(b) and a != c
    assert fp.custom_from_mask({"w": big}) != fp.custom_from_mask({"w": big[:, :999]})


MASK_PASSING = {
    "identity": fp.identity(),
    "chain()": fp.chain(),
    "chain(identity)": fp.chain(fp.identity()),
    "only": fp.only(fp.l1_unstructured(0.5), include="nothing", allow_empty=True),
    "only, other keys": fp.only(fp.l1_unstructured(0.5), include="^w$"),
    "per_key": fp.per_key(fp.l1_unstructured, {"w": 0.5}),
    "custom_from_mask": fp.custom_from_mask({"w": torch.ones(4, 3)}),
    "l1 of nothing": fp.l1_unstructured(0),
}


@pytest.mark.parametrize("method", MASK_PASSING.values(), ids=MASK_PASSING.keys())
def test_results_never_share_memory_with_the_callers_masks(method: fp.PruningMethod) -> None:
    params = {"w": torch.randn(4, 3), "b": torch.randn(3)}
    masks = {"w": torch.rand(4, 3) > 0.3, "b": torch.tensor([True, False, True])}
    before = {k: m.clone() for k, m in masks.items()}
    result = method(params, masks)
    for keep in result.values():
        assert keep.untyped_storage().data_ptr() not in {
            m.untyped_storage().data_ptr() for m in masks.values()
        }
        keep.fill_(False)  # editing a result...
    assert all(torch.equal(masks[k], before[k]) for k in masks)  # ...leaves the caller's alone


@pytest.mark.parametrize("scores", ["l1", "random"])
def test_global_masks_own_their_memory(scores: str) -> None:
    params = {"a": torch.randn(3, 4), "b": torch.randn(5), "c": torch.randn(2, 2)}
    for masks in (None, {"a": torch.rand(3, 4) > 0.5}):
        result = fp.global_unstructured(0.5, scores=scores)(params, masks)  # type: ignore[arg-type]
        storages = [m.untyped_storage() for m in result.values()]
        assert len({s.data_ptr() for s in storages}) == len(result)
        assert [s.nbytes() for s in storages] == [m.numel() for m in result.values()]


class _Spy:
    """A pruning method (a plain callable) that records the masks it is given."""

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def __call__(
        self,
        params: fp.Params,
        masks: Mapping[str, torch.Tensor] | None = None,
        *,
        importance_scores: fp.Scores | None = None,
    ) -> fp.Masks:
        self.seen.append(sorted(masks or {}))
        return fp.identity()(params, masks)


def test_combinators_pass_no_all_kept_masks_between_steps() -> None:
    """Keys a step leaves whole reach the next step without a mask (its fast path stays live)."""
    params = {"w": torch.randn(4, 3), "b": torch.randn(3), "c": torch.randn(2)}
    spy = _Spy()
    fp.chain(fp.identity(), spy)(params)
    fp.chain(fp.only(fp.l1_unstructured(0.5), include="^w$"), spy)(params)
    fp.chain(fp.per_key(fp.l1_unstructured, {"b": 1}), spy)(params, {"c": torch.ones(2) > 0})
    fp.chain(fp.chain(), spy)(params, {"b": torch.ones(3) > 0})
    assert spy.seen == [[], ["w"], ["b", "c"], ["b"]]
    result = fp.chain(fp.only(fp.l1_unstructured(0.5), include="^w$"))(params)
    assert list(result) == ["w", "b", "c"] and bool(result["b"].all() and result["c"].all())
