"""Cases run inside the spawned ranks: every method on DTensors vs one process on full tensors.

Each hypothesis example draws parameters (shapes, dtypes, values with or without ties), a
placement per parameter (``Replicate()`` or ``Shard(d)``, uneven splits included), incoming masks,
importance scores and a method with its amount. Every rank builds the same full tensors, runs the
method on them (the single-process reference) and on their DTensors, and checks that the masks
are DTensors placed like their parameters whose full tensors equal the reference bit for bit,
or that both raise the same error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from dist_harness import IN_WORKER
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor
from torch.distributed.tensor import (
    DeviceMesh,
    DTensor,
    Placement,
    Replicate,
    Shard,
    distribute_tensor,
    init_device_mesh,
)

import funcprune as fp

Method = Callable[..., dict[str, Tensor]]


def _values(draw: st.DrawFn, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    if draw(st.booleans()):
        values = torch.randint(-3, 4, shape, generator=generator).to(torch.float64)
    else:
        values = torch.randn(shape, generator=generator, dtype=torch.float64)
    return values.to(dtype)


def _amount(draw: st.DrawFn, units: int) -> float | int:
    return draw(st.one_of(st.floats(0.0, 1.0), st.integers(0, max(units, 0) + 1)))


@st.composite
def _method(draw: st.DrawFn, shapes: dict[str, tuple[int, ...]], depth: int = 0) -> Method:
    """A method valid for (most of) ``shapes``; counts may exceed what remains (an error)."""
    smallest = min(math.prod(s) for s in shapes.values())
    kinds = ["identity", "l1", "random", "global", "ln", "random_structured", "custom"]
    kinds += ["chain", "only", "per_key", "nm"] if depth == 0 else []
    kind = draw(st.sampled_from(kinds))
    if kind == "identity":
        return fp.identity()
    if kind == "l1":
        return fp.l1_unstructured(_amount(draw, smallest))
    if kind == "random":
        return fp.random_unstructured(_amount(draw, smallest), seed=draw(st.integers(0, 3)))
    if kind == "global":
        scores = draw(st.sampled_from(["l1", "random"]))
        total = sum(math.prod(s) for s in shapes.values())
        return fp.global_unstructured(
            _amount(draw, total), scores=scores, seed=draw(st.integers(0, 3))
        )
    if kind in ("ln", "random_structured"):
        ndim = min(len(s) for s in shapes.values())
        dim = draw(st.integers(-ndim, ndim - 1))
        sides = min(s[dim] for s in shapes.values())
        if kind == "ln":
            n = draw(st.sampled_from([1, 2, math.inf, -math.inf, 0.5, "fro"]))
            return fp.ln_structured(_amount(draw, sides), n=n, dim=dim)
        return fp.random_structured(_amount(draw, sides), dim=dim, seed=draw(st.integers(0, 3)))
    if kind == "custom":
        keys = draw(st.lists(st.sampled_from(sorted(shapes)), unique=True))
        return fp.custom_from_mask({k: _values(draw, shapes[k], torch.float32) > 0 for k in keys})
    if kind == "nm":
        m = draw(st.sampled_from([1, 2, 4]))
        dim = draw(st.integers(0, min(len(s) for s in shapes.values()) - 1))
        return fp.nm_semistructured(draw(st.integers(0, m)), m, dim=dim)
    if kind == "chain":
        inner = draw(st.lists(_method(shapes, depth + 1), max_size=3))
        return fp.chain(*inner)
    if kind == "only":
        return fp.only(
            draw(_method(shapes, depth + 1)), include=draw(st.sampled_from(["0", "1|2"]))
        )
    factory = draw(st.sampled_from([fp.l1_unstructured, fp.random_unstructured]))
    keys = draw(st.lists(st.sampled_from(sorted(shapes)), unique=True))
    return fp.per_key(factory, {k: _amount(draw, math.prod(shapes[k])) for k in keys})


@st.composite
def _case(draw: st.DrawFn, world: int, mesh_dims: int) -> dict[str, Any]:
    structured = draw(st.booleans())
    low = 2 if structured else 1
    count = draw(st.integers(1, 3))
    shapes = {
        f"p{i}": tuple(draw(st.lists(st.integers(1, 2 * world + 1), min_size=n, max_size=n)))
        for i, n in enumerate(draw(st.lists(st.integers(low, 3), min_size=count, max_size=count)))
    }
    dtypes = {
        k: draw(st.sampled_from([torch.float32, torch.float32, torch.float64, torch.bfloat16]))
        for k in shapes
    }
    params = {k: _values(draw, s, dtypes[k]) for k, s in shapes.items()}
    placements = {
        k: tuple(
            draw(st.sampled_from([Replicate(), *(Shard(d) for d in range(len(s)))]))
            for _ in range(mesh_dims)
        )
        for k, s in shapes.items()
    }
    masked = draw(st.lists(st.sampled_from(sorted(shapes)), unique=True))
    masks = {k: _values(draw, shapes[k], torch.float32) > -1 for k in masked}
    scored = draw(st.lists(st.sampled_from(sorted(shapes)), unique=True))
    scores = {k: _values(draw, shapes[k], dtypes[k]) for k in scored}
    return {
        "params": params,
        "placements": placements,
        "masks": masks,
        "scores": scores,
        "method": draw(_method(shapes)),
    }


def _outcome(call: Callable[[], dict[str, Tensor]]) -> dict[str, Tensor] | tuple[type, str]:
    try:
        return call()
    except (ValueError, TypeError, KeyError) as error:
        return type(error), str(error)


def _distribute(
    tensors: dict[str, Tensor], mesh: DeviceMesh, placements: dict[str, tuple[Placement, ...]]
) -> dict[str, Tensor]:
    return {k: distribute_tensor(t, mesh, placements[k]) for k, t in tensors.items()}


def check_case(case: dict[str, Any], mesh: DeviceMesh) -> None:
    """Distributed masks equal one process's, placed like their parameters (or the same error)."""
    method = case["method"]
    params, masks, scores = case["params"], case["masks"], case["scores"]
    expected = _outcome(lambda: method(params, masks, importance_scores=scores))
    d_params = _distribute(params, mesh, case["placements"])
    got = _outcome(
        lambda: method(
            d_params,
            _distribute(masks, mesh, case["placements"]),
            importance_scores=_distribute(scores, mesh, case["placements"]),
        )
    )
    if isinstance(got, tuple) and not isinstance(expected, tuple) and _documented(got, case):
        return
    if isinstance(expected, tuple) or isinstance(got, tuple):
        assert got == expected, (method, got, expected)
        return
    assert list(got) == list(expected), (method, list(got), list(expected))
    for key, mask in got.items():
        assert isinstance(mask, DTensor), (method, key, type(mask))
        assert mask.placements == d_params[key].placements, (method, key, mask.placements)  # type: ignore[attr-defined]
        full = mask.full_tensor()
        assert full.dtype == torch.bool and torch.equal(full, expected[key]), (
            method,
            key,
            full,
            expected[key],
        )


