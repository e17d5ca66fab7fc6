"""Every method against torch.nn.utils.prune: identical masks when the threshold is untied, and with
ties the same count and the documented tie-break (the stable-sort reference)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from reference import reference_keep, threshold_untied, torch_masks, torch_module, torch_prune
from strategies import NORMS, amounts, count_of, tensors, tensors_like
from torch import nn

import funcprune as fp


def _assert_exact(ours: torch.Tensor, theirs: torch.Tensor, scores: torch.Tensor, k: int) -> None:
    assert ours.dtype == torch.bool and ours.shape == theirs.shape
    assert int(ours.sum()) == int(theirs.sum())
    assert torch.equal(ours, reference_keep([scores], [None], k)[0])
    if threshold_untied(scores, None, k):
        assert torch.equal(ours, theirs)


@given(w=tensors(), data=st.data())
def test_l1_unstructured(w: torch.Tensor, data: st.DataObject) -> None:
    amount = data.draw(amounts(w.numel()))
    ours = fp.l1_unstructured(amount)({"w": w})["w"]
    module = torch_module({"w": w})
    torch_prune.l1_unstructured(module, "w", amount=amount)
    _assert_exact(ours, module.w_mask.bool(), w.abs(), count_of(amount, w.numel()))


@given(w=tensors(), data=st.data())
def test_l1_unstructured_importance_scores(w: torch.Tensor, data: st.DataObject) -> None:
    scores = data.draw(tensors_like(w))
    amount = data.draw(amounts(w.numel()))
    ours = fp.l1_unstructured(amount)({"w": w}, importance_scores={"w": scores})["w"]
    module = torch_module({"w": w})
    torch_prune.l1_unstructured(module, "w", amount=amount, importance_scores=scores)
    _assert_exact(ours, module.w_mask.bool(), scores.abs(), count_of(amount, w.numel()))


@given(w=tensors(min_dims=2, min_side=1), data=st.data())
def test_ln_structured(w: torch.Tensor, data: st.DataObject) -> None:
    dim = data.draw(st.integers(-w.dim(), w.dim() - 1))
    matrix = ["fro", "nuc"] if w.dim() == 3 else ["fro"] if w.dim() == 2 else []
    n = data.draw(st.sampled_from([*NORMS, *matrix]))
    channels = w.shape[dim]
    amount = data.draw(amounts(channels))
    ours = fp.ln_structured(amount, n=n, dim=dim)({"w": w})["w"]  # type: ignore[arg-type]
    module = torch_module({"w": w})
    torch_prune.ln_structured(module, "w", amount=amount, n=n, dim=dim)
    others = [d for d in range(w.dim()) if d != dim % w.dim()]
    norms = torch.norm(w, p=n, dim=others)  # type: ignore[arg-type]
    k = count_of(amount, channels)
    kept_channels = reference_keep([norms], [None], k)[0]
    view = [1] * w.dim()
    view[dim] = channels
    assert torch.equal(ours, kept_channels.reshape(view).expand(w.shape))
    theirs = module.w_mask.bool()
    assert int(ours.sum()) == int(theirs.sum())
    if threshold_untied(norms, None, k):
        assert torch.equal(ours, theirs)


@given(w=tensors(), data=st.data())
def test_random_unstructured_prunes_torchs_count(w: torch.Tensor, data: st.DataObject) -> None:
    amount = data.draw(amounts(w.numel()))
    seed = data.draw(st.integers(0, 2**40))
    ours = fp.random_unstructured(amount, seed=seed)({"w": w})["w"]
    module = torch_module({"w": w})
    torch_prune.random_unstructured(module, "w", amount=amount)
    assert int(ours.sum()) == int(module.w_mask.sum()) == w.numel() - count_of(amount, w.numel())


@given(w=tensors(min_dims=2, min_side=1), data=st.data())
def test_random_structured_prunes_torchs_slices(w: torch.Tensor, data: st.DataObject) -> None:
    dim = data.draw(st.integers(-w.dim(), w.dim() - 1))
    amount = data.draw(amounts(w.shape[dim]))
    ours = fp.random_structured(amount, dim=dim, seed=data.draw(st.integers(0, 99)))({"w": w})["w"]
    module = torch_module({"w": w})
    torch_prune.random_structured(module, "w", amount=amount, dim=dim)
    others = tuple(d for d in range(w.dim()) if d != dim % w.dim())
    assert torch.equal(ours.all(dim=others), ours.any(dim=others))  # whole slices
    assert int(ours.sum()) == int(module.w_mask.sum())


@given(w=tensors(), data=st.data())
def test_custom_from_mask(w: torch.Tensor, data: st.DataObject) -> None:
    generator = torch.Generator().manual_seed(data.draw(st.integers(0, 999)))
    mask = torch.rand(w.shape, generator=generator) > 0.4
    ours = fp.custom_from_mask({"w": mask.float()})({"w": w})["w"]
    module = torch_module({"w": w})
    torch_prune.custom_from_mask(module, "w", mask=mask.float())
    assert torch.equal(ours, module.w_mask.bool())


@st.composite
def _pruned_dicts(draw: st.DrawFn) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    count = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    params = {f"p{i}": draw(tensors(max_dims=3, dtypes=(dtype,))) for i in range(count)}
    generator = torch.Generator().manual_seed(draw(st.integers(0, 999)))
    prior = {
        key: torch.rand(p.shape, generator=generator) > 0.3
        for key, p in params.items()
        if draw(st.booleans())
    }
    return params, prior


@given(state=_pruned_dicts(), data=st.data())
def test_global_unstructured(
    state: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]], data: st.DataObject
) -> None:
    params, prior = state
    use_scores = data.draw(st.booleans())
    scores = {k: data.draw(tensors_like(p)) for k, p in params.items()} if use_scores else {}
    remaining = sum(int(prior[k].sum()) if k in prior else p.numel() for k, p in params.items())
    amount = data.draw(amounts(remaining))
    ours = fp.global_unstructured(amount)(params, prior, importance_scores=scores)

    module = torch_module(params)
    for key, mask in prior.items():
        torch_prune.custom_from_mask(module, key, mask=mask)
    torch_prune.global_unstructured(
        [(module, k) for k in params],
        pruning_method=torch_prune.L1Unstructured,
        importance_scores={(module, k): s for k, s in scores.items()},
        amount=amount,
    )
    theirs = torch_masks(module, list(params))
    sources = [scores.get(k, p).abs() for k, p in params.items()]
    eligible = [prior.get(k) for k in params]
    k = count_of(amount, remaining)
    expected = reference_keep(sources, eligible, k)
    flat_scores = (
        torch.cat([s.reshape(-1).double() for s in sources]) if sources else torch.zeros(0)
    )
    flat_ok = torch.cat(
        [
            torch.ones(s.numel(), dtype=torch.bool) if e is None else e.reshape(-1)
            for s, e in zip(sources, eligible, strict=True)
        ]
    )
    untied = threshold_untied(flat_scores, flat_ok, k)
    for key, want in zip(params, expected, strict=True):
        assert torch.equal(ours[key], want)
        if untied:
            assert torch.equal(ours[key], theirs[key])
    assert sum(int(m.sum()) for m in ours.values()) == sum(int(m.sum()) for m in theirs.values())


_AMOUNTS = st.one_of(st.floats(0.0, 1.0), st.integers(0, 3))
# No -inf norm here: after a prune, every slice with a pruned entry has min-norm 0, a tie at the
# threshold where torch.topk and the documented tie-break may differ (test_ln_structured covers it).
_STEPS = st.one_of(
    st.tuples(st.just("l1"), _AMOUNTS),
    st.tuples(
        st.just("ln"),
        _AMOUNTS,
        st.sampled_from([1, 2, 0.5, math.inf]),
        st.integers(-2, 1),
    ),
    st.tuples(st.just("custom"), st.integers(0, 999)),
)


def _both(
    step: tuple[Any, ...], shape: torch.Size
) -> tuple[fp.PruningMethod, Callable[[nn.Module], object]]:
    """The funcprune method and the torch call for one pruning step."""
    if step[0] == "l1":
        return fp.l1_unstructured(step[1]), lambda m: torch_prune.l1_unstructured(
            m, "w", amount=step[1]
        )
    if step[0] == "ln":
        _, amount, n, dim = step
        return fp.ln_structured(amount, n=n, dim=dim), lambda m: torch_prune.ln_structured(
            m, "w", amount=amount, n=n, dim=dim
        )
    mask = torch.rand(shape, generator=torch.Generator().manual_seed(step[1])) > 0.3
    return fp.custom_from_mask({"w": mask}), lambda m: torch_prune.custom_from_mask(
        m, "w", mask=mask
    )


@given(
    w=tensors(min_dims=2, min_side=1, max_side=4, ties=False), steps=st.lists(_STEPS, max_size=4)
)
def test_chain_matches_repeated_torch_pruning(
    w: torch.Tensor, steps: list[tuple[Any, ...]]
) -> None:
    """torch's PruningContainer: each prune acts on the survivors of the previous ones; a count
    larger than what remains is a ValueError at the same step."""
    module = torch_module({"w": w})
    methods: list[fp.PruningMethod] = []
    for step in steps:
        method, torch_call = _both(step, w.shape)
        methods.append(method)
        try:
            torch_call(module)
        except ValueError:
            with pytest.raises(ValueError, match=r"only .* remain unpruned"):
                fp.chain(*methods)({"w": w})
            return
    ours = fp.chain(*methods)({"w": w})["w"]
    assert torch.equal(ours, torch_masks(module, ["w"])["w"])
