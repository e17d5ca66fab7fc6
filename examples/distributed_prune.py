"""Prune an FSDP2 model globally across ranks, train it, and check the masks against one process.

Launch on CPU (gloo) or GPUs (nccl) with::

    torchrun --nproc-per-node 2 examples/distributed_prune.py

Each rank builds the same MLP, wraps it with ``torch.distributed.fsdp.fully_shard`` (every
parameter becomes a DTensor sharded on dim 0) and prunes it with ``fp.global_unstructured``: the
selection runs on the local shards, only histograms cross the wire, and the masks come back as
DTensors placed like the parameters. Training uses ``fp.masked_call`` and ``fp.masked_step``
(``torch.optim.AdamW``); pruned weights stay exactly zero on every shard. At the end rank 0
gathers the masks (for this check only) and compares them with the masks one process computes
on the full, unsharded initial parameters.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

import funcprune as fp


def make_model(seed: int, width: int) -> nn.Sequential:
    """The same small MLP on every rank (same seed)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(32, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 4)
    )


def batch(step: int, rank: int, size: int = 64) -> tuple[Tensor, Tensor]:
    """A synthetic classification batch; each rank gets its own (data parallel)."""
    generator = torch.Generator().manual_seed(1000 * step + rank)
    x = torch.randn(size, 32, generator=generator)
    return x, (x[:, :4].argmax(dim=1))


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Prune, train and check; returns rank 0's summary (sparsity, losses, mask check)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsity", type=float, default=0.8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = (
        torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if backend == "nccl"
        else torch.device("cpu")
    )
    if device.type == "cuda":
        torch.cuda.set_device(device)
    mesh = init_device_mesh(device.type, (world,))

    model = make_model(args.seed, args.width).to(device)
    initial = {k: p.detach().clone() for k, p in model.named_parameters()}
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    params = dict(model.named_parameters())

    method = fp.only(fp.global_unstructured(args.sparsity), include=r"weight$")
    masks = method(params)  # DTensor masks, sharded like the parameters

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    losses = []
    for step in range(args.steps):
        x, y = batch(step, rank)
        loss: Tensor = F.cross_entropy(
            fp.masked_call(model, params, masks, x.to(device)), y.to(device)
        )
        loss.backward()  # type: ignore[no-untyped-call]
        fp.masked_step(optimizer, params, masks)
        optimizer.zero_grad()
        losses.append(float(loss.detach()))

    full_masks = {k: m.full_tensor().cpu() for k, m in masks.items() if isinstance(m, DTensor)}
    full_params = {
        k: p.full_tensor().detach().cpu() for k, p in params.items() if isinstance(p, DTensor)
    }
    one_process = method({k: p.cpu() for k, p in initial.items()})
    same = all(torch.equal(full_masks[k], one_process[k]) for k in one_process)
    zero = all(bool((full_params[k][~full_masks[k]] == 0).all()) for k in full_masks)
    summary = {
        "sparsity": fp.sparsity(full_masks, full_params).overall,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "masks_match_one_process": float(same),
        "pruned_weights_zero": float(zero),
    }
    if rank == 0:
        print(" ".join(f"{k}={v:.4f}" for k, v in summary.items()))
    dist.destroy_process_group()
    if not (same and zero):
        raise SystemExit("masks differ from one process or pruned weights moved")
    return summary


if __name__ == "__main__":
    main()
