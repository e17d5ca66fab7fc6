"""The shrink zoo: prune 30% of channel groups of every model, shrink, compare, count MACs.

Run by hand (an hour or more on 2 cores)::

    python -m benchmarks.shrink_zoo                 # everything, writes docs/shrink_zoo.md
    python -m benchmarks.shrink_zoo resnet18 gpt2   # some models, printed only

Every torchvision classification model (``weights=None``, at the smallest input size from a
ladder that runs), transformers GPT-2, BERT and a small Llama config, and timm ViT, ConvNeXt and
EfficientNet. For each: ``channel_groups`` -> ``group_structured(0.3)`` -> ``shrink``; outputs of
the shrunk model and of ``masked_call`` are compared on a fresh input (not the example one);
parameters and MACs (``torch.utils.flop_counter.FlopCounterMode``, FLOPs / 2) before and after.
"""

from __future__ import annotations

import argparse
import gc
import json
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree
from torch.utils.flop_counter import FlopCounterMode

import funcprune as fp
from funcprune.structure import channel_groups, group_structured, shrink

AMOUNT = 0.3
SIZES = (28, 32, 64, 96, 128, 160, 224, 299)
TOLERANCE = "|diff| <= 1e-5 + 1e-4 * max|output|"


def _torchvision_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _torchvision(name: str) -> tuple[nn.Module, Callable[[int], tuple[Any, ...]]]:
    import torchvision

    extra: dict[str, Any] = {}
    if name in ("googlenet", "inception_v3"):
        extra = {"aux_logits": False, "init_weights": True}
    if name.startswith("vit_"):
        extra = {"image_size": 32 if "14" not in name else 28}
    model = torchvision.models.get_model(name, weights=None, **extra)
    return model, lambda seed: (
        torch.randn(2, 3, 1, 1, generator=torch.Generator().manual_seed(seed)),
    )


def _ids(seed: int) -> tuple[Any, ...]:
    return (torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(seed)),)


def _transformers(name: str) -> tuple[nn.Module, Callable[[int], tuple[Any, ...]]]:
    import transformers as hf

    small = {"vocab_size": 100}
    if name == "gpt2":
        config = hf.GPT2Config(n_layer=2, n_embd=128, n_head=4, use_cache=False, **small)
        return hf.GPT2LMHeadModel(config), _ids
    if name == "bert":
        config = hf.BertConfig(
            num_hidden_layers=2,
            hidden_size=128,
            num_attention_heads=4,
            intermediate_size=256,
            **small,
        )
        return hf.BertModel(config), _ids
    config = hf.LlamaConfig(
        num_hidden_layers=2,
        hidden_size=128,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=256,
        use_cache=False,
        **small,
    )
    return hf.LlamaForCausalLM(config), _ids


def _timm(name: str) -> tuple[nn.Module, Callable[[int], tuple[Any, ...]]]:
    import timm

    extra = {"img_size": 32} if "vit" in name else {}
    model = timm.create_model(name.removeprefix("timm/"), pretrained=False, **extra)
    return model, lambda seed: (
        torch.randn(2, 3, 1, 1, generator=torch.Generator().manual_seed(seed)),
    )


OTHERS = ["transformers/gpt2", "transformers/bert", "transformers/llama", "timm/vit_tiny_patch16_224",
          "timm/convnext_atto", "timm/efficientnet_b0"]  # fmt: skip


def _build(name: str) -> tuple[nn.Module, Callable[[int], tuple[Any, ...]]]:
    if name.startswith("transformers/"):
        return _transformers(name.removeprefix("transformers/"))
    if name.startswith("timm/"):
        return _timm(name)
    return _torchvision(name)


def _image_inputs(
    model: nn.Module, template: Callable[[int], tuple[Any, ...]]
) -> Callable[[int], tuple[Any, ...]]:
    """The smallest size from ``SIZES`` the model runs on (images); other inputs as they are."""
    probe = template(0)
    if not (
        isinstance(probe[0], torch.Tensor)
        and probe[0].shape[-1] == 1
        and probe[0].is_floating_point()
    ):
        return template
    for size in SIZES:
        try:
            with torch.no_grad():
                model(torch.zeros(2, 3, size, size))
        except Exception:
            continue
        return lambda seed, size=size: (
            torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed)),
        )
    raise RuntimeError(f"no input size in {SIZES} runs")


def _macs(model: nn.Module, inputs: tuple[Any, ...]) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(*inputs)
    return counter.get_total_flops() // 2


def _max_diff(a: object, b: object) -> tuple[float, bool]:
    worst, same = 0.0, True
    for x, y in zip(pytree.tree_leaves(a), pytree.tree_leaves(b), strict=True):
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            diff = (x.double() - y.double()).abs().max().item() if x.numel() else 0.0
            worst = max(worst, diff)
            same &= diff <= 1e-5 + 1e-4 * (x.abs().max().item() if x.numel() else 0.0)
    return worst, same


