"""Every selection kernel against a plain stable-sort reference, on ties, NaN, inf, -0.0 and edge sizes."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from reference import reference_keep
from torch import Tensor
from torch.func import vmap

import funcprune as fp
from funcprune._select import chunks, dispatch, eager, radix, rank, sweep
from funcprune._select.keys import order_keys

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
SPECIAL = [0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, math.nan, -math.nan, 1e-40, -1e-40, 65504.0]


@st.composite
def selections(draw: st.DrawFn) -> tuple[list[Tensor], list[Tensor | None], int]:
    """Scores of one dtype in 0-3 tensors, eligible masks or None, and a count up to the eligible total."""
    dtype = draw(st.sampled_from(DTYPES))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    scores, eligible = [], []
    for _ in range(draw(st.integers(0, 3))):
        shape = tuple(draw(st.lists(st.integers(0, 9), min_size=0, max_size=2)))
        style = draw(st.sampled_from(["normal", "ties", "special", "positive"]))
        if style == "normal":
            values = torch.randn(shape, generator=generator, dtype=torch.float64)
        elif style == "ties":
            values = torch.randint(-2, 3, shape, generator=generator).to(torch.float64)
        elif style == "special":
            pool = torch.tensor(SPECIAL, dtype=torch.float64)
            values = pool[torch.randint(len(SPECIAL), shape, generator=generator)]
        else:
            values = torch.randn(shape, generator=generator, dtype=torch.float64).abs()
        scores.append(values.to(dtype))
        mask = torch.rand(shape, generator=generator) < draw(st.floats(0.0, 1.0))
        eligible.append(mask if draw(st.booleans()) else None)
    total = sum(
        int(s.numel() if e is None else e.sum()) for s, e in zip(scores, eligible, strict=True)
    )
    k = draw(st.integers(0, total + 2))  # beyond the total is clamped
    return scores, eligible, k


def _keys(scores: list[Tensor]) -> list[Tensor]:
    return [order_keys(s) for s in scores]


def _flat_inputs(
    scores: list[Tensor], eligible: list[Tensor | None]
) -> tuple[list[Tensor], list[Tensor | None], list[torch.Size]]:
    """The kernels' inputs: flat keys, flat eligibility and the original shapes."""
    keys = _keys(scores)
    flat = [key.reshape(-1) for key in keys]
    allowed = [None if e is None else e.reshape(-1) for e in eligible]
    return flat, allowed, [key.shape for key in keys]


def _expected(scores: list[Tensor], eligible: list[Tensor | None], k: int) -> list[Tensor]:
    total = sum(
        int(s.numel() if e is None else e.sum()) for s, e in zip(scores, eligible, strict=True)
    )
    return reference_keep(scores, eligible, min(k, total))


def _assert_equal(got: list[Tensor], expected: list[Tensor]) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == torch.bool and g.shape == e.shape
        assert torch.equal(g, e)


@given(case=selections(), sample=st.sampled_from([1, 3, 1 << 16]))
def test_prune_smallest_matches_a_stable_sort(
    case: tuple[list[Tensor], list[Tensor | None], int], sample: int
) -> None:
    """Through the dispatcher: inputs larger than the sample size take the eager kernel."""
    scores, eligible, k = case
    if not scores:
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(eager, "_SAMPLE", sample)
        got = dispatch.prune_smallest(_keys(scores), eligible, torch.tensor(k))
    _assert_equal(got, _expected(scores, eligible, k))


@pytest.mark.parametrize("kernel", ["static", "rank"])
@given(case=selections())
def test_static_and_rank_kernels_match_a_stable_sort(
    kernel: str, case: tuple[list[Tensor], list[Tensor | None], int]
) -> None:
    scores, eligible, k = case
    if not scores:
        return
    flat, allowed, shapes = _flat_inputs(scores, eligible)
    run = radix.static_prune_smallest if kernel == "static" else rank.rank_prune_smallest
    got = run(flat, allowed, torch.tensor(k), shapes)
    _assert_equal(got, _expected(scores, eligible, k))


