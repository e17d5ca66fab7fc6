"""``masked_call`` on FSDP2 modules (``torch.distributed.fsdp.fully_shard``).

FSDP2 all-gathers the module's own sharded parameters before each forward (and adopts whatever
tensor sits on the module at its first forward), so swapping masked copies in with
``functional_call`` either is ignored or replaces FSDP's parameters by non-leaf tensors. On an
FSDP2 module ``fp.masked_call`` therefore zeroes the pruned entries of the module's sharded
parameters in place (local shards only, under ``no_grad``), then calls the module: the forward
equals the masked forward bit for bit, and gradients reach FSDP's parameters as usual. The
gradients of pruned entries are not zero: step with ``fp.masked_step``/``fp.keep_pruned`` (or the
pure ``fp.sgd``/``fp.adam``), which mask them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributed.fsdp import FSDPModule

from funcprune._checks import check_masks, check_params


def is_fsdp(module: nn.Module) -> bool:
    """Whether ``module`` or a submodule is managed by FSDP2 (``fully_shard``)."""
    return any(isinstance(m, FSDPModule) for m in module.modules())


def fsdp_masked_call(
    module: nn.Module,
    params: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Zero the pruned entries of the FSDP2 module's own parameters, then call it."""
    check_params(params)
    check_masks(params, masks)
    own = dict(module.named_parameters())
    foreign = sorted(key for key, p in params.items() if own.get(key) is not p)
    if foreign:
        raise ValueError(
            f"on an FSDP2 (fully_shard) module, masked_call masks the module's own parameters, "
            f"but params at {foreign} are not them; pass dict(model.named_parameters())"
        )
    with torch.no_grad():
        for key, mask in masks.items():
            params[key].mul_(mask)
    return module(*args, **kwargs)


__all__ = ["fsdp_masked_call", "is_fsdp"]
