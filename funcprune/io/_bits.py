"""Bit packing of bool masks: 8 entries a byte, little-endian bit order, torch ops only.

>>> import torch
>>> packed = pack_bits(torch.tensor([True, False, True, True]))
>>> packed
tensor([13], dtype=torch.uint8)
>>> unpack_bits(packed, (2, 2))
tensor([[ True, False],
        [ True,  True]])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_SHIFTS = torch.arange(8, dtype=torch.uint8)


def packed_length(shape: tuple[int, ...]) -> int:
    """Bytes that a mask of ``shape`` packs into: one bit per entry, rounded up.

    >>> packed_length(()), packed_length((0, 5)), packed_length((3, 3))
    (1, 0, 2)
    """
    return -(-math.prod(shape) // 8)


def pack_bits(mask: Tensor) -> Tensor:
    """A bool tensor as a 1-D uint8 CPU tensor; entry ``i`` is bit ``i % 8`` of byte ``i // 8``.

    The last byte's unused high bits are zero.

    >>> import torch
    >>> pack_bits(torch.ones(9, dtype=torch.bool))
    tensor([255,   1], dtype=torch.uint8)
    """
    flat = mask.detach().reshape(-1).to("cpu", torch.uint8)
    padded = torch.cat([flat, flat.new_zeros((-flat.numel()) % 8)])
    return (padded.view(-1, 8) << _SHIFTS).sum(1, dtype=torch.uint8)


def unpack_bits(packed: Tensor, shape: tuple[int, ...]) -> Tensor:
    """The bool tensor of ``shape`` that :func:`pack_bits` packed into ``packed``.

    >>> import torch
    >>> unpack_bits(torch.tensor([5], dtype=torch.uint8), ())
    tensor(True)
    """
    bits = (packed.unsqueeze(1) >> _SHIFTS).bitwise_and_(1)
    return bits.reshape(-1)[: math.prod(shape)].to(torch.bool).reshape(shape)
