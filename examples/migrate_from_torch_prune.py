"""Migrating from ``torch.nn.utils.prune``: one model pruned three ways, and a checkpoint converted.

1. ``torch.nn.utils.prune``: the hook-based original.
2. ``funcprune.compat``: the same code with one changed import (``import funcprune.compat as
   prune``); same module effects, same state-dict keys, same masks.
3. The pure API: the same recipe as one method value, ``masks = method(params)``, and the model
   run with ``fp.masked_call``; the module is never modified.

All three give identical masks and bit-identical outputs. Then a checkpoint saved by torch-pruned
code is converted into ``(params, masks)`` with ``fp.from_state_dict``, and back with
``fp.to_state_dict``.

Run it with ``python examples/migrate_from_torch_prune.py`` (``--help`` for the options).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import torch
import torch.nn.utils.prune as torch_prune
from torch import Tensor, nn

import funcprune as fp
import funcprune.compat as compat_prune


def make_model(seed: int) -> nn.Sequential:
    """A small CNN; the same ``seed`` gives the same weights."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 6 * 6, 10),
    )


def prune_the_torch_way(model: nn.Sequential, prune: ModuleType) -> nn.Sequential:
    """The recipe written against ``torch.nn.utils.prune``'s API; ``prune`` is torch's or compat.

    40% of all weights by global magnitude, then a quarter of the conv filters by L2 norm, then the
    two smallest output biases.
    """
    conv, fc = model[0], model[3]
    prune.global_unstructured(
        [(conv, "weight"), (fc, "weight")], pruning_method=prune.L1Unstructured, amount=0.4
    )
    prune.ln_structured(conv, "weight", amount=0.25, n=2, dim=0)
    prune.l1_unstructured(fc, "bias", amount=2)
    return model


def pure_method() -> fp.PruningMethod:
    """The same recipe as one value of the pure API (keys are ``named_parameters()`` names)."""
    return fp.chain(
        fp.only(fp.global_unstructured(0.4), include=r"weight$"),
        fp.only(fp.ln_structured(0.25, n=2, dim=0), include=r"^0\.weight$"),
        fp.only(fp.l1_unstructured(2), include=r"^3\.bias$"),
    )


class Way(NamedTuple):
    """How one way of pruning compares with torch's."""

    name: str
    masks: dict[str, Tensor]
    output: Tensor


def torch_masks(model: nn.Module) -> dict[str, Tensor]:
    """The bool masks of a torch- or compat-pruned module, by parameter name."""
    return fp.from_module(model)[1]


def three_ways(seed: int, x: Tensor) -> list[Way]:
    """Prune identical copies of one model with torch, with compat and with the pure API."""
    by_torch = prune_the_torch_way(make_model(seed), torch_prune)
    by_compat = prune_the_torch_way(make_model(seed), compat_prune)
    model = make_model(seed)
    params = {k: v.detach() for k, v in model.named_parameters()}
    masks = pure_method()(params)
    pruned_keys = set(torch_masks(by_torch))
    with torch.no_grad():
        return [
            Way("torch.nn.utils.prune", torch_masks(by_torch), by_torch(x)),
            Way("funcprune.compat", torch_masks(by_compat), by_compat(x)),
            Way(
                "funcprune (pure)",
                {k: m for k, m in masks.items() if k in pruned_keys},
                fp.masked_call(model, params, masks, x),
            ),
        ]


def same_masks(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def convert_checkpoint(seed: int, x: Tensor, folder: Path) -> tuple[bool, bool]:
    """Save a torch-pruned model's state dict, read it as (params, masks), write it back.

    Returns whether the pure forward equals the torch-pruned forward bit for bit, and whether the
    state dict written back loads into a torch-pruned module and gives the same output again.
    """
    torch_model = prune_the_torch_way(make_model(seed), torch_prune)
    path = folder / "torch_pruned.pt"
    torch.save(torch_model.state_dict(), path)

    params, masks = fp.from_state_dict(torch.load(path))  # plain keys + bool masks
    plain = make_model(seed + 1)  # any module of the same architecture
    with torch.no_grad():
        expected = torch_model(x)
        same_output = torch.equal(fp.masked_call(plain, params, masks, x), expected)

        target = make_model(seed + 2)
        for key in masks:  # give the target torch's layout (any amount), then load
            owner, _, name = key.rpartition(".")
            torch_prune.identity(target.get_submodule(owner), name)
        target.load_state_dict(fp.to_state_dict(params, masks))
        round_trip = torch.equal(target(x), expected)
    return same_output, round_trip


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="weights and input (default: 0)")
    parser.add_argument(
        "--out", type=Path, default=Path("out"), help="output folder (default: out/)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, bool]:
    """Run the comparison; returns every check by name (all should be True)."""
    args = parse_args(argv)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(args.seed))
    ways = three_ways(args.seed, x)
    reference = ways[0]
    checks: dict[str, bool] = {}
    print(f"{'way':<22} {'masks == torch':>15} {'output == torch':>16}")
    for way in ways:
        masks_equal = same_masks(way.masks, reference.masks)
        output_equal = torch.equal(way.output, reference.output)
        checks[f"{way.name}: masks"] = masks_equal
        checks[f"{way.name}: output"] = output_equal
        print(f"{way.name:<22} {masks_equal!s:>15} {output_equal!s:>16}")
    sparsity = fp.sparsity(reference.masks)
    print("\nsparsity per pruned tensor:")
    for key, value in sparsity.per_key.items():
        print(f"  {key:<10} {value:6.1%}")

    args.out.mkdir(parents=True, exist_ok=True)
    same_output, round_trip = convert_checkpoint(args.seed, x, args.out)
    checks["checkpoint -> (params, masks): output"] = same_output
    checks["(params, masks) -> checkpoint: output"] = round_trip
    print(f"\ntorch-pruned checkpoint -> fp.from_state_dict -> masked_call == torch: {same_output}")
    print(f"fp.to_state_dict -> load_state_dict on a torch-pruned module == torch: {round_trip}")
    return checks


if __name__ == "__main__":
    main()
