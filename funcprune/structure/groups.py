"""Channel groups: the parameter slices that must be removed together, found in a captured graph.

>>> import torch
>>> from torch import nn
>>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
>>> groups = channel_groups(model, (torch.zeros(1, 4),))
>>> len(groups), groups[0]
(3, ChannelGroup(0.weight[0] 0.bias[0] 2.weight[:, 0]))
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from funcprune.structure._atoms import AtomBook
from funcprune.structure._capture import Captured, capture
from funcprune.structure._walk import NOT_CHANNEL, walk_graph


@dataclass(frozen=True, repr=False)
class Slice:
    """Indices ``indices`` along dim ``dim`` of the parameter or buffer ``key``."""

    key: str
    dim: int
    indices: tuple[int, ...]

    def __repr__(self) -> str:
        index = str(self.indices[0]) if len(self.indices) == 1 else f"{list(self.indices)}"
        return f"{self.key}[{':, ' * self.dim}{index}]"


@dataclass(frozen=True)
class ChannelGroup:
    """One channel: the parameter slices (and buffer slices) removed together."""

    params: tuple[Slice, ...]
    buffers: tuple[Slice, ...] = ()

    def __repr__(self) -> str:
        return f"ChannelGroup({' '.join(str(s) for s in (*self.params, *self.buffers))})"

    @property
    def family(self) -> tuple[tuple[str, int], ...]:
        """The ``(key, dim)`` pairs it touches: channels of one layer share a family."""
        return tuple((s.key, s.dim) for s in self.params)


@dataclass(frozen=True)
class Exclusion:
    """Indices of ``key``'s dim ``dim`` left out of every group, and the first reason found."""

    key: str
    dim: int
    count: int
    size: int
    reason: str

    @property
    def channel_dim(self) -> bool:
        """False for dims that are not channels at all (kernel dims, vocabulary rows, ...)."""
        return not self.reason.startswith(NOT_CHANNEL)


@dataclass(frozen=True)
class ChannelGroups:
    """The channel groups of a model, what was left out and why; a sequence of groups."""

    groups: tuple[ChannelGroup, ...]
    excluded: tuple[Exclusion, ...]
    shapes: tuple[tuple[str, tuple[int, ...]], ...]
    """Shape of every parameter and buffer seen in the graph."""
    tracer: str
    unsupported: tuple[tuple[str, int], ...] = ()
    """Ops that forced exclusions, with how many nodes of each."""

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self) -> Iterator[ChannelGroup]:
        return iter(self.groups)

    def __getitem__(self, index: int) -> ChannelGroup:
        return self.groups[index]

    def __repr__(self) -> str:
        keys = {s.key for g in self.groups for s in g.params}
        return f"ChannelGroups(<{len(self.groups)} groups over {len(keys)} parameters>)"

    def report(self) -> str:
        """A readable account: how many groups, and every channel dim left out with its reason.

        >>> import torch
        >>> groups = channel_groups(torch.nn.Linear(2, 3), (torch.zeros(1, 2),))
        >>> print(groups.report())
        0 channel groups over 0 parameters (captured with torch.export)
        left out:
          weight dim 0 (3 of 3): graph output: its shape must not change
          weight dim 1 (2 of 2): aten.linear: input features are fixed (a graph input or an unprunable value)
          bias dim 0 (3 of 3): graph output: its shape must not change
        """
        keys = {s.key for g in self.groups for s in g.params}
        lines = [
            f"{len(self.groups)} channel groups over {len(keys)} parameters (captured with {self.tracer})"
        ]
        channel = [e for e in self.excluded if e.channel_dim]
        if channel:
            lines.append("left out:")
            lines += [f"  {e.key} dim {e.dim} ({e.count} of {e.size}): {e.reason}" for e in channel]
        other = Counter(
            e.reason.removeprefix(NOT_CHANNEL).split(": ")[-1]
            for e in self.excluded
            if not e.channel_dim
        )
        if other:
            lines.append(
                "not channel dims: " + ", ".join(f"{n} x {why}" for why, n in sorted(other.items()))
            )
        if self.unsupported:
            lines.append(
                "unsupported ops: " + ", ".join(f"{op} x{n}" for op, n in self.unsupported)
            )
        return "\n".join(lines)

    @functools.cached_property
    def families(self) -> tuple[tuple[int, ...], ...]:
        """Group numbers by layer: groups touching the same ``(key, dim)`` pairs, first-seen order."""
        members: dict[tuple[tuple[str, int], ...], list[int]] = {}
        for number, group in enumerate(self.groups):
            members.setdefault(group.family, []).append(number)
        return tuple(tuple(ids) for ids in members.values())

    @functools.cached_property
    def index_maps(self) -> tuple[tuple[str, int, tuple[int, ...]], ...]:
        """Per grouped ``(key, dim)``: the group id of each index (``len(self)`` for none)."""
        sizes = dict(self.shapes)
        maps: dict[tuple[str, int], list[int]] = {}
        for gid, group in enumerate(self.groups):
            for s in group.params:
                ids = maps.setdefault((s.key, s.dim), [len(self.groups)] * sizes[s.key][s.dim])
                for i in s.indices:
                    ids[i] = gid
        return tuple((key, dim, tuple(ids)) for (key, dim), ids in maps.items())


