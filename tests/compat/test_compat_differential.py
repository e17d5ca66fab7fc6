"""The differential harness: random operation sequences through torch.nn.utils.prune and
funcprune.compat from the same seeds must leave identical models, outputs and error types."""

from __future__ import annotations

import copy

import pytest
import torch
from compat_ops import (
    MODELS,
    Global,
    Prune,
    assert_same,
    operations,
    run,
    same_value,
    snapshot,
    values,
)
from hypothesis import event, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune as torch_prune

import funcprune.compat as compat


def _attempt(
    prune: object, model: nn.Module, op: object, x: torch.Tensor, seed: int
) -> tuple[type | None, list[torch.Tensor]]:
    """The error type (or ``None``) and the outputs, which end with the global RNG's state."""
    torch.manual_seed(seed)
    try:
        outputs = run(prune, model, op, x)  # type: ignore[arg-type]
    except Exception as error:
        return type(error), [torch.random.get_rng_state()]
    return None, [*outputs, torch.random.get_rng_state()]


def _extends_a_container(model: nn.Module, op: object) -> bool:
    """torch drops the tensor's hook when a repeated prune fails; compat keeps it (a fix)."""
    return isinstance(op, Prune) and hasattr(model, op.name + "_mask")


@settings(max_examples=200)
@given(model_name=st.sampled_from(sorted(MODELS)), tied=st.booleans(), data=st.data())
def test_sequences_match_torch(model_name: str, tied: bool, data: st.DataObject) -> None:
    factory, input_shape = MODELS[model_name]
    torch.manual_seed(data.draw(st.integers(0, 2**16), label="model seed"))
    base = factory()
    if tied:
        with torch.no_grad():
            for p in base.parameters():
                p.copy_(torch.randint(-2, 3, p.shape))
    shapes = {k: tuple(p.shape) for k, p in base.named_parameters()}
    ops = data.draw(operations(shapes), label="operations")
    x = data.draw(values(input_shape), label="input")
    theirs, ours = copy.deepcopy(base), copy.deepcopy(base)
    for index, op in enumerate(ops):
        container = _extends_a_container(theirs, op)
        their_error, their_out = _attempt(torch_prune, theirs, op, x, index)
        our_error, our_out = _attempt(compat, ours, op, x, index)
        event(f"{type(op).__name__}{'/' + op.kind if isinstance(op, Prune) else ''}")
        event(f"error: {their_error.__name__ if their_error else None}")
        if their_error:
            event(f"error from {type(op).__name__}{'/' + op.kind if isinstance(op, Prune) else ''}")
        assert our_error is their_error, (op, their_error, our_error)
        assert len(our_out) == len(their_out)
        assert all(same_value(a, b) for a, b in zip(their_out, our_out, strict=True)), op
        if their_error is None:
            assert_same(snapshot(theirs), snapshot(ours), ordered=True)
            continue
        if not container:  # torch's rollback re-registers the parameter last; compat keeps order
            assert_same(snapshot(theirs), snapshot(ours), ordered=False)
        return


def test_harness_sees_differences() -> None:
    """The comparison is not vacuous: a different amount or a dropped hook is caught."""
    a, b = nn.Linear(3, 4), nn.Linear(3, 4)
    b.load_state_dict(a.state_dict())
    torch_prune.l1_unstructured(a, "weight", amount=2)
    compat.l1_unstructured(b, "weight", amount=3)
    with pytest.raises(AssertionError):  # a different mask
        assert_same(snapshot(a), snapshot(b), ordered=True)
    c = copy.deepcopy(base := nn.Linear(3, 4))
    compat.identity(c, "bias")
    d = copy.deepcopy(base)
    torch_prune.identity(d, "bias")
    d._forward_pre_hooks.clear()
    with pytest.raises(AssertionError):  # a missing hook
        assert_same(snapshot(d), snapshot(c), ordered=True)


def test_global_with_every_model_parameter_and_scores() -> None:
    """A fixed global case with importance scores of another dtype, on all LSTM weights."""
    torch.manual_seed(0)
    base = nn.LSTM(3, 2)
    models = copy.deepcopy(base), copy.deepcopy(base)
    scores = {k: torch.randn(p.shape, dtype=torch.float64) for k, p in base.named_parameters()}
    op = Global("l1", tuple(scores), 0.6, scores)
    x = torch.randn(2, 1, 3)
    for prune, model in zip((torch_prune, compat), models, strict=True):
        torch.manual_seed(1)
        run(prune, model, op, x)
    assert_same(snapshot(models[0]), snapshot(models[1]), ordered=True)


@pytest.mark.parametrize("shape", [(3, 2, 3, 3), (4, 5, 2, 2), (2, 3, 4), (6, 2, 2, 2, 2)])
@pytest.mark.parametrize("amount", [0, 1, 2, 0.5, 0.9])
def test_nuclear_norm_over_three_or_more_dims_matches_torch(
    shape: tuple[int, ...], amount: float
) -> None:
    """Since torch 2.14, 'nuc' over 3+ dims is a matrix norm per leading index: torch keeps the
    slices its top-k indices name, or raises when k exceeds the last dim; compat does the same."""
    for dim in range(-len(shape), len(shape)):
        outcomes = []
        for prune in (torch_prune, compat):
            torch.manual_seed(0)
            holder = nn.Module()
            holder.weight = nn.Parameter(torch.randn(shape))
            try:
                prune.ln_structured(holder, "weight", amount=amount, n="nuc", dim=dim)  # type: ignore[attr-defined]
            except Exception as error:
                outcomes.append((type(error), None))
            else:
                outcomes.append((None, holder.weight_mask))
        (torch_error, torch_mask), (our_error, our_mask) = outcomes
        assert torch_error is our_error, (dim, torch_error, our_error)
        assert torch_mask is None or torch.equal(torch_mask, our_mask)
