"""compat's building blocks against torch's: topk's choice, the private helpers, CustomFromMask."""

from __future__ import annotations

import math
from typing import Any

import torch
from compat_ops import values
from hypothesis import given
from hypothesis import strategies as st
from torch.nn.utils import prune as torch_prune

import funcprune as fp
import funcprune.compat as compat
from funcprune.compat._selection import _core_choice, topk_mask


@given(
    data=st.data(),
    largest=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.float16]),
)
def test_topk_mask_is_torch_topk_choice(
    data: st.DataObject, largest: bool, dtype: torch.dtype
) -> None:
    n = data.draw(st.integers(1, 40))
    v = data.draw(values((n,), dtype=dtype))
    if data.draw(st.integers(0, 9)) == 0:
        v[data.draw(st.integers(0, n - 1))] = math.nan
    k = data.draw(st.integers(0, n))
    expected = torch.zeros(n, dtype=torch.bool)
    expected[torch.topk(v, k, largest=largest).indices] = True
    assert torch.equal(topk_mask(v, k, largest=largest), expected)
    ordered = torch.sort(v.double(), descending=largest).values
    if 0 < k < n:  # the core decides every case without NaN or a tie at the boundary
        untied = not bool(torch.isnan(v).any()) and bool(ordered[k - 1] != ordered[k])
        assert (_core_choice(v, k, largest) is not None) == untied


@given(
    n=st.integers(64, 3000),
    levels=st.integers(1, 6),
    fraction=st.floats(0.0, 1.0),
    largest=st.booleans(),
    nan=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_topk_mask_on_heavy_ties_takes_torch_topk_choice_in_both_of_its_kernels(
    n: int, levels: int, fraction: float, largest: bool, nan: bool, seed: int
) -> None:
    """Many ties at the cut, with ``k`` small (torch's heap ``partial_sort``) or large (its
    ``nth_element``): the unsorted ``topk`` and the mask built from it choose torch's entries."""
    generator = torch.Generator().manual_seed(seed)
    v = torch.randint(0, levels, (n,), generator=generator).float()
    if nan:
        v[torch.randint(0, n, (3,), generator=generator)] = math.nan
    k = round(fraction**3 * n)  # often below n / 64
    expected = torch.zeros(n, dtype=torch.bool)
    expected[torch.topk(v, k, largest=largest).indices] = True
    assert torch.equal(topk_mask(v, k, largest=largest), expected)


def _outcome(f: Any, *args: Any) -> Any:
    try:
        return f(*args)
    except Exception as error:
        return type(error)


@given(
    amount=st.one_of(st.integers(-2, 12), st.floats(-0.5, 1.5), st.booleans(), st.just("x")),
    size=st.integers(0, 10),
)
def test_amount_helpers_match_torch(amount: Any, size: int) -> None:
    for name in ("_validate_pruning_amount_init",):
        assert _outcome(getattr(compat, name), amount) == _outcome(
            getattr(torch_prune, name), amount
        )
    if (
        isinstance(amount, (int, float))
        and not isinstance(amount, bool)
        and (isinstance(amount, int) or 0 <= amount <= 1)
    ):
        for name in ("_compute_nparams_toprune", "_validate_pruning_amount"):
            theirs = _outcome(getattr(torch_prune, name), amount, size)
            assert _outcome(getattr(compat, name), amount, size) == theirs


@given(data=st.data())
def test_structured_helpers_match_torch(data: st.DataObject) -> None:
    shape = tuple(data.draw(st.lists(st.integers(1, 3), min_size=0, max_size=3)))
    t = data.draw(values(shape))
    dim = data.draw(st.integers(-len(shape), max(len(shape) - 1, 0)))
    n = data.draw(st.sampled_from([1, 2, math.inf, -math.inf, 0.5]))
    assert _outcome(compat._validate_structured_pruning, t) == _outcome(
        torch_prune._validate_structured_pruning, t
    )
    if len(shape) > 1:
        assert _outcome(compat._validate_pruning_dim, t, dim) == _outcome(
            torch_prune._validate_pruning_dim, t, dim
        )
        assert torch.equal(compat._compute_norm(t, n, dim), torch_prune._compute_norm(t, n, dim))


@given(data=st.data())
def test_custom_from_mask_is_the_core_method_for_binary_masks(data: st.DataObject) -> None:
    shape = tuple(data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    given_mask, survivors = (
        data.draw(values(shape, tied=True)) > 0,
        data.draw(values(shape, tied=True)) > 0,
    )
    mask = compat.CustomFromMask(given_mask.float()).compute_mask(
        torch.zeros(shape), survivors.float()
    )
    core = fp.custom_from_mask({"w": given_mask})({"w": torch.zeros(shape)}, {"w": survivors})["w"]
    assert torch.equal(mask, core.float())
    theirs = torch_prune.CustomFromMask(given_mask.float()).compute_mask(
        torch.zeros(shape), survivors.float()
    )
    assert torch.equal(mask, theirs)
