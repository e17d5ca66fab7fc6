"""The workloads: each times funcprune and torch side by side in this process and checks the masks."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap
from torch.nn.utils import prune

import funcprune as fp
from benchmarks.models import Holder, flat_weights, gpt2_weights, mlp
from benchmarks.timing import Timed, copy_seconds, interleaved, peak_rss_delta_in_subprocess


@dataclass
class Result:
    """One row of the table: our time, the baseline's, their ratio and the target it is held to."""

    workload: str
    ours: Timed
    baseline: Timed
    baseline_name: str
    ratio: float
    ratio_name: str
    target: str
    met: bool
    floor: float | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Scaling:
    """Global selection time against size."""

    sizes: list[int]
    ours: list[Timed]
    torch_sizes: list[int]
    torch: list[Timed]
    copies: list[float]


def _same_masks(ours: Mapping[str, Tensor], theirs: Mapping[str, Tensor]) -> bool:
    return ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def _bytes(params: Mapping[str, Tensor]) -> int:
    return sum(p.numel() * p.element_size() for p in params.values())


def global_gpt2(repeats: int, torch_repeats: int, memory: bool) -> Result:
    """Global L1 at 0.8 over the 48 GPT-2-small block weights (~85M entries)."""
    params = gpt2_weights()
    holder = Holder(params)
    method = fp.global_unstructured(0.8)
    times = interleaved(
        {
            "funcprune": lambda: method(params),
            "torch": lambda: prune.global_unstructured(
                holder.targets(), pruning_method=prune.L1Unstructured, amount=0.8
            ),
        },
        repeats=torch_repeats,
        setup={"torch": lambda: holder.restore(params)},
        warmup=0,
    )
    extra = interleaved({"funcprune": lambda: method(params)}, repeats=repeats)
    ours = extra["funcprune"]
    same = _same_masks(method(params), holder.masks())
    n = sum(p.numel() for p in params.values())
    notes = [
        f"{n / 1e6:.1f}M entries in {len(params)} tensors",
        f"masks identical to torch's: {same}",
    ]
    met = times["torch"].median / ours.median >= 50
    if memory:
        mine = peak_rss_delta_in_subprocess("global_gpt2", "funcprune")
        theirs = peak_rss_delta_in_subprocess("global_gpt2", "torch")
        notes.append(
            f"peak RSS delta beyond the bool masks: funcprune {mine['beyond_masks_per_param']:.3f} "
            f"B/param (target <= 1), torch {theirs['beyond_masks_per_param']:.3f} B/param "
            f"(beyond its float masks)"
        )
        met = met and mine["beyond_masks_per_param"] <= 1.0
    holder.restore(params)
    return Result(
        workload="global L1 0.8, GPT-2-small stack",
        ours=ours,
        baseline=times["torch"],
        baseline_name="prune.global_unstructured",
        ratio=times["torch"].median / ours.median,
        ratio_name="speedup",
        target=">= 50x" + (", RSS <= 1 B/param" if memory else ""),
        met=met,
        floor=copy_seconds(_bytes(params)),
        notes=notes,
    )


def l1_square(repeats: int, torch_repeats: int, side: int = 4096) -> Result:
    """``l1_unstructured(0.7)`` on one ``side`` x ``side`` tensor."""
    generator = torch.Generator().manual_seed(1)
    params = {"weight": torch.randn(side, side, generator=generator)}
    holder = Holder(params)
    method = fp.l1_unstructured(0.7)
    pure = prune.L1Unstructured(0.7)
    times = interleaved(
        {
            "funcprune": lambda: method(params),
            "torch": lambda: prune.l1_unstructured(holder, "weight", amount=0.7),
            "torch compute_mask": lambda: pure.compute_mask(
                params["weight"], default_mask=torch.ones_like(params["weight"])
            ),
        },
        repeats=torch_repeats,
        setup={"torch": lambda: holder.restore(params)},
    )
    ours = interleaved({"funcprune": lambda: method(params)}, repeats=repeats)["funcprune"]
    same = _same_masks(method(params), holder.masks())
    holder.restore(params)
    return Result(
        workload=f"l1_unstructured 0.7, {side}x{side}",
        ours=ours,
        baseline=times["torch"],
        baseline_name="prune.l1_unstructured",
        ratio=times["torch"].median / ours.median,
        ratio_name="speedup",
        target=">= 15x",
        met=times["torch"].median / ours.median >= 15,
        floor=copy_seconds(_bytes(params)),
        notes=[
            f"masks identical to torch's: {same}",
            f"torch's compute_mask alone (no module effects): "
            f"{times['torch compute_mask'].median * 1e3:.1f} ms, "
            f"{times['torch compute_mask'].median / ours.median:.1f}x ours",
        ],
    )


