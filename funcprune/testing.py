"""Hypothesis strategies and a contract checker for property-testing pruning methods.

Import it in your tests (it needs ``hypothesis``, the ``test`` extra; ``import funcprune`` never
imports it). :func:`params` draws model-like parameter dicts (Linear, Conv, Embedding and norm
layers, several dtypes, with and without ties and zeros), :func:`masks` incoming masks for them,
:func:`amounts` valid amounts, :func:`methods` and :func:`chains` built-in methods that are valid
for given parameters, and :func:`check_method` asserts the method contract.

Testing your own method: check the contract on any parameters and masks, then the property that
makes your method yours (here: it prunes ``round(amount * remaining)`` entries per key).

>>> import torch, funcprune as fp
>>> import funcprune.testing as fpt
>>> from hypothesis import given, settings, strategies as st
>>> def my_method(amount):  # prunes the entries with the smallest squares
...     def method(params, masks=None, *, importance_scores=None):
...         squares = {k: p.float() ** 2 for k, p in params.items()}
...         return fp.l1_unstructured(amount)(params, masks, importance_scores=squares)
...     return method
>>> @settings(max_examples=25, derandomize=True)
... @given(data=st.data(), amount=fpt.amounts())
... def test_my_method(data, amount):
...     params = data.draw(fpt.params())
...     masks = data.draw(fpt.masks(params))
...     result = fpt.check_method(my_method(amount), params, masks)
...     for key, keep in result.items():
...         alive = int(masks[key].sum()) if key in masks else keep.numel()
...         assert alive - int(keep.sum()) == round(float(amount) * alive)
>>> test_my_method()
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import torch
from hypothesis import strategies as st
from torch import Tensor

import funcprune as fp
from funcprune.types import Amount, Masks, Params, PruningMethod

DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
"""The floating dtypes :func:`params` draws from by default."""

_LAYERS = ("linear", "conv1d", "conv2d", "embedding", "norm")


def _layer(kind: str, width: Callable[[], int]) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of one layer of ``kind``, sizes drawn from ``width``."""
    out, inp = width(), width()
    if kind == "linear":
        return {"weight": (out, inp), "bias": (out,)}
    if kind == "conv1d":
        return {"weight": (out, inp, 3), "bias": (out,)}
    if kind == "conv2d":
        return {"weight": (out, inp, 3, 3)}
    if kind == "embedding":
        return {"weight": (out, inp)}
    return {"weight": (out,), "bias": (out,)}


