"""The functional interface: ``prune.l1_unstructured(module, "weight", amount=0.3)`` and friends.

Each function applies its method class (looked up on the class, so patching
``funcprune.compat.L1Unstructured.compute_mask`` changes what it does) and returns the module.

>>> import torch
>>> from funcprune import compat as prune
>>> lin = prune.random_structured(torch.nn.Linear(5, 3), "weight", amount=3, dim=1)
>>> int(((lin.weight == 0).all(dim=0)).sum()), prune.is_pruned(lin)
(3, True)
>>> prune.is_pruned(prune.remove(lin, "weight"))
False
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parameters_to_vector

from funcprune._threads import spare_threads
from funcprune.compat._hooks import BasePruningMethod, PruningContainer, Snapshot, pruning_hooks
from funcprune.compat._methods import (
    CustomFromMask,
    Identity,
    L1Unstructured,
    LnStructured,
    RandomStructured,
    RandomUnstructured,
)
from funcprune.compat._validation import Norm, TorchAmount


def identity(module: nn.Module, name: str) -> nn.Module:
    """Reparametrize ``module.<name>`` with a mask of ones (prunes nothing).

    >>> import torch
    >>> from funcprune import compat as prune
    >>> prune.identity(torch.nn.Linear(2, 1), "weight").weight_mask
    tensor([[1., 1.]])
    """
    Identity.apply(module, name)
    return module


def random_unstructured(module: nn.Module, name: str, amount: TorchAmount) -> nn.Module:
    """Prune ``amount`` of the unpruned entries of ``module.<name>`` at random.

    >>> import torch
    >>> from funcprune import compat as prune
    >>> int(prune.random_unstructured(torch.nn.Linear(4, 5), "weight", amount=0.25).weight_mask.sum())
    15
    """
    RandomUnstructured.apply(module, name, amount)
    return module


def l1_unstructured(
    module: nn.Module, name: str, amount: TorchAmount, importance_scores: Tensor | None = None
) -> nn.Module:
    """Prune ``amount`` of the unpruned entries of ``module.<name>`` with the smallest magnitude.

    >>> import torch
    >>> from funcprune import compat as prune
    >>> lin = torch.nn.Linear(3, 1)
    >>> with torch.no_grad():
    ...     _ = lin.weight.copy_(torch.tensor([[0.5, -2.0, 0.1]]))
    >>> prune.l1_unstructured(lin, "weight", amount=2).weight_mask
    tensor([[0., 1., 0.]])
    """
    L1Unstructured.apply(module, name, amount=amount, importance_scores=importance_scores)
    return module


def random_structured(module: nn.Module, name: str, amount: TorchAmount, dim: int) -> nn.Module:
    """Prune ``amount`` of the unpruned slices of ``module.<name>`` along ``dim`` at random.

    >>> import torch
    >>> from funcprune import compat as prune
    >>> lin = prune.random_structured(torch.nn.Linear(3, 4), "weight", amount=0.5, dim=0)
    >>> lin.weight_mask.all(dim=1).sum().item(), (lin.weight_mask == 0).all(dim=1).sum().item()
    (2, 2)
    """
    RandomStructured.apply(module, name, amount, dim)
    return module


def ln_structured(
    module: nn.Module,
    name: str,
    amount: TorchAmount,
    n: Norm,
    dim: int,
    importance_scores: Tensor | None = None,
) -> nn.Module:
    """Prune ``amount`` of the unpruned slices along ``dim`` with the smallest L``n`` norm.

    >>> import torch
    >>> from funcprune import compat as prune
    >>> lin = torch.nn.Linear(2, 3)
    >>> with torch.no_grad():
    ...     _ = lin.weight.copy_(torch.tensor([[3.0, 4.0], [0.1, 0.0], [1.0, 1.0]]))
    >>> prune.ln_structured(lin, "weight", amount=1, n=2, dim=0).weight_mask
    tensor([[1., 1.],
            [0., 0.],
            [1., 1.]])
    """
    LnStructured.apply(module, name, amount, n, dim, importance_scores=importance_scores)
    return module


def custom_from_mask(module: nn.Module, name: str, mask: Tensor) -> nn.Module:
    """Prune ``module.<name>`` where ``mask`` is zero (on top of earlier pruning).

    >>> import torch
    >>> from funcprune import compat as prune
    >>> prune.custom_from_mask(torch.nn.Linear(2, 2), "bias", torch.tensor([0.0, 1.0])).bias_mask
    tensor([0., 1.])
    """
    CustomFromMask.apply(module, name, mask)
    return module


def _flat(tensors: list[Tensor]) -> Tensor:
    """torch's ``parameters_to_vector`` (its device checks too), non-contiguous tensors included."""
    return parameters_to_vector(t.reshape(-1) for t in tensors)


