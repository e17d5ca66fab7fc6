"""Schedules: endpoints, monotonicity, update frequency, Zhu & Gupta's formula, tensor steps."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.func import vmap

import funcprune as fp

fractions = st.floats(0.0, 1.0)


@st.composite
def polynomials(draw: st.DrawFn) -> fp.schedules.Polynomial:
    start = draw(st.integers(0, 50))
    return fp.polynomial(
        draw(fractions),
        initial=draw(fractions),
        start=start,
        end=start + draw(st.integers(1, 60)),
        frequency=draw(st.integers(1, 15)),
        power=draw(st.sampled_from([1.0, 2.0, 3.0, 0.5])),
    )


def zhu_gupta(s: fp.schedules.Polynomial, t: int) -> float:
    """The paper's formula on the update grid t0 + k * dt, held constant between updates."""
    if t <= s.start:
        return s.initial
    if t >= s.end:
        return s.final
    k = (t - s.start) // s.frequency
    return s.final + (s.initial - s.final) * (1 - k * s.frequency / (s.end - s.start)) ** s.power


@given(polynomials())
def test_polynomial_matches_formula_and_endpoints(s: fp.schedules.Polynomial) -> None:
    for t in range(0, s.end + 5):
        assert math.isclose(s(t), zhu_gupta(s, t), rel_tol=1e-12, abs_tol=1e-15)
    assert s(s.start) == s.initial
    assert s(max(s.start - 1, 0)) == s.initial
    assert s(s.end) == s.final == s(s.end + 1000)


@given(polynomials())
def test_polynomial_monotone(s: fp.schedules.Polynomial) -> None:
    values = [s(t) for t in range(s.end + 3)]
    sign = 1 if s.final >= s.initial else -1
    assert all(sign * (b - a) >= -1e-15 for a, b in itertools.pairwise(values))
    assert all(
        min(s.initial, s.final) - 1e-15 <= v <= max(s.initial, s.final) + 1e-15 for v in values
    )


@given(polynomials())
def test_polynomial_changes_only_on_update_steps(s: fp.schedules.Polynomial) -> None:
    for t in range(1, s.end + 3):
        if s(t) != s(t - 1):
            assert t == s.end or (t > s.start and (t - s.start) % s.frequency == 0)


@given(polynomials(), st.lists(st.integers(0, 200), min_size=1, max_size=8))
def test_tensor_steps_equal_int_steps(s: fp.schedules.Polynomial, steps: list[int]) -> None:
    values = s(torch.tensor(steps))
    assert values.dtype == torch.float64 and values.shape == (len(steps),)
    assert values.tolist() == [s(t) for t in steps]
    batched = vmap(s)(torch.tensor(steps))
    assert torch.equal(batched, values)


def test_cubic_default_known_value() -> None:
    s = fp.polynomial(0.8, start=0, end=100)
    assert s.power == 3.0 and s.frequency == 1
    assert math.isclose(s(50), 0.8 - 0.8 * 0.5**3)


def test_constant_and_one_shot() -> None:
    assert [fp.constant(0.3)(t) for t in (0, 7, 10**6)] == [0.3, 0.3, 0.3]
    assert fp.constant(0.3)(torch.tensor([1, 2])).tolist() == [0.3, 0.3]
    shot = fp.one_shot(0.75, at=5)
    assert [shot(t) for t in (0, 4, 5, 6)] == [0.0, 0.0, 0.75, 0.75]
    assert shot(torch.tensor([4.0, 5.0])).tolist() == [0.0, 0.75]


def test_schedule_drives_a_vmapped_sweep() -> None:
    params = {"w": torch.arange(1.0, 11.0)}
    s = fp.polynomial(0.9, start=0, end=10, frequency=2)
    masks = vmap(lambda t: fp.l1_unstructured(s(t))(params)["w"])(torch.arange(12))
    expected = [round(s(t) * 10) for t in range(12)]
    assert (10 - masks.sum(-1)).tolist() == expected


@given(fractions, fractions)
def test_fraction_of_remaining(target: float, current: float) -> None:
    f = fp.fraction_of_remaining(target, current)
    assert 0.0 <= f <= 1.0
    if target >= current and current < 1:
        assert math.isclose(1 - (1 - current) * (1 - f), target, abs_tol=1e-12)
    tensor = fp.fraction_of_remaining(torch.tensor(target, dtype=torch.float64), current)
    assert isinstance(tensor, torch.Tensor) and math.isclose(float(tensor), f, abs_tol=1e-12)


def test_fraction_of_remaining_under_vmap_equals_the_float_path() -> None:
    targets = [0.0, 0.5, 0.9, 1.0, 0.3]
    currents = [0.0, 0.5, 0.5, 1.0, 0.6]
    batched = vmap(fp.fraction_of_remaining)(
        torch.tensor(targets, dtype=torch.float64), torch.tensor(currents, dtype=torch.float64)
    )
    expected = [fp.fraction_of_remaining(t, c) for t, c in zip(targets, currents, strict=True)]
    assert batched.tolist() == pytest.approx(expected, abs=1e-15)
    assert expected[2] == pytest.approx(0.8) and expected[3] == 0.0 and expected[4] == 0.0


def test_value_semantics() -> None:
    assert fp.polynomial(0.5, start=0, end=10) == fp.polynomial(0.5, start=0, end=10, power=3)
    assert fp.polynomial(0.5, start=0, end=10) != fp.polynomial(0.5, start=0, end=11)
    assert len({fp.constant(0.1), fp.constant(0.1), fp.one_shot(0.1, at=0)}) == 2
    assert repr(fp.one_shot(0.5, at=3)) == "one_shot(0.5, at=3)"
    assert repr(fp.polynomial(0.9, start=1, end=5)) == (
        "polynomial(0.9, initial=0.0, start=1, end=5, frequency=1, power=3.0)"
    )


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: fp.constant(1.5), ValueError, r"sparsity=1\.5"),
        (lambda: fp.constant(True), TypeError, "sparsity=True"),
        (lambda: fp.one_shot(0.5, at=-1), ValueError, "at=-1"),
        (lambda: fp.one_shot(0.5, at=1.0), TypeError, "at=1.0"),
        (lambda: fp.polynomial(0.5, start=5, end=5), ValueError, "end=5 must be after start=5"),
        (lambda: fp.polynomial(0.5, start=0, end=5, frequency=0), ValueError, "frequency=0"),
        (lambda: fp.polynomial(0.5, start=0, end=5, power=0), ValueError, "power=0"),
        (lambda: fp.polynomial(0.5, start=0, end=5, power=math.nan), ValueError, "power=nan"),
        (lambda: fp.polynomial(0.5, start=0, end=5, power="3"), TypeError, "power='3'"),
        (lambda: fp.polynomial(0.5, start=0, end=5, power=True), TypeError, "power=True"),
        (lambda: fp.polynomial(0.5, initial=-0.1, start=0, end=5), ValueError, "initial=-0.1"),
        (lambda: fp.constant(0.5)(1.5), TypeError, "step=1.5"),
        (lambda: fp.constant(0.5)(torch.tensor(True)), TypeError, "torch.bool"),
    ],
)
def test_errors(build: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("target", "current", "error"),
    [
        (math.nan, 0.0, ValueError),
        (0.5, 1.5, ValueError),
        ("0.5", 0.0, TypeError),
        (True, 0.0, TypeError),
    ],
)
def test_fraction_of_remaining_rejects_what_is_not_a_sparsity(
    target: object, current: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match="sparsity"):
        fp.fraction_of_remaining(target, current)  # type: ignore[arg-type]
