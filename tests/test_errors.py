"""Bad input gets a clear ValueError/TypeError naming every offending key; nothing is ever mutated."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import funcprune as fp
from funcprune.types import Masks, Params, Scores

FACTORIES = [
    fp.l1_unstructured,
    fp.random_unstructured,
    lambda a: fp.ln_structured(a, n=2, dim=0),
    lambda a: fp.random_structured(a, dim=0),
    fp.global_unstructured,
]


@pytest.mark.parametrize("factory", FACTORIES)
@pytest.mark.parametrize(
    ("amount", "error", "pattern"),
    [
        (1.5, ValueError, r"amount=1.5 is not a fraction in \[0, 1\]"),
        (-0.1, ValueError, r"not a fraction"),
        (math.nan, ValueError, r"amount=nan"),
        (math.inf, ValueError, r"amount=inf"),
        (-1, ValueError, r"amount=-1 is a negative count"),
        (True, TypeError, r"amount=True is a bool"),
        ("0.5", TypeError, r"amount='0.5' has type str"),
        (None, TypeError, r"has type NoneType"),
        (torch.tensor([0.5]), TypeError, r"tensor of shape \(1,\)"),
        (torch.tensor(1), TypeError, r"dtype torch.int64"),
        (torch.tensor(1.5), ValueError, r"not a fraction"),
    ],
)
def test_bad_amounts(factory: object, amount: object, error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        factory(amount)  # type: ignore[operator]


def test_count_larger_than_remaining_names_the_key() -> None:
    params = {"layer.weight": torch.randn(2, 3)}
    with pytest.raises(ValueError, match=r"'layer.weight': amount=7 .* only 6 remain"):
        fp.l1_unstructured(7)(params)
    with pytest.raises(ValueError, match=r"only 2 remain"):
        fp.l1_unstructured(3)(params, fp.l1_unstructured(4)(params))
    with pytest.raises(
        ValueError,
        match=r"'layer.weight': amount=3 asks to prune 3 slices along dim 0 but only 2 remain",
    ):
        fp.ln_structured(3, n=1, dim=0)(params)
    with pytest.raises(ValueError, match=r"'<all parameters>': amount=9"):
        fp.global_unstructured(9)(params)


@pytest.mark.parametrize(
    "factory", [lambda: fp.ln_structured(0.5, n=2, dim=0), lambda: fp.random_structured(0.5, dim=0)]
)
def test_structured_needs_two_dims_and_a_valid_dim(factory: object) -> None:
    with pytest.raises(
        ValueError, match=r"'bias': .* tensors with >= 2 dims; got shape \(3,\).*funcprune.only"
    ):
        factory()({"bias": torch.randn(3)})  # type: ignore[operator]
    for dim in (2, -3):
        method = fp.ln_structured(0.5, n=2, dim=dim)
        with pytest.raises(
            ValueError,
            match=rf"'w': dim={dim} is out of range for shape \(2, 3\); allowed dims are -2 to 1",
        ):
            method({"w": torch.randn(2, 3)})


def test_bad_norms_and_hyperparameters() -> None:
    for n in ("l2", None, True, math.nan):
        with pytest.raises(ValueError, match=r"is not a norm order"):
            fp.ln_structured(0.5, n=n, dim=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"'w': n='nuc' needs exactly two dims besides dim=0"):
        fp.ln_structured(0.5, n="nuc", dim=0)({"w": torch.randn(2, 3)})
    with pytest.raises(ValueError, match=r"n='fro' needs at most two dims"):
        fp.ln_structured(0.5, n="fro", dim=0)({"w": torch.randn(2, 3, 2, 2)})
    with pytest.raises(TypeError, match=r"dim=0.5 must be an int"):
        fp.ln_structured(0.5, n=2, dim=0.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"seed='x' must be an int"):
        fp.random_unstructured(0.5, seed="x")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"scores='l2' is not supported; allowed: 'l1' or 'random'"
    ):
        fp.global_unstructured(0.5, scores="l2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"chain takes pruning methods"):
        fp.chain(0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"include='\(' is not a valid regular expression"):
        fp.only(fp.identity(), include="(")
    with pytest.raises(TypeError, match=r"exclude must be a regular expression"):
        fp.only(fp.identity(), exclude=3)  # type: ignore[arg-type]


def test_chain_checks_what_every_plain_callable_stage_returns() -> None:
    """Before or after a method, last or not: a stage's bad masks are an error naming the stage,
    never masks handed on (float masks would otherwise come back from the chain as they are)."""
    params = {"w": torch.arange(1.0, 5.0)}

    def floats(p: Params, m: Masks, importance_scores: Scores | None = None) -> Masks:
        return {"w": torch.ones(4)}

    def stray(p: Params, m: Masks, importance_scores: Scores | None = None) -> Masks:
        return {"x": torch.ones(4, dtype=torch.bool)}

    for method, stage in (
        (fp.chain(floats, fp.identity()), 0),
        (fp.chain(fp.identity(), floats), 1),
    ):
        with pytest.raises(
            TypeError, match=rf"chain: stage {stage} \(<function .*floats.*must be bool"
        ):
            method(params)
    with pytest.raises(KeyError, match=r"chain: stage 1 .*keys that are not parameters: \['x'\]"):
        fp.chain(fp.l1_unstructured(1), stray)(params)
    kept = fp.chain(fp.l1_unstructured(1), lambda p, m, importance_scores=None: m)(params)
    assert kept["w"].tolist() == [False, True, True, True]


def test_only_checks_what_a_plain_callable_returns() -> None:
    """Bad masks are an error naming ``only``; a key the callable leaves out is all kept, as a
    chain's last stage leaving it out (not a bare KeyError)."""
    params = {"w": torch.arange(1.0, 5.0), "b": torch.ones(2)}

    def floats(p: Params, m: Masks, importance_scores: Scores | None = None) -> Masks:
        return {"w": torch.ones(4)}

    def nothing(p: Params, m: Masks, importance_scores: Scores | None = None) -> Masks:
        return {}

    with pytest.raises(TypeError, match=r"only: method <function .*floats.*must be bool"):
        fp.only(floats, include="w")(params)
    given = {"w": torch.tensor([True, False, True, True])}
    for method in (fp.only(nothing, include="w"), fp.chain(nothing)):
        assert all(m.all() for m in method(params, given).values())


