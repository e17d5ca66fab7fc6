"""The safetensors container shared by mask files and shrunk-model files.

Every tensor's bytes are checksummed (SHA-256, in the metadata), so a flipped byte is an error
naming its tensor rather than a silently different model. Masks are stored bit-packed
(:mod:`funcprune.io._bits`) with their shapes in the metadata.

>>> import os, tempfile, torch
>>> with tempfile.TemporaryDirectory() as d:
...     path = os.path.join(d, "x.safetensors")
...     write_container(path, "demo/1", {"t": torch.arange(3)}, {"note": "hi"})
...     tensors, meta = read_container(path, "demo/1")
>>> tensors["t"], meta["note"]
(tensor([0, 1, 2]), 'hi')
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import safetensors.torch
import torch
from safetensors import SafetensorError
from torch import Tensor

from funcprune.io._atomic import atomic_write
from funcprune.io._bits import pack_bits, packed_length, unpack_bits

FORMAT = "funcprune.format"
CHECKSUMS = "funcprune.sha256"
MASK_SHAPES = "funcprune.mask_shapes"
VERSION = "funcprune.version"
TORCH_VERSION = "funcprune.torch_version"
RESERVED_PREFIX = "funcprune."
_RESERVED_NAME = "__metadata__"


def _sha256(t: Tensor) -> str:
    return hashlib.sha256(t.reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest()


def _versions() -> dict[str, str]:
    from funcprune import __version__  # the package is fully imported by the time files are written

    return {VERSION: __version__, TORCH_VERSION: torch.__version__}


def write_container(
    path: str | os.PathLike[str],
    fmt: str,
    tensors: Mapping[str, Tensor],
    metadata: Mapping[str, str],
) -> None:
    """Atomically write ``tensors`` (CPU, contiguous) with checksums, versions and ``metadata``."""
    cpu = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    header = {
        **metadata,
        **_versions(),
        FORMAT: fmt,
        CHECKSUMS: json.dumps({name: _sha256(t) for name, t in cpu.items()}),
    }
    atomic_write(path, safetensors.torch.save(cpu, metadata=header))


def read_container(
    path: str | os.PathLike[str], fmt: str
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and metadata of a file written by :func:`write_container` with format ``fmt``.

    Raises:
        ValueError: the file is not safetensors (truncated, overwritten), is another format, or a
            tensor's bytes do not match its checksum (the message names the tensor).
    """
    data = Path(path).read_bytes()
    try:
        tensors = safetensors.torch.load(data)
    except SafetensorError as e:
        raise ValueError(
            f"{os.fspath(path)!r} is not a readable safetensors file ({e}); it is truncated or corrupt"
        ) from None
    size = int.from_bytes(data[:8], "little")
    metadata: dict[str, str] = json.loads(data[8 : 8 + size]).get(_RESERVED_NAME) or {}
    if metadata.get(FORMAT) != fmt:
        raise ValueError(
            f"{os.fspath(path)!r} is not a {fmt} file: its {FORMAT} metadata is "
            f"{metadata.get(FORMAT)!r}"
        )
    checksums = _json_object(path, metadata, CHECKSUMS)
    bad = sorted(name for name, t in tensors.items() if checksums.get(name) != _sha256(t))
    if bad or set(checksums) != set(tensors):
        missing = sorted(set(checksums) - set(tensors))
        raise ValueError(
            f"{os.fspath(path)!r} is corrupt: tensors {bad} do not match their checksums"
            + (f"; tensors {missing} are missing" if missing else "")
        )
    return tensors, metadata


def _json_object(
    path: str | os.PathLike[str], metadata: Mapping[str, str], name: str
) -> dict[str, object]:
    try:
        value = json.loads(metadata[name])
    except (KeyError, json.JSONDecodeError):
        value = None
    if not isinstance(value, dict):
        raise ValueError(
            f"{os.fspath(path)!r} is corrupt: its {name} metadata is missing or not a JSON object"
        )
    return value


