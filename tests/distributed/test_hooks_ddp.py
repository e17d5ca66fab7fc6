"""docs/index.md's DDP problem, checked on two gloo processes.

Each rank seeds its global RNG differently (nothing in DDP makes them agree). torch's random
pruning then draws a different mask on each rank, and whether DDP replaces them with rank 0's
depends on whether the module had buffers when it was wrapped; funcprune's random masks are the
same on every rank without any communication.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from dist_harness import spawn
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.nn.utils import prune

import funcprune as fp

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo"
)
WORLD = 2


def _same_on_every_rank(t: torch.Tensor) -> bool:
    gathered = [torch.empty_like(t) for _ in range(WORLD)]
    dist.all_gather(gathered, t.contiguous())
    return all(torch.equal(gathered[0], other) for other in gathered[1:])


def _pruned_after_wrapping(model: nn.Module, layer: nn.Module, rank: int) -> torch.Tensor:
    """torch's random mask of ``layer.weight``, drawn on each rank after DDP wrapped ``model``."""
    wrapped = DistributedDataParallel(model)
    torch.manual_seed(100 + rank)  # each process's own RNG state
    prune.random_unstructured(layer, "weight", amount=0.5)  # type: ignore[no-untyped-call]
    wrapped(torch.randn(4, 8))  # DDP syncs what it syncs before the forward
    mask: torch.Tensor = layer.get_buffer("weight_mask")
    return mask


def _check() -> None:
    rank = dist.get_rank()
    torch.manual_seed(0)  # the same initial weights on every rank
    plain = nn.Linear(8, 8)
    with_buffers = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8))
    params = {k: v.detach().clone() for k, v in plain.named_parameters()}

    # no buffers at wrap time: every rank keeps the mask it drew
    assert not _same_on_every_rank(_pruned_after_wrapping(plain, plain, rank))
    # a BatchNorm at wrap time: DDP broadcasts rank 0's buffers, the mask among them
    assert _same_on_every_rank(_pruned_after_wrapping(with_buffers, with_buffers[0], rank))

    torch.manual_seed(100 + rank)
    masks = fp.random_unstructured(0.5, seed=0)(params)
    assert all(_same_on_every_rank(m) for m in masks.values())


def test_random_masks_across_ddp_ranks() -> None:
    spawn(WORLD, _check)
