"""Thread choice under load: methods run on the cores no other process is using."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

import funcprune as fp
import funcprune._threads as threads

needs_two = pytest.mark.skipif(
    torch.get_num_threads() < 2 or len(os.sched_getaffinity(0)) < 2,
    reason="needs two intra-op threads on two CPUs",
)


@needs_two
def test_spare_threads_caps_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "spare_cores", lambda: 1)
    with threads.spare_threads():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    monkeypatch.setattr(threads, "spare_cores", lambda: None)  # /proc unreadable: unchanged
    with threads.spare_threads():
        assert torch.get_num_threads() == before


@needs_two
def test_restored_when_the_block_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "spare_cores", lambda: 1)
    with pytest.raises(RuntimeError), threads.spare_threads():
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before


@needs_two
def test_a_busy_process_takes_a_core_away() -> None:
    """With a process spinning beside, some reading sees one core fewer (the count is a snapshot
    of runnable threads, so read a few times)."""
    cpus = len(os.sched_getaffinity(0))
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        readings = [threads.spare_cores() for _ in range(50)]
    finally:
        hog.kill()
        hog.wait()
    assert all(r is not None and 1 <= r <= cpus for r in readings)
    assert min(r for r in readings if r is not None) <= cpus - 1


@needs_two
def test_methods_and_compat_run_on_the_spare_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "spare_cores", lambda: 1)
    seen: list[int] = []

    def stage(
        params: dict[str, torch.Tensor], masks: object = None, importance_scores: object = None
    ) -> dict[str, torch.Tensor]:
        seen.append(torch.get_num_threads())
        return {k: torch.ones_like(v, dtype=torch.bool) for k, v in params.items()}

    fp.chain(fp.l1_unstructured(0.5), stage)({"w": torch.randn(4, 4)})

    class Recording(fp.compat.BasePruningMethod):
        PRUNING_TYPE = "unstructured"

        def compute_mask(self, t: torch.Tensor, default_mask: torch.Tensor) -> torch.Tensor:
            seen.append(torch.get_num_threads())
            return default_mask

    Recording.apply(torch.nn.Linear(2, 2), "weight")
    assert seen == [1, 1]


@needs_two
@pytest.mark.parametrize(
    "method",
    [
        fp.l1_unstructured(0.6),
        fp.global_unstructured(0.7),
        fp.global_unstructured(0.5, scores="random"),
        fp.random_unstructured(0.4),
        fp.ln_structured(0.5, n=2, dim=0),
        fp.ln_structured(0.3, n=1, dim=1),
        fp.random_structured(0.5, dim=0),
        fp.nm_semistructured(2, 4, dim=1),
    ],
    ids=repr,
)
def test_masks_do_not_depend_on_the_thread_count(
    method: fp.methods.Method, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The load decides the threads, so masks must not depend on them (large enough tensors
    that torch's kernels do split across threads)."""
    gen = torch.Generator().manual_seed(0)
    params = {
        "conv": torch.randn(64, 32, 7, 7, generator=gen),
        "linear": torch.randn(512, 300, generator=gen).round(decimals=1),  # ties
        "wide": torch.randn(8, 40_000, generator=gen),
    }
    monkeypatch.setattr(threads, "spare_cores", lambda: 1)
    alone = method(params)
    monkeypatch.setattr(threads, "spare_cores", lambda: None)
    shared = method(params)
    for key in params:
        assert torch.equal(alone[key], shared[key]), key