def _documented(error: tuple[type, str], case: dict[str, Any]) -> bool:
    """Whether ``error`` is a documented limit that applies to the case (docs/distributed.md)."""
    kind, message = error
    if kind is not ValueError:
        return False
    sharded = [
        [p.dim for p in placements if isinstance(p, Shard)]
        for placements in case["placements"].values()
    ]
    if "split groups of m=" in message:  # N:M groups across a shard boundary
        return any(sharded)
    if "cut them on more than one mesh dim" in message:  # ln_structured on an n-d mesh
        return any(len(dims) > 1 for dims in sharded)
    return False


def methods_match(world: int, examples: int, mesh_shape: tuple[int, ...] | None = None) -> None:
    """Run ``examples`` drawn cases on a mesh of ``world`` ranks (1-d unless ``mesh_shape``)."""
    shape = (world,) if mesh_shape is None else mesh_shape
    mesh = init_device_mesh("cpu", shape)

    @settings(IN_WORKER, max_examples=examples)
    @given(case=_case(world, len(shape)))
    def run(case: dict[str, Any]) -> None:
        check_case(case, mesh)

    run()


def large_tensors_match() -> None:
    """Shards above the local-histogram size (4096 entries), tied and untied, every method kind."""
    world = dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    generator = torch.Generator().manual_seed(7)
    params = {
        "tied": torch.randint(-50, 50, (96, 130), generator=generator).float(),
        "wide": torch.randn(40, 301, generator=generator, dtype=torch.float64),
        "half": torch.randn(257, 33, generator=generator).to(torch.bfloat16),
    }
    masks = {"tied": torch.rand(96, 130, generator=generator) > 0.3}
    for placements in ((Shard(0),), (Shard(1),), (Replicate(),)):
        case_placements = {k: placements for k in params}
        for method in (
            fp.global_unstructured(0.7),
            fp.global_unstructured(0.37, scores="random", seed=5),
            fp.l1_unstructured(0.61),
            fp.random_unstructured(1234),
            fp.ln_structured(0.4, n=2, dim=1),
        ):
            case = {
                "params": params,
                "placements": case_placements,
                "masks": masks,
                "scores": {},
                "method": method,
            }
            check_case(case, mesh)
