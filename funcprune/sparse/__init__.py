"""Sparse inference: pruned Linear layers as ``torch.sparse`` CSR/BSR, and 2:4 semi-structured.

:func:`to_sparse` swaps pruned ``Linear`` (and GPT-2 ``Conv1D``) layers of a copy of a model
for :class:`SparseLinear`; :func:`fastest_layouts` measures which layers gain from it;
:func:`to_semi_structured` targets NVIDIA's 2:4 sparse tensor cores.

>>> from funcprune.sparse import SparseLinear, fastest_layouts, to_semi_structured, to_sparse
"""

from funcprune.sparse.choose import fastest_layouts
from funcprune.sparse.convert import to_sparse
from funcprune.sparse.linear import SparseLinear
from funcprune.sparse.semi_structured import to_semi_structured

__all__ = [
    "SparseLinear",
    "fastest_layouts",
    "to_semi_structured",
    "to_sparse",
]
