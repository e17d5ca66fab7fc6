"""Intra-op threads for passes made of many small parallel regions: ``one_thread``.

Every OpenMP parallel region waits for its slowest thread. When another process holds one of the
cores, that thread waits for a time slice (milliseconds) in every region, so a pass made of many
short regions slows down by orders of magnitude, while the same pass on one thread barely notices.
Memory-bound elementwise passes gain little from a second thread even on an idle machine. Measured
on a 2-core box with one busy process beside: zeroing 38.6M entries through 256K-entry chunks took
1195 ms on 2 threads and 13 ms on one.

>>> import torch
>>> with one_thread():
...     torch.get_num_threads()
1
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def one_thread() -> Iterator[None]:
    """torch's intra-op threads set to one for the block, then restored.

    OpenMP keeps the setting per calling thread, so torch's elementwise ops in other Python threads
    keep theirs; MKL's setting is process-wide, so a BLAS call in another thread during the block
    may run on one thread. Under ``torch.compile`` nothing changes (compiled code chooses its own
    threads).

    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with one_thread():
    ...     pass
    >>> torch.get_num_threads() == before
    True
    """
    before = torch.get_num_threads()
    if before == 1 or torch.compiler.is_compiling():
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
