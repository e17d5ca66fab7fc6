"""Graph capture with torch's own tracers: ``torch.export`` first, ``torch.fx``'s ``make_fx`` else.

Both give a graph of ATen ops whose placeholders are parameters, buffers, constants and the
user's inputs. The model is captured in eval mode (on a copy), so batch norm appears as its
per-channel inference form and dropout as identity-shaped ops.

>>> import torch
>>> captured = capture(torch.nn.Linear(2, 3), (torch.zeros(1, 2),))
>>> captured.tracer, sorted(captured.parameters.values())
('torch.export', ['bias', 'weight'])
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import fx, nn
from torch.func import functional_call


@dataclass(frozen=True)
class Captured:
    """A captured graph and what its placeholders are."""

    graph: fx.Graph
    parameters: dict[str, str]
    """Placeholder name -> parameter key."""
    buffers: dict[str, str]
    """Placeholder name -> buffer key."""
    aliases: dict[str, str]
    """Every parameter or buffer name -> the name ``named_parameters()``/``named_buffers()`` gives
    its tensor (tied weights: GPT-2's ``lm_head.weight`` -> ``transformer.wte.weight``)."""
    tracer: str
    """``"torch.export"`` or ``"torch.fx (make_fx)"``, and why export failed when it did."""


def eval_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode (the model itself is left as it is)."""
    return copy.deepcopy(model).eval()


def capture(model: nn.Module, example_inputs: Sequence[object]) -> Captured:
    """Capture an eval-mode copy of ``model`` called on ``example_inputs``."""
    return capture_eval(eval_copy(model), example_inputs)


def capture_eval(model: nn.Module, example_inputs: Sequence[object]) -> Captured:
    """Capture ``model`` (already in eval mode, not modified) on ``example_inputs``."""
    args = tuple(example_inputs)
    try:
        exported = torch.export.export(model, args, strict=False)
    except Exception as error:
        return _make_fx(model, args, f"{type(error).__name__}: {str(error).splitlines()[0]}")
    signature = exported.graph_signature
    return Captured(
        exported.graph_module.graph,
        dict(signature.inputs_to_parameters),
        dict(signature.inputs_to_buffers),
        _aliases(model),
        "torch.export",
    )


def _aliases(model: nn.Module) -> dict[str, str]:
    canonical: dict[int, str] = {}
    for name, param in model.named_parameters():
        canonical[id(param)] = name
    for name, buffer in model.named_buffers():
        canonical.setdefault(id(buffer), name)
    everything = [
        *model.named_parameters(remove_duplicate=False),
        *model.named_buffers(remove_duplicate=False),
    ]
    return {name: canonical[id(tensor)] for name, tensor in everything}


def _make_fx(model: nn.Module, args: tuple[object, ...], why: str) -> Captured:
    from torch.fx.experimental.proxy_tensor import make_fx

    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    keys = [*params, *buffers]

    def call(tensors: list[torch.Tensor], *inputs: object) -> object:
        return functional_call(model, dict(zip(keys, tensors, strict=True)), inputs)

    try:
        graph_module = make_fx(call, pre_dispatch=True)(
            [*params.values(), *buffers.values()], *args
        )
    except Exception as error:
        raise RuntimeError(
            f"channel_groups cannot capture the model: torch.export failed with {why}, and "
            f"torch.fx's make_fx with {type(error).__name__}: {str(error).splitlines()[0]}. "
            "Data-dependent Python control flow is the usual cause; capture a submodule without "
            "it, or rewrite the branch with torch.cond"
        ) from error
    placeholders = [n.name for n in graph_module.graph.nodes if n.op == "placeholder"]
    names = dict(zip(placeholders, keys, strict=False))
    return Captured(
        graph_module.graph,
        {name: key for name, key in names.items() if key in params},
        {name: key for name, key in names.items() if key in buffers},
        _aliases(model),
        f"torch.fx (make_fx; torch.export failed with {why})",
    )
