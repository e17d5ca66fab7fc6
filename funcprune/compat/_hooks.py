"""torch's reparametrization, in one place: the method base, its container, and attaching it.

A compat method is torch's kind of object: built with its hyperparameters, bound to a tensor name by
:meth:`BasePruningMethod.apply`, registered as the module's forward pre-hook, which recomputes
``module.<name> = mask * module.<name>_orig`` before every forward. Subclasses define
``compute_mask(t, default_mask)`` and a ``PRUNING_TYPE`` (``"unstructured"``, ``"structured"``
with a ``dim`` attribute, or ``"global"``), exactly as for ``torch.nn.utils.prune``.

- :class:`BasePruningMethod`: the hook itself. One fix over torch: ``copy.deepcopy`` of a pruned
  module works (pytorch issue 37322): the hook, copied before the pruned non-leaf tensor, memoizes
  a leaf copy of it, the very value a pickle round trip gives.
- :class:`PruningContainer`: the methods applied to one tensor, in order (iterative pruning). Its
  mask is its latest method's mask computed on what the earlier ones left, chosen by that
  method's ``PRUNING_TYPE`` (:func:`combine_masks`): the unpruned entries (``"unstructured"``),
  the slices along ``dim`` not yet entirely pruned (``"structured"``), or the whole tensor
  (``"global"``). It is the mask-valued form of the core's :func:`funcprune.chain`.
- :func:`attach`: what ``apply`` does, in torch's order (so the first failing check raises the
  error torch raises): find the tensor's hook, build the method, read the tensor and its scores,
  move ``<name>`` to ``<name>_orig`` (first time) or extend the container (later times), compute
  the mask, register ``<name>_mask``, set ``<name>`` and register the hook. Unlike torch, a
  failure at any step leaves the module as it was (:class:`Snapshot` puts every entry back, in
  order, into the very same dict and list objects).

>>> import copy, torch
>>> from funcprune import compat as prune
>>> lin = prune.l1_unstructured(torch.nn.Linear(3, 2), "weight", amount=2)
>>> twin = copy.deepcopy(lin)
>>> torch.equal(twin(torch.ones(1, 3)), lin(torch.ones(1, 3)))
True
>>> hook = next(iter(lin._forward_pre_hooks.values()))
>>> list(lin.state_dict()), type(hook).__name__
(['bias', 'weight_orig', 'weight_mask'], 'L1Unstructured')
"""

from __future__ import annotations

import copy
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from funcprune._tensors import is_concrete
from funcprune._threads import spare_threads


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


def _copy(value: object) -> object:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    return None


def _put_back(value: Any, saved: object) -> None:
    if isinstance(value, dict) and isinstance(saved, dict):
        value.clear()
        value.update(saved)
    elif isinstance(value, list) and isinstance(saved, list):
        value[:] = saved


@dataclass(frozen=True)
class Snapshot:
    """A module's ``__dict__`` entries, with shallow copies of the dicts and lists among them."""

    module: nn.Module
    entries: dict[str, object]
    contents: dict[str, object]
    owner: object = None
    owner_methods: object = None

    @classmethod
    def take(cls, module: nn.Module, owner: object = None) -> Snapshot:
        """Record ``module``'s state and, if given, ``owner._pruning_methods`` (a container)."""
        entries = dict(vars(module))
        contents = {key: _copy(value) for key, value in entries.items()}
        return cls(module, entries, contents, owner, getattr(owner, "_pruning_methods", None))

    def restore(self) -> None:
        """Put every recorded entry back, drop entries added since, refill dicts and lists."""
        state = vars(self.module)
        for key in [key for key in state if key not in self.entries]:
            del state[key]
        for key, value in self.entries.items():
            state[key] = value
            _put_back(value, self.contents[key])
        if self.owner is not None:
            self.owner._pruning_methods = self.owner_methods  # type: ignore[attr-defined]


__all__ = ["Snapshot"]


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
    # nothing pruned yet: t[index] is a flat copy of all of t; skip gathering and scattering it
    whole = isinstance(index, Tensor) and is_concrete(index) and bool(index.all())
    if whole:  # copies, as t[index] and mask[index] would be
        part, part_mask = t.flatten().clone(), mask.flatten().clone()
    else:
        part, part_mask = t[index], mask[index]
    partial = method.compute_mask(part, default_mask=part_mask)
    if whole and partial.shape == (mask.numel(),):
        return combined.copy_(partial.reshape(mask.shape))
    combined[index] = partial.to(dtype=combined.dtype)  # raises torch's error on a bad shape
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


def pruning_hooks(module: nn.Module) -> Iterator[tuple[int, BasePruningMethod]]:
    """``(handle id, method)`` for every funcprune.compat pruning hook of ``module`` itself."""
    for key, hook in module._forward_pre_hooks.items():
        if isinstance(hook, BasePruningMethod):
            yield key, hook


def _hook_of(module: nn.Module, name: str) -> tuple[int, BasePruningMethod] | None:
    found = [(key, hook) for key, hook in pruning_hooks(module) if hook._tensor_name == name]
    if len(found) > 1:
        raise AssertionError(
            f"Avoid adding multiple pruning hooks to the same tensor {name} of module {module}. "
            "Use a PruningContainer."
        )
    return found[0] if found else None


def _scores(
    importance_scores: Tensor | None, tensor: Tensor, name: str, module: nn.Module
) -> Tensor:
    if importance_scores is None:
        return tensor
    if importance_scores.shape != tensor.shape:
        raise AssertionError(
            f"importance_scores should have the same shape as parameter {name} of {module}, "
            f"got {importance_scores.shape} vs {tensor.shape}"
        )
    return importance_scores


def attach(
    cls: type[BasePruningMethod],
    module: nn.Module,
    name: str,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    importance_scores: Tensor | None,
) -> BasePruningMethod:
    """Prune ``module.<name>`` with ``cls(*args, **kwargs)``; return the hooked method.

    Raises what torch raises for each bad input (``AssertionError`` for two hooks on one tensor
    or mis-shaped scores, ``AttributeError`` for a missing tensor, ``TypeError`` for a tensor that
    is not a Parameter, and whatever the method's constructor and ``compute_mask`` raise).
    """
    found = _hook_of(module, name)
    method = cls(*args, **kwargs)
    method._tensor_name = name
    tensor = getattr(module, name)
    scores = _scores(importance_scores, tensor, name, module)
    container = None
    if found is not None:
        old = found[1]
        container = old if isinstance(old, PruningContainer) else PruningContainer(old)
    hook = method if container is None else container
    snapshot = Snapshot.take(module, owner=container)
    try:
        if found is None or container is None:
            module.register_parameter(name + "_orig", tensor)
            del module._parameters[name]
            default_mask = torch.ones_like(tensor)
        else:
            container.add_pruning_method(method)
            del module._forward_pre_hooks[found[0]]
            default_mask = (
                getattr(module, name + "_mask")
                .detach()
                .clone(memory_format=torch.contiguous_format)
            )
        with spare_threads():
            mask = hook.compute_mask(scores, default_mask=default_mask)
        module.register_buffer(name + "_mask", mask)
        setattr(module, name, hook.apply_mask(module))
        module.register_forward_pre_hook(hook)
    except BaseException:
        snapshot.restore()
        raise
    hook._compat_module = weakref.ref(module)
    return hook


__all__ = ["attach", "pruning_hooks"]
