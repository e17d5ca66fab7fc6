"""Counter-based random keys: a hash of (seed, parameter key, flat index), never the global RNG.

The same seed and key give the same keys on every run, thread count and device, and the keys do
not depend on the amount, so random masks are nested across amounts. Each ``(seed, key)`` has its
own stream ``start = mix(seed * golden + blake2b64(key))``, computed in plain Python (a constant
under ``torch.compile``); flat index ``i`` gets ``mix((i ^ start) * golden)`` in wrapping int64
arithmetic, where ``mix`` is SplitMix64's finalizer, and its top 31 bits become an int32 key for
:func:`funcprune._select.prune_smallest`. The key hash is 64 bits of BLAKE2b of the key's UTF-8
bytes (lone surrogates included), so two parameter names share a stream only by a 64-bit
collision. The index enters through ``^`` rather than ``+``, so inductor cannot fold it into an
affine index expression (whose int64 overflow it miscompiles).

>>> import torch
>>> a = random_keys(0, "w", 5, torch.device("cpu"))
>>> bool(torch.equal(a, random_keys(0, "w", 5, torch.device("cpu")))), a.dtype
(True, torch.int32)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from torch import Tensor

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MUL1 = 0xBF58476D1CE4E5B9
_MUL2 = 0x94D049BB133111EB

Word = TypeVar("Word", int, Tensor)
"""A 64-bit word: a Python int in the int64 range, or an int64 tensor of them."""


def _signed(value: int) -> int:
    """The int64 whose bits are ``value``'s low 64 bits."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def _wrap(value: Word) -> Word:
    """Wrap a product to int64 (tensors wrap by themselves)."""
    return _signed(value) if isinstance(value, int) else value


def _shr(x: Word, bits: int, out: Tensor | None = None) -> Word:
    """Logical right shift of int64 bit patterns (into ``out``, a tensor ``x``'s spare buffer)."""
    if isinstance(x, Tensor) and out is not None:
        x = torch.bitwise_right_shift(x, bits, out=out)
    else:
        x = x >> bits
    x &= (1 << (64 - bits)) - 1
    return x


def _finalize(z: Word, spare: Tensor | None = None) -> Word:
    """SplitMix64's finalizer on int64 bit patterns, the same for Python ints and tensors.

    A tensor ``z`` is overwritten; its temporaries go to ``spare`` (same length) when given.
    """
    z ^= _shr(z, 30, spare)
    z *= _signed(_MUL1)
    z = _wrap(z)
    z ^= _shr(z, 27, spare)
    z *= _signed(_MUL2)
    z = _wrap(z)
    z ^= _shr(z, 31, spare)
    return z


def key_hash(key: str) -> int:
    """64 bits of BLAKE2b of ``key``'s UTF-8 bytes (lone surrogates encoded as they are).

    >>> key_hash("plumless") != key_hash("buckeroo")  # equal crc32, different streams
    True
    """
    data = key.encode("utf-8", errors="surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


_Fn = TypeVar("_Fn", bound=Callable[..., object])


def _folded_when_traced(fn: _Fn) -> _Fn:
    """Mark ``fn``, a pure function of constants, to run once while ``torch.compile`` traces.

    This sets the flag that ``torch.compiler.assume_constant_result`` sets, without calling it:
    the call imports ``torch._dynamo``, which would add about 2 s to ``import funcprune``. The
    compile tests (``fullgraph=True``) fail if torch ever renames the flag.
    """
    fn._dynamo_marked_constant = True  # type: ignore[attr-defined]
    return fn


@_folded_when_traced
def stream_offset(seed: int, key: str) -> int:
    """The int64 start of the counter stream for ``(seed, key)``, in plain Python.

    >>> stream_offset(0, "w") != stream_offset(1, "w") != stream_offset(0, "b")
    True
    """
    return _finalize(_signed(seed * _GOLDEN + key_hash(key)))


def random_keys(seed: int, key: str, n: int, device: torch.device) -> Tensor:
    """``n`` pseudo-random int32 keys in [0, 2**31) for parameter ``key`` (flat indices 0..n-1)."""
    return random_keys_at(seed, key, torch.arange(n, dtype=torch.int64, device=device))


def random_keys_at(seed: int, key: str, indices: Tensor) -> Tensor:
    """The keys of :func:`random_keys` at the int64 flat ``indices`` (e.g. a shard's entries).

    >>> import torch
    >>> keys = random_keys(0, "w", 6, torch.device("cpu"))
    >>> bool(torch.equal(random_keys_at(0, "w", torch.tensor([4, 1])), keys[[4, 1]]))
    True
    """
    return _keys_of(indices ^ stream_offset(seed, key))


def random_keys_of(
    seed: int, keys: Sequence[str], sizes: Sequence[int], device: torch.device
) -> Tensor:
    """The :func:`random_keys` of ``sizes[i]`` entries of every parameter ``keys[i]``, concatenated.

    One pass for all of them: many small parameters cost a few tensor operations, not a few each.

    >>> import torch
    >>> cpu = torch.device("cpu")
    >>> both = random_keys_of(0, ["a", "b"], [3, 2], cpu)
    >>> bool(torch.equal(both, torch.cat([random_keys(0, "a", 3, cpu), random_keys(0, "b", 2, cpu)])))
    True
    """
    seeded = [_signed(seed * _GOLDEN + key_hash(key)) for key in keys]
    starts = _finalize(torch.tensor(seeded, dtype=torch.int64, device=device))  # stream_offset's
    counts = torch.tensor(sizes, dtype=torch.int64, device=device)
    firsts = torch.cumsum(counts, 0) - counts
    positions = torch.arange(int(counts.sum()), dtype=torch.int64, device=device)
    positions -= torch.repeat_interleave(firsts, counts)
    return _keys_of(positions ^ torch.repeat_interleave(starts, counts))


def _keys_of(words: Tensor) -> Tensor:
    """The int32 keys of int64 ``words`` (indices mixed with their stream's start); overwrites them."""
    words *= _signed(_GOLDEN)
    return _shr(_finalize(words), 33).to(torch.int32)


def random_keys_into(seed: int, key: str, words: Tensor, spare: Tensor) -> Tensor:
    """:func:`random_keys_at` at the flat indices in ``words``, with no temporaries.

    ``words`` and ``spare`` are 1-d int64 tensors of one length, both overwritten; the keys come
    back in the low half of ``spare``'s memory, viewed as int32.

    >>> import torch
    >>> keys = random_keys_into(0, "w", torch.tensor([4, 1]), torch.empty(2, dtype=torch.int64))
    >>> bool(torch.equal(keys, random_keys_at(0, "w", torch.tensor([4, 1]))))
    True
    """
    words ^= stream_offset(seed, key)
    words *= _signed(_GOLDEN)
    _shr(_finalize(words, spare), 33, words)
    return spare.view(torch.int32)[: words.numel()].copy_(words)