@st.composite
def layer_shapes(draw: st.DrawFn, *, max_side: int = 6) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of one random layer, by parameter name (``weight``, maybe ``bias``).

    Linear ``(out, in)``, Conv1d ``(out, in, 3)``, Conv2d ``(out, in, 3, 3)``, Embedding
    ``(num, dim)`` or a norm layer's ``(n,)``; every side is in ``[1, max_side]``.

    >>> import funcprune.testing as fpt
    >>> from hypothesis import find
    >>> find(fpt.layer_shapes(), lambda s: len(s["weight"]) == 4)["weight"]
    (1, 1, 3, 3)
    """
    kind = draw(st.sampled_from(_LAYERS))
    return _layer(kind, lambda: draw(st.integers(1, max_side)))


@st.composite
def params(
    draw: st.DrawFn,
    *,
    min_layers: int = 1,
    max_layers: int = 3,
    max_side: int = 6,
    dtypes: Sequence[torch.dtype] = DTYPES,
) -> dict[str, Tensor]:
    """Model-like parameter dicts: ``"<i>.weight"``/``"<i>.bias"`` of a few random layers.

    One dtype per dict (from ``dtypes``); values are Gaussian (ties almost surely absent), small
    integers (many ties) or Gaussian with exact zeros, drawn per dict from a seeded generator.

    >>> import funcprune.testing as fpt
    >>> from hypothesis import find
    >>> sorted(find(fpt.params(), lambda p: len(p) >= 3))
    ['0.bias', '0.weight', '1.bias', '1.weight']
    """
    layers = draw(
        st.lists(layer_shapes(max_side=max_side), min_size=min_layers, max_size=max_layers)
    )
    dtype = draw(st.sampled_from(list(dtypes)))
    style = draw(st.sampled_from(["gaussian", "ties", "zeros"]))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    result = {}
    for index, layer in enumerate(layers):
        for name, shape in layer.items():
            value = torch.randn(shape, generator=gen, dtype=torch.float64)
            if style == "ties":
                value = torch.randint(-3, 4, shape, generator=gen).to(torch.float64)
            elif style == "zeros":
                value = value * (torch.rand(shape, generator=gen) < 0.7)
            result[f"{index}.{name}"] = value.to(dtype)
    return result


@st.composite
def masks(draw: st.DrawFn, params: Params) -> Masks:
    """Incoming masks for ``params``: some keys, each a bool tensor of its shape (any pattern).

    >>> import torch, funcprune.testing as fpt
    >>> from hypothesis import find
    >>> p = {"w": torch.zeros(2, 2)}
    >>> find(fpt.masks(p), lambda m: "w" in m and not m["w"].all())["w"].dtype
    torch.bool
    """
    result = {}
    for key, p in params.items():
        if draw(st.booleans()):
            density = draw(st.sampled_from([0.0, 0.5, 0.9, 1.0]))
            gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
            result[key] = torch.rand(p.shape, generator=gen) < density
    return result


@st.composite
def importance_scores(draw: st.DrawFn, params: Params) -> dict[str, Tensor]:
    """Importance scores for some keys of ``params``: floating tensors of their shapes.

    Gaussian or small integers (ties), in float32 or the parameter's dtype.

    >>> import torch, funcprune.testing as fpt
    >>> from hypothesis import find
    >>> p = {"w": torch.zeros(2, 3, dtype=torch.float64)}
    >>> find(fpt.importance_scores(p), lambda s: "w" in s)["w"].shape
    torch.Size([2, 3])
    """
    result = {}
    for key, p in params.items():
        if draw(st.booleans()):
            gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
            tied = draw(st.booleans())
            value = (
                torch.randint(-3, 4, p.shape, generator=gen)
                if tied
                else torch.randn(p.shape, generator=gen)
            )
            result[key] = value.to(draw(st.sampled_from([torch.float32, p.dtype])))
    return result


def amounts(*, max_count: int = 0) -> st.SearchStrategy[Amount]:
    """Valid amounts: a float in [0, 1], a 0-d float32/float64 tensor in [0, 1], or an int count.

    Ints are in ``[0, max_count]``; pass the smallest number of units a method will see.

    >>> import funcprune as fp, funcprune.testing as fpt
    >>> from hypothesis import find
    >>> find(fpt.amounts(max_count=5), lambda a: isinstance(a, int) and a > 2)
    3
    """
    floats = st.floats(0.0, 1.0)
    tensors = st.builds(torch.tensor, floats, dtype=st.sampled_from([torch.float32, torch.float64]))
    return st.one_of(floats, st.integers(0, max_count), tensors)


def _exact(keys: Sequence[str]) -> str:
    """A regex matching exactly ``keys`` (for :func:`funcprune.only`)."""
    return "^(?:" + "|".join(re.escape(key) for key in keys) + ")$"


def _remaining(params: Params, masks: Mapping[str, Tensor]) -> dict[str, int]:
    return {key: int(masks[key].sum()) if key in masks else p.numel() for key, p in params.items()}


@st.composite
def methods(
    draw: st.DrawFn,
    params: Params | None = None,
    incoming: Mapping[str, Tensor] | None = None,
    *,
    counts: bool = True,
) -> PruningMethod:
    """One built-in method valid for ``params`` (and ``incoming`` masks), or for any params.

    Without ``params``: unstructured methods with fractional amounts (valid for every parameter
    dict). With ``params``: also structured, N:M, ``custom_from_mask`` and ``per_key`` methods,
    restricted with :func:`funcprune.only` to the keys they fit, and (with ``counts``) int counts
    no larger than what remains after ``incoming``.

    >>> import torch, funcprune.testing as fpt
    >>> from hypothesis import find
    >>> p = {"w": torch.zeros(4, 4)}
    >>> find(fpt.methods(p), lambda m: "ln_structured" in repr(m))
    only(ln_structured(0.0, n=1, dim=0), include='^(?:w)$', exclude=None, allow_empty=False)
    """
    fraction = st.one_of(st.floats(0.0, 1.0), st.builds(torch.tensor, st.floats(0.0, 1.0)))
    if params is None:
        return draw(_unstructured(fraction, fraction))
    left = _remaining(params, incoming or {})
    per_key = amounts(max_count=min(left.values(), default=0)) if counts else fraction
    overall = amounts(max_count=sum(left.values())) if counts else fraction
    options = [
        _unstructured(per_key, overall),
        st.builds(fp.custom_from_mask, masks(params)),
        _per_key(list(params), fraction),
    ]
    matrices = [key for key, p in params.items() if p.dim() >= 2]
    if matrices:
        options += [_structured(matrices, fraction), _nm(params)]
    return draw(st.one_of(options))


def _unstructured(
    per_key: st.SearchStrategy[Amount], overall: st.SearchStrategy[Amount]
) -> st.SearchStrategy[PruningMethod]:
    seeds = st.integers(0, 2**16)
    return st.one_of(
        st.just(fp.identity()),
        st.builds(fp.l1_unstructured, per_key),
        st.builds(fp.random_unstructured, per_key, seed=seeds),
        st.builds(
            fp.global_unstructured, overall, scores=st.sampled_from(["l1", "random"]), seed=seeds
        ),
    )


def _structured(
    keys: list[str], fraction: st.SearchStrategy[Amount]
) -> st.SearchStrategy[PruningMethod]:
    dims = st.sampled_from([0, 1, -1])
    inner = st.one_of(
        st.builds(fp.ln_structured, fraction, n=st.sampled_from([1, 2, float("inf")]), dim=dims),
        st.builds(fp.random_structured, fraction, dim=dims, seed=st.integers(0, 2**16)),
    )
    return st.builds(fp.only, inner, include=st.just(_exact(keys)))


@st.composite
def _per_key(
    draw: st.DrawFn, keys: list[str], fraction: st.SearchStrategy[Amount]
) -> PruningMethod:
    chosen = draw(st.lists(st.sampled_from(keys), unique=True)) if keys else []
    factories: list[Callable[..., PruningMethod]] = [fp.l1_unstructured, fp.random_unstructured]
    factory = draw(st.sampled_from(factories))
    return fp.per_key(factory, {key: draw(fraction) for key in chosen})


@st.composite
def _nm(draw: st.DrawFn, params: Params) -> PruningMethod:
    m = draw(st.integers(1, 4))
    fits = [key for key, p in params.items() if p.dim() >= 2 and p.shape[1] % m == 0]
    if not fits:
        return fp.identity()
    return fp.only(fp.nm_semistructured(draw(st.integers(0, m)), m), include=_exact(fits))


@st.composite
def chains(draw: st.DrawFn, params: Params | None = None, *, max_length: int = 3) -> PruningMethod:
    """An ``fp.chain`` of up to ``max_length`` methods from :func:`methods`.

    Amounts are fractions only, since earlier methods shrink what a later count could refer to.

    >>> import funcprune.testing as fpt
    >>> from hypothesis import find
    >>> type(find(fpt.chains(), lambda c: True)).__name__
    'Chain'
    """
    parts = draw(st.lists(methods(params, counts=False), max_size=max_length))
    return fp.chain(*parts)


def _fail(message: str) -> None:
    raise AssertionError(message)


def _unchanged(value: Tensor, copy: Tensor) -> bool:
    """Same shape, dtype and values, NaN matching NaN (a NaN input is not a mutation)."""
    if value.shape != copy.shape or value.dtype != copy.dtype:
        return False
    return bool(((value == copy) | (value.isnan() & copy.isnan())).all())


def check_method(
    method: PruningMethod,
    params: Params,
    masks: Mapping[str, Tensor] | None = None,
    *,
    importance_scores: Mapping[str, Tensor] | None = None,
) -> Masks:
    """Call ``method`` and assert the pruning-method contract; return its masks.

    Checks: a bool mask of the parameter's shape and device for every key of ``params`` and no
    other key; the result is a subset of the incoming survivors; the inputs are not mutated; a
    second call gives the same masks (pure).

    Raises:
        AssertionError: naming the key and the broken rule.

    >>> import torch, funcprune as fp, funcprune.testing as fpt
    >>> fpt.check_method(fp.l1_unstructured(1), {"w": torch.tensor([1.0, -2.0])})
    {'w': tensor([False,  True])}
    >>> regrows = lambda params, masks=None, *, importance_scores=None: fp.identity()(params)
    >>> fpt.check_method(regrows, {"w": torch.ones(2)}, {"w": torch.tensor([True, False])})
    Traceback (most recent call last):
    ...
    AssertionError: 'w': the result keeps entries the incoming masks pruned (it must be a subset of the survivors)
    """
    given = {} if masks is None else dict(masks)
    inputs = [dict(params), given, dict(importance_scores or {})]
    copies = [{k: v.clone() for k, v in d.items()} for d in inputs]
    result = method(params, masks, importance_scores=importance_scores)
    for original, copy in zip(inputs, copies, strict=True):
        for key, value in original.items():
            if not _unchanged(value, copy[key]):
                _fail(f"{key!r}: the method mutated its input in place")
    if not isinstance(result, dict) or set(result) != set(params):
        keys = sorted(result) if isinstance(result, dict) else type(result).__name__
        _fail(f"the result must be a dict with every parameter key {sorted(params)}; got {keys}")
    for key, keep in result.items():
        p = params[key]
        if not isinstance(keep, Tensor) or keep.dtype != torch.bool or keep.shape != p.shape:
            _fail(f"{key!r}: expected a bool mask of shape {tuple(p.shape)}, got {keep!r}")
        if keep.device != p.device:
            _fail(f"{key!r}: mask on {keep.device}, parameter on {p.device}")
        if key in given and bool((keep & ~given[key]).any()):
            _fail(
                f"{key!r}: the result keeps entries the incoming masks pruned (it must be a subset of the survivors)"
            )
    again = method(params, masks, importance_scores=importance_scores)
    for key, keep in result.items():
        if not torch.equal(keep, again[key]):
            _fail(
                f"{key!r}: two calls with the same inputs gave different masks (the method is not pure)"
            )
    return result


__all__ = [
    "DTYPES",
    "amounts",
    "chains",
    "check_method",
    "importance_scores",
    "layer_shapes",
    "masks",
    "methods",
    "params",
]
