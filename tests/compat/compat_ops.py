"""The differential harness: operation sequences run through torch.nn.utils.prune and funcprune.compat.

An operation is a small frozen value; :func:`run` performs it on a model with either library (the
same global seed before every operation), :func:`snapshot` records everything observable about a
model (parameters, buffers, state dict, plain pruned attributes, hooks, flat RNN weights) and
:func:`assert_same` compares two snapshots bit for bit.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor, nn

MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "linear": (lambda: nn.Linear(3, 4), (2, 3)),
    "conv": (lambda: nn.Conv2d(2, 3, 2), (1, 2, 3, 3)),
    "lstm": (lambda: nn.LSTM(3, 2), (2, 1, 3)),
}
VECTOR_NORMS: list[Any] = [1, 2, 3, 0, -1, 0.5, math.inf, -math.inf]
PRUNE_KINDS = [
    "every_other",
    "identity",
    "random_unstructured",
    "l1_unstructured",
    "random_structured",
    "ln_structured",
    "custom_from_mask",
]


@dataclass(frozen=True)
class Prune:
    """``prune.<kind>(model, name, ...)``; ``extra`` holds the keyword arguments."""

    kind: str
    name: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Global:
    """``prune.global_unstructured`` over ``names`` with ``L1Unstructured`` or ``RandomUnstructured``."""

    method: str
    names: tuple[str, ...]
    amount: Any
    scores: dict[str, Tensor] | None = None


@dataclass(frozen=True)
class Remove:
    name: str


@dataclass(frozen=True)
class Forward:
    pass


@dataclass(frozen=True)
class Step:
    """One SGD step on ``model(x).sum()``."""


@dataclass(frozen=True)
class Reload:
    """``torch.save`` the state dict and load it back into the model."""


Op = Prune | Global | Remove | Forward | Step | Reload


def _outputs(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value.detach()]
    return [t for item in value for t in _outputs(item)]


_CUSTOM: dict[str, type] = {}


def every_other(prune: ModuleType) -> type:
    """A user method (the seed paper's): prune every other remaining entry, then ``amount`` more."""
    if prune.__name__ not in _CUSTOM:

        class EveryOther(prune.BasePruningMethod):  # type: ignore[misc, name-defined]
            PRUNING_TYPE = "unstructured"

            def __init__(self, amount: Any = 0) -> None:
                self.amount = amount

            def compute_mask(self, t: Tensor, default_mask: Tensor) -> Tensor:
                mask = default_mask.clone()
                mask.view(-1)[:: 2 + self.amount] = 0
                return mask

        _CUSTOM[prune.__name__] = EveryOther
    return _CUSTOM[prune.__name__]


def run(prune: ModuleType, model: nn.Module, op: Op, x: Tensor) -> list[Tensor]:
    """Perform ``op`` on ``model`` with ``prune`` (torch's module or funcprune.compat)."""
    if isinstance(op, Prune) and op.kind == "every_other":
        every_other(prune).apply(model, op.name, **op.extra)
    elif isinstance(op, Prune):
        getattr(prune, op.kind)(model, op.name, **op.extra)
    elif isinstance(op, Global):
        methods = {"l1": prune.L1Unstructured, "random": prune.RandomUnstructured}
        method = methods.get(op.method) or every_other(prune)
        scores = None if op.scores is None else {(model, k): v for k, v in op.scores.items()}
        pairs = [(model, name) for name in op.names]
        prune.global_unstructured(pairs, method, importance_scores=scores, amount=op.amount)
    elif isinstance(op, Remove):
        prune.remove(model, op.name)
    elif isinstance(op, Forward):
        return _outputs(model(x))
    elif isinstance(op, Reload):
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        buffer.seek(0)
        model.load_state_dict(torch.load(buffer))
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        optimizer.zero_grad()
        sum(t.sum() for t in _outputs_with_grad(model(x))).backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        optimizer.step()
        return grads
    return []


def _outputs_with_grad(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    return [t for item in value for t in _outputs_with_grad(item)]


def _hook(hook: Any) -> tuple[Any, ...]:
    children = tuple(type(m).__name__ for m in hook) if hasattr(hook, "_pruning_methods") else ()
    return (type(hook).__name__, hook._tensor_name, children)


def snapshot(model: nn.Module) -> dict[str, list[tuple[str, Any]]]:
    """Everything observable about ``model``, as ordered ``(name, value)`` lists."""
    attrs = [
        (name, getattr(model, name))
        for name in sorted(vars(model))
        if isinstance(vars(model)[name], Tensor)
    ]
    flat = getattr(model, "_flat_weights", [])
    return {
        "parameters": [(k, (v, v.requires_grad)) for k, v in model.named_parameters()],
        "buffers": list(model.named_buffers()),
        "state_dict": list(model.state_dict().items()),
        "attributes": [(k, (v, v.requires_grad, v.is_leaf)) for k, v in attrs],
        "flat_weights": [(str(i), w) for i, w in enumerate(flat)],
        "hooks": [(h._tensor_name, _hook(h)) for h in model._forward_pre_hooks.values()],
    }


def same_value(a: Any, b: Any) -> bool:
    """Tensors: same dtype, shape and bits (NaN equal to NaN); tuples elementwise; else ``==``."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return (
            isinstance(a, Tensor)
            and isinstance(b, Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(torch.nan_to_num(a.detach()), torch.nan_to_num(b.detach()))
            and torch.equal(torch.isnan(a.detach()), torch.isnan(b.detach()))
        )
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def assert_same(
    theirs: dict[str, list[tuple[str, Any]]],
    ours: dict[str, list[tuple[str, Any]]],
    *,
    ordered: bool,
) -> None:
    """Same names (in the same order when ``ordered``) and the same values under every heading."""
    for heading, items in theirs.items():
        mine = ours[heading]
        left, right = (
            (items, mine) if ordered else (sorted(items, key=_name), sorted(mine, key=_name))
        )
        assert [k for k, _ in left] == [k for k, _ in right], (heading, left, right)
        for (key, a), (_, b) in zip(left, right, strict=True):
            assert same_value(a, b), (heading, key, a, b)


def _name(item: tuple[str, Any]) -> str:
    return item[0]


# ---- strategies ---------------------------------------------------------------------------------


@st.composite
def values(
    draw: st.DrawFn,
    shape: tuple[int, ...],
    tied: bool | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """A float tensor of ``shape``: continuous, or small integers (many ties)."""
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    tied = draw(st.booleans()) if tied is None else tied
    if tied:
        return torch.randint(-2, 3, shape, generator=generator).to(dtype)
    return torch.randn(shape, generator=generator, dtype=dtype)


@st.composite
def amounts(draw: st.DrawFn, units: int) -> Any:
    """Mostly valid fractions and counts; 1 in 10 a count up to 2 too large or an invalid amount."""
    pick = draw(st.integers(0, 19))
    if pick == 0:
        return draw(st.sampled_from([-1, 1.5, "0.5", torch.tensor(0.5)]))
    if pick == 1:
        return draw(st.integers(0, units + 2))
    return draw(st.floats(0.0, 1.0) if pick % 2 else st.integers(0, units))


@st.composite
def prune_ops(draw: st.DrawFn, shapes: dict[str, tuple[int, ...]]) -> Prune:
    kind = draw(st.sampled_from(PRUNE_KINDS))
    slices = [k for k, s in shapes.items() if len(s) > 1]
    structured = kind in ("random_structured", "ln_structured") and draw(st.integers(0, 4)) > 0
    pick = draw(st.integers(0, 30))
    name = "missing" if pick == 0 else draw(st.sampled_from(slices if structured else list(shapes)))
    shape = shapes.get(name, (2,))
    units = math.prod(shape)
    extra: dict[str, Any] = {}
    if kind == "every_other":
        extra["amount"] = draw(st.integers(0, 2))
    elif kind != "identity" and kind != "custom_from_mask":
        extra["amount"] = draw(amounts(units if kind.endswith("unstructured") else max(shape)))
    if kind in ("random_structured", "ln_structured"):
        extra["dim"] = draw(
            st.integers(-3, 2) if draw(st.integers(0, 9)) == 0 else st.integers(-2, 1)
        )
    if kind == "ln_structured":
        matrix = draw(st.integers(0, 9)) == 0
        extra["n"] = draw(st.sampled_from(["fro", "nuc"] if matrix else VECTOR_NORMS))
    if kind in ("l1_unstructured", "ln_structured") and draw(st.booleans()):
        wrong = draw(st.integers(0, 10)) == 0
        dtype = draw(st.sampled_from([torch.float32, torch.float32, torch.float64]))
        extra["importance_scores"] = draw(values((*shape, 1) if wrong else shape, dtype=dtype))
    if kind == "custom_from_mask":
        binary = (draw(values(shape, tied=True)) > 0).to(
            draw(st.sampled_from([torch.float32, torch.bool, torch.int64]))
        )
        extra["mask"] = binary * 2 if draw(st.integers(0, 10)) == 0 else binary
    return Prune(kind, name, extra)


@st.composite
def global_ops(draw: st.DrawFn, shapes: dict[str, tuple[int, ...]]) -> Global:
    names = tuple(draw(st.lists(st.sampled_from(list(shapes)), unique=True, max_size=len(shapes))))
    total = sum(math.prod(shapes[n]) for n in names)
    method = draw(st.sampled_from(["l1", "random", "every_other"]))
    scores = None
    if method == "l1" and draw(st.booleans()):
        scores = {n: draw(values(shapes[n])) for n in names if draw(st.booleans())}
    amount = draw(st.integers(0, 2) if method == "every_other" else amounts(total))
    return Global(method, names, amount, scores)


@st.composite
def operations(draw: st.DrawFn, shapes: dict[str, tuple[int, ...]]) -> list[Op]:
    """1 to 6 operations: prunes 6 in 11, then global, remove, forward, SGD step, reload."""
    ops: list[Op] = []
    for _ in range(draw(st.integers(1, 6))):
        pick = draw(st.integers(0, 10))
        if pick < 6:
            ops.append(draw(prune_ops(shapes)))
        elif pick == 6:
            ops.append(draw(global_ops(shapes)))
        elif pick == 7:
            ops.append(Remove(draw(st.sampled_from(list(shapes)))))
        else:
            ops.append([Forward(), Step(), Reload()][pick - 8])
    return ops


__all__ = [
    "MODELS",
    "Forward",
    "Global",
    "Op",
    "Prune",
    "Reload",
    "Remove",
    "Step",
    "assert_same",
    "operations",
    "run",
    "same_value",
    "snapshot",
    "values",
]