def test_dict_errors_list_every_offending_key() -> None:
    params = {"a": torch.randn(2, 2), "b": torch.randn(3)}
    method = fp.l1_unstructured(0.5)
    with pytest.raises(
        ValueError, match=re.escape("masks has keys that are not parameters: ['x', 'y']")
    ):
        method(params, {"x": torch.ones(1, dtype=torch.bool), "y": torch.ones(1, dtype=torch.bool)})
    with pytest.raises(
        ValueError, match=r"'a': \(4,\) vs parameter \(2, 2\); 'b': \(2,\) vs parameter \(3,\)"
    ):
        method(params, importance_scores={"a": torch.randn(4), "b": torch.randn(2)})
    with pytest.raises(
        ValueError, match=r"importance_scores has keys that are not parameters: \['c'\]"
    ):
        method(params, importance_scores={"c": torch.randn(1)})
    with pytest.raises(
        TypeError, match=r"masks must be bool tensors .* 'a' \(torch.float32\).*mask != 0"
    ):
        method(params, {"a": torch.ones(2, 2)})
    with pytest.raises(TypeError, match=r"params must be a mapping"):
        method([torch.ones(2)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"'b' \(list\)"):
        method({"a": torch.ones(2), "b": [1.0]})  # type: ignore[dict-item]
    with pytest.raises(
        ValueError, match=r"custom_from_mask's masks has keys that are not parameters: \['z'\]"
    ):
        fp.custom_from_mask({"z": torch.ones(2)})(params)
    with pytest.raises(ValueError, match=r"masks has keys that are not parameters: \['q'\]"):
        fp.apply_masks(params, {"q": torch.ones(1, dtype=torch.bool)})


@pytest.mark.parametrize(
    "factory",
    [fp.l1_unstructured, lambda a: fp.ln_structured(a, n=2, dim=0), fp.global_unstructured],
)
def test_integer_parameters_are_rejected_by_norm_based_methods(factory: object) -> None:
    params = {"w": torch.ones(2, 3, dtype=torch.int64)}
    with pytest.raises(TypeError, match=r"'w': .* needs a floating parameter, got torch.int64"):
        factory(0.5)(params)  # type: ignore[operator]
    scored = factory(0.5)(params, importance_scores={"w": torch.rand(2, 3)})  # type: ignore[operator]
    assert scored["w"].sum() == 3
    assert fp.random_unstructured(0.5)(params)["w"].sum() == 3


_ALL = [
    fp.identity(),
    fp.l1_unstructured(0.5),
    fp.random_unstructured(0.5, seed=3),
    fp.only(fp.ln_structured(0.5, n=1, dim=0), include="w"),
    fp.only(fp.random_structured(0.4, dim=1), include="w"),
    fp.global_unstructured(0.6),
    fp.global_unstructured(0.6, scores="random"),
    fp.custom_from_mask({"w": torch.tensor([[1, 0, 1], [0, 1, 1]])}),
    fp.chain(fp.l1_unstructured(0.3), fp.global_unstructured(1)),
]


class _WB(torch.nn.Module):
    """A module whose tensors are "w" and "b" (masked_call refuses keys a module does not have)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(2, 3))
        self.b = torch.nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.w.sum() + self.b.sum()


@pytest.mark.parametrize("method", _ALL, ids=repr)
@given(seed=st.integers(0, 10_000))
def test_no_input_is_mutated(method: fp.PruningMethod, seed: int) -> None:
    torch.manual_seed(seed)
    params = {"w": torch.randn(2, 3), "b": torch.randn(3)}
    masks = {"w": torch.rand(2, 3) > 0.2}
    scores = {"b": torch.randn(3)}
    snapshot = [t.clone() for t in (*params.values(), *masks.values(), *scores.values())]
    versions = [t._version for t in (*params.values(), *masks.values(), *scores.values())]
    dicts = (dict(params), dict(masks), dict(scores))
    result = method(params, masks, importance_scores=scores)
    fp.masked_call(_WB(), params, result, torch.ones(1))
    fp.apply_masks(params, result)
    after = [*params.values(), *masks.values(), *scores.values()]
    assert all(torch.equal(a, b) for a, b in zip(snapshot, after, strict=True))
    assert [t._version for t in after] == versions
    assert (params, masks, scores) == dicts
    assert all(r is not p for r in result.values() for p in params.values())


def test_a_key_that_does_not_match_the_params_is_a_value_error() -> None:
    """The convention of docs/semantics.md: a ValueError (also a KeyError, as before) listing all."""
    params = {"a": torch.randn(2, 2), "b": torch.randn(3)}
    bool_one = torch.ones(1, dtype=torch.bool)
    cases: list[Callable[[], object]] = [
        lambda: fp.l1_unstructured(0.5)(params, {"x": bool_one, "y": bool_one}),
        lambda: fp.l1_unstructured(0.5)(params, importance_scores={"x": bool_one, "y": bool_one}),
        lambda: fp.per_key(fp.l1_unstructured, {"x": 1, "y": 1, "a": 1})(params),
        lambda: fp.sgd(0.1).step(params, {"a": torch.ones(2, 2)}, fp.sgd(0.1).init(params)),
    ]
    for case in cases:
        with pytest.raises(ValueError) as info:
            case()
        assert isinstance(info.value, KeyError)
        assert re.search(r"\['(x|b)'(, 'y')?\]", str(info.value)), str(info.value)
        assert not str(info.value).startswith('"')  # not KeyError's quoted message


def test_per_key_errors_name_every_offending_key_in_one_message() -> None:
    params = {"a": torch.ones(3), "b": torch.ones(2), "c": torch.ones(20), "d": torch.ones(4)}
    with pytest.raises(ValueError) as info:
        fp.l1_unstructured(10)(params)
    message = str(info.value)
    assert message.startswith("l1_unstructured(10) failed for 3 parameters:")
    for key, left in (("a", 3), ("b", 2), ("d", 4)):
        assert f"'{key}': amount=10 asks to prune 10 entries but only {left} remain" in message
    assert "'c'" not in message
    with pytest.raises(ValueError, match=r"ln_structured.* failed for 4 parameters") as info:
        fp.ln_structured(0.5, n=2, dim=0)(params)  # every one is 1-d
    assert all(f"'{key}': ln_structured prunes slices" in str(info.value) for key in params)


def test_per_key_errors_keep_the_first_error_type() -> None:
    params = {
        "i": torch.ones(4, dtype=torch.int64),
        "w": torch.ones(2),
        "j": torch.ones(1, dtype=torch.int32),
    }
    with pytest.raises(TypeError) as info:
        fp.l1_unstructured(3)(params)
    message = str(info.value)
    assert "failed for 3 parameters" in message
    assert all(f"'{key}'" in message for key in params)
    with pytest.raises(
        ValueError, match=r"^'w': amount=3 asks to prune 3 entries but only 2 remain"
    ):
        fp.l1_unstructured(3)({"w": torch.ones(2)})  # one error: raised as it is


def test_only_that_selects_nothing_is_an_error_unless_allowed() -> None:
    lstm = {"weight_ih_l0": torch.randn(8, 2), "weight_hh_l0": torch.randn(8, 2)}
    method = fp.only(fp.l1_unstructured(0.5), include=r"weight$")
    with pytest.raises(ValueError) as info:
        method(lstm)
    message = str(info.value)
    assert "include='weight$'" in message and "['weight_hh_l0', 'weight_ih_l0']" in message
    assert "allow_empty=True" in message
    with pytest.raises(ValueError, match=r"exclude='_l0'"):
        fp.only(fp.l1_unstructured(0.5), exclude="_l0")(lstm)
    given = {"weight_ih_l0": torch.rand(8, 2) > 0.5}
    allowed = fp.only(fp.l1_unstructured(0.5), include=r"weight$", allow_empty=True)
    out = allowed(lstm, given)
    assert torch.equal(out["weight_ih_l0"], given["weight_ih_l0"])
    assert bool(out["weight_hh_l0"].all())
    assert allowed({}) == {} and method({}) == {}  # no keys at all: nothing to select
    with pytest.raises(TypeError, match="allow_empty must be a bool"):
        fp.only(fp.identity(), include="w", allow_empty=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("amount", [1.5, -0.5, math.nan, -1])
def test_compat_errors_suggest_only_what_compat_takes(amount: float) -> None:
    """compat refuses tensor amounts, so its messages must not offer them."""
    import funcprune.compat as prune

    with pytest.raises(ValueError, match=r"a float in \[0, 1\] or a non-negative int$") as info:
        prune.l1_unstructured(torch.nn.Linear(2, 2), "weight", amount)
    assert "tensor" not in str(info.value)
    with pytest.raises(TypeError, match="Must be int or float"):
        prune.l1_unstructured(torch.nn.Linear(2, 2), "weight", torch.tensor(0.5))  # type: ignore[arg-type]
