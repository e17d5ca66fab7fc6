"""Many small keys: the batched and merged paths give the masks (and errors) of the per-key path.

Per-key methods stack same-shaped small parameters (:mod:`funcprune.methods._rows`) and global
selections merge runs of small tensors (:mod:`funcprune._select.dispatch`). Each property runs a
call twice, once with those paths switched off, and wants identical masks, ties included, or the
identical error.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

import funcprune as fp
from funcprune._select import dispatch, random_keys, random_keys_of, rank_prune_rows
from funcprune._select.rank import rank_prune_smallest
from funcprune.methods import _rows
from funcprune.methods.unstructured import L1Unstructured
from funcprune.types import Masks
from tests.strategies import NORMS

SHAPES = [(4, 3), (2, 2), (2, 4), (3, 2, 2), (1, 4), (4, 1), (6, 4)]
"""Few shapes, so that many keys share one and get stacked."""


@st.composite
def many_params(
    draw: st.DrawFn,
) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
    """Parameters of a few shared shapes and mixed dtypes, some masked, some with scores."""
    count = draw(st.integers(1, 24))
    shapes = draw(st.lists(st.sampled_from(SHAPES), min_size=1, max_size=3))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    params, masks, scores = {}, {}, {}
    for i in range(count):
        shape = shapes[draw(st.integers(0, len(shapes) - 1))]
        dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]))
        if draw(st.booleans()):  # small integers: many ties
            values = torch.randint(-2, 3, shape, generator=generator).to(dtype)
        else:
            values = torch.randn(shape, generator=generator).to(dtype)
        params[f"layer{i}.weight"] = values
        if draw(st.integers(0, 2)) == 0:
            masks[f"layer{i}.weight"] = torch.rand(shape, generator=generator) < 0.6
        if draw(st.integers(0, 4)) == 0:
            scores[f"layer{i}.weight"] = torch.randint(-2, 3, shape, generator=generator).float()
    return params, masks, scores


AMOUNTS = st.one_of(
    st.sampled_from([0.0, 1.0, 0.5]),
    st.floats(0.0, 1.0),
    st.integers(0, 4),
    st.floats(0.0, 1.0).map(lambda a: torch.tensor(a)),
)
"""Fractions (zero and one included), int counts (some too large: errors), 0-d tensors."""


def _outcome(call: Callable[[], Masks]) -> Masks | tuple[type, str]:
    try:
        return call()
    except (ValueError, TypeError) as error:
        return type(error), str(error)


def _assert_same(got: Masks | tuple[type, str], want: Masks | tuple[type, str]) -> None:
    if isinstance(want, tuple) or isinstance(got, tuple):
        assert got == want
        return
    assert list(got) == list(want)
    for key in want:
        assert got[key].dtype == want[key].dtype and got[key].shape == want[key].shape, key
        assert torch.equal(got[key], want[key]), key


def _same_as_unbatched(call: Callable[[], Masks]) -> None:
    """``call`` gives what it gives with stacking and merging of small tensors switched off."""
    fast = _outcome(call)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_rows, "ROW_LIMIT", -1)
        patch.setattr(dispatch, "_SMALL", -1)
        slow = _outcome(call)
    _assert_same(fast, slow)


@st.composite
def per_key_methods(draw: st.DrawFn) -> fp.PruningMethod:
    amount = draw(AMOUNTS)
    dim = draw(st.sampled_from([0, 1, -1]))
    return draw(
        st.sampled_from(
            [
                fp.l1_unstructured(amount),
                fp.random_unstructured(amount, seed=draw(st.integers(0, 3))),
                fp.ln_structured(amount, n=draw(st.sampled_from([*NORMS, "fro"])), dim=dim),
                fp.random_structured(amount, dim=dim, seed=draw(st.integers(0, 3))),
                fp.nm_semistructured(draw(st.integers(0, 2)), 2, dim=dim),
            ]
        )
    )


@given(many_params(), per_key_methods(), st.booleans(), st.booleans())
def test_batched_per_key_methods_match_the_per_key_path(
    data: tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]],
    method: fp.PruningMethod,
    with_masks: bool,
    with_scores: bool,
) -> None:
    params, masks, scores = data
    _same_as_unbatched(
        lambda: method(
            params,
            masks if with_masks else None,
            importance_scores=scores if with_scores else None,
        )
    )


@given(many_params(), AMOUNTS, st.sampled_from(["l1", "random"]), st.booleans())
def test_merged_global_selection_matches_tensor_by_tensor(
    data: tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]],
    amount: float | int | Tensor,
    scores: str,
    with_masks: bool,
) -> None:
    params, masks, importance = data
    big = torch.linspace(-1.0, 1.0, 5000).reshape(50, 100)  # a tensor left alone between runs
    params = {**params, "big": big, **{f"after.{k}": v for k, v in params.items()}}
    masks = {**masks, **{f"after.{k}": v for k, v in masks.items()}}
    method = fp.global_unstructured(amount, scores=scores, seed=1)  # type: ignore[arg-type]
    _same_as_unbatched(lambda: method(params, masks if with_masks else None))
    _same_as_unbatched(lambda: method(params, importance_scores=importance))


@given(many_params())
def test_chain_matches_the_per_key_path(
    data: tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]],
) -> None:
    params, masks, _ = data
    method = fp.chain(fp.l1_unstructured(0.2), fp.random_unstructured(1), fp.l1_unstructured(0.2))
    _same_as_unbatched(lambda: method(params, masks))


@given(
    st.integers(1, 5),
    st.integers(1, 9),
    st.integers(0, 2**31 - 1),
    st.booleans(),
)
def test_row_kernel_is_the_rank_kernel_per_row(rows: int, n: int, seed: int, masked: bool) -> None:
    generator = torch.Generator().manual_seed(seed)
    keys = torch.randint(-2, 3, (rows, n), generator=generator, dtype=torch.int32)
    eligible = torch.rand(rows, n, generator=generator) < 0.6 if masked else None
    alive = torch.full((rows,), n) if eligible is None else eligible.sum(1)
    k = (torch.rand(rows, generator=generator) * (alive + 1)).floor().long()
    got = rank_prune_rows(keys, eligible, k)
    for row in range(rows):
        ok = None if eligible is None else eligible[row]
        want = rank_prune_smallest([keys[row]], [ok], k[row], [torch.Size([n])])[0]
        assert torch.equal(got[row], want)


def test_random_keys_of_many_parameters_are_each_parameters_keys() -> None:
    cpu = torch.device("cpu")
    names, sizes = ["a", "b.weight", "c", "\ud800"], [3, 0, 7, 2]
    want = torch.cat(
        [random_keys(5, name, size, cpu) for name, size in zip(names, sizes, strict=True)]
    )
    assert torch.equal(random_keys_of(5, names, sizes, cpu), want)


def test_small_same_shaped_keys_are_pruned_as_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    params = {f"k{i}": torch.randn(4, 3) for i in range(50)}

    def refuse(*args: object) -> Tensor:
        raise AssertionError("a batchable key went through the per-key path")

    monkeypatch.setattr(L1Unstructured, "_prune_one", refuse)
    masks = fp.l1_unstructured(0.5)(params)
    assert all(int((~m).sum()) == 6 for m in masks.values())


def test_an_error_in_a_batch_names_every_offending_key() -> None:
    params = {f"k{i}": torch.ones(2, 2) for i in range(4)}
    masks = {"k1": torch.tensor([[True, False], [False, False]]), "k3": torch.zeros(2, 2) > 0}
    with pytest.raises(ValueError) as error:
        fp.l1_unstructured(2)(params, masks)
    message = str(error.value)
    assert "failed for 2 parameters" in message
    assert "'k1': amount=2" in message and "'k3': amount=2" in message
    assert "'k0'" not in message and "'k2'" not in message


def test_batched_masks_own_their_memory() -> None:
    params = {f"k{i}": torch.randn(3, 3) for i in range(8)}
    masks = fp.random_unstructured(0.5)(params)
    pointers = {m.untyped_storage().data_ptr() for m in masks.values()}
    assert len(pointers) == len(masks)
    assert all(m.untyped_storage().nbytes() == m.numel() for m in masks.values())


def test_vmap_over_amounts_on_many_same_shaped_keys() -> None:
    generator = torch.Generator().manual_seed(0)
    params = {f"k{i}": torch.randint(-2, 3, (4, 3), generator=generator).float() for i in range(6)}
    amounts = torch.tensor([0.0, 0.25, 0.5, 1.0])
    for factory in (fp.l1_unstructured, fp.random_unstructured):
        swept = torch.func.vmap(lambda a, f=factory: f(a)(params))(amounts)
        for i, amount in enumerate(amounts.tolist()):
            each = factory(amount)(params)
            assert all(torch.equal(swept[key][i], each[key]) for key in params)


def test_norm_keys_of_a_batch_are_bit_identical_for_every_norm() -> None:
    generator = torch.Generator().manual_seed(3)
    params = {f"k{i}": torch.randn(8, 6, 5, generator=generator) for i in range(5)}
    for n in NORMS:
        for dim in (0, 1, 2):
            method = fp.ln_structured(0.5, n=n, dim=dim)  # type: ignore[arg-type]
            _same_as_unbatched(lambda m=method: m(params))
    for dim in (0, 1, 2):
        _same_as_unbatched(lambda d=dim: fp.ln_structured(0.5, n="nuc", dim=d)(params))
