"""funcprune: pure-functional neural-network pruning on ``torch.func``.

Pruning methods are pure functions from parameter dicts to bool mask dicts; they compose with
:func:`chain`, run models through :func:`masked_call`, and vectorise with ``torch.func.vmap``.

>>> import torch, funcprune as fp
>>> params = {"w": torch.tensor([0.5, -3.0, 1.0, 0.1])}
>>> fp.chain(fp.l1_unstructured(0.5), fp.l1_unstructured(1))(params)["w"]
tensor([False,  True, False, False])
"""

import importlib
from typing import TYPE_CHECKING

from funcprune._checks import KeyMismatchError
from funcprune.interop import from_module, from_state_dict, install_masks, to_state_dict
from funcprune.layers import FeatureDims, along_inputs, along_outputs, feature_dims
from funcprune.masking import Sparsity, apply_masks, masked_call, sparsity
from funcprune.methods import (
    chain,
    custom_from_mask,
    global_unstructured,
    identity,
    l1_unstructured,
    ln_structured,
    nm_semistructured,
    only,
    per_key,
    random_structured,
    random_unstructured,
)
from funcprune.report import (
    FullyPrunedWarning,
    LayerSparsity,
    SparsityReport,
    sparsity_report,
    warn_fully_pruned,
)
from funcprune.scores import activation_norms, magnitude, movement, ranks, taylor, wanda
from funcprune.sparsity_distributions import erk, erk_densities, uniform
from funcprune.sparsity_schedules import constant, fraction_of_remaining, one_shot, polynomial
from funcprune.training import adam, keep_pruned, masked_step, sgd, straight_through
from funcprune.types import Amount, Masks, Params, PruningMethod, Scores

if TYPE_CHECKING:
    from funcprune.io import (
        MaskFileInfo,
        finalize,
        load_masks,
        load_shrunk,
        mask_file_info,
        save_masks,
        save_shrunk,
    )
    from funcprune.structure import ChannelGroups, channel_groups, group_structured, shrink

_ON_FIRST_USE = {
    **dict.fromkeys(
        [
            "MaskFileInfo",
            "finalize",
            "load_masks",
            "load_shrunk",
            "mask_file_info",
            "save_masks",
            "save_shrunk",
        ],
        "funcprune.io",
    ),
    **dict.fromkeys(
        ["ChannelGroups", "channel_groups", "group_structured", "shrink"], "funcprune.structure"
    ),
}
"""Names of the subsystems that need optional packages (``funcprune[io]``: safetensors and numpy;
``funcprune[structure]``: numpy), imported on first use so ``import funcprune`` needs only torch."""


def __getattr__(name: str) -> object:
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module 'funcprune' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ON_FIRST_USE))


__version__ = "0.1.0"

__all__ = [
    "Amount",
    "ChannelGroups",
    "FeatureDims",
    "FullyPrunedWarning",
    "KeyMismatchError",
    "LayerSparsity",
    "MaskFileInfo",
    "Masks",
    "Params",
    "PruningMethod",
    "Scores",
    "Sparsity",
    "SparsityReport",
    "__version__",
    "activation_norms",
    "adam",
    "along_inputs",
    "along_outputs",
    "apply_masks",
    "chain",
    "channel_groups",
    "constant",
    "custom_from_mask",
    "erk",
    "erk_densities",
    "feature_dims",
    "finalize",
    "fraction_of_remaining",
    "from_module",
    "from_state_dict",
    "global_unstructured",
    "group_structured",
    "identity",
    "install_masks",
    "keep_pruned",
    "l1_unstructured",
    "ln_structured",
    "load_masks",
    "load_shrunk",
    "magnitude",
    "mask_file_info",
    "masked_call",
    "masked_step",
    "movement",
    "nm_semistructured",
    "one_shot",
    "only",
    "per_key",
    "polynomial",
    "random_structured",
    "random_unstructured",
    "ranks",
    "save_masks",
    "save_shrunk",
    "sgd",
    "shrink",
    "sparsity",
    "sparsity_report",
    "straight_through",
    "taylor",
    "to_state_dict",
    "uniform",
    "wanda",
    "warn_fully_pruned",
]
