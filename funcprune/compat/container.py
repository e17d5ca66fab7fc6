"""``PruningContainer``: the methods applied to one tensor, in order (iterative pruning).

A container's mask is its latest method's mask computed on what the earlier ones left, chosen by
that method's ``PRUNING_TYPE`` (:func:`combine_masks`): the unpruned entries (``"unstructured"``),
the slices along ``dim`` not yet entirely pruned (``"structured"``), or the whole tensor
(``"global"``). This is the mask-valued form of the core's :func:`funcprune.chain`.

>>> import torch
>>> from funcprune import compat as prune
>>> lin = torch.nn.Linear(2, 3)
>>> prune.l1_unstructured(lin, "bias", amount=1) is prune.l1_unstructured(lin, "bias", amount=1)
True
>>> hook = next(iter(lin._forward_pre_hooks.values()))
>>> [type(m).__name__ for m in hook], hook._tensor_name, int((lin.bias_mask == 0).sum())
(['L1Unstructured', 'L1Unstructured'], 'bias', 2)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import Tensor

from funcprune.compat.base import BasePruningMethod

Slice = tuple[slice | Tensor, ...]


def _survivors(method: BasePruningMethod, mask: Tensor) -> Tensor | Slice:
    """The part of the tensor ``method`` may still prune, as an index into it."""
    kind = method.PRUNING_TYPE
    if kind == "unstructured":
        return mask == 1
    if kind == "global":
        return (slice(None),) * mask.dim()
    if kind != "structured":
        raise ValueError(
            f"Unrecognized PRUNING_TYPE {kind!r} of {type(method).__name__}; "
            "allowed: 'unstructured', 'structured' or 'global'"
        )
    if not hasattr(method, "dim"):
        raise AttributeError(
            f'Pruning methods of PRUNING_TYPE "structured" need to have the attribute `dim` '
            f"defined; {type(method).__name__} has none"
        )
    ndim = mask.dim()
    dim = method.dim + ndim if method.dim < 0 else method.dim
    if not 0 <= dim < ndim:
        raise IndexError(f"Index {method.dim} is out of bounds for tensor with dimensions {ndim}")
    others = [d for d in range(ndim) if d != dim]
    index: list[slice | Tensor] = [slice(None)] * ndim
    index[dim] = mask.sum(dim=others) != 0  # slices not yet entirely pruned
    return tuple(index)


def combine_masks(method: BasePruningMethod, t: Tensor, mask: Tensor) -> Tensor:
    """``mask`` (cast to ``t``'s dtype) with ``method``'s mask written over its unpruned part.

    >>> import torch
    >>> from funcprune import compat as prune
    >>> combine_masks(prune.L1Unstructured(1), torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 1.0, 1.0]))
    tensor([0., 0., 1.])
    """
    index = _survivors(method, mask)
    combined = mask.to(dtype=t.dtype)
    partial = method.compute_mask(t[index], default_mask=mask[index])
    combined[index] = partial.to(dtype=combined.dtype)
    return combined


class PruningContainer(BasePruningMethod):
    """The sequence of pruning methods applied to one tensor; its mask is the latest one's.

    ``PruningContainer(m1, m2, ...)`` takes the tensor name of ``m1`` (torch's container raises
    ``AttributeError`` for more than one method: fixed). Without methods it has no tensor name
    until one is set.

    >>> import torch
    >>> from funcprune import compat as prune
    >>> first, second = prune.L1Unstructured(2), prune.L1Unstructured(1)
    >>> first._tensor_name = second._tensor_name = "weight"
    >>> container = prune.PruningContainer(first, second)
    >>> len(container), container.compute_mask(torch.tensor([1.0, 3.0, 2.0]), torch.tensor([1.0, 1.0, 0.0]))
    (2, tensor([0., 1., 0.]))
    """

    def __init__(self, *args: BasePruningMethod) -> None:
        self._pruning_methods: tuple[BasePruningMethod | None, ...] = ()
        if args:
            self._tensor_name = args[0]._tensor_name
        for method in args:
            self.add_pruning_method(method)

    def add_pruning_method(self, method: BasePruningMethod | None) -> None:
        """Append ``method``, which must prune this container's tensor."""
        if method is not None and not isinstance(method, BasePruningMethod):
            raise TypeError(
                f"{type(method)} is not a BasePruningMethod subclass; a PruningContainer holds "
                "funcprune.compat pruning methods"
            )
        if method is not None and self._tensor_name != method._tensor_name:
            raise ValueError(
                "Can only add pruning methods acting on the parameter named "
                f"'{self._tensor_name}' to PruningContainer {self}. Found '{method._tensor_name}'"
            )
        self._pruning_methods += (method,)

    def __len__(self) -> int:
        return len(self._pruning_methods)

    def __iter__(self) -> Iterator[BasePruningMethod | None]:
        return iter(self._pruning_methods)

    def __getitem__(self, idx: Any) -> Any:
        return self._pruning_methods[idx]

    def compute_mask(self, t: Tensor, default_mask: Tensor) -> Tensor:
        """The latest method's mask, computed on what ``default_mask`` left unpruned."""
        method = self._pruning_methods[-1]
        if method is None:
            raise AttributeError(
                f"the latest method of PruningContainer {self} is None, not a pruning method"
            )
        return combine_masks(method, t, default_mask)


__all__ = ["PruningContainer", "combine_masks"]
