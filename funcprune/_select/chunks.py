"""What the eager and sweep kernels share: chunked passes and how sources become keys.

Both kernels read their keys in chunks of about ``_CHUNK`` bytes of temporaries, making the keys
of each chunk on the fly (e.g. magnitudes into a reused scratch buffer), so their extra memory is
a few chunks whatever the number of parameters.

>>> import torch
>>> eligible_count([torch.zeros(3), torch.zeros(2)], [None, torch.tensor([True, False])])
4
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

_CHUNK = 1 << 24
"""Bytes of key temporaries per step of the passes: few steps (each is a parallel region, costly
on a busy machine), yet temporaries small enough to be reused off the page-fault path."""


class KeyMaker(NamedTuple):
    """How a slice of a source tensor becomes keys, and what that costs.

    ``make(part, scratch)`` returns the keys of ``part``, writing into ``scratch`` (a buffer of
    dtype ``scratch_dtype`` at least as long as ``part``) when one is given; ``temp_bytes`` is the
    bytes per entry of temporaries that takes. ``scratch_dtype`` is ``None`` when no buffer is used.
    """

    make: Callable[[Tensor, Tensor | None], Tensor]
    scratch_dtype: torch.dtype | None
    temp_bytes: int


def _same(keys: Tensor, scratch: Tensor | None) -> Tensor:
    return keys


SAME = KeyMaker(_same, None, 1)
"""The sources are the keys already."""


def chunk_size(key_maker: KeyMaker) -> int:
    """Entries per chunk, so that one chunk's key temporaries take about ``_CHUNK`` bytes."""
    return max(_CHUNK // key_maker.temp_bytes, 1)


def eligible_count(flat: list[Tensor], allowed: list[Tensor | None]) -> int:
    """Number of eligible entries (all of a tensor whose eligibility is ``None``)."""
    return sum(
        key.numel() if ok is None else int(ok.count_nonzero())
        for key, ok in zip(flat, allowed, strict=True)
    )


def key_dtype(flat: list[Tensor], key_maker: KeyMaker) -> torch.dtype:
    """The dtype of the keys ``key_maker`` makes of ``flat`` (int32 or int64)."""
    return key_maker.make(flat[0][:1], None).dtype if flat else torch.int32


def positions_of(mask: Tensor) -> Tensor:
    """Ascending positions of the ``True`` entries of a 1-d bool tensor.

    Scans 8 entries per int64 word first, so a sparse mask costs an eighth of a plain ``nonzero``.

    >>> import torch
    >>> positions_of(torch.tensor([False, True, False, True])).tolist()
    [1, 3]
    """
    if mask.numel() % 8 or mask.storage_offset() % 8:
        return mask.nonzero().reshape(-1)
    words = mask.view(torch.int64).nonzero().reshape(-1)
    cells = mask.view(-1, 8)[words].nonzero()
    return words[cells[:, 0]] * 8 + cells[:, 1]


__all__ = [
    "SAME",
    "KeyMaker",
    "chunk_size",
    "eligible_count",
    "key_dtype",
    "positions_of",
]
