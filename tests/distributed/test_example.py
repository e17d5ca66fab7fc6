"""examples/distributed_prune.py under ``torchrun --nproc-per-node 2`` (gloo), with tiny settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch.distributed.fsdp")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "distributed_prune.py"


def test_distributed_prune() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
    ]
    done = subprocess.run(
        [*command, str(EXAMPLE), "--steps", "3", "--width", "16", "--sparsity", "0.5"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = dict(item.split("=") for item in done.stdout.split())
    assert summary["masks_match_one_process"] == "1.0000"
    assert summary["pruned_weights_zero"] == "1.0000"
    assert abs(float(summary["sparsity"]) - 0.5 * 16 * (32 + 16 + 4) / (16 * 52 + 36)) < 0.01
