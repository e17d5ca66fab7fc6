"""Private selection kernels: exact "prune the k smallest" over one or many tensors.

Scores become integer order keys (:func:`order_keys`), and :func:`prune_smallest` prunes exactly
``k`` eligible entries, ties broken by lowest flat index as if the tensors were concatenated.
:func:`random_keys` gives the counter-based keys of the random methods.
"""

from funcprune._select.kernels import order_keys, prune_smallest, prune_smallest_magnitudes
from funcprune._select.random import random_keys

__all__ = ["order_keys", "prune_smallest", "prune_smallest_magnitudes", "random_keys"]
