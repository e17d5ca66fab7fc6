"""Checks that ranks agree: :func:`check_masks_agree` compares a hash of every mask across ranks.

Under DDP every rank holds the full masks; they must be equal or the replicas drift apart. The
funcprune methods agree by construction (no global RNG: random methods hash the seed, key and
index), but masks loaded, edited or computed from rank-local data may not.

>>> import torch, funcprune.distributed as fpd
>>> fpd.check_masks_agree({"w": torch.tensor([True, False])})  # a single process agrees
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.distributed as dist
from torch import Tensor

from funcprune._select.random import key_hash, random_keys_at
from funcprune.distributed._detect import any_dtensor

_MASK63 = (1 << 63) - 1
_CHUNK = 1 << 22
"""Entries hashed per step, so the index hashes of a huge mask never exist all at once."""


def _fingerprint(key: str, mask: Tensor) -> list[int]:
    """``[hash(key), numel, kept, sum of the kept entries' index hashes]`` (int64, wrapping)."""
    flat = mask.reshape(-1)
    total = 0
    for start in range(0, flat.numel(), _CHUNK):
        part = flat[start : start + _CHUNK]
        index = torch.arange(start, start + part.numel(), device=flat.device)
        total += int(random_keys_at(0, key, index[part]).to(torch.int64).sum())
    return [key_hash(key) & _MASK63, flat.numel(), int(flat.count_nonzero()), total & _MASK63]


def _spread(values: Tensor, group: dist.ProcessGroup | None) -> tuple[Tensor, Tensor]:
    """Elementwise min and max of int64 ``values`` over the ranks, in one ``all_reduce``."""
    both = torch.cat([values, -values]).to(torch.int64)
    dist.all_reduce(both, op=dist.ReduceOp.MIN, group=group)
    low, negated_high = both.chunk(2)
    return low, -negated_high


def check_masks_agree(masks: Mapping[str, Tensor], group: dist.ProcessGroup | None = None) -> None:
    """Raise ``ValueError`` naming the keys whose masks differ between ranks of ``group``.

    Each rank hashes its masks (per key: the key, size, number kept and a sum of per-index hashes
    of the kept entries) and one ``all_reduce`` (min and max at once) of those few integers per key
    compare them (one ``all_reduce`` of two integers first checks the number and names of the
    keys); nothing else crosses the wire. Every rank must call it with the same keys in
    the same order (a difference is reported too). Without an initialised process group there is
    a single rank, which agrees with itself.

    Args:
        masks: bool masks, full (not DTensor) tensors, as DDP replicas hold them.
        group: the process group to compare across (default: the whole world).

    Raises:
        TypeError: a mask that is not a bool tensor, or a DTensor (whose shards differ by design).
        ValueError: masks that differ between ranks, naming the keys.

    >>> import torch, funcprune.distributed as fpd
    >>> fpd.check_masks_agree({"w": torch.ones(3, dtype=torch.bool)})
    """
    if not isinstance(masks, Mapping):
        raise TypeError(
            f"masks must be a mapping from names to bool tensors; got {type(masks).__name__}"
        )
    bad = sorted(
        str(k) for k, m in masks.items() if not (isinstance(m, Tensor) and m.dtype == torch.bool)
    )
    if bad:
        raise TypeError(f"masks must be bool tensors; not at keys {bad}")
    if any_dtensor(masks.values()):
        raise TypeError(
            "check_masks_agree compares full masks (DDP replicas); DTensor masks hold a different "
            "shard on each rank by design: compare mask.full_tensor() if you need to"
        )
    if not (dist.is_available() and dist.is_initialized()):
        return
    device = next(iter(masks.values())).device if masks else torch.device("cpu")
    if dist.get_backend(group) == "nccl":  # NCCL reduces CUDA tensors only
        device = torch.device("cuda", torch.cuda.current_device())
    names = key_hash("\n".join(masks)) & _MASK63
    low, high = _spread(torch.tensor([[len(masks), names]], device=device), group)
    if bool(low[0, 0] != high[0, 0]):
        raise ValueError(
            f"ranks hold different numbers of masks (this rank: {len(masks)}); every rank must "
            "pass the same keys"
        )
    if bool(low[0, 1] != high[0, 1]):
        raise ValueError(
            f"ranks hold masks under different keys or in a different order (this rank: "
            f"{list(masks)}); every rank must pass the same keys in the same order"
        )
    if not masks:
        return
    low, high = _spread(
        torch.tensor([_fingerprint(k, m) for k, m in masks.items()], device=device), group
    )
    differ = (low != high).any(dim=1).tolist()
    disagreeing = [key for key, bad in zip(masks, differ, strict=True) if bad]
    if disagreeing:
        raise ValueError(
            f"masks differ between ranks at keys {disagreeing}; prune with the same method, seed "
            "and parameters on every rank, or broadcast rank 0's masks (torch.distributed.broadcast)"
        )


__all__ = ["check_masks_agree"]
