"""Counter-based random keys: a hash of (seed, parameter key, flat index), never the global RNG.

The same seed and key give the same keys on every run, thread count and device, and the keys do
not depend on the amount, so random masks are nested across amounts. The hash is SplitMix64's
finalizer on ``index + mix(seed, crc32(key))`` in wrapping int64 arithmetic; the top 31 bits
become an int32 key for :func:`funcprune._select.prune_smallest`.

>>> import torch
>>> a = random_keys(0, "w", 5, torch.device("cpu"))
>>> bool(torch.equal(a, random_keys(0, "w", 5, torch.device("cpu")))), a.dtype
(True, torch.int32)
"""

from __future__ import annotations

import zlib

import torch
from torch import Tensor

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MUL1 = 0xBF58476D1CE4E5B9
_MUL2 = 0x94D049BB133111EB


def _signed(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def _shr(x: Tensor, bits: int) -> Tensor:
    """Logical right shift of int64 bit patterns."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _finalize(z: Tensor) -> Tensor:
    z = (z ^ _shr(z, 30)) * _signed(_MUL1)
    z = (z ^ _shr(z, 27)) * _signed(_MUL2)
    return z ^ _shr(z, 31)


def stream_offset(seed: int, key: str) -> int:
    """The int64 start of the counter stream for ``(seed, key)``.

    >>> stream_offset(0, "w") != stream_offset(1, "w") != stream_offset(0, "b")
    True
    """
    mixed = _finalize(torch.tensor(_signed(seed * _GOLDEN + zlib.crc32(key.encode()))))
    return int(mixed)


def random_keys(seed: int, key: str, n: int, device: torch.device) -> Tensor:
    """``n`` pseudo-random int32 keys in [0, 2**31) for parameter ``key`` (flat indices 0..n-1)."""
    counters = torch.arange(n, dtype=torch.int64, device=device) * _signed(_GOLDEN)
    hashed = _finalize(counters + stream_offset(seed, key))
    return _shr(hashed, 33).to(torch.int32)
