"""Importance scores for any selecting method: magnitude, Taylor saliency, movement and Wanda.

Each function returns a dict of tensors shaped like their parameters, to pass as
``importance_scores=`` to a method (:func:`funcprune.l1_unstructured`,
:func:`funcprune.global_unstructured`, :func:`funcprune.nm_semistructured`, ...). Methods rank by
``|score|``; the signed :func:`movement` scores go through :func:`ranks` first. Only the keys a
function was given scores for appear in its result (the others keep the method's default score).

>>> import torch, funcprune as fp
>>> params = {"w": torch.tensor([1.0, -2.0, 3.0])}
>>> grads = {"w": torch.tensor([0.5, 0.1, -0.1])}
>>> fp.l1_unstructured(1)(params, importance_scores=fp.taylor(params, grads))["w"]
tensor([ True, False,  True])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from torch.overrides import TorchFunctionMode

from funcprune._checks import (
    check_floating,
    check_params,
    check_tensor_dict,
    check_tensor_mapping,
)
from funcprune.types import Params, Scores


def _checked(params: Params, other: Mapping[str, Tensor], what: str) -> None:
    check_params(params)
    check_tensor_dict(params, other, what)


def magnitude(params: Params) -> dict[str, Tensor]:
    """``|w|`` for every parameter (the default score of the L1 methods, made explicit).

    >>> import torch, funcprune as fp
    >>> fp.magnitude({"w": torch.tensor([-2.0, 0.5])})
    {'w': tensor([2.0000, 0.5000])}
    """
    check_params(params)
    return {key: p.abs() for key, p in params.items()}


def taylor(params: Params, grads: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """First-order Taylor saliency ``|w * g|`` (SNIP's connection sensitivity), for the keys of ``grads``.

    ``|w * dL/dw|`` estimates how much the loss changes when ``w`` is set to zero. Compute ``grads``
    functionally, e.g. ``torch.func.grad(loss_fn)(params)``.

    >>> import torch, funcprune as fp
    >>> fp.taylor({"w": torch.tensor([2.0, -1.0])}, {"w": torch.tensor([0.25, 3.0])})
    {'w': tensor([0.5000, 3.0000])}
    """
    _checked(params, grads, "grads")
    return {key: (params[key] * g).abs() for key, g in grads.items()}


def movement(params: Params, accumulated_grads: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Movement scores ``-w * G`` (Sanh et al., 2020), for the keys of ``accumulated_grads``.

    ``G`` is the sum of ``dL/dw`` over the training steps so far; ``-w * G`` is large where training
    pushes ``w`` away from zero. The scores are **signed** (large keeps): rank them through
    :func:`ranks` before handing them to a method, which ranks by ``|score|``.

    >>> import torch, funcprune as fp
    >>> params = {"w": torch.tensor([1.0, 1.0, -1.0])}
    >>> scores = fp.movement(params, {"w": torch.tensor([0.5, -0.5, -2.0])})
    >>> scores
    {'w': tensor([-0.5000,  0.5000, -2.0000])}
    >>> fp.l1_unstructured(2)(params, importance_scores=fp.ranks(scores))["w"]
    tensor([False,  True, False])
    """
    _checked(params, accumulated_grads, "accumulated_grads")
    return {key: -(params[key] * g) for key, g in accumulated_grads.items()}


def ranks(scores: Scores) -> dict[str, Tensor]:
    """Dense ranks of signed scores across all keys: nonnegative float64, same order, same ties.

    The smallest score of all keys gets 0, the next distinct value 1, and so on (NaN one past the
    largest, as methods rank NaN magnitudes above every number), so a method that ranks by
    ``|score|`` ranks by the signed score, within a key and across keys (for
    :func:`funcprune.global_unstructured`). Exact for every floating dtype; eager only (not under
    ``vmap``).

    Raises:
        TypeError: ``scores`` not a mapping of floating tensors.

    >>> import torch, funcprune as fp
    >>> fp.ranks({"a": torch.tensor([-3.0, 2.0]), "b": torch.tensor([2.0, -0.5])})
    {'a': tensor([0., 2.], dtype=torch.float64), 'b': tensor([2., 1.], dtype=torch.float64)}
    """
    for key, s in check_tensor_mapping("scores", scores).items():
        check_floating(key, s, "score", "ranks")
    if not scores:
        return {}
    flat = torch.cat([s.detach().reshape(-1).to(torch.float64) for s in scores.values()])
    distinct = torch.unique(flat[~flat.isnan()])  # sorted ascending; NaN ranks one past them
    return {
        key: torch.searchsorted(distinct, s.detach().to(torch.float64).reshape(-1))
        .to(torch.float64)
        .reshape(s.shape)
        for key, s in scores.items()
    }


class _LinearInputs(TorchFunctionMode):
    """Sums of squared inputs per input feature of every ``F.linear`` whose weight is watched."""

    def __init__(self, watched: Mapping[str, Tensor]) -> None:
        super().__init__()
        self.names = {id(t): key for key, t in watched.items()}
        self.sums: dict[str, Tensor] = {}

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func is F.linear:
            x = args[0] if args else kwargs["input"]
            weight = args[1] if len(args) > 1 else kwargs["weight"]
            key = self.names.get(id(weight))
            if key is not None:
                squares = x.detach().to(torch.float64).reshape(-1, x.shape[-1]).pow(2).sum(0)
                self.sums[key] = self.sums[key] + squares if key in self.sums else squares
        return func(*args, **kwargs)


def activation_norms(
    module: nn.Module, params: Params, batches: Iterable[Tensor | tuple[Any, ...]]
) -> dict[str, Tensor]:
    """L2 norm of each input feature's activations, per linear weight, over a few batches.

    Runs ``functional_call(module, params, batch)`` for every batch (a tensor or a tuple of
    positional arguments) without gradients, and for every key of ``params`` used as the weight of
    a ``torch.nn.functional.linear`` call (``nn.Linear`` and anything built on ``F.linear``) records
    ``sqrt(sum over all batches and tokens of x_j ** 2)`` for each input feature ``j``. Nothing is
    mutated: calls are observed through a ``TorchFunctionMode``, not module hooks. Keys never used
    as a linear weight are absent from the result.

    Raises:
        ValueError: no key of ``params`` was used as a linear weight.

    >>> import torch, funcprune as fp
    >>> lin = torch.nn.Linear(2, 1)
    >>> params = dict(lin.named_parameters())
    >>> fp.activation_norms(lin, params, [torch.tensor([[3.0, 0.0]]), torch.tensor([[4.0, 1.0]])])
    {'weight': tensor([5., 1.])}
    """
    check_params(params)
    watcher = _LinearInputs(params)
    with torch.no_grad(), watcher:
        for batch in batches:
            functional_call(module, dict(params), batch if isinstance(batch, tuple) else (batch,))
    if not watcher.sums:
        raise ValueError(
            f"no parameter among {sorted(params)} was used as the weight of a linear layer "
            "(F.linear) while running the batches; pass the module's linear weights and at least "
            "one batch"
        )
    return {key: s.sqrt().to(params[key].dtype) for key, s in watcher.sums.items()}


def wanda(params: Params, norms: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Wanda scores ``|W| * ||X_j||_2`` (Sun et al., 2023), for the keys of ``norms``.

    ``norms[key]`` holds the L2 norm of each input feature's activations (from
    :func:`activation_norms`) and ``params[key]`` is a linear weight ``(out, in)``: entry ``(i, j)``
    scores ``|W_ij| * norms[key][j]``. Wanda's reference code scales the squared norms by the
    number of samples, a constant that changes no ranking. The paper prunes per output row; with
    sparse tensor cores, pair it with ``nm_semistructured(2, 4)`` (groups along inputs).

    Raises:
        TypeError: ``norms`` not a mapping of tensors.
        KeyError: keys of ``norms`` that are not parameters.
        ValueError: a weight that is not 2-d, or norms whose length is not its input size.

    >>> import torch, funcprune as fp
    >>> params = {"fc.weight": torch.tensor([[1.0, -1.0], [2.0, 0.5]])}
    >>> fp.wanda(params, {"fc.weight": torch.tensor([3.0, 10.0])})
    {'fc.weight': tensor([[ 3., 10.],
            [ 6.,  5.]])}
    """
    check_params(params)
    check_tensor_mapping("norms", norms)
    unknown = sorted(k for k in norms if k not in params)
    if unknown:
        raise KeyError(f"norms has keys that are not parameters: {unknown}")
    bad = sorted(
        f"{k!r}: weight {tuple(params[k].shape)}, norms {tuple(n.shape)}"
        for k, n in norms.items()
        if params[k].dim() != 2 or tuple(n.shape) != (params[k].shape[1],)
    )
    if bad:
        raise ValueError(
            "wanda needs 2-d linear weights (out, in) and one norm per input feature (shape "
            f"(in,)); mismatched: {'; '.join(bad)}"
        )
    return {key: params[key].abs() * n.to(params[key].dtype) for key, n in norms.items()}


__all__ = ["activation_norms", "magnitude", "movement", "ranks", "taylor", "wanda"]
