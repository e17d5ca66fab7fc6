"""Small tensor predicates shared by the validators and kernels.

>>> import torch
>>> concrete_int(torch.tensor(3))
3
"""

from __future__ import annotations

import torch
from torch import Tensor


def is_concrete(t: Tensor) -> bool:
    """Whether ``t`` holds readable values: not under ``vmap``/``grad``, not traced, not ``meta``.

    >>> import torch
    >>> is_concrete(torch.ones(2)), is_concrete(torch.ones(2, device="meta"))
    (True, False)
    """
    return not (
        torch.compiler.is_compiling()
        or t.is_meta
        or torch._C._functorch.is_functorch_wrapped_tensor(t)
    )


def concrete_int(t: Tensor) -> int | None:
    """The value of a 0-d integer tensor when it can be read eagerly, else ``None``.

    >>> import torch
    >>> concrete_int(torch.tensor(7)) is not None
    True
    """
    return int(t) if is_concrete(t) else None
