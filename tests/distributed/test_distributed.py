"""DTensor methods, FSDP2 training and DDP checks against one process, on 2 and 4 gloo ranks.

The ranks are spawned once per world size (spawning dominates the cost). Inside them hypothesis
draws shapes (uneven shards included), dtypes, values with and without ties, placements
(``Replicate()``/``Shard(d)``), incoming masks, importance scores and methods with their amounts
(see ``dist_cases``); on 2 ranks the FSDP2, pure-optimizer, DDP and limit checks of
``dist_training`` run too.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch.distributed.tensor")

import torch.distributed as dist
from dist_cases import large_tensors_match, methods_match
from dist_harness import spawn
from dist_training import (
    ddp_masks_agree,
    fsdp_trains_like_one_process,
    limits_are_errors,
    pure_optimizers_match,
)

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo"
)


def _two_ranks() -> None:
    methods_match(2, 60)
    large_tensors_match()
    fsdp_trains_like_one_process()
    pure_optimizers_match()
    ddp_masks_agree()
    limits_are_errors()


def test_two_ranks_match_one_process() -> None:
    spawn(2, _two_ranks)


def _four_ranks() -> None:
    methods_match(4, 20)
    methods_match(4, 12, (2, 2))  # HSDP-like 2-d meshes: (Replicate|Shard, Replicate|Shard)


def test_four_ranks_match_one_process() -> None:
    spawn(4, _four_ranks)
