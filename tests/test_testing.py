"""funcprune.testing: generated values are valid, built-in methods pass check_method, and the
strategies find bugs planted in toy methods."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable, Mapping

import pytest
import torch
from hypothesis import find, given, settings
from hypothesis import strategies as st

import funcprune as fp
import funcprune.testing as fpt
from funcprune.methods._amount import check_amount

params_and_masks = fpt.params().flatmap(lambda p: st.tuples(st.just(p), fpt.masks(p)))


@given(fpt.params())
def test_params_are_realistic(params: dict[str, torch.Tensor]) -> None:
    assert 1 <= len({key.split(".")[0] for key in params}) <= 3
    assert len({p.dtype for p in params.values()}) == 1
    for key, p in params.items():
        layer, name = key.split(".")
        assert layer.isdigit() and name in ("weight", "bias")
        assert p.dtype in fpt.DTYPES and 1 <= p.dim() <= 4
        assert all(1 <= side <= 6 for side in p.shape)
        assert bool(torch.isfinite(p).all())
        if name == "bias":
            assert p.shape == (params[f"{layer}.weight"].shape[0],)


@given(params_and_masks)
def test_masks_fit_their_params(
    case: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]],
) -> None:
    params, masks = case
    assert set(masks) <= set(params)
    for key, mask in masks.items():
        assert mask.dtype == torch.bool and mask.shape == params[key].shape
    fp.apply_masks(params, masks)  # the library accepts them


@given(params_and_masks, st.data())
def test_importance_scores_fit_their_params(
    case: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]], data: st.DataObject
) -> None:
    params, _ = case
    scores = data.draw(fpt.importance_scores(params))
    assert set(scores) <= set(params)
    for key, score in scores.items():
        assert score.is_floating_point() and score.shape == params[key].shape
    fp.l1_unstructured(0.5)(params, importance_scores=scores)


@given(fpt.amounts(max_count=7))
def test_amounts_are_valid(amount: fp.Amount) -> None:
    checked = check_amount(amount)
    if isinstance(amount, torch.Tensor):
        assert amount.dim() == 0 and amount.is_floating_point() and 0 <= float(amount) <= 1
    elif isinstance(amount, int):
        assert 0 <= checked <= 7  # type: ignore[operator]
    else:
        assert isinstance(amount, float) and 0 <= amount <= 1 and not math.isnan(amount)


@given(params_and_masks, st.data())
def test_built_in_methods_pass_the_contract(
    case: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]], data: st.DataObject
) -> None:
    params, masks = case
    method = data.draw(fpt.methods(params, masks))
    scores = data.draw(fpt.importance_scores(params))
    fpt.check_method(method, params, masks, importance_scores=scores)


@given(params_and_masks, st.data())
def test_chains_pass_the_contract(
    case: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]], data: st.DataObject
) -> None:
    params, masks = case
    method = data.draw(st.one_of(fpt.chains(params), fpt.chains()))
    assert isinstance(method, fp.methods.combinators.Chain)
    fpt.check_method(method, params, masks)


@given(params_and_masks, st.data())
def test_methods_without_params_fit_any_params(
    case: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]], data: st.DataObject
) -> None:
    params, masks = case
    fpt.check_method(data.draw(fpt.methods()), params, masks)


def _fails(
    method: fp.PruningMethod, rule: str = ""
) -> Callable[[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]], bool]:
    """Whether check_method rejects ``method`` on a case, for breaking ``rule`` (a message part)."""

    def check(case: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]) -> bool:
        try:
            fpt.check_method(method, *case)
        except AssertionError as error:
            return rule in str(error)
        return False

    return check


def _regrows(
    params: fp.Params,
    masks: Mapping[str, torch.Tensor] | None = None,
    *,
    importance_scores: fp.Scores | None = None,
) -> fp.Masks:
    """Planted bug: forgets the incoming masks (regrows pruned entries)."""
    return fp.l1_unstructured(0.5)(params, importance_scores=importance_scores)


def _mutates(
    params: fp.Params,
    masks: Mapping[str, torch.Tensor] | None = None,
    *,
    importance_scores: fp.Scores | None = None,
) -> fp.Masks:
    """Planted bug: prunes by writing into the incoming masks."""
    result = fp.l1_unstructured(0.5)(params, masks)
    for key, keep in result.items():
        if masks is not None and key in masks:
            masks[key].copy_(keep)  # type: ignore[union-attr]
    return result


def _drops_keys(
    params: fp.Params,
    masks: Mapping[str, torch.Tensor] | None = None,
    *,
    importance_scores: fp.Scores | None = None,
) -> fp.Masks:
    """Planted bug: returns masks only for weights."""
    result = fp.l1_unstructured(0.5)(params, masks)
    return {key: keep for key, keep in result.items() if key.endswith("weight")}


@pytest.mark.parametrize(
    ("buggy", "rule"),
    [
        (_regrows, "keeps entries the incoming masks pruned"),
        (_mutates, "mutated its input in place"),
        (_drops_keys, "with every parameter key"),
    ],
)
def test_strategies_find_planted_contract_bugs(buggy: fp.PruningMethod, rule: str) -> None:
    # find raises NoSuchExample unless the strategies draw a case where check_method rejects the
    # planted bug for the rule it breaks (not for some other reason)
    find(params_and_masks, _fails(buggy, rule))
    assert not _fails(fp.l1_unstructured(0.5))(find(params_and_masks, lambda _: True))


def _truncating_l1(amount: fp.Amount) -> fp.PruningMethod:
    """Planted bug: counts with int() (truncation) instead of round-half-to-even."""

    def method(
        params: fp.Params,
        masks: Mapping[str, torch.Tensor] | None = None,
        *,
        importance_scores: fp.Scores | None = None,
    ) -> fp.Masks:
        masks = masks or {}
        result = {}
        for key, p in params.items():
            alive = int(masks[key].sum()) if key in masks else p.numel()
            count = amount if isinstance(amount, int) else int(float(amount) * alive)
            result[key] = fp.l1_unstructured(count)(
                {key: p}, {key: masks[key]} if key in masks else {}
            )[key]
        return result

    return method


def _property(factory: object) -> object:
    """The user-side property of the module docstring: round(amount * remaining) pruned per key."""

    @settings(max_examples=100, derandomize=True, database=None)
    @given(data=st.data(), amount=fpt.amounts())
    def test(data: st.DataObject, amount: fp.Amount) -> None:
        params = data.draw(fpt.params())
        masks = data.draw(fpt.masks(params))
        result = fpt.check_method(factory(amount), params, masks)  # type: ignore[operator]
        for key, keep in result.items():
            alive = int(masks[key].sum()) if key in masks else keep.numel()
            assert alive - int(keep.sum()) == round(float(amount) * alive)

    return test


def test_property_finds_planted_rounding_bug() -> None:
    _property(fp.l1_unstructured)()  # type: ignore[operator]
    with pytest.raises(AssertionError):
        _property(_truncating_l1)()  # type: ignore[operator]


def test_import_funcprune_does_not_import_hypothesis() -> None:
    code = "import sys, funcprune; print('funcprune.testing' in sys.modules, 'hypothesis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_check_method_accepts_nan_inputs_and_still_sees_mutation() -> None:
    """NaN != NaN must not read as an in-place mutation; a real write to a NaN input must."""
    params = {"w": torch.tensor([float("nan"), 1.0, -2.0])}
    scores = {"w": torch.tensor([1.0, float("nan"), 0.5])}
    fpt.check_method(fp.l1_unstructured(1), params, importance_scores=scores)

    def writes(
        params: fp.Params,
        masks: Mapping[str, torch.Tensor] | None = None,
        *,
        importance_scores: fp.Scores | None = None,
    ) -> fp.Masks:
        params["w"][0] = 0.0  # type: ignore[index]
        return fp.identity()(params)

    with pytest.raises(AssertionError, match="'w': the method mutated its input"):
        fpt.check_method(writes, {"w": torch.tensor([float("nan"), 1.0])})
