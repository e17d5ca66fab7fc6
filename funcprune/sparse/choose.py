"""``fastest_layouts``: measure each pruned layer dense and sparse, keep the faster form.

See :func:`fastest_layouts`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from funcprune._checks import check_int
from funcprune.sparse._layers import (
    bias_of,
    dense_weight,
    finalized_copy,
    linear_layers,
    module_name,
    plan,
)
from funcprune.sparse.linear import LAYOUTS, SparseLinear, blocks_fit, to_layout
from funcprune.types import Params


def fastest_layouts(
    model: nn.Module,
    params: Params,
    masks: Mapping[str, Tensor],
    example_inputs: tuple[Any, ...],
    *,
    candidates: Sequence[str] = ("csr",),
    blocksize: tuple[int, int] = (16, 16),
    repeats: int = 10,
) -> dict[str, str]:
    """For each Linear/Conv1D layer whose mask prunes something, ``"dense"`` or the fastest sparse layout.

    Runs the finalized model once on ``example_inputs`` to record each layer's real input, then
    times the layer dense and in each candidate layout on that input, ``repeats`` times,
    interleaved (so load from other processes hits every form alike), and keeps the lowest
    median. Pass the result to :func:`funcprune.sparse.to_sparse` as ``layout``. Timings depend
    on the machine, its load, the thread count and the batch size: measure with inputs shaped
    like the ones you will serve. BSR is tried only where ``blocksize`` divides the weight.
    A layer that the example inputs never reach is left ``"dense"``.

    Args:
        model: the dense model (untouched).
        params: its parameters (all or some), by key.
        masks: bool masks, ``True`` keeps.
        example_inputs: positional arguments of one forward call.
        candidates: sparse layouts to try, from ``("csr", "bsr")``.
        blocksize: BSR block shape.
        repeats: timed calls per form and layer (at least 1).

    Raises:
        ValueError: unknown candidates, ``repeats < 1``, or no layer to convert.

    >>> import torch, funcprune as fp
    >>> from funcprune.sparse import fastest_layouts, to_sparse
    >>> model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    >>> params = {k: v.detach() for k, v in model.named_parameters()}
    >>> masks = fp.l1_unstructured(0.95)(params)
    >>> x = torch.randn(1, 64)
    >>> choice = fastest_layouts(model, params, masks, (x,), repeats=3)
    >>> sorted(choice), all(v in ("dense", "csr") for v in choice.values())
    (['0.weight', '2.weight'], True)
    >>> fast = to_sparse(model, params, masks, layout=choice)
    >>> torch.allclose(fast(x), fp.masked_call(model, params, masks, x), atol=1e-5)
    True
    """
    bad = [c for c in candidates if c not in LAYOUTS]
    if bad or not candidates:
        raise ValueError(
            f"candidates must be a non-empty subset of {list(LAYOUTS)}; got {list(candidates)}"
        )
    if check_int("repeats", repeats) < 1:
        raise ValueError(f"repeats={repeats} must be at least 1")
    keys = plan(model, masks, "csr", ("csr",))
    finalized = finalized_copy(model, params, masks)
    inputs = _layer_inputs(finalized, list(keys), example_inputs)
    choice = {}
    for key in keys:
        dense = finalized.get_submodule(module_name(key))
        forms = {"dense": dense, **_sparse_forms(key, dense, candidates, blocksize)}
        choice[key] = _fastest(forms, inputs[key], repeats) if key in inputs else "dense"
    return choice


def _layer_inputs(
    model: nn.Module, keys: list[str], example_inputs: tuple[Any, ...]
) -> dict[str, Tensor]:
    """Each layer's input on its first call during one forward of ``model`` (a private copy)."""
    layers = linear_layers(model)
    seen: dict[str, Tensor] = {}

    def recorder(key: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            seen.setdefault(key, args[0].detach())

        return hook

    handles = [layers[key].register_forward_pre_hook(recorder(key)) for key in keys]
    try:
        with torch.no_grad():
            model(*example_inputs)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def _sparse_forms(
    key: str, layer: nn.Module, candidates: Sequence[str], blocksize: tuple[int, int]
) -> dict[str, nn.Module]:
    weight = dense_weight(layer)
    return {
        c: SparseLinear(to_layout(weight, c, blocksize, key), bias_of(layer))
        for c in candidates
        if c == "csr" or blocks_fit(tuple(weight.shape), blocksize)
    }


def _fastest(forms: Mapping[str, nn.Module], x: Tensor, repeats: int) -> str:
    times: dict[str, list[float]] = {name: [] for name in forms}
    with torch.no_grad():
        for form in forms.values():
            form(x)  # warm up
        for _ in range(repeats):
            for name, form in forms.items():
                start = time.perf_counter()
                form(x)
                _wait(x)
                times[name].append(time.perf_counter() - start)
    return min(times, key=lambda name: statistics.median(times[name]))


def _wait(x: Tensor) -> None:
    """CUDA kernels run asynchronously: wait for them so the clock measures their work."""
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)


__all__ = ["fastest_layouts"]