@given(
    case=selections(),
    chunk=st.integers(1, 7),
    sample=st.integers(1, 5),
    bracket=st.data(),
    gather=st.sampled_from([1, 4, 10**9]),
)
def test_eager_kernel_with_tiny_chunks_samples_and_wrong_brackets(
    case: tuple[list[Tensor], list[Tensor | None], int],
    chunk: int,
    sample: int,
    bracket: st.DataObject,
    gather: int,
) -> None:
    """Chunk borders, sparse samples, brackets that miss the threshold on either side, and
    brackets too full to gather (1: never, 10**9: always handed to the sweep kernel)."""
    scores, eligible, k = case
    if not scores:
        return
    flat, allowed, shapes = _flat_inputs(scores, eligible)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(chunks, "_CHUNK", chunk)
        patch.setattr(eager, "_SAMPLE", sample)
        patch.setattr(eager, "_GATHER_LIMIT", gather)
        if bracket.draw(st.booleans()):
            values = sorted({int(v) for key in flat for v in key} or {0})
            lo, hi = sorted(bracket.draw(st.lists(st.sampled_from(values), min_size=2, max_size=2)))
            patch.setattr(eager, "_bracket", lambda *_: (lo, hi))
        got = eager.eager_prune_smallest(flat, allowed, k, shapes)
    _assert_equal(got, _expected(scores, eligible, k))


@given(case=selections(), chunk=st.integers(1, 40), wide=st.booleans(), mixed=st.data())
def test_magnitudes_match_a_stable_sort_of_absolute_values(
    case: tuple[list[Tensor], list[Tensor | None], int],
    chunk: int,
    wide: bool,
    mixed: st.DataObject,
) -> None:
    """prune_smallest_magnitudes (chunked, in a scratch buffer) equals sorting |scores|.

    Tensors may differ in dtype (one float64 makes the comparison float64), as in a global method.
    """
    scores, eligible, k = case
    if not scores:
        return
    scores = [s.to(mixed.draw(st.sampled_from(DTYPES))) for s in scores]
    if wide:
        scores[0] = scores[0].to(torch.float64)
    expected = _expected([s.to(torch.float64).abs() for s in scores], eligible, k)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(chunks, "_CHUNK", chunk)
        patch.setattr(eager, "_SAMPLE", 2)  # the eager kernel for all but the tiniest inputs
        got = dispatch.prune_smallest_magnitudes(scores, eligible, torch.tensor(k))
    _assert_equal(got, expected)


@given(case=selections(), extra=st.lists(st.integers(0, 40), min_size=1, max_size=4))
def test_vmap_over_counts_matches_a_stable_sort(
    case: tuple[list[Tensor], list[Tensor | None], int], extra: list[int]
) -> None:
    """Batched counts over plain keys (the rank kernel inside vmap), clamped like the others."""
    scores, eligible, k = case
    if not scores:
        return
    counts = torch.tensor([k, *extra])
    swept = vmap(lambda c: dispatch.prune_smallest(_keys(scores), eligible, c))(counts)
    for index, count in enumerate(counts.tolist()):
        _assert_equal([s[index] for s in swept], _expected(scores, eligible, count))


@given(
    case=selections(),
    extra=st.lists(st.integers(0, 40), min_size=0, max_size=4),
    chunk=st.integers(1, 9),
    most_fine=st.integers(1, 3),
    gather=st.sampled_from([1, 3, 10**9]),
)
def test_sweep_kernel_matches_a_stable_sort_for_every_count(
    case: tuple[list[Tensor], list[Tensor | None], int],
    extra: list[int],
    chunk: int,
    most_fine: int,
    gather: int,
) -> None:
    """Many counts at once (repeated, out of range, 0 and all), chunk borders included; bins
    gathered (``_GATHER`` 1: all of them) or left to low-digit passes that take a few bins at a
    time (``10**9``: none gathered).

    The kernel takes int32 keys: float64 scores come as float32 here (the dispatcher's int64 path
    is checked through vmap below).
    """
    scores, eligible, k = case
    if not scores:
        return
    scores = [s.to(torch.float32) if s.dtype == torch.float64 else s for s in scores]
    flat, allowed, shapes = _flat_inputs(scores, eligible)
    counts = [k, *extra, k]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(chunks, "_CHUNK", chunk)
        patch.setattr(sweep, "_MOST_FINE", most_fine)
        patch.setattr(sweep, "_GATHER", gather)
        got = sweep.sweep_prune_smallest(flat, allowed, counts, shapes)
    for index, count in enumerate(counts):
        _assert_equal([g[index] for g in got], _expected(scores, eligible, count))


