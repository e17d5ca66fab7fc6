"""Order keys: integers whose signed order is the order of floating scores.

Every kernel compares integers, not floats: a float's bit pattern, read as a signed integer, is
already in order for non-negative values, and flipping the magnitude bits of negative values puts
them below, in reverse. ``-0.0`` becomes ``0.0`` first and NaN gets the largest key, so the order
is ``torch.sort``'s. Integer keys make ties exact and let the radix kernel read them 16 bits at a
time.

>>> import torch
>>> order_keys(torch.tensor([-1.0, 2.0, 0.5])).argsort().tolist()
[0, 2, 1]
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from funcprune._tensors import is_concrete


def order_keys(scores: Tensor) -> Tensor:
    """Integer keys whose signed order is the order of ``scores`` (floating, any shape).

    float16/bfloat16/float32 give int32 keys, float64 gives int64 keys. ``-0.0`` and ``0.0`` share a
    key; every NaN (of either sign) shares the largest key, above ``inf``, as in ``torch.sort``.
    When ``scores`` is float32/float64 with readable values, no negative sign bit and no NaN (e.g.
    magnitudes), the keys are its bits viewed as integers: no copy is made, so they share memory.

    >>> import torch
    >>> k = order_keys(torch.tensor([-2.0, -1.0, -0.0, 0.0, 1.0, float("inf"), float("nan")]))
    >>> bool((k[1:] >= k[:-1]).all()), bool(k[2] == k[3])
    (True, True)
    """
    wide = scores.to(torch.float64 if scores.dtype == torch.float64 else torch.float32)
    int_dtype = torch.int64 if wide.dtype == torch.float64 else torch.int32
    info = torch.iinfo(int_dtype)
    bits = wide.view(int_dtype)
    if is_concrete(bits) and bits.numel() > 0:
        low, high = torch.aminmax(bits)
        inf_bits = torch.tensor(math.inf, dtype=wide.dtype).view(int_dtype)
        if bool(low >= 0) and bool(high <= inf_bits):
            return bits
    bits = (wide + 0.0).view(int_dtype)  # + 0.0 turns -0.0 into 0.0
    keys = bits ^ ((bits >> (info.bits - 1)) & info.max)
    return torch.where(torch.isnan(wide), info.max, keys)


__all__ = ["order_keys"]