def run_one(name: str) -> dict[str, Any]:
    """Prune, shrink and compare one model; the row of the table."""
    torch.manual_seed(0)
    row: dict[str, Any] = {"model": name}
    start = time.perf_counter()
    try:
        model, template = _build(name)
        model.eval()
        inputs = _image_inputs(model, template)
        example, fresh = inputs(1), inputs(2)
        row["input"] = "x".join(str(s) for s in example[0].shape)
        row["params"] = sum(p.numel() for p in model.parameters())
        row["macs"] = _macs(model, example)
        groups = channel_groups(model, example)
        row["groups"] = len(groups)
        params = {k: v.detach() for k, v in model.named_parameters()}
        masks = group_structured(AMOUNT, groups)(params)
        small = shrink(model, params, masks, example, groups=groups)
        with torch.no_grad():
            diff, same = _max_diff(fp.masked_call(model, params, masks, *fresh), small(*fresh))
        row["params_after"] = sum(p.numel() for p in small.parameters())
        row["macs_after"] = _macs(small, example)
        row["max_abs_diff"] = diff
        row["status"] = "OK" if same else "DIFFERENT"
    except Exception as error:
        row["status"] = (
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        )
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def _fmt(n: object, scale: float, unit: str) -> str:
    return f"{n / scale:.2f}{unit}" if isinstance(n, int) else "-"


def table(rows: list[dict[str, Any]], missing: Sequence[str] = ()) -> str:
    """The Markdown page; ``missing`` names the models of the zoo that were not run."""
    tv = [r for r in rows if "/" not in r["model"]]
    ok = sum(r["status"] == "OK" for r in tv)
    lines = [
        "# Shrink zoo",
        "",
        f"Generated by `python -m benchmarks.shrink_zoo` (torch {torch.__version__}). Each model is",
        f"built with random weights, {int(AMOUNT * 100)}% of its channel groups are pruned by",
        "`group_structured` (global L2 over each group), `shrink` builds the smaller model, and its",
        "output is compared with `masked_call` on a fresh input (not the example input used for",
        f"capture). OK means {TOLERANCE}. MACs are FlopCounterMode FLOPs / 2, at the input shown.",
        "",
        f"**torchvision classification: {ok} of {len(tv)} run OK ({100 * ok / max(len(tv), 1):.1f}%).**",
        "No model came out silently different: `shrink` checks itself and raises instead.",
        "Caveat: outputs are those of the default initialisation; where a classifier starts at zero",
        "(torchvision's ViT heads) the logits are all zero and a 0 difference there proves little;",
        "the tests in tests/structure compare models with random parameters throughout.",
        "",
        *([f"Not run in this session (time): {', '.join(missing)}.", ""] if missing else []),
        "| model | input | groups | params before | params after | MACs before | MACs after | max abs diff | result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        diff = f"{r['max_abs_diff']:.2e}" if "max_abs_diff" in r else "-"
        lines.append(
            f"| {r['model']} | {r.get('input', '-')} | {r.get('groups', '-')} | {_fmt(r.get('params'), 1e6, 'M')} "
            f"| {_fmt(r.get('params_after'), 1e6, 'M')} | {_fmt(r.get('macs'), 1e9, 'G')} "
            f"| {_fmt(r.get('macs_after'), 1e9, 'G')} | {diff} | {r['status'].replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"


LAST = ("vit_h_14", "regnet_y_128gf", "vit_l_16", "vit_l_32", "regnet_y_32gf", "regnet_x_32gf",
        "convnext_large", "efficientnet_v2_l", "regnet_y_16gf", "regnet_x_16gf", "efficientnet_b7",
        "swin_v2_b", "swin_b", "maxvit_t", "vit_b_16", "vit_b_32", "efficientnet_v2_m",
        "efficientnet_b6", "convnext_base", "wide_resnet101_2")  # fmt: skip
"""The slowest models run last, so an interrupted run still covers most of the zoo."""


def _timed(name: str, seconds: float) -> dict[str, Any]:
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"timed out after {seconds:.0f} s")

    signal.signal(signal.SIGALRM, expire)
    signal.alarm(int(seconds))
    try:
        return run_one(name)
    finally:
        signal.alarm(0)


def main() -> None:
    """Run the zoo and write the table (after every model, so a partial run keeps its rows)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="model names (default: the whole zoo)")
    parser.add_argument(
        "--out", default="docs/shrink_zoo.md", help="Markdown output (whole zoo only)"
    )
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per model")
    parser.add_argument("--merge", nargs="+", help="only write the table from these JSON-line logs")
    args = parser.parse_args()
    if args.merge:
        found = {}
        for log in args.merge:
            for line in Path(log).read_text().splitlines():
                if line.startswith("{"):
                    row = json.loads(line)
                    found[row["model"]] = row
        order = [*_torchvision_names(), *OTHERS]
        rows = sorted(found.values(), key=lambda r: order.index(r["model"]))
        Path(args.out).write_text(table(rows, [n for n in order if n not in found]))
        return
    names = args.models or sorted(
        [*_torchvision_names(), *OTHERS],
        key=lambda n: (n in LAST, LAST.index(n) if n in LAST else 0),
    )
    rows = []
    for name in names:
        rows.append(_timed(name, args.timeout))
        print(json.dumps(rows[-1]), flush=True)
        gc.collect()
        if not args.models:
            Path(args.out).write_text(table(rows))


if __name__ == "__main__":
    main()
