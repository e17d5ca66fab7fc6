"""``BasePruningMethod``: a pruning method that reparametrizes one tensor of a module.

A method is torch's kind of object: built with its hyperparameters, bound to a tensor name by
:meth:`BasePruningMethod.apply`, registered as the module's forward pre-hook, which recomputes
``module.<name> = mask * module.<name>_orig`` before every forward. Subclasses define
``compute_mask(t, default_mask)`` and a ``PRUNING_TYPE`` (``"unstructured"``, ``"structured"``
with a ``dim`` attribute, or ``"global"``), exactly as for ``torch.nn.utils.prune``.

One fix over torch: ``copy.deepcopy`` of a pruned module works (pytorch issue 37322). The
pruned ``module.<name>`` is a non-leaf tensor, which ``Tensor.__deepcopy__`` refuses; the hook,
copied before it, memoizes a leaf copy of it, the very value a pickle round trip gives.

>>> import copy, torch
>>> from funcprune import compat as prune
>>> lin = prune.l1_unstructured(torch.nn.Linear(3, 2), "weight", amount=2)
>>> twin = copy.deepcopy(lin)
>>> torch.equal(twin(torch.ones(1, 3)), lin(torch.ones(1, 3)))
True
"""

from __future__ import annotations

import copy
import weakref
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor, nn


class BasePruningMethod(ABC):
    """Abstract base of pruning methods, as ``torch.nn.utils.prune.BasePruningMethod``.

    >>> import torch
    >>> from funcprune import compat as prune
    >>> class EveryOther(prune.BasePruningMethod):
    ...     PRUNING_TYPE = "unstructured"
    ...     def compute_mask(self, t, default_mask):
    ...         mask = default_mask.clone()
    ...         mask.view(-1)[::2] = 0
    ...         return mask
    >>> EveryOther.apply(torch.nn.Linear(2, 2), "bias").compute_mask(torch.ones(4), torch.ones(4))
    tensor([0., 1., 0., 1.])
    """

    PRUNING_TYPE: ClassVar[str]
    _tensor_name: str

    def __call__(self, module: nn.Module, inputs: Any) -> None:
        """The forward pre-hook: set ``module.<name>`` to the masked original tensor."""
        setattr(module, self._tensor_name, self.apply_mask(module))
        self._compat_module = weakref.ref(module)

    @abstractmethod
    def compute_mask(self, t: Tensor, default_mask: Tensor) -> Tensor:
        """The mask for ``t`` (importance scores) on top of ``default_mask`` (earlier pruning)."""

    def apply_mask(self, module: nn.Module) -> Tensor:
        """``mask * orig`` for this method's tensor, the mask cast to the original's dtype."""
        if self._tensor_name is None:
            raise AssertionError(f"Module {module} has to be pruned")
        mask = getattr(module, self._tensor_name + "_mask")
        orig = getattr(module, self._tensor_name + "_orig")
        return mask.to(dtype=orig.dtype) * orig  # type: ignore[no-any-return]

    @classmethod
    def apply(
        cls,
        module: nn.Module,
        name: str,
        *args: Any,
        importance_scores: Tensor | None = None,
        **kwargs: Any,
    ) -> BasePruningMethod:
        """Prune ``module.<name>`` with ``cls(*args, **kwargs)``; return the method now hooked.

        A tensor pruned before gets a :class:`~funcprune.compat.PruningContainer` holding every
        method applied to it. If anything fails, the module is left exactly as it was.
        """
        from funcprune.compat.reparam import attach  # reparam builds containers: import at use

        return attach(cls, module, name, args, kwargs, importance_scores)

    def prune(
        self, t: Tensor, default_mask: Tensor | None = None, importance_scores: Tensor | None = None
    ) -> Tensor:
        """``t`` times its mask computed from ``importance_scores`` (``t`` itself when ``None``)."""
        if importance_scores is not None and importance_scores.shape != t.shape:
            raise AssertionError(
                "importance_scores should have the same shape as tensor t, "
                f"got {importance_scores.shape} vs {t.shape}"
            )
        scores = t if importance_scores is None else importance_scores
        default = torch.ones_like(t) if default_mask is None else default_mask
        return t * self.compute_mask(scores, default_mask=default)

    def remove(self, module: nn.Module) -> None:
        """Make the pruning permanent: ``<name>`` becomes the masked ``<name>_orig`` Parameter.

        The Parameter object is kept (its data replaced by the masked values), so optimizers
        holding it keep working; ``<name>_mask`` and ``<name>_orig`` are gone.
        """
        if self._tensor_name is None:
            raise AssertionError(f"Module {module} has to be pruned before pruning can be removed")
        name = self._tensor_name
        weight = self.apply_mask(module)
        orig = module._parameters[name + "_orig"]
        if orig is None:
            raise KeyError(
                f"{name}_orig of {type(module).__name__} is None, not a pruned Parameter"
            )
        if hasattr(module, name):
            delattr(module, name)
        orig.data = weight.data
        del module._parameters[name + "_orig"]
        del module._buffers[name + "_mask"]
        setattr(module, name, orig)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle state: everything but the weak reference to the pruned module."""
        state = dict(vars(self))
        state.pop("_compat_module", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)

    def __deepcopy__(self, memo: dict[int, Any]) -> BasePruningMethod:
        """A deep copy; memoizes a leaf copy of the module's pruned tensor (torch issue 37322)."""
        ref = getattr(self, "_compat_module", None)
        module = None if ref is None else ref()
        if module is not None:
            _memoize_pruned_tensor(module, self._tensor_name, memo)
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        clone.__setstate__(copy.deepcopy(self.__getstate__(), memo))
        twin = None if module is None else memo.get(id(module))
        if isinstance(twin, nn.Module):
            clone._compat_module = weakref.ref(twin)
        return clone


def _memoize_pruned_tensor(module: nn.Module, name: str, memo: dict[int, Any]) -> None:
    value = vars(module).get(name)
    if isinstance(value, Tensor) and not value.is_leaf and id(value) not in memo:
        memo[id(value)] = value.detach().clone().requires_grad_(value.requires_grad)


__all__ = ["BasePruningMethod"]
