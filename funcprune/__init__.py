"""funcprune: pure-functional neural-network pruning on ``torch.func``.

Pruning methods are pure functions from parameter dicts to bool mask dicts; they compose with
:func:`chain`, run models through :func:`masked_call`, and vectorise with ``torch.func.vmap``.

>>> import torch, funcprune as fp
>>> params = {"w": torch.tensor([0.5, -3.0, 1.0, 0.1])}
>>> fp.chain(fp.l1_unstructured(0.5), fp.l1_unstructured(1))(params)["w"]
tensor([False,  True, False, False])
"""

from funcprune.interop import from_module, from_state_dict, install_masks, to_state_dict
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
from funcprune.scores import activation_norms, magnitude, movement, ranks, taylor, wanda
from funcprune.sparsity_distributions import erk, erk_densities, uniform
from funcprune.sparsity_schedules import constant, fraction_of_remaining, one_shot, polynomial
from funcprune.training import adam, keep_pruned, masked_step, sgd, straight_through
from funcprune.types import Amount, Masks, Params, PruningMethod, Scores

__version__ = "0.1.0"

__all__ = [
    "Amount",
    "Masks",
    "Params",
    "PruningMethod",
    "Scores",
    "Sparsity",
    "__version__",
    "activation_norms",
    "adam",
    "apply_masks",
    "chain",
    "constant",
    "custom_from_mask",
    "erk",
    "erk_densities",
    "fraction_of_remaining",
    "from_module",
    "from_state_dict",
    "global_unstructured",
    "identity",
    "install_masks",
    "keep_pruned",
    "l1_unstructured",
    "ln_structured",
    "magnitude",
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
    "sgd",
    "sparsity",
    "straight_through",
    "taylor",
    "to_state_dict",
    "uniform",
    "wanda",
]
