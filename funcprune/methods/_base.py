"""The base every pruning method shares: boundary checks, per-key errors and fresh result masks.

A method is a frozen dataclass value (:class:`funcprune._value.Value`): its fields are its
hyperparameters, it compares and hashes by value and prints as the factory call that builds it.

>>> import funcprune as fp
>>> fp.l1_unstructured(0.5) == fp.l1_unstructured(0.5), fp.l1_unstructured(0.5)
(True, l1_unstructured(0.5))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor

from funcprune._checks import check_masks, check_params, check_tensor_dict
from funcprune._tensors import is_concrete
from funcprune._threads import spare_threads
from funcprune._value import Value
from funcprune._value import positional as positional
from funcprune.distributed._detect import any_dtensor
from funcprune.methods._dense import check_dense
from funcprune.methods._rows import Rows, row_batches, stacked
from funcprune.types import Masks, Params, Scores


class Method(Value):
    """Base class of pruning methods; subclasses are frozen dataclasses implementing ``_prune``."""

    def __call__(
        self,
        params: Params,
        masks: Mapping[str, Tensor] | None = None,
        *,
        importance_scores: Scores | None = None,
    ) -> Masks:
        """Masks for every key of ``params``, pruning only among the survivors of ``masks``."""
        check_params(params)
        masks = {} if masks is None else masks
        check_masks(params, masks)
        scores = {} if importance_scores is None else importance_scores
        check_tensor_dict(params, scores, "importance_scores")
        check_dense(params, masks, scores)
        with spare_threads():  # on a loaded machine, only the cores nobody else is using
            return fresh_masks(self._dispatch(params, masks, scores), masks)

    def _dispatch(self, params: Params, masks: Mapping[str, Tensor], scores: Scores) -> Masks:
        """Where a checked call goes: DTensors to :mod:`funcprune.distributed`, else ``_prune``."""
        if any_dtensor(params.values()):  # torch.distributed DTensors: see funcprune.distributed
            from funcprune.distributed._methods import prune

            return prune(self, params, masks, scores)
        # Tied keys (GPT-2's lm_head.weight is wte.weight): ranked once, identical masks.
        from funcprune._aliases import prune_aliased

        return prune_aliased(self, params, masks, scores)

    def _prune(self, params: Params, masks: Mapping[str, Tensor], scores: Scores) -> Masks:
        raise NotImplementedError

    def _partial(self, params: Params, masks: Mapping[str, Tensor], scores: Scores) -> Masks:
        """The call as combinators make it: keys kept whole that had no mask may be left out.

        Leaving them out keeps the next method's ``survivors is None`` fast paths live (``chain``
        feeds the result to the next method). The inputs are checked already (by the combinator's
        own call), and the result may share memory with them: the outermost call makes its masks
        fresh. The default is the call without those two steps; combinators that pass keys
        through override it, and their ``_prune`` fills the gaps with :func:`complete`.
        """
        return self._dispatch(params, masks, scores)


def check_given_masks(params: Params, masks: Mapping[str, Tensor], scores: Scores) -> None:
    """What a call checks of its ``masks``, for checked ``params`` and importance ``scores``."""
    check_masks(params, masks)
    check_dense(params, masks, scores)


class PerKeyMethod(Method):
    """A method that prunes each parameter on its own: subclasses implement ``_prune_one``.

    Subclasses that also implement ``_prune_rows`` (and set ``batched``) prune many small
    same-shaped parameters as one stacked batch (:mod:`funcprune.methods._rows`), with the masks
    ``_prune_one`` gives. Every key is tried before anything is raised, so one error names every
    offending key; a batch that raises is redone key by key for that.
    """

    batched: ClassVar[bool] = False

    def _prune(self, params: Params, masks: Mapping[str, Tensor], scores: Scores) -> Masks:
        batches, single = (
            row_batches(params, masks, scores) if self._can_batch() else ([], list(params))
        )
        result: Masks = {}
        for keys in batches:
            try:
                kept = self._prune_rows(stacked(keys, params, masks, scores))
            except (ValueError, TypeError):  # per key below, so that the error names each key
                single.extend(keys)
                continue
            result.update(zip(keys, kept.unbind(0), strict=True))
        errors: dict[str, Exception] = {}
        for key in single:
            try:
                result[key] = self._prune_one(key, params[key], masks.get(key), scores.get(key))
            except (ValueError, TypeError) as error:
                errors[key] = error
        if errors:
            raise one_error(repr(self), [errors[key] for key in params if key in errors])
        return {key: result[key] for key in params}

    def _can_batch(self) -> bool:
        """Whether to batch: the subclass can, and its tensor fields are readable (not ``vmap``)."""
        fields = self._fields()
        return self.batched and all(is_concrete(v) for v in fields if isinstance(v, Tensor))

    def _prune_one(
        self, key: str, param: Tensor, survivors: Tensor | None, score: Tensor | None
    ) -> Tensor:
        """The mask of one parameter, given its survivors and importance score (if any)."""
        raise NotImplementedError

    def _prune_rows(self, rows: Rows) -> Tensor:
        """The stacked masks of a batch: row ``i`` is ``_prune_one``'s mask of ``rows.keys[i]``."""
        raise NotImplementedError


