"""Random selection made chunk by chunk from flat positions against the full up-front random keys."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from funcprune._select import prune_smallest, prune_smallest_random, random_keys
from funcprune._select.random import random_keys_at, random_keys_into


def _up_front(
    seed: int, params: dict[str, Tensor], eligible: list[Tensor | None], k: Tensor
) -> list[Tensor]:
    """The reference: every parameter's keys made in full, then one selection."""
    keys = [
        random_keys(seed, key, p.numel(), p.device).reshape(p.shape) for key, p in params.items()
    ]
    return prune_smallest(keys, eligible, k)


def _layouts() -> dict[str, dict[str, Tensor]]:
    """Parameters the position keys must tell apart by address (or hand over to the reference)."""
    g = torch.Generator().manual_seed(0)
    shared = torch.randn(150_000, generator=g)
    matrix = torch.randn(300, 400, generator=g)
    return {
        "several": {
            "a": torch.randn(200, 350, generator=g),
            "b": torch.randn(70_001),
            "c": torch.randn(1, 1),
            "e": torch.zeros(0, 4),
        },
        "transposed": {"t": matrix.t(), "u": torch.randn(5, 20_000, generator=g)},
        "one storage": {"v": shared[:60_000].view(300, 200), "w": shared[60_000:]},
        "tied": {"x": matrix, "y": matrix},
        "overlapping": {"p": shared[:100_000], "q": shared[50_000:]},
        "small": {"s": torch.randn(50, generator=g)},
    }


@pytest.mark.parametrize("layout", list(_layouts()))
@pytest.mark.parametrize("fraction", [0.0, 0.013, 0.5, 0.999, 1.0])
def test_masks_equal_up_front_keys(layout: str, fraction: float) -> None:
    params = _layouts()[layout]
    g = torch.Generator().manual_seed(1)
    eligible = [
        None if i % 2 else torch.rand(p.shape, generator=g) > 0.3
        for i, p in enumerate(params.values())
    ]
    total = sum(
        p.numel() if ok is None else int(ok.sum())
        for p, ok in zip(params.values(), eligible, strict=True)
    )
    k = torch.tensor(int(total * fraction))
    got = prune_smallest_random(7, params, eligible, k)
    want = _up_front(7, params, eligible, k)
    assert [m.shape for m in got] == [p.shape for p in params.values()]
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


@pytest.mark.parametrize("layout", ["several", "one storage", "tied"])
def test_vmap_over_counts_equals_up_front_keys(layout: str) -> None:
    params = _layouts()[layout]
    n = sum(p.numel() for p in params.values())
    counts = torch.tensor([n // 9, n // 2, n - 1])
    none: list[Tensor | None] = [None] * len(params)
    got = torch.vmap(lambda k: prune_smallest_random(2, params, none, k))(counts)
    want = torch.vmap(lambda k: _up_front(2, params, none, k))(counts)
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def test_keys_into_equal_keys_at_and_overwrite_only_their_buffers() -> None:
    positions = torch.tensor([0, 5, 2**40, 3])
    spare = torch.full((4,), -1, dtype=torch.int64)
    keys = random_keys_into(3, "layer.weight", positions.clone(), spare)
    assert keys.dtype == torch.int32 and keys.data_ptr() == spare.data_ptr()
    assert torch.equal(keys, random_keys_at(3, "layer.weight", positions))
