"""Shared pieces of the digits examples: data, a small CNN and a pure torch.func training loop.

Everything here is a plain function of tensors and dicts: the optimizer (``fp.adam``) state is a
value, a training step returns new parameters instead of mutating them, and masks (if any) are
applied in the forward pass with :func:`funcprune.masked_call`, so pruned weights get exactly zero
gradient, and in the optimizer step, so they stay exactly zero.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor, nn
from torch.func import grad_and_value
from tqdm import tqdm

import funcprune as fp

Params = dict[str, Tensor]


class Data(NamedTuple):
    """Train and test split of scikit-learn's 8x8 digits, images scaled to [0, 1]."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def load_data(seed: int, test_fraction: float = 0.25) -> Data:
    """The 1797 bundled digits (no download), split stratified by class."""
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.int64)
    train, test = train_test_split(
        range(len(y)), test_size=test_fraction, random_state=seed, stratify=digits.target
    )
    return Data(x[train], y[train], x[test], y[test])


def make_model() -> nn.Sequential:
    """A small CNN: two 3x3 convolutions, a 2x2 max-pool and two linear layers (~38k parameters)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def init_params(seed: int) -> Params:
    """Fresh parameters of :func:`make_model` with PyTorch's default initialisation, from ``seed``.

    The global RNG is left as it was.
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = make_model()
    return {key: value.detach() for key, value in model.named_parameters()}


def prunable(params: Mapping[str, Tensor]) -> set[str]:
    """Keys of the weights worth pruning: tensors with at least two dims (not biases)."""
    return {key for key, value in params.items() if value.dim() >= 2}


def train(
    model: nn.Module,
    params: Mapping[str, Tensor],
    data: Data,
    *,
    epochs: int,
    seed: int,
    masks: Mapping[str, Tensor] | None = None,
    batch_size: int = 64,
    lr: float = 3e-3,
    desc: str = "train",
) -> Params:
    """Train with ``grad`` of the cross-entropy and ``fp.adam``'s pure step; return new parameters.

    With ``masks`` the forward pass runs on the masked parameters and the optimizer keeps the
    pruned weights (and their Adam moments) at exactly zero, so nothing regrows.
    """
    masks = {} if masks is None else dict(masks)

    def loss(p: Params, x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(fp.masked_call(model, p, masks, x), y)

    step_grad = grad_and_value(loss)
    optimizer = fp.adam(lr)
    current = dict(params)
    state = optimizer.init(current)
    generator = torch.Generator().manual_seed(seed)
    n = len(data.y_train)
    steps = epochs * math.ceil(n / batch_size)
    with tqdm(total=steps, desc=desc, unit="step", leave=False) as bar:
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, batch_size):
                batch = order[start : start + batch_size]
                grads, value = step_grad(current, data.x_train[batch], data.y_train[batch])
                current, state = optimizer.step(current, grads, state, masks)
                bar.set_postfix(loss=f"{float(value):.3f}", refresh=False)
                bar.update()
    return current


def accuracy(
    model: nn.Module,
    params: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    x: Tensor,
    y: Tensor,
) -> Tensor:
    """Fraction of ``x`` classified correctly with the masked parameters (a 0-d tensor; vmappable)."""
    logits: Tensor = fp.masked_call(model, params, masks, x)
    return (logits.argmax(dim=-1) == y).to(torch.float32).mean()


def add_run_args(parser: argparse.ArgumentParser) -> None:
    """The options every digits example shares: ``--threads`` and ``--out``."""
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default: 1, fastest for this size)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("out"), help="output folder (default: out/)"
    )
