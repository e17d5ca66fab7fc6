"""The shared vocabulary: parameter dicts, mask dicts, amounts and the pruning-method protocol.

>>> import torch
>>> from funcprune.types import Masks, Params
>>> params: Params = {"weight": torch.ones(2, 2)}
>>> masks: Masks = {"weight": torch.tensor([[True, False], [True, True]])}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from torch import Tensor

Params = Mapping[str, Tensor]
"""Parameters by ``named_parameters()`` name."""

Masks = dict[str, Tensor]
"""Bool masks by parameter name: ``True`` keeps an entry, ``False`` prunes it."""

Scores = Mapping[str, Tensor]
"""Importance scores by parameter name, each of its parameter's shape."""

Amount = float | int | Tensor
"""A fraction in [0, 1] (float or 0-d floating tensor) or a non-negative count (int)."""


class PruningMethod(Protocol):
    """What every pruning method is: a pure function from parameters to masks.

    ``masks`` is the state already pruned; the result is always a subset of its survivors and
    holds a mask for every key of ``params``.
    """

    def __call__(
        self,
        params: Params,
        masks: Mapping[str, Tensor] | None = None,
        *,
        importance_scores: Scores | None = None,
    ) -> Masks: ...
