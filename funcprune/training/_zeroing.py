"""Zeroing pruned entries in place, at the speed of one same-dtype multiply: ``zero_pruned_``.

A float tensor times a bool mask is several times slower than a float-by-float product, and
converting a whole mask to the tensor's dtype first allocates a tensor as large as the parameter:
on a large model that fresh memory (page faults) costs more than the multiply. So each large tensor
is walked in chunks of :data:`CHUNK` entries, converting one chunk of its mask at a time into a
small scratch buffer that stays in cache. Small tensors are batched into one ``_foreach_mul_``.

>>> import torch
>>> t = torch.tensor([1.0, 2.0, 3.0])
>>> zero_pruned_([t], [torch.tensor([True, False, True])])
>>> t
tensor([1., 0., 3.])
"""

from __future__ import annotations

import torch
from torch import Tensor

CHUNK = 1 << 18
"""Entries converted per step of the walk over a large tensor (1 MiB of float32 scratch)."""


def _walk_(tensor: Tensor, mask: Tensor, scratch: Tensor) -> None:
    """``tensor *= mask`` chunk by chunk through ``scratch`` (both contiguous, same numel).

    The mask is read as uint8: torch converts uint8 to float about three times faster than bool.
    """
    flat, bits = tensor.view(-1), mask.view(-1).view(torch.uint8)
    for start in range(0, flat.numel(), CHUNK):
        stop = min(start + CHUNK, flat.numel())
        keep = scratch[: stop - start]
        keep.copy_(bits[start:stop])
        flat[start:stop].mul_(keep)


@torch.no_grad()
def zero_pruned_(tensors: list[Tensor], masks: list[Tensor]) -> None:
    """Multiply each tensor by its bool mask of the same shape, in place.

    Large contiguous CPU tensors are walked through one scratch buffer per dtype; the rest (small,
    strided, or on an accelerator, whose caching allocator makes a whole conversion cheap) are
    multiplied in one ``_foreach_mul_`` per dtype and device, their masks converted whole. Exact:
    the product with 0 or 1 is.

    >>> import torch
    >>> big = torch.ones(3 * CHUNK)
    >>> keep = torch.arange(3 * CHUNK) % 2 == 0
    >>> zero_pruned_([big], [keep])
    >>> int(big.sum()) == 3 * CHUNK // 2
    True
    """
    small: dict[tuple[torch.dtype, torch.device], list[tuple[Tensor, Tensor]]] = {}
    scratch: dict[torch.dtype, Tensor] = {}
    for tensor, mask in zip(tensors, masks, strict=True):
        where = (tensor.dtype, tensor.device)
        walk = tensor.device.type == "cpu" and tensor.numel() > CHUNK
        if not (walk and tensor.is_contiguous() and mask.is_contiguous()):
            small.setdefault(where, []).append((tensor, mask))
            continue
        if tensor.dtype not in scratch:
            scratch[tensor.dtype] = torch.empty(CHUNK, dtype=tensor.dtype)
        _walk_(tensor, mask, scratch[tensor.dtype])
    for (dtype, _), group in small.items():
        keeps: dict[int, Tensor] = {}  # one conversion per mask, shared by its tensors
        for _, mask in group:
            keeps.setdefault(id(mask), mask.to(dtype))
        torch._foreach_mul_([t for t, _ in group], [keeps[id(m)] for _, m in group])
