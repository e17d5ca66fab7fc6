"""Pruning methods and the combinators that compose them.

A method is an immutable value built by a factory and called as
``method(params, masks=None, *, importance_scores=None) -> Masks``.

>>> import torch, funcprune.methods as methods
>>> methods.chain(methods.l1_unstructured(1), methods.identity())({"w": torch.tensor([1.0, -0.5])})
{'w': tensor([ True, False])}
"""

from funcprune.methods.combinators import chain, only
from funcprune.methods.nm import nm_semistructured
from funcprune.methods.per_key import per_key
from funcprune.methods.structured import ln_structured, random_structured
from funcprune.methods.unstructured import (
    custom_from_mask,
    global_unstructured,
    identity,
    l1_unstructured,
    random_unstructured,
)

__all__ = [
    "chain",
    "custom_from_mask",
    "global_unstructured",
    "identity",
    "l1_unstructured",
    "ln_structured",
    "nm_semistructured",
    "only",
    "per_key",
    "random_structured",
    "random_unstructured",
]
