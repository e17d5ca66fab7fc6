"""A readable sparsity report: a per-layer table, a plain dict, a bar chart, and a warning for
tensors pruned away completely.

Methods never warn (they run under ``vmap`` and ``torch.compile``, where whether a tensor is
empty cannot be read without breaking the trace); look at their result eagerly with
:func:`sparsity_report` or :func:`warn_fully_pruned`, which emit :class:`FullyPrunedWarning`.

>>> import torch
>>> from funcprune.report import sparsity_report
>>> report = sparsity_report({"fc.weight": torch.tensor([[True, False], [False, False]])},
...                          {"fc.weight": torch.zeros(2, 2), "fc.bias": torch.zeros(2)})
>>> print(report)
key        shape   kept/total  sparsity
fc.weight  (2, 2)  1/4           75.00%
fc.bias    (2,)    2/2            0.00%
total              3/6           50.00%
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from funcprune._checks import check_masks, check_params, check_tensor_dict
from funcprune.types import Params


class FullyPrunedWarning(UserWarning):
    """Every entry of a tensor is pruned: its layer outputs only its bias, or nothing.

    Global ranking does this to layers whose weights are all small, e.g. ResNet-50's ``fc`` at
    0.8 on random init. Silence it with ``warnings.filterwarnings("ignore",
    category=FullyPrunedWarning)`` when it is what you want.
    """


@dataclass(frozen=True)
class LayerSparsity:
    """One row of a report: a key, its shape, and how many of its entries are kept."""

    key: str
    shape: tuple[int, ...]
    kept: int
    total: int

    @property
    def sparsity(self) -> float:
        """The fraction pruned (0.0 for a tensor without entries)."""
        return 1.0 - self.kept / self.total if self.total else 0.0

    @property
    def fully_pruned(self) -> bool:
        """Whether every entry is pruned (a tensor without entries never is)."""
        return self.total > 0 and self.kept == 0


@dataclass(frozen=True)
class SparsityReport:
    """Per-key sparsity in ``params``' (or the masks') order; print it, ``to_dict()`` it, ``plot()`` it."""

    layers: tuple[LayerSparsity, ...]

    @property
    def kept(self) -> int:
        """Entries kept over all keys."""
        return sum(layer.kept for layer in self.layers)

    @property
    def total(self) -> int:
        """Entries over all keys."""
        return sum(layer.total for layer in self.layers)

    @property
    def overall(self) -> float:
        """The fraction of all entries pruned."""
        return 1.0 - self.kept / self.total if self.total else 0.0

    @property
    def fully_pruned(self) -> list[str]:
        """Keys whose every entry is pruned."""
        return [layer.key for layer in self.layers if layer.fully_pruned]

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (no dataframe needed): overall numbers and one dict per key.

        >>> import torch
        >>> sparsity_report({"w": torch.tensor([True, False])}).to_dict()
        {'overall': 0.5, 'kept': 1, 'total': 2, 'layers': {'w': {'shape': [2], 'kept': 1, 'total': 2, 'sparsity': 0.5}}}
        """
        return {
            "overall": self.overall,
            "kept": self.kept,
            "total": self.total,
            "layers": {
                layer.key: {
                    "shape": list(layer.shape),
                    "kept": layer.kept,
                    "total": layer.total,
                    "sparsity": layer.sparsity,
                }
                for layer in self.layers
            },
        }

    def __str__(self) -> str:
        rows = [("key", "shape", "kept/total", "sparsity")]
        rows += [
            (row.key, str(row.shape), f"{row.kept}/{row.total}", f"{row.sparsity:.2%}")
            for row in self.layers
        ]
        rows.append(("total", "", f"{self.kept}/{self.total}", f"{self.overall:.2%}"))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [
            "  ".join(
                [
                    *(c.ljust(w) for c, w in zip(row[:3], widths, strict=False)),
                    row[3].rjust(widths[3]),
                ]
            )
            for row in rows
        ]
        return "\n".join(line.rstrip() for line in lines)

    def plot(self, ax: Any = None) -> Any:
        """A horizontal bar chart of each key's sparsity, with the overall sparsity as a line.

        Needs matplotlib (``pip install matplotlib``); draws on ``ax`` or a new figure's axes and
        returns the axes.

        >>> import torch, matplotlib
        >>> matplotlib.use("Agg")
        >>> ax = sparsity_report({"w": torch.tensor([True, False])}).plot()
        >>> [float(bar.get_width()) for bar in ax.patches]
        [0.5]
        """
        if ax is None:
            try:
                import matplotlib.pyplot as plt
            except ImportError as error:
                raise ImportError(
                    "SparsityReport.plot needs matplotlib: pip install matplotlib "
                    "(or pass your own axes)"
                ) from error
            _, ax = plt.subplots(figsize=(6, 0.3 * len(self.layers) + 1.2))
        keys = [layer.key for layer in self.layers]
        ax.barh(keys, [layer.sparsity for layer in self.layers], color="tab:blue")
        ax.axvline(
            self.overall, color="tab:red", linestyle="--", label=f"overall {self.overall:.1%}"
        )
        ax.set_xlim(0.0, 1.0)
        ax.invert_yaxis()
        ax.set_xlabel("sparsity (fraction pruned)")
        ax.legend(loc="lower right")
        return ax


