"""The one base of frozen values (methods, schedules, optimizers): equality, hash and repr.

A value is a frozen dataclass built by a factory. It compares by its fields, tensors included
(same shape, dtype and device, then :func:`torch.equal`; never through Python lists), hashes
on the cheap parts (a tensor contributes its shape, dtype and device), and prints as the
factory call that builds it: the field marked :func:`positional` first, the others as keywords.

>>> import funcprune as fp
>>> fp.l1_unstructured(0.5) == fp.l1_unstructured(0.5), fp.sgd(0.1)
(True, sgd(0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from funcprune._tensors import is_concrete


def _same(a: object, b: object) -> bool:
    """Field equality: tensors by metadata and contents, tuples item by item, the rest by ``==``.

    A tensor that cannot be read (batched under ``vmap``, traced, ``meta``) equals only itself.
    """
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
            return False
        if (a.shape, a.dtype, a.device) != (b.shape, b.dtype, b.device):
            return False
        if a is b:
            return True
        return is_concrete(a) and is_concrete(b) and torch.equal(a, b)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def _hash_key(value: object) -> object:
    """What ``hash`` sees of a field: a tensor's metadata only, so hashing never reads contents."""
    if isinstance(value, Tensor):
        return ("tensor", tuple(value.shape), value.dtype, value.device)
    if isinstance(value, tuple):
        return tuple(_hash_key(v) for v in value)
    return value


def show(value: object) -> str:
    """A field as ``repr`` shows it: a readable 0-d tensor by its value, other tensors by metadata.

    >>> import torch
    >>> show(torch.tensor(0.25)), show(torch.ones(2, 3)), show("l1")
    ('tensor(0.25)', 'tensor(shape=(2, 3), dtype=torch.float32)', "'l1'")
    """
    if isinstance(value, Tensor):
        if value.dim() == 0 and is_concrete(value):
            return f"tensor({value.item():g})"
        return f"tensor(shape={tuple(value.shape)}, dtype={value.dtype})"
    return repr(value)


def positional_metadata(shown: Callable[[Any], str] = show) -> dict[str, Callable[[Any], str]]:
    """The metadata of a field written first and without its name, formatted by ``shown``.

    Spell a positional field ``dataclasses.field(metadata=positional_metadata())`` where fields
    without defaults follow it (type checkers see no default then); else use :func:`positional`.

    >>> positional_metadata()["shown"](0.5)
    '0.5'
    """
    return {"shown": shown}


def positional(shown: Callable[[Any], str] = show, *, default: Any = dataclasses.MISSING) -> Any:
    """A dataclass field that ``repr`` writes first and without its name, formatted by ``shown``.

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True, eq=False, repr=False)
    ... class Point(Value):
    ...     x: int = positional()
    ...     y: int = 0
    ...     factory: ClassVar[str] = "point"
    >>> Point(1, 2), Point(1, 2) == Point(1, 2), Point(1) == Point(2)
    (point(1, y=2), True, False)
    """
    return dataclasses.field(default=default, metadata=positional_metadata(shown))


class Value:
    """Base of frozen dataclass values; subclasses use ``@dataclass(frozen=True, eq=False, repr=False)``."""

    factory: ClassVar[str]
    """The public factory's name, used by ``repr``."""

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self))  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Value) or type(self) is not type(other):
            return NotImplemented
        return _same(self._fields(), other._fields())

    def __hash__(self) -> int:
        return hash((type(self), _hash_key(self._fields())))

    def __repr__(self) -> str:
        parts = []
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            shown = field.metadata.get("shown")
            parts.append(shown(value) if shown else f"{field.name}={show(value)}")
        return f"{self.factory}({', '.join(parts)})"
