"""Cheap detection of DTensor parameters, without importing ``torch.distributed.tensor``.

No DTensor can exist before ``torch.distributed.tensor`` is imported, so the check looks the
module up in ``sys.modules`` and costs one dict lookup on the single-process path.

>>> import torch
>>> any_dtensor([torch.zeros(2)])
False
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from torch import Tensor


def any_dtensor(tensors: Iterable[Tensor]) -> bool:
    """Whether any of ``tensors`` is a ``torch.distributed.tensor.DTensor``.

    >>> import torch
    >>> any_dtensor([torch.zeros(1), torch.ones(1)])
    False
    """
    module = sys.modules.get("torch.distributed.tensor")
    if module is None:
        return False
    dtensor = module.DTensor
    return any(isinstance(t, dtensor) for t in tensors)


__all__ = ["any_dtensor"]
