"""Intra-op threads chosen by the machine's load: ``one_thread`` and ``spare_threads``.

Every OpenMP parallel region waits for its slowest thread. When another process holds one of the
cores, that thread waits for a time slice (milliseconds) in every region, so a pass made of many
regions slows down several times over, while the same pass on the cores nobody else uses barely
notices. Measured on a 2-core box with one busy process beside: global L1 over ResNet-50 took
200 ms on 2 threads and 88 ms on one (66 ms on 2 threads when idle); zeroing 38.6M entries
through 256K-entry chunks took 1195 ms on 2 threads and 13 ms on one.

>>> import torch
>>> with one_thread():
...     torch.get_num_threads()
1
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch


@contextmanager
def _threads(count: int) -> Iterator[None]:
    """torch's intra-op threads set to ``count`` for the block, then restored.

    OpenMP keeps the setting per calling thread, so torch's elementwise ops in other Python threads
    keep theirs; MKL's setting is process-wide, so a BLAS call in another thread during the block
    may use fewer threads. Under ``torch.compile`` nothing changes (compiled code chooses its
    own threads).
    """
    before = torch.get_num_threads()
    if count >= before or torch.compiler.is_compiling():
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_thread() -> contextlib.AbstractContextManager[None]:
    """One intra-op thread for the block: for chunk walks that a second thread does not speed
    up even on an idle machine (the donated optimizer steps; the masking passes of
    :func:`funcprune.masked_step` do gain from one, and take :func:`spare_threads`).

    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with one_thread():
    ...     pass
    >>> torch.get_num_threads() == before
    True
    """
    return _threads(1)


def _own_running_threads() -> int:
    """This process's threads that are running or runnable now (OpenMP workers spin a while
    after each parallel region, so they often are)."""
    running = 0
    for task in Path("/proc/self/task").iterdir():
        stat = (task / "stat").read_text()
        running += stat[stat.rindex(")") + 2] == "R"
    return running


def spare_cores() -> int | None:
    """The CPUs this process may run on, less the runnable threads of other processes now (at
    least 1); ``None`` where Linux's ``/proc`` cannot tell.

    >>> spare_cores() is None or spare_cores() >= 1
    True
    """
    try:
        runnable = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
        others = runnable - _own_running_threads()
        cpus = len(os.sched_getaffinity(0))
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return max(1, cpus - max(0, others))


def spare_threads() -> contextlib.AbstractContextManager[None]:
    """torch's intra-op threads capped, for the block, at :func:`spare_cores`.

    On an idle machine nothing changes. With another process busy on one of two cores, the block
    runs on the other core alone instead of waiting for the busy one in every parallel region.

    >>> import torch
    >>> with spare_threads():
    ...     1 <= torch.get_num_threads()
    True
    """
    if torch.compiler.is_compiling():  # reading /proc would break the graph
        return contextlib.nullcontext()
    spare = spare_cores()
    return _threads(torch.get_num_threads() if spare is None else spare)
