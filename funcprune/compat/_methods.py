"""The pruning methods of ``torch.nn.utils.prune``, computing their masks on the core.

Each class keeps torch's constructor, ``apply`` signature, ``PRUNING_TYPE`` and mask dtype (the
mask is built from ``default_mask`` or, for structured methods, ``zeros_like(t)``). Selection goes
through :func:`~funcprune.compat._selection.topk_mask` (the core's exact select, or ``torch.topk``
where a boundary tie makes torch's choice kernel-defined), counts through
:mod:`funcprune.methods._amount`. Random methods draw ``torch.rand_like(t)`` / ``torch.rand(channels)``
from the global generator in torch's order, so ``torch.manual_seed`` reproduces torch's masks.

>>> import torch
>>> L1Unstructured(amount=2).compute_mask(torch.tensor([3.0, -1.0, 0.5, 2.0]), torch.ones(4))
tensor([1., 0., 0., 1.])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from funcprune.compat._hooks import BasePruningMethod
from funcprune.compat._selection import topk_mask
from funcprune.compat._validation import (
    Norm,
    TorchAmount,
    _compute_norm,
    _validate_pruning_amount_init,
    _validate_pruning_dim,
    _validate_structured_pruning,
    count_to_prune,
)


def _name(method: BasePruningMethod) -> str:
    return getattr(method, "_tensor_name", None) or "<tensor>"


def _prune_entries(default_mask: Tensor, pruned: Tensor) -> Tensor:
    """``default_mask`` (copied) with the entries flagged in flat bool ``pruned`` set to 0."""
    mask = default_mask.clone(memory_format=torch.contiguous_format)
    mask.view(-1)[pruned] = 0
    return mask


def _prune_ranked(
    method: BasePruningMethod,
    amount: TorchAmount,
    t: Tensor,
    default_mask: Tensor,
    rank: Callable[[Tensor], Tensor],
    *,
    largest: bool,
) -> Tensor:
    """Prune the ``amount`` entries whose ``rank(t)`` is largest (or smallest), torch's way.

    ``rank`` is called only when something is pruned, as torch draws its random numbers.
    """
    count = count_to_prune(amount, t.nelement(), key=_name(method))
    if count == 0:
        return default_mask.clone(memory_format=torch.contiguous_format)
    return _prune_entries(default_mask, topk_mask(rank(t).reshape(-1), count, largest=largest))


def _channel_count(method: BasePruningMethod, t: Tensor, dim: int, amount: TorchAmount) -> int:
    """Structured checks in torch's order, then the number of slices along ``dim`` to prune."""
    _validate_structured_pruning(t)
    _validate_pruning_dim(t, dim)
    return count_to_prune(amount, t.shape[dim], key=_name(method), unit=f"slices along dim {dim}")


def _keep_slices(t: Tensor, dim: int, keep: Tensor, default_mask: Tensor) -> Tensor:
    """``zeros_like(t)`` with ones on the kept slices along ``dim``, times ``default_mask``."""
    mask = torch.zeros_like(t)
    index: list[Any] = [slice(None)] * t.dim()
    index[dim] = keep
    mask[tuple(index)] = 1
    mask *= default_mask.to(dtype=mask.dtype)
    return mask


class Identity(BasePruningMethod):
    """Prunes nothing; installs the reparametrization with a mask of ones.

    >>> import torch
    >>> Identity().compute_mask(torch.ones(2), torch.tensor([1.0, 0.0]))
    tensor([1., 0.])
    """

    PRUNING_TYPE: ClassVar[str] = "unstructured"

    def compute_mask(self, t: Tensor, default_mask: Tensor) -> Tensor:
        """``default_mask`` itself."""
        return default_mask

    @classmethod
    def apply(cls, module: nn.Module, name: str) -> BasePruningMethod:  # type: ignore[override]
        """Reparametrize ``module.<name>`` without pruning anything."""
        return super().apply(module, name)


class _Unstructured(BasePruningMethod):
    """Torch's constructor of the unstructured methods: ``amount``, checked and kept."""

    PRUNING_TYPE: ClassVar[str] = "unstructured"

    def __init__(self, amount: TorchAmount) -> None:
        _validate_pruning_amount_init(amount)
        self.amount = amount


class RandomUnstructured(_Unstructured):
    """Prunes ``amount`` of the (currently unpruned) entries at random.

    >>> import torch
    >>> int(RandomUnstructured(amount=3).compute_mask(torch.ones(8), torch.ones(8)).sum())
    5
    """

    def compute_mask(self, t: Tensor, default_mask: Tensor) -> Tensor:
        """Prune the entries that draw the largest ``torch.rand_like(t)`` values."""
        return _prune_ranked(self, self.amount, t, default_mask, torch.rand_like, largest=True)

    @classmethod
    def apply(cls, module: nn.Module, name: str, amount: TorchAmount) -> BasePruningMethod:  # type: ignore[override]
        """Prune ``amount`` of ``module.<name>``'s entries at random."""
        return super().apply(module, name, amount=amount)


