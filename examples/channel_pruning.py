"""Channel pruning that makes the model smaller and faster: digits CNN, before and after.

Train a small CNN (with batch norm) on scikit-learn's digits, find its channel groups, prune half
of every layer's channels with ``group_structured``, fine-tune the survivors, then ``shrink`` it
into a physically smaller model. Prints size on disk, parameters, MACs, latency and accuracy of
the dense, the masked and the shrunk model (masked and shrunk compute the same function).

Run it with ``python examples/channel_pruning.py`` (``--help`` for options; a few seconds).
"""

from __future__ import annotations

import argparse
import copy
import io
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch
from _digits import Data, add_run_args, load_data
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

import funcprune as fp
from funcprune.structure import channel_groups, group_structured, shrink


def make_model() -> nn.Sequential:
    """Two conv/batch-norm/ReLU stages, a max-pool and a two-layer classifier."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(64 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip


def fit(
    model: nn.Module, data: Data, epochs: int, seed: int, masks: dict[str, Tensor] | None = None
) -> None:
    """Plain Adam training in place (batch norm updates its statistics); masked entries stay zero."""
    masks = masks or {}
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(data.y_train), generator=generator)
        for batch in order.split(64):
            loss = nn.functional.cross_entropy(model(data.x_train[batch]), data.y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for key, param in model.named_parameters():
                    if key in masks:
                        param.mul_(masks[key])
    model.eval()


def _disk_kib(model: nn.Module) -> float:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return len(buffer.getvalue()) / 1024


def _macs(model: nn.Module, x: Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() // 2


def _latency_ms(model: nn.Module, x: Tensor, repeats: int) -> float:
    with torch.inference_mode():
        model(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _accuracy(logits: Tensor, y: Tensor) -> float:
    return float((logits.argmax(dim=-1) == y).float().mean())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8, help="dense training epochs (default: 8)")
    parser.add_argument("--finetune", type=int, default=4, help="fine-tuning epochs (default: 4)")
    parser.add_argument(
        "--amount", type=float, default=0.5, help="fraction of each layer's channels"
    )
    parser.add_argument("--repeats", type=int, default=20, help="latency repeats (default: 20)")
    parser.add_argument("--seed", type=int, default=0)
    add_run_args(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Run the demo; returns the measured rows by model name."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = load_data(args.seed)
    model = make_model()
    fit(model, data, args.epochs, args.seed)
    example = (data.x_train[:16],)
    groups = channel_groups(model, example)
    print(groups.report(), end="\n\n")
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    masks = group_structured(args.amount, groups, scope="local")(params)
    pruned = copy.deepcopy(model)
    fit(pruned, data, args.finetune, args.seed, masks)
    tuned = {k: v.detach() for k, v in pruned.named_parameters()}
    small = shrink(pruned, tuned, masks, example, groups=groups).eval()

    x, y = data.x_test, data.y_test
    with torch.no_grad():
        masked_logits = fp.masked_call(pruned, tuned, masks, x)
        assert torch.allclose(small(x), masked_logits, atol=1e-4), "shrunk model differs"
        rows = {
            "dense": (model, _accuracy(model(x), y)),
            "pruned + fine-tuned (masks)": (pruned, _accuracy(masked_logits, y)),
            "shrunk": (small, _accuracy(small(x), y)),
        }
    results: dict[str, dict[str, Any]] = {}
    print(f"| model | disk KiB | params | MACs | latency (batch {len(y)}) | test accuracy |")
    print("|---|---|---|---|---|---|")
    for name, (module, acc) in rows.items():
        result = {
            "disk_kib": _disk_kib(module),
            "params": sum(p.numel() for p in module.parameters()),
            "macs": _macs(module, x),
            "latency_ms": _latency_ms(module, x, args.repeats),
            "accuracy": acc,
        }
        results[name] = result
        print(
            f"| {name} | {result['disk_kib']:.0f} | {result['params']:,} | {result['macs'] / 1e6:.1f}M "
            f"| {result['latency_ms']:.2f} ms | {acc:.1%} |"
        )
    return results


if __name__ == "__main__":
    main()
