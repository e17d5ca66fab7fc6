"""Chunk-at-a-time writes into large tensors: ``in_chunks``, ``zero_pruned_``, ``mask_and_lift_``.

In-place elementwise work on a large model is bound by memory, and a temporary as large as a
parameter (a converted mask, Adam's denominator) costs more than the arithmetic: fresh memory is
zeroed by the kernel page by page. Walking each large tensor in chunks of :data:`CHUNK` entries
keeps every temporary in a chunk-sized :class:`Scratch` buffer allocated once per pass, so the
in-place steps allocate almost nothing. Small tensors stay batched whole, one ``_foreach`` call
for all of them.

>>> import torch
>>> t = torch.tensor([1.0, 2.0, 3.0])
>>> zero_pruned_([t], [torch.tensor([True, False, True])])
>>> t
tensor([1., 0., 3.])
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import Tensor

from funcprune._threads import spare_threads

CHUNK = 1 << 20
"""Entries per chunk of a large tensor (4 MiB of float32)."""


class Batch(NamedTuple):
    """Aligned columns of tensors (entry ``i`` of each column has the same shape), their masks,
    and, for one chunk of a large tensor, the scratch buffers to use instead of fresh memory."""

    columns: list[list[Tensor]]
    masks: list[Tensor | None]
    scratch: Scratch | None


class Scratch:
    """Chunk-sized buffers reused by every chunk of one pass, allocated on first use.

    ``keep`` converts a mask chunk to a dtype once and hands the same buffer back while the same
    mask object is asked for again (a step masks several tensors with it).

    >>> import torch
    >>> scratch, bits = Scratch(), torch.tensor([True, False])
    >>> scratch.keep(bits, torch.float32)
    tensor([1., 0.])
    >>> scratch.keep(bits, torch.float32) is scratch.keep(bits, torch.float32)
    True
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, torch.dtype], Tensor] = {}
        self._kept: tuple[Tensor, Tensor] | None = None

    def buffer(self, slot: str, like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """A buffer shaped like ``like`` (at most :data:`CHUNK` entries), in its dtype or
        ``dtype``; one per slot and dtype."""
        key = (slot, like.dtype if dtype is None else dtype)
        if key not in self._buffers:
            self._buffers[key] = torch.empty(CHUNK, dtype=key[1])
        return self._buffers[key][: like.numel()].view(like.shape)

    def keep(self, mask: Tensor, dtype: torch.dtype) -> Tensor:
        """``mask`` (a chunk) in ``dtype``, read as uint8: torch converts uint8 about three times
        faster than bool."""
        if self._kept is not None and self._kept[0] is mask and self._kept[1].dtype == dtype:
            return self._kept[1]
        keep = self.buffer("keep", mask, dtype)
        keep.copy_(mask.view(torch.uint8))
        self._kept = (mask, keep)
        return keep


_WALKED = CHUNK // 4
"""Entries from which a tensor is walked: below, a batched ``_foreach`` call is cheaper; above,
its whole-tensor temporaries (a converted mask) cost more than walking it (masking the gradients
and lifting the second moments of a 3 x 1024 MLP's 1M-entry weights, on one thread: 6.9 ms whole,
3.3 ms walked)."""


def _walkable(tensors: list[Tensor]) -> bool:
    first = tensors[0]
    return (
        first.device.type == "cpu"
        and first.numel() >= _WALKED
        and all(t.is_contiguous() and t.numel() == first.numel() for t in tensors)
    )


def in_chunks(columns: list[list[Tensor]], masks: list[Tensor | None]) -> Iterator[Batch]:
    """The same columns (and masks), cut into batches for in-place work.

    Rows whose tensors are large (``_WALKED`` entries or more), contiguous and on the CPU come one
    chunk at a time (aligned flat slices, views into the tensors), sharing one :class:`Scratch`;
    all other rows come first, whole, in one batch without scratch. Under ``torch.compile`` the
    columns come whole: a traced loop over chunks would unroll.

    >>> import torch
    >>> big, small = torch.zeros(CHUNK + 1), torch.zeros(3)
    >>> [len(batch.columns[0]) for batch in in_chunks([[big, small]], [None, None])]
    [1, 1, 1]
    >>> [batch.columns[0][0].numel() for batch in in_chunks([[big, small]], [None, None])]
    [3, 1048576, 1]
    """
    if torch.compiler.is_compiling():
        yield Batch(columns, masks, None)
        return
    walked = [
        i
        for i in range(len(masks))
        if _walkable([column[i] for column in columns] + [m for m in [masks[i]] if m is not None])
    ]
    whole = sorted(set(range(len(masks))) - set(walked))
    if whole:
        yield Batch(
            [[column[i] for i in whole] for column in columns], [masks[i] for i in whole], None
        )
    scratch = Scratch()
    for i in walked:
        flats = [column[i].view(-1) for column in columns]
        mask = masks[i]
        bits = None if mask is None else mask.view(-1)
        for start in range(0, flats[0].numel(), CHUNK):
            stop = start + CHUNK
            part = None if bits is None else bits[start:stop]
            yield Batch([[flat[start:stop]] for flat in flats], [part], scratch)


@torch.no_grad()
def zero_pruned_(tensors: list[Tensor], masks: list[Tensor]) -> None:
    """Multiply each tensor by its bool mask of the same shape, in place (exact: the product
    with 0 or 1 is), on the spare cores, with one ``_foreach_mul_`` per dtype for the small tensors.

    >>> import torch
    >>> big = torch.ones(3 * CHUNK)
    >>> keep = torch.arange(3 * CHUNK) % 2 == 0
    >>> zero_pruned_([big], [keep])
    >>> int(big.sum()) == 3 * CHUNK // 2
    True
    """
    if not tensors:  # reading the load costs more than nothing to do
        return
    with spare_threads():
        _zero_all(tensors, masks)


def _zero_all(tensors: list[Tensor], masks: list[Tensor]) -> None:
    """:func:`zero_pruned_` on the threads set by the caller."""
    for (batch,), their_masks, scratch in in_chunks([tensors], list(masks)):
        multiply_(batch, their_masks, scratch)


@torch.no_grad()
def mask_and_lift_(zeroed: list[Tensor], lifted: list[Tensor | None], masks: list[Tensor]) -> None:
    """Per bool mask: zero the pruned entries (``False``) of ``zeroed[i]`` and add one to those
    of ``lifted[i]`` where given, in one pass on the spare cores (each mask chunk converted once).
    Kept entries of ``lifted`` add exactly ``0.0``, so they do not change.

    >>> import torch
    >>> grad, state = torch.tensor([0.5, 2.0]), torch.tensor([0.25, 0.0])
    >>> mask_and_lift_([grad], [state], [torch.tensor([True, False])])
    >>> grad, state
    (tensor([0.5000, 0.0000]), tensor([0.2500, 1.0000]))
    """
    if not zeroed:
        return
    both = [(z, t, m) for z, t, m in zip(zeroed, lifted, masks, strict=True) if t is not None]
    alone = [(z, m) for z, t, m in zip(zeroed, lifted, masks, strict=True) if t is None]
    columns = [[z for z, _, _ in both], [t for _, t, _ in both]]
    their_masks: list[Tensor | None] = [m for _, _, m in both]
    with spare_threads():
        _zero_all([z for z, _ in alone], [m for _, m in alone])
        for batch in in_chunks(columns, their_masks):
            multiply_(batch.columns[0], batch.masks, batch.scratch)
            for tensor, mask in zip(batch.columns[1], batch.masks, strict=True):
                if mask is None:
                    continue
                if batch.scratch is None:
                    tensor.add_(torch.logical_not(mask).to(tensor.dtype))
                else:  # through the kept mask (already converted) and a scratch buffer
                    keep = batch.scratch.keep(mask, tensor.dtype)
                    one = torch.ones((), dtype=tensor.dtype)
                    tensor.add_(torch.sub(one, keep, out=batch.scratch.buffer("lift", tensor)))


def multiply_(tensors: list[Tensor], masks: list[Tensor | None], scratch: Scratch | None) -> None:
    """``t *= mask`` for each masked tensor: through ``scratch`` for a chunk, else with one
    ``_foreach_mul_`` per dtype and device, each mask converted once."""
    picked = [(t, m) for t, m in zip(tensors, masks, strict=True) if m is not None]
    if scratch is not None:
        for tensor, mask in picked:
            tensor.mul_(scratch.keep(mask, tensor.dtype))
        return
    by_dtype: dict[tuple[torch.dtype, torch.device], list[tuple[Tensor, Tensor]]] = {}
    for tensor, mask in picked:
        by_dtype.setdefault((tensor.dtype, tensor.device), []).append((tensor, mask))
    for (dtype, _), group in by_dtype.items():
        keeps: dict[int, Tensor] = {}
        for _, mask in group:
            keeps.setdefault(id(mask), mask.view(torch.uint8).to(dtype))
        torch._foreach_mul_([t for t, _ in group], [keeps[id(m)] for _, m in group])
