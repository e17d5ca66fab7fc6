"""Train a small CNN on scikit-learn's digits, then sweep pruning amounts in one vmapped call.

The whole pipeline is functional: training is ``torch.func.grad`` plus ``fp.adam``'s pure step; each
pruning method builds the masks for every amount at once with ``vmap`` over a tensor of amounts;
and every mask set is evaluated at once with ``vmap`` over the stacked masks and
``funcprune.masked_call``. The model object is never modified.

Run it with ``./run demo`` (or ``python examples/digits_sweep.py --help``). It prints a table of
test accuracy against sparsity and writes two PNGs to the output folder (``out/`` by default):
``accuracy_vs_sparsity.png`` and ``layer_sparsity.png``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from _digits import (
    Data,
    accuracy,
    add_run_args,
    init_params,
    load_data,
    make_model,
    prunable,
    train,
)
from torch import Tensor, nn
from torch.func import vmap

import funcprune as fp

MethodFactory = Callable[[Tensor], fp.PruningMethod]
LABELS = {"ln_structured": "ln_structured (L2 norm, dim 0: whole channels)"}


def method_factories(weights: set[str], seed: int) -> dict[str, MethodFactory]:
    """Each method as a function of its amount, restricted with ``fp.only`` to the ``weights``."""

    def on_weights(method: fp.PruningMethod) -> fp.PruningMethod:
        return fp.only(method, include=weights.__contains__)

    return {
        "l1_unstructured": lambda a: on_weights(fp.l1_unstructured(a)),
        "global_unstructured": lambda a: on_weights(fp.global_unstructured(a)),
        "ln_structured": lambda a: on_weights(fp.ln_structured(a, n=2, dim=0)),
        "random_unstructured": lambda a: on_weights(fp.random_unstructured(a, seed=seed)),
    }


class Sweep(NamedTuple):
    """One method's results: per amount, the overall weight sparsity, per-key sparsity and accuracy."""

    sparsity: list[float]
    per_key: list[dict[str, float]]
    accuracy: list[float]


def sweep(
    model: nn.Module,
    params: Mapping[str, Tensor],
    factory: MethodFactory,
    amounts: Tensor,
    data: Data,
    weights: set[str],
) -> Sweep:
    """Masks for all amounts in one vmapped call, then accuracy of all mask sets in another."""
    stacked = vmap(lambda amount: factory(amount)(params))(amounts)
    accuracies = vmap(lambda m: accuracy(model, params, m, data.x_test, data.y_test))(stacked)
    only_weights = {key: p for key, p in params.items() if key in weights}
    sparsities = [
        fp.sparsity({key: stacked[key][i] for key in only_weights}, only_weights)
        for i in range(len(amounts))
    ]
    return Sweep(
        [s.overall for s in sparsities], [s.per_key for s in sparsities], accuracies.tolist()
    )


def format_table(amounts: Sequence[float], results: Mapping[str, Sweep], dense: float) -> str:
    """A fixed-width table: per amount and method, the weight sparsity and the test accuracy."""
    width = max(17, *(len(name) for name in results))
    head = "amount | " + " | ".join(f"{name:^{width}}" for name in results)
    sub = "       | " + " | ".join(f"{'sparsity':>10} {'acc':>6}".ljust(width) for _ in results)
    rows = [head, sub, "-" * len(head)]
    for i, amount in enumerate(amounts):
        cells = [
            f"{r.sparsity[i]:>10.1%} {r.accuracy[i]:>6.1%}".ljust(width) for r in results.values()
        ]
        rows.append(f"{amount:6.3f} | " + " | ".join(cells))
    rows.append(f"dense test accuracy {dense:.1%}; sparsity is over the conv and linear weights;")
    rows.append("ln_structured prunes whole output channels / rows (L2 norm, dim 0)")
    return "\n".join(row.rstrip() for row in rows)