def sweep(repeats: int, torch_repeats: int, side: int = 1024, count: int = 16) -> Result:
    """``count`` amounts of ``l1_unstructured`` on one tensor: one vmapped call vs torch in a loop."""
    generator = torch.Generator().manual_seed(2)
    params = {"weight": torch.randn(side, side, generator=generator)}
    holder = Holder(params)
    amounts = torch.linspace(0.05, 0.95, count)

    def ours() -> Tensor:
        return vmap(lambda a: fp.l1_unstructured(a)(params)["weight"])(amounts)

    def theirs() -> Tensor:
        masks = []
        for amount in amounts.tolist():
            prune.l1_unstructured(holder, "weight", amount=amount)
            masks.append(holder.weight_mask.bool())
            holder.restore(params)
        return torch.stack(masks)

    times = interleaved({"funcprune": ours, "torch": theirs}, repeats=torch_repeats)
    mine = interleaved({"funcprune": ours}, repeats=repeats)["funcprune"]
    same = torch.equal(ours(), theirs())
    restore = interleaved(
        {"restore": lambda: holder.restore(params)},
        repeats=repeats,
        setup={"restore": lambda: prune.l1_unstructured(holder, "weight", amount=0.5)},
    )["restore"]
    return Result(
        workload=f"sweep of {count} amounts, {side}x{side}",
        ours=mine,
        baseline=times["torch"],
        baseline_name="prune.l1_unstructured loop",
        ratio=times["torch"].median / mine.median,
        ratio_name="speedup",
        target=">= 30x",
        met=times["torch"].median / mine.median >= 30,
        floor=copy_seconds(_bytes(params)),
        notes=[
            f"masks identical to torch's: {same}",
            f"torch's loop undoes each pruning (prune.remove, weight restored) before the next: "
            f"{restore.median * 1e3:.2f} ms x {count} of its time",
        ],
    )


@dataclass
class _Step:
    """A 3 x 1024 MLP, a batch, its masks, and the training-step closures to compare."""

    model: nn.Module
    params: dict[str, Tensor]
    masks: dict[str, Tensor]
    x: Tensor
    y: Tensor


def _mlp_step(batch: int = 256, width: int = 1024) -> _Step:
    model = mlp(width)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in model.named_parameters()}
    weights = {k: v.detach() for k, v in params.items() if k.endswith("weight")}
    masks = fp.l1_unstructured(0.5)(weights)
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(batch, width, generator=generator)
    y = torch.randint(0, width, (batch,), generator=generator)
    return _Step(model, params, masks, x, y)


def _masked_entries(step: _Step) -> int:
    return sum(m.numel() for m in step.masks.values())


def _grad(loss: Callable[[], Tensor], params: Mapping[str, Tensor]) -> tuple[Tensor, ...]:
    return torch.autograd.grad(loss(), list(params.values()))


def _hooked(step: _Step) -> tuple[nn.Module, list[Tensor]]:
    hooked = copy.deepcopy(step.model)
    for module in hooked.modules():
        if isinstance(module, nn.Linear):
            prune.custom_from_mask(module, "weight", torch.ones_like(module.weight))
    for key, mask in step.masks.items():
        layer, name = key.rsplit(".", 1)
        getattr(hooked.get_submodule(layer), name + "_mask").copy_(mask)
    named = dict(hooked.named_parameters())
    return hooked, [named[key + "_orig" if key in step.masks else key] for key in step.params]


