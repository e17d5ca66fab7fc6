"""Pruning DTensor parameters on 2 and 4 gloo ranks: bytes communicated and time, vs gathering.

``python -m benchmarks.distributed [--ranks 2 4] [--layers 6] [--width 1024]`` spawns the ranks
(torch.multiprocessing, gloo on CPU), shards an MLP-like stack of ``(width, width)`` weights and
``(width,)`` biases with ``Shard(0)`` and times, per method:

* **funcprune**: the method on the DTensors (histograms, counts and per-slice vectors cross the
  wire; ``ln_structured(dim=1)`` on ``Shard(0)`` also exchanges each shard once with
  ``all_to_all`` to get whole slices);
* **gather**: what the libraries that prune sharded models do: ``full_tensor()`` every parameter
  on every rank, then prune the full tensors in one process.

Bytes are the payloads handed to ``torch.distributed`` collectives per rank (the tensors'
``nbytes``; a ring all-reduce moves about twice that over the links); for the gather baseline,
the bytes of the full tensors each rank assembles. Times are medians of
``--repeats`` runs after one warm-up, between barriers, on a machine shared with other work.
Prints one JSON line per (ranks, method, way).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, Shard, distribute_tensor
from torch.multiprocessing.spawn import spawn

import funcprune as fp

_COLLECTIVES = ("all_reduce", "all_to_all_single", "all_gather_into_tensor", "all_gather")


@contextmanager
def counted_bytes() -> Iterator[list[int]]:
    """Count the bytes of the tensors passed to ``torch.distributed`` collectives (this rank)."""
    total = [0]
    originals = {name: getattr(dist, name) for name in _COLLECTIVES}

    def counting(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            tensors = [a for a in args if isinstance(a, Tensor)]
            tensors += [t for a in args if isinstance(a, list) for t in a if isinstance(t, Tensor)]
            total[0] += max((t.nbytes for t in tensors), default=0)
            return originals[name](*args, **kwargs)

        return call

    for name in _COLLECTIVES:
        setattr(dist, name, counting(name))
    try:
        yield total
    finally:
        for name, original in originals.items():
            setattr(dist, name, original)


def _methods() -> dict[str, fp.types.PruningMethod]:
    return {
        "global_unstructured(0.8)": fp.global_unstructured(0.8),
        "global_unstructured(0.8, random)": fp.global_unstructured(0.8, scores="random"),
        "l1_unstructured(0.5)": fp.l1_unstructured(0.5),
        "ln_structured(0.5, dim=1)": fp.only(fp.ln_structured(0.5, n=2, dim=1), include="weight"),
    }


def _gathered(
    method: fp.types.PruningMethod, params: dict[str, Tensor], sent: list[int]
) -> dict[str, Tensor]:
    """The baseline: gather every full tensor (counted as its bytes), prune in one process."""
    full = {k: p.full_tensor() if isinstance(p, DTensor) else p for k, p in params.items()}
    sent[0] += sum(t.nbytes for t in full.values())
    return method(full)


def _time(call: Callable[[list[int]], object], repeats: int) -> tuple[float, int]:
    """Median seconds of ``call`` (after a warm-up) and the bytes one call communicates."""
    call([0])
    seconds = []
    for _ in range(repeats):
        dist.barrier()
        with counted_bytes() as sent:
            start = time.perf_counter()
            call(sent)
            seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), sent[0]


def _rank(rank: int, world: int, store: str, layers: int, width: int, repeats: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{store}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(minutes=10),
    )
    mesh = init_device_mesh("cpu", (world,))
    generator = torch.Generator().manual_seed(0)
    full: dict[str, Tensor] = {}
    for i in range(layers):
        full[f"{i}.weight"] = torch.randn(width, width, generator=generator)
        full[f"{i}.bias"] = torch.randn(width, generator=generator)
    params: dict[str, Tensor] = {k: distribute_tensor(t, mesh, [Shard(0)]) for k, t in full.items()}
    entries = sum(t.numel() for t in full.values())
    for name, method in _methods().items():
        ours, our_bytes = _time(lambda sent, m=method: m(params), repeats)  # type: ignore[misc]
        theirs, their_bytes = _time(lambda sent, m=method: _gathered(m, params, sent), repeats)  # type: ignore[misc]
        if rank == 0:
            for way, seconds, sent in (
                ("funcprune", ours, our_bytes),
                ("gather", theirs, their_bytes),
            ):
                print(
                    json.dumps(
                        {
                            "ranks": world,
                            "method": name,
                            "way": way,
                            "entries": entries,
                            "bytes_per_rank": sent,
                            "seconds": round(seconds, 4),
                        }
                    ),
                    flush=True,
                )
    dist.destroy_process_group()


def main(argv: list[str] | None = None) -> None:
    """Spawn each world size in turn and print its JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    for world in args.ranks:
        with tempfile.TemporaryDirectory() as folder:
            store = os.path.join(folder, "store")
            spawn(  # type: ignore[no-untyped-call]
                _rank,
                args=(world, store, args.layers, args.width, args.repeats),
                nprocs=world,
                join=True,
            )


if __name__ == "__main__":
    main()
