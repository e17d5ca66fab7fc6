"""Where a DTensor's local shard sits in its global tensor, and which rank counts it.

A supported DTensor lives on one device mesh with placements ``Shard(d)`` (torch.chunk-style
splits, uneven ones included) or ``Replicate()``; its local shard is then a box of the global
tensor at ``offset`` with ``local_shape``. Of the ranks holding the same box (replicas along
``Replicate`` mesh dims), only the one at coordinate 0 of those mesh dims is its **owner**: only
owners contribute to counts and histograms, so every global entry is counted exactly once.

>>> chunk_sizes(5, 4)
[2, 2, 1, 0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import DTensor, Placement, Replicate, Shard
from torch.distributed.tensor._utils import compute_local_shape_and_global_offset


@dataclass(frozen=True)
class Layout:
    """The placement of one DTensor: mesh, placements, global shape and this rank's box."""

    mesh: DeviceMesh
    placements: tuple[Placement, ...]
    shape: torch.Size
    local_shape: tuple[int, ...]
    offset: tuple[int, ...]
    owner: bool

    @property
    def sharded_dims(self) -> list[tuple[int, int]]:
        """``(mesh dim, tensor dim)`` for every ``Shard`` placement."""
        return [
            (mesh_dim, p.dim) for mesh_dim, p in enumerate(self.placements) if isinstance(p, Shard)
        ]

    def box(self) -> tuple[slice, ...]:
        """Index of this rank's shard in the global tensor."""
        return tuple(slice(o, o + n) for o, n in zip(self.offset, self.local_shape, strict=True))

    def wrap(self, local: Tensor) -> DTensor:
        """``local`` (of ``local_shape``) as a DTensor placed like this layout."""
        return DTensor.from_local(
            local,
            self.mesh,
            self.placements,
            run_check=False,
            shape=self.shape,
            stride=_contiguous_strides(self.shape),
        )


def _contiguous_strides(shape: torch.Size) -> tuple[int, ...]:
    strides = [1] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        strides[d] = strides[d + 1] * shape[d + 1]
    return tuple(strides)


def layout_of(key: str, tensor: DTensor) -> Layout:
    """The layout of ``tensor`` (the DTensor at ``key``); raises for unsupported placements."""
    bad = [p for p in tensor.placements if not (type(p) is Shard or isinstance(p, Replicate))]
    if bad:
        raise ValueError(
            f"{key!r}: placements {tuple(tensor.placements)} are not supported; funcprune prunes "
            "DTensors placed with Shard(dim) and Replicate() only (redistribute Partial and "
            "strided shards first, e.g. tensor.redistribute(placements=[Shard(0)]))"
        )
    mesh = tensor.device_mesh
    local_shape, offset = compute_local_shape_and_global_offset(
        tensor.shape, mesh, tensor.placements
    )
    coordinate = mesh.get_coordinate()
    if coordinate is None:
        raise ValueError(f"{key!r}: this rank is not in the parameter's device mesh {mesh}")
    owner = all(
        c == 0
        for c, p in zip(coordinate, tensor.placements, strict=True)
        if isinstance(p, Replicate)
    )
    return Layout(mesh, tuple(tensor.placements), tensor.shape, local_shape, offset, owner)


def mesh_group(mesh: DeviceMesh) -> dist.ProcessGroup | None:
    """The process group spanning ``mesh`` (``None`` is the default group)."""
    if mesh.ndim == 1:
        return mesh.get_group()
    if mesh.size() == dist.get_world_size():
        return None
    raise ValueError(
        f"a {mesh.ndim}-d device mesh over {mesh.size()} of {dist.get_world_size()} ranks is not "
        "supported; use a 1-d mesh or a mesh over all ranks"
    )


def global_flat_index(layout: Layout, positions: Tensor) -> Tensor:
    """Flat indices in the global tensor of the local flat ``positions`` (int64)."""
    index = torch.zeros_like(positions)
    rest = positions
    stride = 1
    for d in range(len(layout.shape) - 1, -1, -1):
        size = layout.local_shape[d]
        index = index + (rest % size + layout.offset[d]) * stride
        rest = rest // size
        stride *= layout.shape[d]
    return index


def local_flat_indices(layout: Layout, device: torch.device) -> Tensor:
    """Global flat indices of every local entry, in local flat order (int64)."""
    count = math.prod(layout.local_shape)
    return global_flat_index(layout, torch.arange(count, dtype=torch.int64, device=device))


def chunk_sizes(size: int, parts: int) -> list[int]:
    """Sizes of ``torch.chunk(size, parts)``-style splits, padded with empty ones to ``parts``."""
    step = -(-size // parts) if size else 0
    return [max(0, min(step, size - i * step)) for i in range(parts)]


__all__ = [
    "Layout",
    "chunk_sizes",
    "global_flat_index",
    "layout_of",
    "local_flat_indices",
    "mesh_group",
]