def train_step(repeats: int) -> Result:
    """Gradient of cross-entropy of a 3 x 1024 MLP, batch 256: masked_call vs dense functional_call."""
    s = _mlp_step()
    hooked, hooked_params = _hooked(s)

    def dense() -> tuple[Tensor, ...]:
        return _grad(
            lambda: F.cross_entropy(functional_call(s.model, s.params, (s.x,)), s.y), s.params
        )

    def masked() -> tuple[Tensor, ...]:
        return _grad(
            lambda: F.cross_entropy(fp.masked_call(s.model, s.params, s.masks, s.x), s.y), s.params
        )

    def torch_hooked() -> tuple[Tensor, ...]:
        return torch.autograd.grad(F.cross_entropy(hooked(s.x), s.y), hooked_params)

    times = interleaved(
        {
            "funcprune": masked,
            "dense": dense,
            "torch": torch_hooked,
            "apply_masks": lambda: fp.apply_masks(s.params, s.masks),
        },
        repeats=repeats,
        warmup=3,
    )
    ratio = times["funcprune"].median / times["dense"].median
    masking = times["apply_masks"].median
    same = all(torch.equal(a, b) for a, b in zip(masked(), torch_hooked(), strict=True))
    return Result(
        workload="MLP 3x1024 step, batch 256",
        ours=times["funcprune"],
        baseline=times["dense"],
        baseline_name="dense functional_call",
        ratio=ratio,
        ratio_name="time ratio",
        target="<= 1.03x dense",
        met=ratio <= 1.03,
        notes=[
            f"torch's hooked module: {times['torch'].median * 1e3:.2f} ms "
            f"({times['torch'].median / times['dense'].median:.3f}x dense)",
            f"gradients identical to the hooked module's: {same}",
            f"apply_masks alone (forward masking of {_masked_entries(s) / 1e6:.1f}M weights): "
            f"{masking * 1e3:.2f} ms = {masking / times['dense'].median:.1%} of the dense step, "
            f"against the {0.03 * times['dense'].median * 1e3:.2f} ms that 1.03x allows for all "
            "masking work (the backward multiplies the weight gradients by the mask once more)",
        ],
    )


def train_step_compiled(repeats: int) -> Result:
    """The same step with the loss under ``torch.compile``: graph breaks and time vs compiled dense."""
    s = _mlp_step()

    def dense_loss(params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(functional_call(s.model, params, (x,)), y)

    def masked_loss(
        params: dict[str, Tensor], masks: dict[str, Tensor], x: Tensor, y: Tensor
    ) -> Tensor:
        return F.cross_entropy(fp.masked_call(s.model, params, masks, x), y)

    detached = {k: v.detach() for k, v in s.params.items()}
    masking_c = torch.compile(fp.apply_masks)
    explained = torch._dynamo.explain(masked_loss)(s.params, s.masks, s.x, s.y)
    breaks = explained.graph_break_count
    torch._dynamo.reset()
    dense_c = torch.compile(dense_loss)
    masked_c = torch.compile(masked_loss)
    times = interleaved(
        {
            "funcprune": lambda: _grad(lambda: masked_c(s.params, s.masks, s.x, s.y), s.params),
            "dense": lambda: _grad(lambda: dense_c(s.params, s.x, s.y), s.params),
            "masking compiled": lambda: masking_c(detached, s.masks),
            "masking eager": lambda: fp.apply_masks(detached, s.masks),
        },
        repeats=repeats,
        warmup=3,
    )
    ratio = times["funcprune"].median / times["dense"].median
    return Result(
        workload="same step, torch.compile",
        ours=times["funcprune"],
        baseline=times["dense"],
        baseline_name="compiled dense",
        ratio=ratio,
        ratio_name="time ratio",
        target="0 graph breaks, <= 1.0x",
        met=breaks == 0 and ratio <= 1.0,
        notes=[
            f"graph breaks (torch._dynamo.explain): {breaks}, graphs: {explained.graph_count}",
            f"apply_masks alone: compiled {times['masking compiled'].median * 1e3:.2f} ms vs eager "
            f"{times['masking eager'].median * 1e3:.2f} ms, against a compiled dense step of "
            f"{times['dense'].median * 1e3:.1f} ms",
        ],
    )


def scaling(sizes: list[int], torch_limit: int, repeats: int) -> Scaling:
    """``global_unstructured(0.8)`` time against the number of entries (tensors of 2M entries)."""
    points = [
        _scale_point(n, n <= torch_limit, repeats if n < 50_000_000 else max(repeats // 2, 1))
        for n in sizes
    ]
    return Scaling(
        sizes=sizes,
        ours=[p["funcprune"] for p in points],
        torch_sizes=[n for n in sizes if n <= torch_limit],
        torch=[p["torch"] for p in points if "torch" in p],
        copies=[copy_seconds(n * 4) for n in sizes],
    )


def _scale_point(n: int, with_torch: bool, repeats: int) -> dict[str, Timed]:
    params = flat_weights(n)
    method = fp.global_unstructured(0.8)
    candidates: dict[str, Callable[[], object]] = {"funcprune": lambda: method(params)}
    setup: dict[str, Callable[[], None]] = {}
    if with_torch:
        holder = Holder(params)
        candidates["torch"] = lambda: prune.global_unstructured(
            holder.targets(), pruning_method=prune.L1Unstructured, amount=0.8
        )
        setup["torch"] = lambda: holder.restore(params)
    return interleaved(candidates, repeats=repeats, setup=setup)
