"""What the methods can rank: dense (strided) tensors, with masks and scores beside their parameter.

Sparse layouts and tensors on another device than their parameter (a ``meta`` mask for real
weights, say) would fail deep inside torch; this check names every offending key first.

>>> import torch
>>> check_dense({"w": torch.ones(2).to_sparse()}, {}, {})
Traceback (most recent call last):
...
TypeError: funcprune ranks dense tensors beside their parameters; got params['w'] with layout torch.sparse_coo (convert sparse tensors with .to_dense(), and move masks and scores to their parameter's device; meta only with meta parameters)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from funcprune.types import Params


def _problem(what: str, key: str, t: Tensor, param: Tensor) -> str | None:
    if t.layout != torch.strided:
        return f"{what}[{key!r}] with layout {t.layout}"
    if t.device != param.device:
        return f"{what}[{key!r}] on {t.device} for a parameter on {param.device}"
    return None


def check_dense(params: Params, masks: Mapping[str, Tensor], scores: Mapping[str, Tensor]) -> None:
    """Every tensor strided; every mask and score on its parameter's device (``TypeError``).

    Args:
        params: the parameters, already checked to map ``str`` to tensors.
        masks: masks whose keys are parameter keys.
        scores: importance scores whose keys are parameter keys.

    >>> import torch
    >>> check_dense({"w": torch.ones(2)}, {"w": torch.ones(2, dtype=torch.bool)}, {})
    """
    groups = (("params", params), ("masks", masks), ("importance_scores", scores))
    problems = [
        problem
        for what, tensors in groups
        for key, t in tensors.items()
        if (problem := _problem(what, key, t, params[key])) is not None
    ]
    if problems:
        raise TypeError(
            f"funcprune ranks dense tensors beside their parameters; got {', '.join(problems)} "
            "(convert sparse tensors with .to_dense(), and move masks and scores to their "
            "parameter's device; meta only with meta parameters)"
        )
