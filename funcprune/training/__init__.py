"""Training pruned models without regrowing pruned weights.

- :mod:`~funcprune.training.torch_optim`: ``masked_step`` and ``keep_pruned`` for ``torch.optim``.
- :mod:`~funcprune.training.functional`: pure ``sgd`` and ``adam`` on parameter dicts.
- :mod:`~funcprune.training.straight_through`: masks with a straight-through gradient.
"""

from funcprune.training.functional import adam, sgd
from funcprune.training.straight_through import straight_through
from funcprune.training.torch_optim import keep_pruned, masked_step

__all__ = ["adam", "keep_pruned", "masked_step", "sgd", "straight_through"]