@given(
    sizes=st.lists(st.integers(0, 60), min_size=1, max_size=4),
    levels=st.integers(1, 4),
    fractions=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6),
    chunk=st.integers(1, 9),
    gather=st.sampled_from([1, 3, 10**9]),
    partial=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_sweep_kernel_splits_heavy_ties_across_chunks(
    sizes: list[int],
    levels: int,
    fractions: list[float],
    chunk: int,
    gather: int,
    partial: bool,
    seed: int,
) -> None:
    """A few distinct values, so most counts cut inside a run of ties that spans many chunks:
    the surviving ties (those after the pruned ones, in flat order) start mid-chunk, whether
    the thresholds' bins are gathered or not, with or without ineligible entries."""
    generator = torch.Generator().manual_seed(seed)
    scores = [torch.randint(0, levels, (n,), generator=generator).float() for n in sizes]
    eligible = [torch.rand(n, generator=generator) < 0.8 if partial else None for n in sizes]
    flat, allowed, shapes = _flat_inputs(scores, eligible)
    total = sum(int(n if e is None else e.sum()) for n, e in zip(sizes, eligible, strict=True))
    counts = [round(f * total) for f in fractions]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(chunks, "_CHUNK", chunk)
        patch.setattr(sweep, "_GATHER", gather)
        got = sweep.sweep_prune_smallest(flat, allowed, counts, shapes)
    for index, count in enumerate(counts):
        _assert_equal([g[index] for g in got], _expected(scores, eligible, count))


def test_sweep_gathering_more_keys_than_any_tensor_holds_matches_the_loop() -> None:
    """32 amounts over 100 tensors of 5,000 entries: the thresholds' bins hold more keys than the
    largest tensor, so the low-digit passes read a gathered source longer than any input."""
    generator = torch.Generator().manual_seed(0)
    params = {f"w{i}": torch.randn(100, 50, generator=generator) for i in range(100)}
    amounts = torch.linspace(0.05, 0.95, 32)
    swept = vmap(lambda a: fp.global_unstructured(a)(params))(amounts)
    for index, amount in enumerate(amounts.tolist()):
        looped = fp.global_unstructured(amount)(params)
        assert all(torch.equal(swept[key][index], looped[key]) for key in params)


@given(case=selections(), extra=st.lists(st.integers(0, 40), min_size=1, max_size=4))
def test_vmap_over_counts_takes_the_sweep_kernel_and_matches(
    case: tuple[list[Tensor], list[Tensor | None], int], extra: list[int]
) -> None:
    """Batched counts over inputs above the sample size go to the sweep kernel, once per batch;
    magnitudes (keys made chunk by chunk) included."""
    scores, eligible, k = case
    if not scores:
        return
    counts = torch.tensor([k, *extra])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(eager, "_SAMPLE", 1)
        patch.setattr(chunks, "_CHUNK", 12)
        swept = vmap(lambda c: dispatch.prune_smallest(_keys(scores), eligible, c))(counts)
        magnitudes = vmap(lambda c: dispatch.prune_smallest_magnitudes(scores, eligible, c))(counts)
    absolute = [s.to(torch.float64).abs() for s in scores]
    for index, count in enumerate(counts.tolist()):
        _assert_equal([s[index] for s in swept], _expected(scores, eligible, count))
        _assert_equal([m[index] for m in magnitudes], _expected(absolute, eligible, count))


