"""A drop-in for ``torch.nn.utils.prune``, built on the pure funcprune core.

``import funcprune.compat as prune`` and existing code keeps working: the same classes, functions,
module effects (``<name>_orig``, ``<name>_mask``, forward pre-hooks, containers), state-dict keys,
error types, and masks identical to torch's (ties and ``torch.manual_seed`` draws included). The
deliberate differences, all fixes, are listed in ``docs/compat.md``.

>>> import torch
>>> import funcprune.compat as prune
>>> lin = prune.l1_unstructured(torch.nn.Linear(4, 2), "weight", amount=0.5)
>>> list(lin.state_dict()), int((lin.weight_mask == 0).sum())
(['bias', 'weight_orig', 'weight_mask'], 4)
"""

from funcprune.compat._functions import (
    custom_from_mask,
    global_unstructured,
    identity,
    is_pruned,
    l1_unstructured,
    ln_structured,
    random_structured,
    random_unstructured,
    remove,
)
from funcprune.compat._hooks import BasePruningMethod, PruningContainer
from funcprune.compat._methods import (
    CustomFromMask,
    Identity,
    L1Unstructured,
    LnStructured,
    RandomStructured,
    RandomUnstructured,
)
from funcprune.compat._validation import (
    _compute_norm,
    _compute_nparams_toprune,
    _validate_pruning_amount,
    _validate_pruning_amount_init,
    _validate_pruning_dim,
    _validate_structured_pruning,
)

__all__ = [
    "BasePruningMethod",
    "CustomFromMask",
    "Identity",
    "L1Unstructured",
    "LnStructured",
    "PruningContainer",
    "RandomStructured",
    "RandomUnstructured",
    "_compute_norm",
    "_compute_nparams_toprune",
    "_validate_pruning_amount",
    "_validate_pruning_amount_init",
    "_validate_pruning_dim",
    "_validate_structured_pruning",
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