def plot_accuracy(results: Mapping[str, Sweep], dense: float, path: Path) -> None:
    """Test accuracy against the actual weight sparsity, one line per method."""
    fig, ax = plt.subplots(figsize=(9, 6), dpi=120)
    markers = ["o", "s", "^", "D"]
    for (name, result), marker in zip(results.items(), markers, strict=False):
        xs = [100 * s for s in result.sparsity]
        ys = [100 * a for a in result.accuracy]
        ax.plot(xs, ys, marker=marker, markersize=4, linewidth=1.8, label=LABELS.get(name, name))
    ax.axhline(100 * dense, color="grey", linestyle="--", linewidth=1, label="dense model")
    ax.axhline(10, color="black", linestyle=":", linewidth=1, label="chance (10 classes)")
    ax.set_xlabel("sparsity of the conv and linear weights (% pruned)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Digits CNN: accuracy vs sparsity, no fine-tuning (one vmapped call per method)")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=3, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def layer_label(model: nn.Module, key: str, shape: torch.Size) -> str:
    """``"0.weight"`` -> ``"0.weight\\nConv2d 16x1x3x3\\n(144 weights)"``."""
    module = model.get_submodule(key.rpartition(".")[0])
    size = "x".join(map(str, shape))
    return f"{key}\n{type(module).__name__} {size}\n({shape.numel():,} weights)"


def plot_layers(
    model: nn.Module,
    params: Mapping[str, Tensor],
    results: Mapping[str, Sweep],
    index: int,
    amount: float,
    path: Path,
) -> None:
    """Per-layer sparsity of every method at one amount, as grouped bars."""
    keys = [key for key in params if key in results[next(iter(results))].per_key[index]]
    fig, ax = plt.subplots(figsize=(9, 5), dpi=120)
    width = 0.8 / len(results)
    for j, (name, result) in enumerate(results.items()):
        xs = [i + (j - (len(results) - 1) / 2) * width for i in range(len(keys))]
        ys = [100 * result.per_key[index][key] for key in keys]
        bars = ax.bar(xs, ys, width, label=f"{name} (overall {result.sparsity[index]:.0%})")
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([layer_label(model, key, params[key].shape) for key in keys])
    ax.set_xlabel("weight tensor (parameter key, layer type, shape)")
    ax.set_ylabel("sparsity (% of entries pruned)")
    ax.set_title(f"Per-layer sparsity at amount = {amount:.2f} (global ranks all weights together)")
    ax.set_ylim(0, 115)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, ncols=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=15, help="training epochs (default: 15)")
    parser.add_argument(
        "--amounts", type=int, default=25, help="number of amounts in the sweep (default: 25)"
    )
    parser.add_argument(
        "--max-amount", type=float, default=0.96, help="largest amount swept (default: 0.96)"
    )
    parser.add_argument(
        "--layer-amount",
        type=float,
        default=0.8,
        help="amount shown in the per-layer chart; the nearest swept one is used (default: 0.8)",
    )
    parser.add_argument("--seed", type=int, default=0, help="data split, init and random masks")
    add_run_args(parser)
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.amounts < 2 or args.threads < 1 or not 0 < args.max_amount <= 1:
        parser.error("need --epochs >= 1, --amounts >= 2, --threads >= 1 and 0 < --max-amount <= 1")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Sweep]:
    """Run the demo; returns the sweep results by method name."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    data = load_data(args.seed)
    model = make_model()
    params = train(model, init_params(args.seed), data, epochs=args.epochs, seed=args.seed)
    dense = float(accuracy(model, params, {}, data.x_test, data.y_test))
    trained = time.perf_counter()
    print(f"trained {args.epochs} epochs in {trained - started:.1f} s: test accuracy {dense:.1%}")

    weights = prunable(params)
    amounts = torch.linspace(0.0, args.max_amount, args.amounts)
    results = {
        name: sweep(model, params, factory, amounts, data, weights)
        for name, factory in method_factories(weights, args.seed).items()
    }
    swept = time.perf_counter() - trained
    n = len(amounts)
    print(f"{len(results)} methods x {n} amounts: masks and accuracies in {swept:.2f} s\n")
    print(format_table(amounts.tolist(), results, dense))

    args.out.mkdir(parents=True, exist_ok=True)
    index = int((amounts - args.layer_amount).abs().argmin())
    plot_accuracy(results, dense, args.out / "accuracy_vs_sparsity.png")
    plot_layers(
        model, params, results, index, float(amounts[index]), args.out / "layer_sparsity.png"
    )
    print(f"\nwrote {args.out / 'accuracy_vs_sparsity.png'} and {args.out / 'layer_sparsity.png'}")
    return results


if __name__ == "__main__":
    main()
