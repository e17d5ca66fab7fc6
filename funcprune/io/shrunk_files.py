"""Shrunk-model files: a physically smaller model that loads into a fresh instance of its class.

A shrunk model (``funcprune.shrink``) has other shapes than its class builds, so its state dict
no longer loads into ``MyModel()``. A shrunk-model file stores the *recipe* instead (the masks
that were shrunk, bit-packed, 1/32 of the original float32 size) and the small model's
weights. :func:`load_shrunk` builds a fresh instance, shrinks it with the recipe, and loads the
small weights into it.

>>> import os, tempfile, torch, funcprune as fp
>>> from torch import nn
>>> from funcprune.io import load_shrunk, save_shrunk
>>> from funcprune.structure import channel_groups, group_structured, shrink
>>> def build():
...     return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
>>> model, x = build(), torch.randn(3, 4)
>>> params = dict(model.named_parameters())
>>> masks = group_structured(0.5, channel_groups(model, (x,)))(params)
>>> small = shrink(model, params, masks, (x,))
>>> with tempfile.TemporaryDirectory() as d:
...     save_shrunk(os.path.join(d, "small.safetensors"), small, masks)
...     again = load_shrunk(os.path.join(d, "small.safetensors"), build(), (x,))
>>> again[0]
Linear(in_features=4, out_features=4, bias=True)
>>> torch.equal(again(x), small(x))
True
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from funcprune.io._container import check_masks_match, decode_masks, read_container, write_masks

SHRUNK_FORMAT = "funcprune.shrunk/1"
_MASK = "mask:"
_STATE = "state:"
_ALIASES = "funcprune.aliases"
_CLASS = "funcprune.model_class"


def _class_name(model: nn.Module) -> str:
    return f"{type(model).__module__}.{type(model).__qualname__}"


def save_shrunk(
    path: str | os.PathLike[str],
    shrunk: nn.Module,
    masks: Mapping[str, Tensor],
    *,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``shrunk`` (from ``funcprune.shrink``) and the ``masks`` it was shrunk with to ``path``.

    One safetensors file, written atomically: the masks bit-packed, ``shrunk``'s state dict (tied
    tensors stored once), the model's class name, versions, and your ``metadata``. Every tensor
    is checksummed.

    Args:
        path: the file to write; its folder must exist.
        shrunk: the model ``funcprune.shrink`` returned (weights may have been trained since).
        masks: the masks passed to ``shrink``, by the *original* model's parameter keys.
        metadata: your own ``str`` to ``str`` entries (keys starting ``funcprune.`` are
            reserved).

    Raises:
        TypeError: masks that are not dense bool tensors by ``str`` key, or bad ``metadata``.

    >>> import os, tempfile, torch
    >>> from torch import nn
    >>> from funcprune.io import save_shrunk
    >>> from funcprune.structure import channel_groups, group_structured, shrink
    >>> model, x = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 1)), torch.randn(2, 4)
    >>> params = dict(model.named_parameters())
    >>> masks = group_structured(0.5, channel_groups(model, (x,)))(params)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     save_shrunk(os.path.join(d, "small.safetensors"), shrink(model, params, masks, (x,)), masks)
    ...     os.listdir(d)
    ['small.safetensors']
    """
    state, aliases = _distinct(shrunk.state_dict())
    fields = {_ALIASES: json.dumps(aliases), _CLASS: _class_name(shrunk)}
    tensors = {_STATE + k: v for k, v in state.items()}
    write_masks(path, SHRUNK_FORMAT, masks, metadata, fields, tensors, _MASK)


