"""N:M semi-structured masks against a per-group Python reference; contract, vmap and errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.func import vmap

import funcprune as fp


@st.composite
def nm_cases(draw: st.DrawFn) -> tuple[torch.Tensor, int, int, int, torch.Tensor | None]:
    """A tensor with a multiple of ``m`` along ``dim``, n, m, dim and optional survivors."""
    m = draw(st.integers(1, 6))
    n = draw(st.integers(0, m))
    ndim = draw(st.integers(1, 3))
    shape = draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim))
    dim = draw(st.integers(-ndim, ndim - 1))
    shape[dim] = m * draw(st.integers(1, 3))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    tied = draw(st.booleans())
    w = (
        torch.randint(-2, 3, shape, generator=gen).double()
        if tied
        else torch.randn(shape, generator=gen)
    )
    survivors = torch.rand(shape, generator=gen) < 0.6 if draw(st.booleans()) else None
    return w, n, m, dim, survivors


def reference(
    scores: torch.Tensor, survivors: torch.Tensor | None, n: int, m: int, dim: int
) -> torch.Tensor:
    """Per group: sort surviving entries by (|score| desc, index desc) and keep the first n."""
    moved = scores.abs().movedim(dim, -1).contiguous()
    size = moved.shape[-1]
    alive = (
        torch.ones_like(moved, dtype=torch.bool)
        if survivors is None
        else survivors.movedim(dim, -1)
    )
    rows, ok_rows = moved.reshape(-1, size).tolist(), alive.reshape(-1, size).tolist()
    keep = torch.zeros(len(rows), size, dtype=torch.bool)
    for row, (values, ok) in enumerate(zip(rows, ok_rows, strict=True)):
        for start in range(0, size, m):
            group = [i for i in range(start, start + m) if ok[i]]
            for i in sorted(group, key=lambda i: (values[i], i), reverse=True)[:n]:
                keep[row, i] = True
    return keep.reshape(moved.shape).movedim(-1, dim)


def groups(keep: torch.Tensor, dim: int, m: int) -> torch.Tensor:
    moved = keep.movedim(dim, -1)
    return moved.reshape(*moved.shape[:-1], moved.shape[-1] // m, m)


@given(nm_cases())
def test_matches_reference(case: tuple[torch.Tensor, int, int, int, torch.Tensor | None]) -> None:
    w, n, m, dim, survivors = case
    masks = {} if survivors is None else {"w": survivors}
    keep = fp.nm_semistructured(n, m, dim=dim)({"w": w}, masks)["w"]
    assert keep.dtype == torch.bool and keep.shape == w.shape
    assert torch.equal(keep, reference(w, survivors, n, m, dim))


@given(nm_cases())
def test_exactly_n_per_group_and_subset(
    case: tuple[torch.Tensor, int, int, int, torch.Tensor | None],
) -> None:
    w, n, m, dim, survivors = case
    method = fp.nm_semistructured(n, m, dim=dim)
    dense = method({"w": w})["w"]
    assert bool((groups(dense, dim, m).sum(-1) == n).all())
    if survivors is not None:
        keep = method({"w": w}, {"w": survivors})["w"]
        assert not bool((keep & ~survivors).any())
        alive = groups(survivors, dim, m).sum(-1)
        assert torch.equal(groups(keep, dim, m).sum(-1), alive.clamp(max=n))


@given(nm_cases())
def test_importance_scores_replace_magnitude(
    case: tuple[torch.Tensor, int, int, int, torch.Tensor | None],
) -> None:
    w, n, m, dim, _ = case
    scores = torch.randn(w.shape, generator=torch.Generator().manual_seed(w.numel()))
    keep = fp.nm_semistructured(n, m, dim=dim)({"w": w}, importance_scores={"w": scores})["w"]
    assert torch.equal(keep, reference(scores, None, n, m, dim))


def test_vmap_over_parameters_matches_loop() -> None:
    batch = torch.randn(7, 3, 8)
    method = fp.nm_semistructured(2, 4)
    batched = vmap(lambda w: method({"w": w})["w"])(batch)
    assert torch.equal(batched, torch.stack([method({"w": w})["w"] for w in batch]))


def test_vmap_with_masks_and_scores() -> None:
    w = torch.randn(5, 2, 4, 6)
    alive = torch.rand(5, 2, 4, 6) > 0.3
    method = fp.nm_semistructured(1, 2, dim=-1)
    batched = vmap(lambda p, s: method({"w": p}, {"w": s}, importance_scores={"w": p * 2})["w"])(
        w, alive
    )
    loop = torch.stack([method({"w": p}, {"w": s})["w"] for p, s in zip(w, alive, strict=True)])
    assert torch.equal(batched, loop)


def test_two_four_on_conv_weight_groups_input_channels() -> None:
    w = torch.randn(3, 8, 2, 2)
    keep = fp.nm_semistructured(2, 4)({"conv.weight": w})["conv.weight"]
    per_group = keep.reshape(3, 2, 4, 2, 2).sum(2)
    assert bool((per_group == 2).all())


def test_ties_keep_higher_index() -> None:
    keep = fp.nm_semistructured(2, 4, dim=0)({"b": torch.ones(4)})["b"]
    assert keep.tolist() == [False, False, True, True]


def test_value_semantics() -> None:
    assert fp.nm_semistructured(2, 4) == fp.nm_semistructured(2, 4, dim=1)
    assert fp.nm_semistructured(2, 4) != fp.nm_semistructured(2, 4, dim=0)
    assert hash(fp.nm_semistructured(1, 2)) == hash(fp.nm_semistructured(1, 2))
    assert repr(fp.nm_semistructured(2, 4)) == "nm_semistructured(n=2, m=4, dim=1)"
    chained = fp.chain(fp.nm_semistructured(2, 4), fp.l1_unstructured(1))
    keep = chained({"w": torch.arange(1.0, 9.0).reshape(1, 8)})["w"]
    assert int(keep.sum()) == 3


def test_inputs_not_mutated() -> None:
    w, alive = torch.randn(2, 4), torch.rand(2, 4) > 0.5
    w0, alive0 = w.clone(), alive.clone()
    fp.nm_semistructured(2, 4)({"w": w}, {"w": alive})
    assert torch.equal(w, w0) and torch.equal(alive, alive0)


def test_not_divisible_names_key_shape_dim_m() -> None:
    with pytest.raises(
        ValueError, match=r"'fc\.weight': shape \(3, 6\) has size 6 along dim=1.*m=4"
    ):
        fp.nm_semistructured(2, 4)({"fc.weight": torch.ones(3, 6)})


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"bias": torch.ones(4)}, r"'bias': dim=1 is out of range for shape \(4,\)"),
        ({"s": torch.tensor(1.0)}, r"'s': .* 0-d"),
        ({"i": torch.ones(2, 4, dtype=torch.int64)}, r"'i': nm_semistructured needs a floating"),
    ],
)
def test_call_errors(params: dict[str, torch.Tensor], match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        fp.nm_semistructured(2, 4)(params)


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        ((3, 2), {}, ValueError),
        ((-1, 2), {}, ValueError),
        ((0, 0), {}, ValueError),
        ((2.0, 4), {}, TypeError),
        ((True, 4), {}, TypeError),
        ((2, 4), {"dim": 1.0}, TypeError),
    ],
)
def test_factory_errors(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        fp.nm_semistructured(*args, **kwargs)  # type: ignore[arg-type]