def _report(masks: Mapping[str, Tensor], params: Params | None) -> SparsityReport:
    if params is None:
        check_tensor_dict(masks, masks, "masks", bool_only=True)
        shapes = {key: tuple(m.shape) for key, m in masks.items()}
    else:
        check_params(params)
        check_masks(params, masks)
        shapes = {key: tuple(p.shape) for key, p in params.items()}
    layers = []
    for key, shape in shapes.items():
        total = 1
        for size in shape:
            total *= size
        kept = int(masks[key].sum()) if key in masks else total
        layers.append(LayerSparsity(key, shape, kept, total))
    return SparsityReport(tuple(layers))


def _warn(report: SparsityReport) -> None:
    if report.fully_pruned:
        warnings.warn(
            f"every entry of {report.fully_pruned} is pruned (100% sparsity); their layers now "
            "output only their bias. If that is not intended, prune those keys less (a global "
            "ranking does this to uniformly small layers): e.g. fp.only(method, exclude=...) "
            "or per-layer amounts with fp.per_key",
            FullyPrunedWarning,
            stacklevel=3,
        )


def sparsity_report(
    masks: Mapping[str, Tensor], params: Params | None = None, *, warn: bool = True
) -> SparsityReport:
    """Per-key table of kept entries and sparsity; warns about keys pruned completely.

    With ``params`` every parameter is a row (keys without a mask are dense) and masks are
    checked against them; without, only the masks are. Eager only (it reads mask values).

    Args:
        masks: bool masks (``True`` keeps).
        params: the parameters, for shapes and the unmasked keys.
        warn: emit :class:`FullyPrunedWarning` when a key with entries keeps none.

    Raises:
        TypeError: masks that are not bool tensors; KeyError, ValueError: masks not fitting
            ``params``.

    >>> import torch, warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     report = sparsity_report({"fc.weight": torch.zeros(2, 2, dtype=torch.bool)})
    >>> report.fully_pruned, caught[0].category.__name__
    (['fc.weight'], 'FullyPrunedWarning')
    """
    report = _report(masks, params)
    if warn:
        _warn(report)
    return report


def warn_fully_pruned(masks: Mapping[str, Tensor], params: Params | None = None) -> list[str]:
    """The keys whose every entry is pruned, with a :class:`FullyPrunedWarning` if there are any.

    A cheap check to run after each pruning step (eagerly: it reads mask values).

    >>> import torch
    >>> warn_fully_pruned({"w": torch.tensor([True, False])})
    []
    """
    report = _report(masks, params)
    _warn(report)
    return report.fully_pruned


__all__ = [
    "FullyPrunedWarning",
    "LayerSparsity",
    "SparsityReport",
    "sparsity_report",
    "warn_fully_pruned",
]
