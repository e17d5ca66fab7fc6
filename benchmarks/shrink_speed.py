"""Dense vs shrunk latency: ResNet-50 (batch 8, 224x224, CPU) and a GPT-2-small block.

Run by hand; prints a Markdown table for docs/benchmarks.md::

    python -m benchmarks.shrink_speed [--repeats 10] [--batch 8] [--size 224]

ResNet-50: ``group_structured(0.5, groups, scope="local")`` keeps half of every layer's channels
(Torch-Pruning's anchor setting: 4.12G -> 1.07G MACs, 45.22 -> 20.68 ms, 2.19x). GPT-2-small
block (768 wide, 12 heads, MLP 3072, 512 tokens): half of the heads and half of the MLP units.
Timings alternate dense and shrunk calls (medians), so machine noise hits both alike; MACs are
``FlopCounterMode`` FLOPs / 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import funcprune as fp
from benchmarks.timing import interleaved
from funcprune.structure import channel_groups, group_structured, shrink


def _macs(model: nn.Module, inputs: tuple[Any, ...]) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(*inputs)
    return counter.get_total_flops() // 2


def _pruned(model: nn.Module, inputs: tuple[Any, ...], amount: float) -> nn.Module:
    groups = channel_groups(model, inputs)
    params = {k: v.detach() for k, v in model.named_parameters()}
    masks = group_structured(amount, groups, scope="local")(params)
    small = shrink(model, params, masks, inputs, groups=groups)
    with torch.no_grad():
        expected = fp.masked_call(model, params, masks, *inputs)
        got = small(*inputs)
    first = expected[0] if isinstance(expected, tuple) else expected
    other = got[0] if isinstance(got, tuple) else got
    assert torch.allclose(first, other, rtol=1e-3, atol=1e-4), "shrunk model differs"
    return small


def _row(name: str, model: nn.Module, inputs: tuple[Any, ...], amount: float, repeats: int) -> str:
    model.eval()
    small = _pruned(model, inputs, amount).eval()

    def call(module: nn.Module) -> Callable[[], object]:
        def run() -> object:
            with torch.inference_mode():
                return module(*inputs)

        return run

    times = interleaved({"dense": call(model), "shrunk": call(small)}, repeats)
    dense, shrunk = times["dense"].median, times["shrunk"].median
    params = [sum(p.numel() for p in m.parameters()) / 1e6 for m in (model, small)]
    macs = [_macs(m, inputs) / 1e9 for m in (model, small)]
    return (
        f"| {name} | {params[0]:.2f}M -> {params[1]:.2f}M | {macs[0]:.2f}G -> {macs[1]:.2f}G "
        f"({macs[0] / macs[1]:.2f}x) | {dense * 1e3:.1f} -> {shrunk * 1e3:.1f} ms | **{dense / shrunk:.2f}x** |"
    )


def resnet50(batch: int, size: int, repeats: int) -> str:
    """ResNet-50, half of every layer's channels."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet50()
    inputs = (torch.randn(batch, 3, size, size),)
    return _row(f"ResNet-50, batch {batch}, {size}x{size}", model, inputs, 0.5, repeats)


def gpt2_block(tokens: int, repeats: int) -> str:
    """One GPT-2-small block, half of the heads and half of the MLP units."""
    from transformers import GPT2Config
    from transformers.models.gpt2.modeling_gpt2 import GPT2Block

    torch.manual_seed(0)
    config = GPT2Config(use_cache=False, attn_implementation="sdpa")
    model = GPT2Block(config, layer_idx=0)
    inputs = (torch.randn(1, tokens, config.n_embd),)
    return _row(f"GPT-2-small block, {tokens} tokens", model, inputs, 0.5, repeats)


def main() -> None:
    """Print the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [resnet50(args.batch, args.size, args.repeats), gpt2_block(args.tokens, args.repeats)]
    print(
        f"Threads: {torch.get_num_threads()}; torch {torch.__version__}; medians of {args.repeats} interleaved calls\n"
    )
    print("| model | params | MACs | latency (median) | speed-up |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
