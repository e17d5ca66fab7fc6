"""Hypothesis strategies for the core's own tests: tensors with and without ties, amounts, norms."""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st
from torch import Tensor

NORMS: list[object] = [1, 2, 3, 0, -1, 0.5, 1.5, math.inf, -math.inf]
"""Vector norm orders valid over any number of dims ('fro'/'nuc' are matrix norms: 2 dims)."""


@st.composite
def tensors(
    draw: st.DrawFn,
    min_dims: int = 0,
    max_dims: int = 4,
    min_side: int = 0,
    max_side: int = 5,
    ties: bool | None = None,
    dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float64),
) -> Tensor:
    """Small tensors: continuous values (ties almost surely absent) or small integers (many ties)."""
    ndim = draw(st.integers(min_dims, max_dims))
    shape = tuple(draw(st.lists(st.integers(min_side, max_side), min_size=ndim, max_size=ndim)))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    tied = draw(st.booleans()) if ties is None else ties
    values = (
        torch.randint(-3, 4, shape, generator=generator).to(torch.float64)
        if tied
        else torch.randn(shape, generator=generator, dtype=torch.float64)
    )
    return values.to(draw(st.sampled_from(dtypes)))


@st.composite
def tensors_like(draw: st.DrawFn, like: Tensor) -> Tensor:
    """Seeded values of ``like``'s shape and dtype, with or without ties (importance scores)."""
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    if draw(st.booleans()):
        values = torch.randint(-3, 4, like.shape, generator=generator).to(torch.float64)
    else:
        values = torch.randn(like.shape, generator=generator, dtype=torch.float64)
    return values.to(like.dtype)


def amounts(units: int) -> st.SearchStrategy[float | int]:
    """A float fraction or an int count valid for ``units`` remaining units."""
    return st.one_of(st.floats(0.0, 1.0), st.integers(0, units))


def count_of(amount: float | int, units: int) -> int:
    """torch's rule: ints are counts, floats round half-to-even."""
    return amount if isinstance(amount, int) else round(amount * units)


__all__ = ["NORMS", "amounts", "count_of", "tensors", "tensors_like"]