class L1Unstructured(_Unstructured):
    """Prunes ``amount`` of the (currently unpruned) entries with the smallest magnitude.

    >>> import torch
    >>> L1Unstructured(amount=0.5).compute_mask(torch.tensor([4.0, -1.0, 0.5, 2.0]), torch.ones(4))
    tensor([1., 0., 0., 1.])
    """

    def compute_mask(self, t: Tensor, default_mask: Tensor) -> Tensor:
        """Prune the ``count`` entries of smallest ``|t|`` (torch's choice among ties)."""
        return _prune_ranked(self, self.amount, t, default_mask, torch.abs, largest=False)

    @classmethod
    def apply(  # type: ignore[override]
        cls,
        module: nn.Module,
        name: str,
        amount: TorchAmount,
        importance_scores: Tensor | None = None,
    ) -> BasePruningMethod:
        """Prune ``amount`` of ``module.<name>``'s entries with the smallest ``|scores|``."""
        return super().apply(module, name, amount=amount, importance_scores=importance_scores)


class RandomStructured(BasePruningMethod):
    """Prunes ``amount`` of the (currently unpruned) slices along ``dim`` at random.

    >>> import torch
    >>> mask = RandomStructured(amount=1, dim=1).compute_mask(torch.ones(2, 3), torch.ones(2, 3))
    >>> int((mask == 0).all(dim=0).sum())
    1
    """

    PRUNING_TYPE: ClassVar[str] = "structured"

    def __init__(self, amount: TorchAmount, dim: int = -1) -> None:
        _validate_pruning_amount_init(amount)
        self.amount = amount
        self.dim = dim

    def compute_mask(self, t: Tensor, default_mask: Tensor) -> Tensor:
        """Prune the slices whose ``torch.rand(channels)`` draw is at most the ``count``-th smallest.

        As in torch, slices tied with the threshold draw are all pruned.
        """
        count = _channel_count(self, t, self.dim, self.amount)
        if count == 0:
            return default_mask
        draws = torch.rand(t.shape[self.dim])
        threshold = draws[topk_mask(draws, count, largest=False)].max()
        return _keep_slices(t, self.dim, draws > threshold, default_mask)

    @classmethod
    def apply(  # type: ignore[override]
        cls, module: nn.Module, name: str, amount: TorchAmount, dim: int = -1
    ) -> BasePruningMethod:
        """Prune ``amount`` of ``module.<name>``'s slices along ``dim`` at random."""
        return super().apply(module, name, amount=amount, dim=dim)


class LnStructured(BasePruningMethod):
    """Prunes ``amount`` of the (currently unpruned) slices along ``dim`` with smallest L``n`` norm.

    >>> import torch
    >>> t = torch.tensor([[1.0, 0.1], [2.0, 0.2]])
    >>> LnStructured(amount=1, n=1, dim=1).compute_mask(t, torch.ones(2, 2))
    tensor([[1., 0.],
            [1., 0.]])
    """

    PRUNING_TYPE: ClassVar[str] = "structured"

    def __init__(self, amount: TorchAmount, n: Norm, dim: int = -1) -> None:
        _validate_pruning_amount_init(amount)
        self.amount = amount
        self.n = n
        self.dim = dim

    def compute_mask(self, t: Tensor, default_mask: Tensor) -> Tensor:
        """Keep the slices with the largest ``torch.norm(t, p=n)`` (torch's choice among ties)."""
        count = _channel_count(self, t, self.dim, self.amount)
        norms = _compute_norm(t, self.n, self.dim)
        keep: Tensor
        if norms.dim() == 1:
            keep = topk_mask(norms, t.shape[self.dim] - count, largest=True)
        else:  # torch >= 2.14, 'nuc' over 3+ dims: a matrix norm per leading index; torch then
            # keeps the slices its top-k indices name (or raises on k), and so does this
            keep = torch.topk(norms, k=t.shape[self.dim] - count, largest=True).indices
        return default_mask if count == 0 else _keep_slices(t, self.dim, keep, default_mask)

    @classmethod
    def apply(  # type: ignore[override]
        cls,
        module: nn.Module,
        name: str,
        amount: TorchAmount,
        n: Norm,
        dim: int,
        importance_scores: Tensor | None = None,
    ) -> BasePruningMethod:
        """Prune ``amount`` of ``module.<name>``'s slices along ``dim`` with the smallest norm."""
        return super().apply(
            module, name, amount=amount, n=n, dim=dim, importance_scores=importance_scores
        )


class CustomFromMask(BasePruningMethod):
    """Prunes where a given mask is zero: the mask is multiplied into ``default_mask``.

    The product (not a bool ``and``) is torch's rule, so non-binary masks scale as in torch; for
    0/1 masks it is the core's :func:`funcprune.custom_from_mask` in the mask's dtype.

    >>> import torch
    >>> CustomFromMask(torch.tensor([0.0, 1.0, 1.0])).compute_mask(torch.ones(3), torch.tensor([1.0, 1.0, 0.0]))
    tensor([0., 1., 0.])
    """

    PRUNING_TYPE: ClassVar[str] = "global"

    def __init__(self, mask: Tensor) -> None:
        self.mask = mask

    def compute_mask(self, t: Tensor, default_mask: Tensor) -> Tensor:
        """``default_mask * mask`` in ``default_mask``'s dtype."""
        if default_mask.shape != self.mask.shape:
            raise AssertionError(
                f"default_mask shape {default_mask.shape} must match self.mask shape {self.mask.shape}"
            )
        return default_mask * self.mask.to(dtype=default_mask.dtype)

    @classmethod
    def apply(cls, module: nn.Module, name: str, mask: Tensor) -> BasePruningMethod:  # type: ignore[override]
        """Prune ``module.<name>`` where ``mask`` is zero."""
        return super().apply(module, name, mask=mask)


__all__ = [
    "CustomFromMask",
    "Identity",
    "L1Unstructured",
    "LnStructured",
    "RandomStructured",
    "RandomUnstructured",
]
