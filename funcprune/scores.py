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
    check_known_keys,
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
    # Scores are data, never differentiated: detached, so Parameters can be scored directly.
    return {key: (params[key] * g).abs().detach() for key, g in grads.items()}


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


_CONVS = {F.conv1d: 1, F.conv2d: 2, F.conv3d: 3}
_TRANSPOSED = {F.conv_transpose1d: 1, F.conv_transpose2d: 2, F.conv_transpose3d: 3}
_PRODUCTS = (
    torch.matmul,
    torch.mm,
    torch.bmm,
    torch.baddbmm,
    torch.einsum,
    torch.addmm,
    Tensor.matmul,
    Tensor.__matmul__,
    Tensor.__rmatmul__,
    Tensor.mm,
    F.bilinear,
    F.multi_head_attention_forward,
)
"""Functions that multiply a weight with activations in ways ``activation_norms`` cannot attribute
to input features; a watched weight seen in one of them (other than HF ``Conv1D``'s ``addmm``) is
reported instead of silently dropped."""


def _argument(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _channel_squares(x: Tensor, spatial: int) -> Tensor:
    """Sum of squares of each channel of a conv input ``(N, C, *spatial)`` or ``(C, *spatial)``."""
    channels = x.detach().to(torch.float64)
    if channels.dim() == spatial + 2:
        channels = channels.transpose(0, 1)
    return channels.reshape(channels.shape[0], -1).pow(2).sum(1)


class _LayerInputs(TorchFunctionMode):
    """Sums of squared inputs per input feature of every watched weight a layer function uses.

    ``sums[key]`` is shaped to broadcast against the weight: ``(in,)`` for ``F.linear``'s
    ``(out, in)``, ``(in, 1)`` for HF ``Conv1D``'s ``addmm`` on ``(in, out)``, ``(1 or out,
    in / groups, 1, ...)`` for convolutions and ``(in, 1, ...)`` for transposed ones.
    """

    def __init__(self, watched: Mapping[str, Tensor]) -> None:
        super().__init__()
        self.names = {id(t): key for key, t in watched.items() if t.dim() >= 2}
        self.sums: dict[str, Tensor] = {}
        self.skipped: dict[str, str] = {}

    def _add(self, key: str, squares: Tensor) -> None:
        self.sums[key] = self.sums[key] + squares if key in self.sums else squares

    def _record(self, func: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
        """Record the inputs of a call we understand; whether it was one."""
        weight = _argument(args, kwargs, 1, "weight")
        key = self.names.get(id(weight))
        if func is F.linear and key is not None:
            x = _argument(args, kwargs, 0, "input").detach().to(torch.float64)
            self._add(key, x.reshape(-1, x.shape[-1]).pow(2).sum(0))
        elif func is torch.addmm and id(_argument(args, kwargs, 2, "mat2")) in self.names:
            key = self.names[id(_argument(args, kwargs, 2, "mat2"))]
            x = _argument(args, kwargs, 1, "mat1").detach().to(torch.float64)
            self._add(key, x.pow(2).sum(0).unsqueeze(1))
        elif func in _CONVS and key is not None:
            groups = int(_argument(args, kwargs, 6, "groups") or 1)
            squares = _channel_squares(_argument(args, kwargs, 0, "input"), _CONVS[func])
            out, per_group, ones = weight.shape[0], weight.shape[1], [1] * _CONVS[func]
            if groups > 1:  # output channel o of group g reads input channels g * per_group + j
                squares = squares.reshape(groups, 1, per_group).expand(-1, out // groups, -1)
            self._add(key, squares.reshape(-1, per_group, *ones))
        elif func in _TRANSPOSED and key is not None:
            squares = _channel_squares(_argument(args, kwargs, 0, "input"), _TRANSPOSED[func])
            self._add(key, squares.reshape(-1, *[1] * (weight.dim() - 1)))
        else:
            return False
        return True

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if not self._record(func, args, kwargs) and func in _PRODUCTS:
            for value in [*args, *kwargs.values()]:
                if id(value) in self.names:
                    self.skipped[self.names[id(value)]] = getattr(func, "__name__", repr(func))
        return func(*args, **kwargs)


def activation_norms(
    module: nn.Module, params: Params, batches: Iterable[Tensor | tuple[Any, ...]]
) -> dict[str, Tensor]:
    """L2 norm of each input feature's activations, per layer weight, over a few batches.

    Runs ``functional_call(module, params, batch)`` for every batch (a tensor or a tuple of
    positional arguments) without gradients, and for every key of ``params`` used as the weight of
    a layer records ``sqrt(sum over all batches and positions of x_j ** 2)`` for each input
    feature ``j``. Layers covered, and the shape of their norms (it broadcasts against the weight,
    which is what :func:`wanda` multiplies):

    - ``F.linear`` (``nn.Linear`` and anything built on it), weight ``(out, in)``: ``(in,)``.
    - HF ``Conv1D`` (GPT-2; ``torch.addmm(bias, x, weight)``), weight ``(in, out)``: ``(in, 1)``.
    - ``F.conv1d/2d/3d``, weight ``(out, in / groups, *k)``: per input channel, summed over all
      positions, ``(1, in, 1, ...)`` (``(out, in / groups, 1, ...)`` for grouped convolutions).
    - ``F.conv_transpose1d/2d/3d``, weight ``(in, out / groups, *k)``: ``(in, 1, ...)``.

    Nothing is mutated: calls are observed through a ``TorchFunctionMode``, not module hooks.
    Keys used by none of these are absent from the result.

    Raises:
        ValueError: a weight (2 or more dims) of ``params`` multiplied with activations by a
            function not covered above (``torch.matmul``, ``einsum``, ``nn.MultiheadAttention``'s
            fused projection, ...), naming the keys and functions (leave those keys out of
            ``params``); or no key of ``params`` used as a layer weight at all.

    >>> import torch, funcprune as fp
    >>> lin = torch.nn.Linear(2, 1)
    >>> params = dict(lin.named_parameters())
    >>> fp.activation_norms(lin, params, [torch.tensor([[3.0, 0.0]]), torch.tensor([[4.0, 1.0]])])
    {'weight': tensor([5., 1.])}
    """
    check_params(params)
    watcher = _LayerInputs(params)
    with torch.no_grad(), watcher:
        for batch in batches:
            functional_call(module, dict(params), batch if isinstance(batch, tuple) else (batch,))
    if watcher.skipped:
        found = ", ".join(f"{k!r} (in {f})" for k, f in sorted(watcher.skipped.items()))
        raise ValueError(
            f"activation_norms cannot tell the input features of {found}: they are used by "
            "functions it does not cover (it covers F.linear, HF Conv1D's addmm and "
            "convolutions); leave those keys out of params"
        )
    if not watcher.sums:
        raise ValueError(
            f"no parameter among {sorted(params)} was used as the weight of a linear or "
            "convolution layer while running the batches; pass the module's layer weights and "
            "at least one batch"
        )
    return {key: s.sqrt().to(params[key].dtype) for key, s in watcher.sums.items()}


def _fits(weight: Tensor, norms: Tensor) -> bool:
    """``norms`` of shape ``(in,)`` for a 2-d ``(out, in)`` weight, or broadcastable to the weight."""
    if weight.dim() == 2 and tuple(norms.shape) == (weight.shape[1],):
        return True
    return norms.dim() == weight.dim() >= 2 and all(
        n in (1, w) for n, w in zip(norms.shape, weight.shape, strict=True)
    )


def wanda(params: Params, norms: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Wanda scores ``|W| * ||X_j||_2`` (Sun et al., 2023), for the keys of ``norms``.

    ``norms[key]`` holds the L2 norm of each input feature's activations, as
    :func:`activation_norms` returns it: ``(in,)`` for a linear weight ``(out, in)`` (entry
    ``(i, j)`` scores ``|W_ij| * norms[key][j]``), or any shape with the weight's number of dims
    that broadcasts against it (HF ``Conv1D``'s ``(in, 1)``, a convolution's ``(1, in, 1, 1)``).
    Wanda's reference code scales the squared norms by the number of samples, a constant that
    changes no ranking. The paper prunes per output row; with sparse tensor cores, pair it with
    ``nm_semistructured(2, 4)`` along each layer's inputs (see :func:`funcprune.along_inputs`).

    Raises:
        TypeError: ``norms`` not a mapping of tensors.
        KeyMismatchError (a ``ValueError``): keys of ``norms`` that are not parameters.
        ValueError: norms that neither are ``(in,)`` for a 2-d weight nor broadcast against it.

    >>> import torch, funcprune as fp
    >>> params = {"fc.weight": torch.tensor([[1.0, -1.0], [2.0, 0.5]])}
    >>> fp.wanda(params, {"fc.weight": torch.tensor([3.0, 10.0])})
    {'fc.weight': tensor([[ 3., 10.],
            [ 6.,  5.]])}
    """
    check_params(params)
    check_tensor_mapping("norms", norms)
    check_known_keys("norms", norms, params)
    bad = sorted(
        f"{k!r}: weight {tuple(params[k].shape)}, norms {tuple(n.shape)}"
        for k, n in norms.items()
        if not _fits(params[k], n)
    )
    if bad:
        raise ValueError(
            "wanda needs layer weights of 2 or more dims and one norm per input feature (shape "
            f"(in,) for a linear (out, in) weight, or broadcastable to the weight); mismatched: "
            f"{'; '.join(bad)}"
        )
    return {key: params[key].abs() * n.to(params[key].dtype) for key, n in norms.items()}


__all__ = ["activation_norms", "magnitude", "movement", "ranks", "taylor", "wanda"]