def global_unstructured(
    parameters: Iterable[tuple[nn.Module, str]],
    pruning_method: type[BasePruningMethod],
    importance_scores: dict[tuple[nn.Module, str], Tensor] | None = None,
    **kwargs: Any,
) -> None:
    """Prune the ``(module, name)`` tensors together, as one vector, with an unstructured method.

    ``pruning_method`` is a class (``L1Unstructured``, ``RandomUnstructured`` or a user subclass
    with ``PRUNING_TYPE = "unstructured"``) built with ``**kwargs``. Its mask over the concatenated
    unpruned entries is then installed on each tensor with :class:`CustomFromMask`. Unlike torch,
    a failure on one tensor leaves every module as it was.

    Raises:
        TypeError: ``parameters`` not iterable, ``importance_scores`` not a dict, or a method
            whose ``PRUNING_TYPE`` is not ``"unstructured"``.
        ValueError: no parameters (torch cannot concatenate nothing).

    >>> import torch
    >>> from funcprune import compat as prune
    >>> a, b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)
    >>> prune.global_unstructured([(a, "weight"), (b, "weight")], prune.L1Unstructured, amount=12)
    >>> int((a.weight_mask == 0).sum() + (b.weight_mask == 0).sum())
    12
    """
    if not isinstance(parameters, Iterable):
        raise TypeError(
            "global_unstructured(): parameters is not an Iterable of (module, name) pairs"
        )
    pairs = list(parameters)
    scores = {} if importance_scores is None else importance_scores
    if not isinstance(scores, dict):
        raise TypeError("global_unstructured(): importance_scores must be of type dict")
    flat_scores = _flat(
        [scores.get((module, name), getattr(module, name)) for module, name in pairs]
    )
    flat_masks = _flat(
        [
            getattr(module, name + "_mask", torch.ones_like(getattr(module, name)))
            for module, name in pairs
        ]
    )
    container = PruningContainer()
    container._tensor_name = "temp"
    method = pruning_method(**kwargs)
    method._tensor_name = "temp"
    if method.PRUNING_TYPE != "unstructured":
        raise TypeError(
            'Only "unstructured" PRUNING_TYPE supported for the `pruning_method`. '
            f"Found method {pruning_method} of type {method.PRUNING_TYPE}"
        )
    container.add_pruning_method(method)
    with spare_threads():
        final = container.compute_mask(flat_scores, flat_masks)
    _install_all(pairs, final)


def _install_all(pairs: list[tuple[nn.Module, str]], final: Tensor) -> None:
    """Install each tensor's slice of the flat mask ``final`` with :class:`CustomFromMask`.

    All or nothing: if one tensor fails (a buffer, say), every module is put back as it was.
    """
    snapshots = [Snapshot.take(module, owner=_container_of(module, name)) for module, name in pairs]
    start = 0
    try:
        for module, name in pairs:
            param = getattr(module, name)
            CustomFromMask.apply(module, name, final[start : start + param.numel()].view_as(param))
            start += param.numel()
    except BaseException:
        for snapshot in reversed(snapshots):
            snapshot.restore()
        raise


def _container_of(module: nn.Module, name: str) -> PruningContainer | None:
    """The container of methods already pruning ``module.<name>``, if any (it will grow)."""
    hooks = [hook for _, hook in pruning_hooks(module) if hook._tensor_name == name]
    return next((hook for hook in hooks if isinstance(hook, PruningContainer)), None)


def remove(module: nn.Module, name: str) -> nn.Module:
    """Make the pruning of ``module.<name>`` permanent and drop its hook, mask and original.

    Raises:
        ValueError: ``module.<name>`` is not pruned.

    >>> import torch
    >>> from funcprune import compat as prune
    >>> lin = prune.remove(prune.l1_unstructured(torch.nn.Linear(2, 2), "bias", amount=1), "bias")
    >>> list(lin.state_dict()), int((lin.bias == 0).sum())
    (['weight', 'bias'], 1)
    """
    for key, hook in pruning_hooks(module):
        if hook._tensor_name == name:
            hook.remove(module)
            del module._forward_pre_hooks[key]
            return module
    raise ValueError(
        f"Parameter '{name}' of module {module} has to be pruned before pruning can be removed"
    )


def is_pruned(module: nn.Module) -> bool:
    """Whether ``module`` or any submodule has a funcprune.compat pruning hook.

    >>> import torch
    >>> from funcprune import compat as prune
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    >>> before = prune.is_pruned(model)
    >>> _ = prune.identity(model[0], "bias")
    >>> before, prune.is_pruned(model)
    (False, True)
    """
    return any(True for sub in module.modules() for _ in pruning_hooks(sub))


__all__ = [
    "custom_from_mask",
    "global_unstructured",
    "identity",
    "is_pruned",
    "l1_unstructured",
    "ln_structured",
    "random_structured",
    "random_unstructured",
    "remove",
]
