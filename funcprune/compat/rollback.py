"""Undo for module edits: a snapshot of a module's own state that can be put back exactly.

Pruning edits a module in several steps (parameters, buffers, plain attributes, hooks, the
container's method list). If any step fails, :meth:`Snapshot.restore` puts every entry back, in
its original order, into the very same dict and list objects (so references held elsewhere, such
as an ``LSTM``'s flat-weight list or an optimizer's view of ``_parameters``, stay valid).

>>> import torch
>>> lin = torch.nn.Linear(2, 2)
>>> snap = Snapshot.take(lin)
>>> del lin._parameters["bias"]
>>> snap.restore()
>>> [name for name, _ in lin.named_parameters()]
['weight', 'bias']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn


def _copy(value: object) -> object:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    return None


def _put_back(value: Any, saved: object) -> None:
    if isinstance(value, dict) and isinstance(saved, dict):
        value.clear()
        value.update(saved)
    elif isinstance(value, list) and isinstance(saved, list):
        value[:] = saved


@dataclass(frozen=True)
class Snapshot:
    """A module's ``__dict__`` entries, with shallow copies of the dicts and lists among them."""

    module: nn.Module
    entries: dict[str, object]
    contents: dict[str, object]
    owner: object = None
    owner_methods: object = None

    @classmethod
    def take(cls, module: nn.Module, owner: object = None) -> Snapshot:
        """Record ``module``'s state and, if given, ``owner._pruning_methods`` (a container)."""
        entries = dict(vars(module))
        contents = {key: _copy(value) for key, value in entries.items()}
        return cls(module, entries, contents, owner, getattr(owner, "_pruning_methods", None))

    def restore(self) -> None:
        """Put every recorded entry back, drop entries added since, refill dicts and lists."""
        state = vars(self.module)
        for key in [key for key in state if key not in self.entries]:
            del state[key]
        for key, value in self.entries.items():
            state[key] = value
            _put_back(value, self.contents[key])
        if self.owner is not None:
            self.owner._pruning_methods = self.owner_methods  # type: ignore[attr-defined]


__all__ = ["Snapshot"]
