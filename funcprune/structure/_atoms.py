"""Channel atoms: one integer id per index of every parameter and buffer dim, joined by couplings.

An atom is one index along one dim of one parameter or buffer. Walking the captured graph, a
tensor value carries, per dim, either an array of atom ids (which parameter slices its entries
come from) or ``None`` (a fixed dim: its size can never change). Couplings are recorded as
edges between atoms and reasons why atoms cannot be removed as forbid records; connected
components of the edges are the channel groups (a union-find, solved once at the end).

>>> import numpy as np
>>> book = AtomBook()
>>> a, b = book.fresh("w", 0, 3), book.fresh("b", 0, 3)
>>> book.union(a, b)
>>> book.forbid(a[:1], "graph output")
>>> labels, reasons = book.components()
>>> bool(labels[0] == labels[3]), reasons[int(labels[0])], int(labels[1]) in reasons
(True, 'graph output', False)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
Atoms = IntArray | None
"""Per dim of a value: the atom id of each index, or ``None`` for a fixed dim."""


@dataclass(frozen=True)
class Block:
    """The atoms of one dim of one parameter or buffer: ids ``start .. start + size - 1``."""

    key: str
    dim: int
    start: int
    size: int
    buffer: bool


class AtomBook:
    """Allocates atoms and records the couplings and prohibitions found while walking a graph."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self._count = 0
        self._left: list[IntArray] = []
        self._right: list[IntArray] = []
        self._forbidden: list[tuple[IntArray, str]] = []

    @property
    def count(self) -> int:
        """How many atoms exist."""
        return self._count

    def fresh(self, key: str, dim: int, size: int, *, buffer: bool = False) -> IntArray:
        """New atoms for the indices of ``key``'s dim ``dim``."""
        self.blocks.append(Block(key, dim, self._count, size, buffer))
        atoms = np.arange(self._count, self._count + size, dtype=np.int64)
        self._count += size
        return atoms

    def union(self, a: IntArray, b: IntArray) -> None:
        """Couple ``a[i]`` with ``b[i]`` for every ``i`` (broadcasting)."""
        left, right = np.broadcast_arrays(a, b)
        self._left.append(left.ravel())
        self._right.append(right.ravel())

    def union_rows(self, grid: IntArray) -> IntArray:
        """Couple all atoms of each row of a 2-d ``grid``; return one atom per row."""
        if grid.shape[1] > 1:
            self.union(grid[:, :1], grid[:, 1:])
        return np.ascontiguousarray(grid[:, 0])

    def forbid(self, atoms: IntArray, reason: str) -> None:
        """Mark ``atoms`` (and everything coupled with them) as never removable, for ``reason``."""
        if atoms.size:
            self._forbidden.append((atoms.ravel(), reason))

    def couple(self, dims: Sequence[Atoms], reason: str) -> Atoms:
        """Couple same-length dims index by index; a fixed dim among them fixes all of them."""
        arrays = [atoms for atoms in dims if atoms is not None]
        if not arrays:
            return None
        if len(arrays) < len(dims):
            for atoms in arrays:
                self.forbid(atoms, reason)
            return None
        for atoms in arrays[1:]:
            self.union(arrays[0], atoms)
        return arrays[0]

    def components(self) -> tuple[IntArray, dict[int, str]]:
        """Component label of every atom (numbered by first atom), and each forbidden one's reason."""
        if self._left:
            left, right = np.concatenate(self._left), np.concatenate(self._right)
        else:
            left = right = np.zeros(0, dtype=np.int64)
        _, labels = np.unique(_smallest_member(self._count, left, right), return_inverse=True)
        labels = labels.astype(np.int64)
        reasons: dict[int, str] = {}
        for atoms, reason in self._forbidden:
            for label in np.unique(labels[atoms]).tolist():
                reasons.setdefault(label, reason)
        return labels, reasons


def _smallest_member(count: int, left: IntArray, right: IntArray) -> IntArray:
    """Per atom, the smallest atom connected to it by the edges: hook roots, then jump pointers.

    >>> _smallest_member(5, np.array([3, 1]), np.array([4, 3])).tolist()
    [0, 1, 2, 1, 1]
    """
    parent = np.arange(count, dtype=np.int64)
    while True:
        a, b = parent[left], parent[right]
        low = np.minimum(a, b)
        hooked = parent.copy()
        np.minimum.at(hooked, a, low)
        np.minimum.at(hooked, b, low)
        while True:
            jumped = hooked[hooked]
            if np.array_equal(jumped, hooked):
                break
            hooked = jumped
        if np.array_equal(hooked, parent):
            return parent
        parent = hooked
