"""Private selection kernels: exact "prune the k smallest" over one or many tensors.

Scores become integer order keys (:mod:`.keys`), and :func:`prune_smallest` prunes exactly ``k``
eligible entries, ties broken by lowest flat index as if the tensors were concatenated.
:mod:`.dispatch` picks a kernel by what can be read: :mod:`.eager` (plain calls), :mod:`.sweep`
(``vmap`` over counts, and eager's constant-memory fallback), :mod:`.rank` (small inputs) and
:mod:`.radix` (``vmap`` over keys, ``torch.compile``).
:func:`random_keys` gives the counter-based keys of the random methods, and
:func:`prune_smallest_random` selects by them without making them all at once.
:func:`rank_prune_rows` selects in every row of a batch at once, and :func:`random_keys_of`
makes the keys of many parameters in one pass (many tiny parameters cost one call, not one each).
"""

from funcprune._select.dispatch import (
    prune_smallest,
    prune_smallest_magnitudes,
    prune_smallest_random,
)
from funcprune._select.keys import order_keys
from funcprune._select.random import random_keys, random_keys_of
from funcprune._select.rank import rank_prune_rows

__all__ = [
    "order_keys",
    "prune_smallest",
    "prune_smallest_magnitudes",
    "prune_smallest_random",
    "random_keys",
    "random_keys_of",
    "rank_prune_rows",
]