def one_error(what: str, errors: list[Exception]) -> Exception:
    """The error to raise for the per-key ``errors`` of ``what``: one lists them all.

    It has the type of the first error (in key order); a single error is returned as it is.

    >>> print(one_error("l1_unstructured(3)", [ValueError("'a': too few"), ValueError("'b': too few")]))
    l1_unstructured(3) failed for 2 parameters:
      'a': too few
      'b': too few
    """
    if len(errors) == 1:
        return errors[0]
    lines = "".join(f"\n  {error}" for error in errors)
    return type(errors[0])(f"{what} failed for {len(errors)} parameters:{lines}")


def complete(params: Params, partial: Mapping[str, Tensor]) -> Masks:
    """``partial`` with an all-kept mask for every key of ``params`` it leaves out, in order.

    >>> import torch
    >>> complete({"a": torch.zeros(1), "b": torch.zeros(2)}, {"a": torch.tensor([False])})
    {'a': tensor([False]), 'b': tensor([True, True])}
    """
    return {key: partial[key] if key in partial else all_kept(p) for key, p in params.items()}


def _storage(t: Tensor) -> int | None:
    """The address of ``t``'s memory, where it can be read (plain, strided, concrete tensors)."""
    if type(t) is not Tensor or t.layout != torch.strided or not is_concrete(t):
        return None
    return t.untyped_storage().data_ptr()


def _owns_memory(t: Tensor, storage: int | None, taken: set[int | None]) -> bool:
    """Whether ``t`` may be handed out as it is: its memory is its own and no one else's."""
    if storage is None:
        return True
    return storage not in taken and t.untyped_storage().nbytes() <= t.numel() * t.element_size()


def fresh_masks(result: Masks, given: Mapping[str, Tensor]) -> Masks:
    """``result`` with every mask in memory of its own: caller's masks and shared buffers cloned.

    Editing (or saving) one returned mask then never touches the caller's masks or another key's.

    >>> import torch
    >>> mine = torch.tensor([True, False])
    >>> fresh_masks({"w": mine}, {"w": mine})["w"] is mine
    False
    """
    given_ids = {id(m) for m in given.values()}
    taken: set[int | None] = {_storage(m) for m in given.values()} - {None}
    fresh: Masks = {}
    for key, mask in result.items():
        storage = _storage(mask)
        if id(mask) in given_ids or not _owns_memory(mask, storage, taken):
            mask = mask.clone()
            storage = _storage(mask)
        if storage is not None:
            taken.add(storage)
        fresh[key] = mask
    return fresh


def all_kept(param: Tensor) -> Tensor:
    """A mask keeping every entry of ``param``.

    >>> import torch
    >>> all_kept(torch.zeros(2))
    tensor([True, True])
    """
    return torch.ones(param.shape, dtype=torch.bool, device=param.device)