def channel_groups(model: nn.Module, example_inputs: Sequence[object]) -> ChannelGroups:
    """The groups of coupled channel slices of ``model``, from torch's own graph capture.

    The model (an eval-mode copy of it) is captured with ``torch.export`` (``torch.fx``'s
    ``make_fx`` when export fails) on ``example_inputs``. Every parameter and buffer index is
    followed through the ATen graph: convolutions, linear layers and matmuls couple a consumer's
    input slices with the producer's output channels; elementwise ops, residual adds and muls
    couple their operands; ``cat``/``split``/``chunk`` shift offsets; reshapes map one channel to
    a block; attention heads, grouped convolutions and group-norm groups are removed whole.
    Whatever cannot be removed exactly (graph inputs and outputs, normalization statistics,
    unsupported ops, fixed slices) is left out of every group; :meth:`ChannelGroups.report`
    says which and why.

    Args:
        model: the module; it is not modified.
        example_inputs: positional arguments for one forward call.

    Returns:
        The groups, ordered by first appearance; group ``i``'s ``params`` slices are what
        :func:`group_structured` masks when it prunes that channel.

    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
    ...                     nn.Conv2d(4, 5, 1), nn.Flatten(), nn.LazyLinear(2))
    >>> x = torch.zeros(1, 3, 5, 5)
    >>> _ = net(x)
    >>> groups = channel_groups(net, (x,))
    >>> len(groups), [s.key for s in groups[0].params], groups[0].buffers[0]
    (9, ['0.weight', '0.bias', '1.weight', '1.bias', '3.weight'], 1.running_mean[0])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not isinstance(example_inputs, (tuple, list)):
        raise TypeError(
            "example_inputs must be a tuple of positional arguments, e.g. (x,); "
            f"got {type(example_inputs).__name__}"
        )
    return groups_of(capture(model, example_inputs))


def groups_of(captured: Captured) -> ChannelGroups:
    """The channel groups of a captured graph."""
    walk = walk_graph(captured)
    labels, reasons = walk.book.components()
    return ChannelGroups(
        _groups(walk.book, labels, set(reasons)),
        _exclusions(walk.book, labels, reasons),
        _shapes(walk.book),
        captured.tracer,
        tuple(sorted(walk.unsupported.items())),
    )


def _shapes(book: AtomBook) -> tuple[tuple[str, tuple[int, ...]], ...]:
    shapes: dict[str, list[int]] = {}
    for block in book.blocks:
        shapes.setdefault(block.key, []).append(block.size)
    return tuple((key, tuple(sizes)) for key, sizes in shapes.items())


def _groups(book: AtomBook, labels: np.ndarray, forbidden: set[int]) -> tuple[ChannelGroup, ...]:
    """Components with a parameter atom and no forbidden atom, ordered by their first atom."""
    bad = np.zeros(int(labels.max()) + 1 if labels.size else 0, dtype=bool)
    bad[list(forbidden)] = True
    block_of = np.repeat(np.arange(len(book.blocks)), [b.size for b in book.blocks])
    index = np.concatenate([np.arange(b.size) for b in book.blocks]) if book.blocks else block_of
    is_buffer = np.array([b.buffer for b in book.blocks], dtype=bool)
    keep = ~bad[labels]
    has_param = np.zeros_like(bad)
    has_param[labels[keep & ~is_buffer[block_of]]] = True
    atoms = np.flatnonzero(keep & has_param[labels])
    atoms = atoms[np.lexsort((index[atoms], block_of[atoms], labels[atoms]))]
    groups: list[ChannelGroup] = []
    slices: dict[bool, list[Slice]] = {False: [], True: []}
    current: list[int] = []
    previous = (-1, -1)
    for label, block, i in zip(
        labels[atoms].tolist(), block_of[atoms].tolist(), index[atoms].tolist(), strict=True
    ):
        if (label, block) != previous and current:
            owner = book.blocks[previous[1]]
            slices[owner.buffer].append(Slice(owner.key, owner.dim, tuple(current)))
            current = []
        if label != previous[0] and previous[0] >= 0:
            groups.append(ChannelGroup(tuple(slices[False]), tuple(slices[True])))
            slices = {False: [], True: []}
        current.append(i)
        previous = (label, block)
    if current:
        owner = book.blocks[previous[1]]
        slices[owner.buffer].append(Slice(owner.key, owner.dim, tuple(current)))
        groups.append(ChannelGroup(tuple(slices[False]), tuple(slices[True])))
    return tuple(groups)


def _exclusions(
    book: AtomBook, labels: np.ndarray, reasons: dict[int, str]
) -> tuple[Exclusion, ...]:
    out = []
    for block in book.blocks:
        if block.buffer or block.size < 2:
            continue
        found = Counter(
            reasons[label]
            for label in labels[block.start : block.start + block.size].tolist()
            if label in reasons
        )
        if found:
            reason = found.most_common(1)[0][0]
            out.append(Exclusion(block.key, block.dim, sum(found.values()), block.size, reason))
    return tuple(out)


__all__ = ["ChannelGroup", "ChannelGroups", "Exclusion", "Slice", "channel_groups", "groups_of"]
