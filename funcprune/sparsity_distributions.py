"""Per-parameter amounts that hit a global target sparsity exactly: ``uniform`` and ``erk``.

Both return ``{key: count}``, the number of entries to prune in each parameter, as ints, so any
method built with :func:`funcprune.methods.per_key` prunes exactly ``round(sparsity * total)`` entries of
the parameters given (half-to-even in float64, the rule of every fractional amount: as many as
``global_unstructured(sparsity)`` prunes). Pass only the prunable parameters. Counts
are computed in exact rational arithmetic; fractional parts go to the largest remainders (ties to
the earlier key), so every key is within one entry of its ideal count.

>>> import torch, funcprune as fp
>>> params = {"a": torch.zeros(10), "b": torch.zeros(4, 5)}
>>> counts = fp.uniform(params, 0.5)
>>> counts
{'a': 5, 'b': 10}
>>> fp.sparsity(fp.per_key(fp.l1_unstructured, counts)(params)).overall
0.5
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import NamedTuple

from funcprune._checks import check_fraction, check_params
from funcprune.types import Params


def _check_sparsity(sparsity: object) -> Fraction:
    return Fraction(
        check_fraction("sparsity", sparsity, allowed="a float in [0, 1] (a Python number)")
    )


def _sizes(params: Params) -> dict[str, int]:
    check_params(params)
    return {key: p.numel() for key, p in params.items()}


def _target_count(sparsity: float, sizes: dict[str, int]) -> int:
    """``round(sparsity * total)`` in float64, half-to-even: what every fractional amount prunes."""
    return round(float(sparsity) * sum(sizes.values()))


def _allocate(numerators: dict[str, int], denominator: int, total: int) -> dict[str, int]:
    """Integer counts summing to ``total`` for ideal counts ``numerator / denominator``: floors,
    then one more for the largest remainders (exact integer arithmetic throughout).

    With ``floor(sum(ideal)) <= total <= ceil(sum(ideal))`` the shortfall is at most the number of
    keys with a positive remainder, so no key gets more than ``ceil(ideal)`` (never more than its
    size).
    """
    counts = {key: x // denominator for key, x in numerators.items()}
    # sorted() is stable: equal remainders go to the earlier key
    order = sorted(numerators, key=lambda key: numerators[key] % denominator, reverse=True)
    for key in order[: total - sum(counts.values())]:
        counts[key] += 1
    return counts


def uniform(params: Params, sparsity: float) -> dict[str, int]:
    """Prune counts giving every parameter the same sparsity (up to one entry), summing exactly.

    Args:
        params: the prunable parameters (only their shapes are used).
        sparsity: the target fraction of all their entries to prune, in [0, 1].

    Returns:
        ``{key: count}`` with ``sum(counts) == round(sparsity * total entries)``.

    >>> import torch, funcprune as fp
    >>> fp.uniform({"a": torch.zeros(3), "b": torch.zeros(3)}, 0.5)  # 3 of 6, a gets the odd one
    {'a': 2, 'b': 1}
    """
    target = _check_sparsity(sparsity)
    sizes = _sizes(params)
    numerators = {key: target.numerator * n for key, n in sizes.items()}
    return _allocate(numerators, target.denominator, _target_count(sparsity, sizes))


class _Erk(NamedTuple):
    """ERK's solution: the keys made dense and ``eps`` as ``eps_numerator / eps_denominator``;
    a sparse key of shape ``dims`` keeps ``eps * sum(dims)`` entries."""

    dense: set[str]
    eps_numerator: int
    eps_denominator: int
    dims: dict[str, tuple[int, int]]


def _solve_erk(target: Fraction, params: Params) -> _Erk:
    """Visit the ERK factors ``sum(dims) / prod(dims)`` once, largest first: while the largest
    would give a density above 1, make its keys dense; ``eps`` from running integer sums.

    Everything is integer arithmetic (``target = a / b``), so 10,000 keys take milliseconds.
    """
    a, b = target.numerator, target.denominator
    dims = {
        key: (sum(p.shape or (1,)), math.prod(p.shape or (1,)))
        for key, p in params.items()
        if p.numel() > 0
    }

    def larger_first(x: str, y: str) -> int:
        (sx, px), (sy, py) = dims[x], dims[y]
        return sy * px - sx * py

    order = sorted(dims, key=functools.cmp_to_key(larger_first))
    rest_size = sum(p for _, p in dims.values())
    rest_weight = sum(s for s, _ in dims.values())
    dense_size = 0
    dense: set[str] = set()
    start = 0
    while start < len(order):
        top_s, top_p = dims[order[start]]
        end = start
        while end < len(order) and larger_first(order[start], order[end]) == 0:
            end += 1
        kept = rest_size * (b - a) - dense_size * a  # eps = kept / (b * rest_weight)
        if kept * top_s <= b * rest_weight * top_p:  # eps * factor <= 1: no density above 1
            return _Erk(dense, kept, b * rest_weight, dims)
        for key in order[start:end]:
            dense.add(key)
            rest_size -= dims[key][1]
            dense_size += dims[key][1]
            rest_weight -= dims[key][0]
        start = end
    return _Erk(dense, 0, 1, dims)


def erk_densities(params: Params, sparsity: float) -> dict[str, Fraction]:
    """Exact ERK densities (fraction kept per key) for a global ``sparsity`` (RigL, Evci et al. 2020).

    Density is ``eps * (sum of dims) / (product of dims)``, with ``eps`` solved so that the kept
    entries total ``(1 - sparsity) * total``. A key whose density would exceed 1 is made dense
    (the highest-factor keys first, as in RigL's ``sparse_utils``) and ``eps`` is re-solved for the
    rest. Empty parameters get density 1.

    >>> import torch
    >>> d = erk_densities({"a": torch.zeros(4, 4), "b": torch.zeros(8, 8)}, 0.5)
    >>> d["a"] / d["b"] == (8 / 16) / (16 / 64)  # ratio of sum/prod factors
    True
    """
    check_params(params)
    solved = _solve_erk(_check_sparsity(sparsity), params)
    eps = Fraction(solved.eps_numerator, solved.eps_denominator)
    return {
        key: Fraction(1)
        if key in solved.dense or key not in solved.dims
        else eps * Fraction(*solved.dims[key])
        for key in params
    }


def erk(params: Params, sparsity: float) -> dict[str, int]:
    """Erdos-Renyi-Kernel prune counts: big layers sparser, summing exactly to the target.

    Each key keeps about ``erk_densities(params, sparsity)[key] * numel`` entries; the counts sum
    to ``round(sparsity * total entries)``.

    Args:
        params: the prunable parameters (only their shapes are used); RigL leaves biases and
            often the first and last layer dense: leave those out.
        sparsity: the target fraction of all their entries to prune, in [0, 1].

    >>> import torch, funcprune as fp
    >>> params = {"conv": torch.zeros(16, 3, 3, 3), "fc": torch.zeros(10, 64)}
    >>> counts = fp.erk(params, 0.8)
    >>> counts, sum(counts.values()) == round(0.8 * (432 + 640))
    ({'conv': 378, 'fc': 480}, True)
    """
    target = _check_sparsity(sparsity)
    sizes = _sizes(params)
    solved = _solve_erk(target, params)
    numerators = {  # pruned = size - eps * sum(dims); dense and empty keys prune nothing
        key: 0
        if key in solved.dense or key not in solved.dims
        else n * solved.eps_denominator - solved.eps_numerator * solved.dims[key][0]
        for key, n in sizes.items()
    }
    return _allocate(numerators, solved.eps_denominator, _target_count(sparsity, sizes))


__all__ = ["erk", "erk_densities", "uniform"]
