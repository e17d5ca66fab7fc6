"""Installing a pruning reparametrization on a module, all or nothing.

:func:`attach` is what ``Method.apply`` does, in torch's order (so the first failing check raises
the error torch raises): find the tensor's pruning hook, build the method, read the tensor and its
importance scores, move ``<name>`` to ``<name>_orig`` (first time) or extend the container
(later times), compute the mask, register ``<name>_mask``, set ``<name>`` and register the hook.
Unlike torch, a failure at any step leaves the module as it was (:class:`~.rollback.Snapshot`).

>>> import torch
>>> from funcprune.compat import L1Unstructured
>>> lin = torch.nn.Linear(2, 2)
>>> orig = lin.weight
>>> method = attach(L1Unstructured, lin, "weight", (1,), {}, None)
>>> lin.weight_orig is orig, list(lin.state_dict())
(True, ['bias', 'weight_orig', 'weight_mask'])
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from funcprune.compat.base import BasePruningMethod
from funcprune.compat.container import PruningContainer
from funcprune.compat.rollback import Snapshot


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
        module.register_buffer(name + "_mask", hook.compute_mask(scores, default_mask=default_mask))
        setattr(module, name, hook.apply_mask(module))
        module.register_forward_pre_hook(hook)
    except BaseException:
        snapshot.restore()
        raise
    hook._compat_module = weakref.ref(module)
    return hook


__all__ = ["attach", "pruning_hooks"]
