"""Lottery tickets on the digits CNN: iterative magnitude pruning with rewinding to the initial weights.

Frankle & Carbin (2019, arXiv 1803.03635): train, prune the smallest-magnitude 20% of the remaining
weights of each layer, rewind the survivors to their *initial* values, and repeat. The control
trains the same masks from a fresh random initialisation. With funcprune a round is one line:
``masks = prune(trained, masks)`` where ``prune`` prunes 20% of what ``masks`` left; training runs
through ``funcprune.masked_call``, so pruned weights get zero gradient and stay pruned.

Run it with ``python examples/lottery_ticket.py`` (``--help`` for the options). It prints a table
and writes ``lottery_ticket.png`` to the output folder (``out/`` by default).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
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
from matplotlib.ticker import FuncFormatter
from torch import Tensor, nn

import funcprune as fp


class Round(NamedTuple):
    """One round: the weight sparsity and the test accuracy of the ticket and of the control."""

    sparsity: float
    ticket: float
    control: float


def train_and_test(
    model: nn.Module,
    init: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    data: Data,
    args: argparse.Namespace,
    desc: str,
) -> tuple[dict[str, Tensor], float]:
    """Train from ``init`` with ``masks`` applied; return the trained parameters and test accuracy."""
    trained = train(
        model, init, data, epochs=args.epochs, seed=args.seed, masks=masks, lr=args.lr, desc=desc
    )
    return trained, float(accuracy(model, trained, masks, data.x_test, data.y_test))


def lottery(model: nn.Module, data: Data, args: argparse.Namespace) -> list[Round]:
    """Run ``args.rounds`` rounds of prune-and-rewind; round 0 is the dense network."""
    init = init_params(args.seed)
    weights = prunable(init)
    prune = fp.only(fp.l1_unstructured(args.rate), include=weights.__contains__)
    masks: fp.Masks = {}
    rounds = []
    for r in range(args.rounds + 1):
        ticket, ticket_acc = train_and_test(model, init, masks, data, args, f"round {r} ticket")
        control_init = init_params(args.seed + 1 + r)
        _, control_acc = train_and_test(
            model, control_init, masks, data, args, f"round {r} control"
        )
        weight_params = {key: p for key, p in init.items() if key in weights}
        sparsity = fp.sparsity(
            {k: m for k, m in masks.items() if k in weights}, weight_params
        ).overall
        rounds.append(Round(sparsity, ticket_acc, control_acc))
        print(
            f"{r:5d} | {1 - sparsity:9.1%} | {ticket_acc:13.1%} | {control_acc:15.1%}", flush=True
        )
        masks = prune(ticket, masks)  # 20% of the surviving weights, by trained magnitude
    return rounds


def plot(rounds: Sequence[Round], rate: float, path: Path) -> None:
    """Test accuracy of the ticket and of the control against the fraction of weights remaining."""
    remaining = [100 * (1 - r.sparsity) for r in rounds]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    ax.plot(
        remaining,
        [100 * r.ticket for r in rounds],
        marker="o",
        label="winning ticket (rewind to init)",
    )
    ax.plot(
        remaining,
        [100 * r.control for r in rounds],
        marker="s",
        linestyle="--",
        label="control (same masks, random re-init)",
    )
    ax.set_xscale("log")
    ax.invert_xaxis()
    ticks = [100.0, 50.0, 20.0, 10.0, 5.0, 2.0, 1.0]
    ax.set_xticks([t for t in ticks if t >= min(remaining) * 0.9])
    ax.get_xaxis().set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("weights remaining (%, log scale)")
    ax.set_ylabel("test accuracy after training (%)")
    ax.set_title(f"Iterative magnitude pruning, {rate:.0%} of the remaining weights per round")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="pruning rounds (default: 10)")
    parser.add_argument(
        "--rate", type=float, default=0.2, help="fraction pruned per round (default: 0.2)"
    )
    parser.add_argument("--epochs", type=int, default=8, help="epochs per training (default: 8)")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default: 3e-3)")
    parser.add_argument("--seed", type=int, default=0, help="data split and initialisation")
    add_run_args(parser)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.epochs < 1 or args.threads < 1 or not 0 < args.rate < 1:
        parser.error("need --rounds >= 1, --epochs >= 1, --threads >= 1 and 0 < --rate < 1")
    return args


def main(argv: Sequence[str] | None = None) -> list[Round]:
    """Run the experiment; returns one :class:`Round` per round (round 0 is dense)."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_data(args.seed)
    print("round | remaining | ticket acc    | control acc")
    print("------+-----------+---------------+----------------")
    rounds = lottery(make_model(), data, args)
    args.out.mkdir(parents=True, exist_ok=True)
    plot(rounds, args.rate, args.out / "lottery_ticket.png")
    print(f"\nwrote {args.out / 'lottery_ticket.png'}")
    return rounds


if __name__ == "__main__":
    main()
