"""Mask files: bool masks in safetensors, one bit per entry, written atomically.

A mask file holds each mask bit-packed (8 entries a byte, little-endian bit order) under its
parameter key, and in the safetensors metadata: the shapes, a SHA-256 of every packed tensor,
the funcprune and torch versions, the pruning method's repr (when given) and your own
``str`` entries. It is 1/32 the size of the float32 parameters, plus a header.

>>> import os, tempfile, torch
>>> from funcprune.io import load_masks, save_masks
>>> masks = {"fc.weight": torch.tensor([[True, False], [False, True]])}
>>> with tempfile.TemporaryDirectory() as d:
...     save_masks(os.path.join(d, "masks.safetensors"), masks)
...     loaded = load_masks(os.path.join(d, "masks.safetensors"))
>>> torch.equal(loaded["fc.weight"], masks["fc.weight"])
True
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

from torch import Tensor

from funcprune.io._container import (
    RESERVED_PREFIX,
    TORCH_VERSION,
    VERSION,
    check_masks_match,
    decode_masks,
    read_container,
    write_masks,
)
from funcprune.types import Masks, Params

MASKS_FORMAT = "funcprune.masks/1"
_METHOD = "funcprune.method"


class MaskFileInfo(NamedTuple):
    """What a mask file says about itself, besides the masks."""

    shapes: dict[str, tuple[int, ...]]
    """Each mask's shape, in the saved order."""
    method: str | None
    """``repr`` of the pruning method passed to :func:`save_masks`, if one was."""
    funcprune_version: str
    torch_version: str
    metadata: dict[str, str]
    """The ``metadata`` passed to :func:`save_masks`."""


def save_masks(
    path: str | os.PathLike[str],
    masks: Mapping[str, Tensor],
    *,
    metadata: Mapping[str, str] | None = None,
    method: object = None,
) -> None:
    """Write ``masks`` to ``path`` as a funcprune mask file (safetensors, 1 bit per entry).

    The write is atomic: the file goes to a temporary file in the same folder, is synced to disk
    and renamed over ``path``, so a crash leaves either the previous file or the new one. Masks on
    any device are saved; :func:`load_masks` returns them on the CPU (or on their parameters'
    devices).

    Args:
        path: the file to write (conventionally ``*.safetensors``); its folder must exist.
        masks: bool tensors by parameter key; empty and 0-d tensors round-trip too.
        metadata: your own ``str`` to ``str`` entries, returned by :func:`mask_file_info`. Keys
            starting ``funcprune.`` are reserved.
        method: the pruning method that made the masks; its ``repr`` is stored (methods'
            reprs read like the code that builds them, e.g. ``l1_unstructured(amount=0.5)``).

    Raises:
        TypeError: ``masks`` is not a mapping, a key is not a ``str``, or a mask is not a dense
            bool tensor; ``metadata`` is not ``str`` to ``str``. The message names the key.
        ValueError: a reserved ``metadata`` key.

    >>> import os, tempfile, torch, funcprune as fp
    >>> from funcprune.io import mask_file_info, save_masks
    >>> params = {"w": torch.tensor([3.0, -1.0, 0.5, 2.0])}
    >>> method = fp.l1_unstructured(0.5)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     save_masks(os.path.join(d, "m.safetensors"), method(params), method=method, metadata={"run": "7"})
    ...     info = mask_file_info(os.path.join(d, "m.safetensors"))
    >>> info.shapes, info.metadata
    ({'w': (4,)}, {'run': '7'})
    >>> info.method == repr(method)
    True
    """
    fields = {} if method is None else {_METHOD: repr(method)}
    write_masks(path, MASKS_FORMAT, masks, metadata, fields, {})


def load_masks(path: str | os.PathLike[str], *, params: Params | None = None) -> Masks:
    """The masks saved in the mask file at ``path``, in their saved order.

    Args:
        path: a file written by :func:`save_masks`.
        params: when given, every mask must have a parameter of its key and shape (parameters
            without a mask are fine: nothing of them is pruned), and each mask is placed on its
            parameter's device. Without it, masks are on the CPU.

    Raises:
        ValueError: the file is truncated, corrupt (checksums), not a mask file, or does not
            match ``params``; the message names the offending keys.
        FileNotFoundError: no file at ``path``.

    >>> import os, tempfile, torch
    >>> from funcprune.io import load_masks, save_masks
    >>> with tempfile.TemporaryDirectory() as d:
    ...     save_masks(os.path.join(d, "m.safetensors"), {"w": torch.tensor([True, False])})
    ...     load_masks(os.path.join(d, "m.safetensors"), params={"w": torch.zeros(3)})
    Traceback (most recent call last):
    ...
    ValueError: the masks in ... do not match params: 'w': mask (2,) vs parameter (3,)
    """
    tensors, metadata = read_container(path, MASKS_FORMAT)
    masks = decode_masks(path, tensors, metadata)
    if params is None:
        return masks
    check_masks_match(path, masks, params)
    return {key: m.to(params[key].device) for key, m in masks.items()}


def mask_file_info(path: str | os.PathLike[str]) -> MaskFileInfo:
    """The shapes, method, versions and user metadata of a mask file (checked like :func:`load_masks`).

    >>> import os, tempfile, torch
    >>> from funcprune.io import mask_file_info, save_masks
    >>> with tempfile.TemporaryDirectory() as d:
    ...     save_masks(os.path.join(d, "m.safetensors"), {"b": torch.tensor(True)})
    ...     mask_file_info(os.path.join(d, "m.safetensors")).shapes
    {'b': ()}
    """
    tensors, metadata = read_container(path, MASKS_FORMAT)
    masks = decode_masks(path, tensors, metadata)
    user = {k: v for k, v in metadata.items() if not k.startswith(RESERVED_PREFIX)}
    return MaskFileInfo(
        shapes={k: tuple(m.shape) for k, m in masks.items()},
        method=metadata.get(_METHOD),
        funcprune_version=metadata.get(VERSION, "unknown"),
        torch_version=metadata.get(TORCH_VERSION, "unknown"),
        metadata=user,
    )


__all__ = ["MaskFileInfo", "load_masks", "mask_file_info", "save_masks"]