def check_user_metadata(metadata: object) -> dict[str, str]:
    """User metadata: ``str`` to ``str``, keys outside the reserved ``funcprune.`` namespace."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(
            f"metadata must be a mapping from str to str; got {type(metadata).__name__}"
        )
    bad = sorted(
        repr(k) for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))
    )
    if bad:
        raise TypeError(
            f"metadata must map str to str (use json.dumps for other values); offending keys: {bad}"
        )
    reserved = sorted(k for k in metadata if k.startswith(RESERVED_PREFIX))
    if reserved:
        raise ValueError(
            f"metadata keys {reserved} are reserved for funcprune's own entries; "
            f"use keys outside the {RESERVED_PREFIX!r} namespace"
        )
    return dict(metadata)


def encode_masks(masks: object, prefix: str = "") -> tuple[dict[str, Tensor], str]:
    """Packed masks by ``prefix + key`` and the JSON of their shapes (in ``masks``'s order).

    Raises:
        TypeError: not a mapping, a key that is not a ``str``, or a value that is not a dense bool
            tensor (the message names the key).
    """
    if not isinstance(masks, Mapping):
        raise TypeError(
            f"masks must be a mapping from parameter names to bool tensors; got {type(masks).__name__}"
        )
    bad_keys = sorted(repr(k) for k in masks if not isinstance(k, str))
    if bad_keys:
        raise TypeError(f"mask keys must be str (parameter names); got {', '.join(bad_keys)}")
    bad = sorted(f"{k!r} ({_describe(v)})" for k, v in masks.items() if not _is_dense_bool(v))
    if bad:
        raise TypeError(
            f"masks must be dense bool tensors (True keeps, False prunes); got {', '.join(bad)}; "
            "convert with mask != 0"
        )
    reserved = [k for k in masks if prefix + k == _RESERVED_NAME]
    if reserved:
        raise ValueError(
            f"mask key {_RESERVED_NAME!r} is reserved by safetensors; rename the parameter"
        )
    shapes = json.dumps({k: list(m.shape) for k, m in masks.items()})
    return {prefix + k: pack_bits(m) for k, m in masks.items()}, shapes


def _is_dense_bool(v: object) -> bool:
    return (
        isinstance(v, Tensor)
        and v.dtype == torch.bool
        and v.layout == torch.strided
        and not v.is_meta
    )


def _describe(v: object) -> str:
    if not isinstance(v, Tensor):
        return type(v).__name__
    return f"{v.dtype}, {v.layout}, on {v.device}"


def write_masks(
    path: str | os.PathLike[str],
    fmt: str,
    masks: object,
    metadata: object,
    fields: Mapping[str, str],
    tensors: Mapping[str, Tensor],
    prefix: str = "",
) -> None:
    """Write ``masks`` bit-packed under ``prefix``, beside ``tensors``, in a ``fmt`` file.

    The header holds the user's ``metadata`` (checked first, then the masks), the mask shapes and
    the file kind's own ``fields``.

    >>> import os, tempfile, torch
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = os.path.join(d, "x.safetensors")
    ...     write_masks(path, "demo/1", {"w": torch.tensor([True, False])}, None, {}, {})
    ...     decode_masks(path, *read_container(path, "demo/1"))
    {'w': tensor([ True, False])}
    """
    user = check_user_metadata(metadata)
    packed, shapes = encode_masks(masks, prefix)
    write_container(path, fmt, {**packed, **tensors}, {**user, MASK_SHAPES: shapes, **fields})


def decode_masks(
    path: str | os.PathLike[str],
    tensors: Mapping[str, Tensor],
    metadata: Mapping[str, str],
    prefix: str = "",
) -> dict[str, Tensor]:
    """The masks :func:`encode_masks` stored under ``prefix``, in their saved order.

    Raises:
        ValueError: shapes that are not lists of non-negative ints, or a packed tensor missing or of
            the wrong length for its shape (the message names the key).
    """
    shapes = _json_object(path, metadata, MASK_SHAPES)
    stored = {name[len(prefix) :] for name in tensors if name.startswith(prefix)}
    unlisted = sorted(stored - set(shapes))
    if unlisted:
        raise ValueError(
            f"{os.fspath(path)!r} is corrupt: masks {unlisted} have no shape in its metadata"
        )
    masks = {}
    for key, shape in shapes.items():
        if not (isinstance(shape, list) and all(isinstance(n, int) and n >= 0 for n in shape)):
            raise ValueError(
                f"{os.fspath(path)!r} is corrupt: mask {key!r} has shape {shape!r}, not a list of sizes"
            )
        packed = tensors.get(prefix + key)
        if (
            packed is None
            or packed.dtype != torch.uint8
            or packed.shape != (packed_length(tuple(shape)),)
        ):
            found = (
                "nothing" if packed is None else f"{packed.dtype} of shape {tuple(packed.shape)}"
            )
            raise ValueError(
                f"{os.fspath(path)!r} is corrupt: mask {key!r} of shape {tuple(shape)} needs "
                f"{packed_length(tuple(shape))} packed uint8 bytes; the file holds {found}"
            )
        masks[key] = unpack_bits(packed, tuple(shape))
    return masks


def check_masks_match(
    path: str | os.PathLike[str], masks: Mapping[str, Tensor], params: Mapping[str, Tensor]
) -> None:
    """Every mask has a parameter of its key and shape, or a ValueError naming the keys."""
    unknown = sorted(k for k in masks if k not in params)
    shapes = sorted(
        f"{k!r}: mask {tuple(m.shape)} vs parameter {tuple(params[k].shape)}"
        for k, m in masks.items()
        if k in params and m.shape != params[k].shape
    )
    problems = ([f"keys that are not parameters: {unknown}"] if unknown else []) + shapes
    if problems:
        raise ValueError(
            f"the masks in {os.fspath(path)!r} do not match params: {'; '.join(problems)}"
            + (f" (parameter keys are {sorted(params)})" if unknown else "")
        )
