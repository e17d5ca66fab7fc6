"""Run a function on N local gloo processes (spawned), and hypothesis settings for inside them.

Every rank draws the same hypothesis examples (derandomized, generate phase only, no database),
so collectives line up; every rank computes the single-process reference itself on full tensors.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import HealthCheck, Phase, settings

IN_WORKER = settings(
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def _entry(
    rank: int, world: int, store: str, fn: Callable[..., None], args: tuple[Any, ...]
) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{store}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        fn(*args)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def spawn(world: int, fn: Callable[..., None], *args: Any) -> None:
    """Run ``fn(*args)`` on ``world`` gloo ranks; a failure on any rank fails the caller."""
    with tempfile.TemporaryDirectory() as folder:
        store = os.path.join(folder, "store")
        mp.spawn(_entry, args=(world, store, fn, args), nprocs=world, join=True)