def _distinct(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """State tensors stored once each: a tensor that is another's exact alias is recorded as such.

    Views that overlap others without being the same view are cloned (safetensors stores no
    shared memory).
    """
    seen: dict[tuple[int, int, tuple[int, ...], tuple[int, ...], str], str] = {}
    storages: set[int] = set()
    kept: dict[str, Tensor] = {}
    aliases: dict[str, str] = {}
    for name, tensor in state.items():
        ptr = tensor.untyped_storage().data_ptr() if tensor.numel() else -1
        view = (
            ptr,
            int(tensor.storage_offset()),
            tuple(tensor.shape),
            tuple(tensor.stride()),
            str(tensor.dtype),
        )
        if ptr != -1 and view in seen:
            aliases[name] = seen[view]
            continue
        seen[view] = name
        kept[name] = tensor.clone() if ptr in storages else tensor
        storages.add(ptr)
    return kept, aliases


def load_shrunk(
    path: str | os.PathLike[str], model: nn.Module, example_inputs: Sequence[object]
) -> nn.Module:
    """The shrunk model saved at ``path``, rebuilt from ``model``, a fresh instance of its class.

    ``model`` is shrunk with the saved masks (``funcprune.shrink(model, params, masks,
    example_inputs)``; its own weights do not matter and it is not modified), then the saved
    small weights are loaded into the result. Build ``model`` exactly as the original was
    (same class, same configuration).

    Args:
        path: a file written by :func:`save_shrunk`.
        model: a fresh instance of the original model's class.
        example_inputs: positional arguments for one forward call (for ``shrink``'s graph
            capture; shapes like the ones used when saving).

    Raises:
        ValueError: the file is truncated, corrupt or not a shrunk-model file; ``model`` is of
            another class, or its parameters do not fit the masks, or the shrunk model's state
            does not fit the saved weights (the message names the keys).

    >>> import os, tempfile, torch
    >>> from torch import nn
    >>> from funcprune.io import load_shrunk, save_shrunk
    >>> from funcprune.structure import channel_groups, group_structured, shrink
    >>> model, x = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 1)), torch.randn(2, 4)
    >>> params = dict(model.named_parameters())
    >>> masks = group_structured(0.5, channel_groups(model, (x,)))(params)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = os.path.join(d, "small.safetensors")
    ...     save_shrunk(path, shrink(model, params, masks, (x,)), masks)
    ...     load_shrunk(path, nn.Linear(4, 1), (x,))
    Traceback (most recent call last):
    ...
    ValueError: ... holds a shrunk torch.nn.modules.container.Sequential; got a torch.nn.modules.linear.Linear: pass a fresh instance of the saved model's class
    """
    from funcprune.structure import shrink  # structure pulls in graph capture: only when needed

    tensors, metadata = read_container(path, SHRUNK_FORMAT)
    if metadata.get(_CLASS) != _class_name(model):
        raise ValueError(
            f"{os.fspath(path)!r} holds a shrunk {metadata.get(_CLASS)}; "
            f"got a {_class_name(model)}: pass a fresh instance of the saved model's class"
        )
    masks = decode_masks(path, tensors, metadata, _MASK)
    params = {k: v.detach() for k, v in model.named_parameters()}
    check_masks_match(path, masks, params)
    state = {k[len(_STATE) :]: v for k, v in tensors.items() if k.startswith(_STATE)}
    aliases = json.loads(metadata.get(_ALIASES, "{}"))
    state.update({alias: state[name] for alias, name in aliases.items()})
    small = shrink(model, params, masks, example_inputs)
    _check_state_fits(path, small.state_dict(), state)
    small.load_state_dict(state)
    return small


def _check_state_fits(
    path: str | os.PathLike[str], expected: Mapping[str, Tensor], saved: Mapping[str, Tensor]
) -> None:
    missing = sorted(set(expected) - set(saved))
    unexpected = sorted(set(saved) - set(expected))
    shapes = sorted(
        f"{k!r}: saved {tuple(v.shape)} vs rebuilt {tuple(expected[k].shape)}"
        for k, v in saved.items()
        if k in expected and v.shape != expected[k].shape
    )
    problems = (
        ([f"missing {missing}"] if missing else [])
        + ([f"unexpected {unexpected}"] if unexpected else [])
        + shapes
    )
    if problems:
        raise ValueError(
            f"the weights in {os.fspath(path)!r} do not fit the model rebuilt from its masks "
            f"({'; '.join(problems)}); was the fresh model built with the same configuration?"
        )


__all__ = ["load_shrunk", "save_shrunk"]
