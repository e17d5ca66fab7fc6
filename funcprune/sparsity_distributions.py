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

import math
from fractions import Fraction

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


def _allocate(ideal: dict[str, Fraction], total: int) -> dict[str, int]:
    """Integer counts summing to ``total``: floors, then one more for the largest remainders.

    With ``floor(sum(ideal)) <= total <= ceil(sum(ideal))`` the shortfall is at most the number of
    keys with a positive remainder, so no key gets more than ``ceil(ideal)`` (never more than its
    size).
    """
    counts = {key: math.floor(x) for key, x in ideal.items()}
    # sorted() is stable: equal remainders go to the earlier key
    order = sorted(ideal, key=lambda key: ideal[key] - counts[key], reverse=True)
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
    ideal = {key: target * n for key, n in sizes.items()}
    return _allocate(ideal, _target_count(sparsity, sizes))


def _erk_weight(shape: tuple[int, ...]) -> Fraction:
    """RigL's ERK factor ``sum(shape) / prod(shape)`` (a 0-d parameter counts as shape ``(1,)``)."""
    dims = shape or (1,)
    return Fraction(sum(dims), math.prod(dims))


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
    target = _check_sparsity(sparsity)
    check_params(params)
    shapes = {key: tuple(p.shape) for key, p in params.items() if p.numel() > 0}
    sizes = {key: math.prod(shape) for key, shape in shapes.items()}
    factors = {key: _erk_weight(shape) for key, shape in shapes.items()}
    dense: set[str] = set()
    eps = Fraction(0)
    while len(dense) < len(shapes):
        rest = [key for key in shapes if key not in dense]
        kept = sum((sizes[k] * (1 - target) for k in rest), Fraction(0))
        kept -= sum((sizes[k] * target for k in dense), Fraction(0))
        eps = kept / sum(factors[k] * sizes[k] for k in rest)
        top = max(factors[k] for k in rest)
        if eps * top <= 1:
            break
        dense |= {k for k in rest if factors[k] == top}
    return {
        key: Fraction(1) if key in dense or key not in shapes else eps * factors[key]
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
    sizes = _sizes(params)
    densities = erk_densities(params, sparsity)
    ideal = {key: n * (1 - densities[key]) for key, n in sizes.items()}
    return _allocate(ideal, _target_count(sparsity, sizes))


__all__ = ["erk", "erk_densities", "uniform"]