@given(
    rows=st.integers(1, 4),
    cols=st.integers(0, 12),
    seed=st.integers(0, 2**31 - 1),
    ties=st.booleans(),
    fraction=st.floats(0.0, 1.0),
)
def test_vmap_over_keys_matches_each_row(
    rows: int, cols: int, seed: int, ties: bool, fraction: float
) -> None:
    """Batched keys and eligible masks (the static kernel inside vmap) equal a loop over rows."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(rows, cols, generator=generator)
    if ties:
        scores = scores.round()
    eligible = torch.rand(rows, cols, generator=generator) < 0.8
    counts = (eligible.sum(1) * fraction).round().long()
    swept = vmap(lambda s, e, c: dispatch.prune_smallest([order_keys(s)], [e], c)[0])(
        scores, eligible, counts
    )
    for row in range(rows):
        expected = reference_keep([scores[row]], [eligible[row]], int(counts[row]))[0]
        assert torch.equal(swept[row], expected)


@given(st.sampled_from(DTYPES), st.lists(st.sampled_from(SPECIAL) | st.floats(-3, 3), max_size=12))
def test_order_keys_preserve_the_order_of_a_stable_sort(
    dtype: torch.dtype, values: list[float]
) -> None:
    """Key comparisons equal score comparisons; -0.0 equals 0.0; every NaN ties above inf."""
    scores = torch.tensor(values, dtype=torch.float64).to(dtype)
    keys = order_keys(scores)
    assert keys.dtype == (torch.int64 if dtype == torch.float64 else torch.int32)
    ranks = [(1, 0.0) if math.isnan(v) else (0, v) for v in scores.to(torch.float64).tolist()]
    for i, a in enumerate(ranks):
        for j, b in enumerate(ranks):
            assert bool(keys[i] < keys[j]) == (a < b)
            assert bool(keys[i] == keys[j]) == (a == b)


def test_order_keys_of_magnitudes_are_a_view_and_others_are_not() -> None:
    magnitudes = torch.tensor([0.0, 1.5, math.inf])
    assert order_keys(magnitudes).data_ptr() == magnitudes.data_ptr()
    signed = torch.tensor([-0.0, 1.5])
    assert order_keys(signed).data_ptr() != signed.data_ptr()
    assert torch.equal(
        order_keys(signed),
        torch.tensor([0, int(signed[1].view(torch.int32))], dtype=torch.int32),
    )


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_one_element_and_empty_tensors(k: int) -> None:
    keys = [
        order_keys(torch.zeros(0)),
        order_keys(torch.tensor([2.0])),
        order_keys(torch.zeros(2, 0)),
    ]
    got = dispatch.prune_smallest(keys, [None, None, None], torch.tensor(k))
    assert [g.shape for g in got] == [torch.Size([0]), torch.Size([1]), torch.Size([2, 0])]
    assert bool(got[1]) == (k == 0)


def test_ineligible_entries_are_never_selected_and_stay_pruned() -> None:
    keys = [order_keys(torch.tensor([0.0, 1.0, 2.0, 3.0]))]
    eligible = [torch.tensor([False, True, True, False])]
    for k in range(4):
        got = dispatch.prune_smallest(keys, eligible, torch.tensor(k))[0]
        assert not got[0] and not got[3]
        assert int(got.sum()) == max(2 - k, 0)


@given(st.integers(0, 300), st.integers(0, 16), st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_positions_equal_nonzero(size: int, offset: int, density: float, seed: int) -> None:
    """The word-at-a-time scan returns nonzero's positions, for any length and storage offset."""
    generator = torch.Generator().manual_seed(seed)
    mask = (torch.rand(size + offset, generator=generator) < density)[offset:]
    assert torch.equal(chunks.positions_of(mask), mask.nonzero().reshape(-1))


@pytest.mark.parametrize("k", [2**31 + 1, 2**40, -(2**40)])
def test_counts_far_outside_the_range_are_clamped_by_every_kernel(k: int) -> None:
    keys = [order_keys(torch.tensor([3.0, 1.0, 2.0]))]
    eligible: list[Tensor | None] = [torch.tensor([True, True, False])]
    shapes = [torch.Size([3])]
    expected = torch.tensor([False, False, False]) if k > 0 else eligible[0]
    kernels = [
        eager.eager_prune_smallest(keys, eligible, k, shapes)[0],
        rank.rank_prune_smallest(keys, eligible, torch.tensor(k), shapes)[0],
        radix.static_prune_smallest(keys, eligible, torch.tensor(k), shapes)[0],
    ]
    for got in kernels:
        assert torch.equal(got, expected)


@pytest.mark.parametrize(
    "kernel",
    [radix.static_prune_smallest, rank.rank_prune_smallest, eager.eager_prune_smallest],
)
def test_counts_beyond_the_eligible_entries_prune_them_all_even_at_the_top_key(
    kernel: object,
) -> None:
    """Found by the thorough profile: NaN shares the largest key, and k > eligible must clamp."""
    keys = order_keys(torch.tensor([math.nan, 0.0, math.nan], dtype=torch.float16))
    for k, eligible, want in [
        (4, None, [False, False, False]),
        (3, torch.tensor([True, False, True]), [False, False, False]),
        (1, torch.tensor([True, True, True]), [True, False, True]),
    ]:
        count = torch.tensor(k) if kernel is not eager.eager_prune_smallest else k
        got = kernel([keys], [eligible], count, [keys.shape])  # type: ignore[operator]
        assert got[0].tolist() == want
