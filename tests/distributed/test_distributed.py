"""Every method on DTensor parameters equals one process on the full tensors (2 and 4 gloo ranks).

The ranks are spawned once per world size; inside them hypothesis draws shapes (uneven shards
included), dtypes, values with and without ties, placements (``Replicate()``/``Shard(d)``),
incoming masks, importance scores and methods with their amounts (see ``dist_cases``).
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch.distributed.tensor")

import torch.distributed as dist
from dist_cases import methods_match
from dist_harness import spawn

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo"
)


@pytest.mark.parametrize(("world", "examples"), [(2, 120), (4, 60)])
def test_methods_match_one_process(world: int, examples: int) -> None:
    spawn(world, methods_match, world, examples)
