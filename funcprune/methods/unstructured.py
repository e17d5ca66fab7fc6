"""Unstructured methods: each prunes single entries, chosen by magnitude, at random, or by a mask.

Every method is called as ``method(params, masks=None, *, importance_scores=None) -> Masks`` and
prunes only among the unpruned entries of ``masks`` (torch's PruningContainer rule).

>>> import torch, funcprune as fp
>>> params = {"w": torch.tensor([[0.1, -2.0], [0.5, 3.0]])}
>>> fp.l1_unstructured(0.5)(params)["w"]
tensor([[False,  True],
        [False,  True]])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor

from funcprune._checks import check_int, check_tensor_dict, check_tensor_mapping
from funcprune._select import (
    order_keys,
    prune_smallest_magnitudes,
    prune_smallest_random,
    random_keys_of,
)
from funcprune.methods._amount import check_amount, units_to_prune
from funcprune.methods._base import Method, PerKeyMethod, all_kept, positional
from funcprune.methods._rows import Rows
from funcprune.methods._scoring import (
    entry_count,
    prune_entry_rows,
    score_source,
)
from funcprune.types import Amount, Masks, Params, Scores


@dataclass(frozen=True, eq=False, repr=False)
class Identity(PerKeyMethod):
    """Prunes nothing; see :func:`identity`."""

    factory: ClassVar[str] = "identity"

    def _prune_one(
        self, key: str, param: Tensor, survivors: Tensor | None, score: Tensor | None
    ) -> Tensor:
        return all_kept(param) if survivors is None else survivors

    def _partial(self, params: Params, masks: Mapping[str, Tensor], scores: Scores) -> Masks:
        return {key: masks[key] for key in params if key in masks}


@dataclass(frozen=True, eq=False, repr=False)
class RandomUnstructured(PerKeyMethod):
    """Random entries; see :func:`random_unstructured`."""

    amount: Amount = positional()
    seed: int = 0
    factory: ClassVar[str] = "random_unstructured"
    batched: ClassVar[bool] = True

    def _prune_one(
        self, key: str, param: Tensor, survivors: Tensor | None, score: Tensor | None
    ) -> Tensor:
        count = entry_count(key, param, survivors, self.amount)
        return prune_smallest_random(self.seed, {key: param}, [survivors], count)[0]

    def _prune_rows(self, rows: Rows) -> Tensor:
        shape = rows.params.shape
        sizes = [shape[1:].numel()] * shape[0]
        keys = random_keys_of(self.seed, rows.keys, sizes, rows.params.device)
        return prune_entry_rows(rows, keys.reshape(shape), self.amount)


@dataclass(frozen=True, eq=False, repr=False)
class L1Unstructured(PerKeyMethod):
    """Smallest-magnitude entries; see :func:`l1_unstructured`."""

    amount: Amount = positional()
    factory: ClassVar[str] = "l1_unstructured"
    batched: ClassVar[bool] = True

    def _prune_one(
        self, key: str, param: Tensor, survivors: Tensor | None, score: Tensor | None
    ) -> Tensor:
        source = score_source(key, param, score, self.factory)
        count = entry_count(key, param, survivors, self.amount)
        return prune_smallest_magnitudes([source], [survivors], count)[0]

    def _prune_rows(self, rows: Rows) -> Tensor:
        source = score_source(rows.keys[0], rows.params, rows.scores, self.factory)
        return prune_entry_rows(rows, order_keys(source.abs()), self.amount)


def _masks_for(masks: tuple[tuple[str, Tensor], ...]) -> str:
    return f"<masks for {[key for key, _ in masks]}>"


@dataclass(frozen=True, eq=False, repr=False)
class CustomFromMask(PerKeyMethod):
    """Given masks intersected with the survivors; see :func:`custom_from_mask`."""

    masks: tuple[tuple[str, Tensor], ...] = positional(_masks_for)
    factory: ClassVar[str] = "custom_from_mask"

    def _prune(self, params: Params, masks: Mapping[str, Tensor], scores: Scores) -> Masks:
        check_tensor_dict(params, dict(self.masks), "custom_from_mask's masks")
        return super()._prune(params, masks, scores)

    def _prune_one(
        self, key: str, param: Tensor, survivors: Tensor | None, score: Tensor | None
    ) -> Tensor:
        given = dict(self.masks).get(key)
        if given is None:
            return all_kept(param) if survivors is None else survivors
        given = given.to(param.device)
        return given.clone() if survivors is None else given & survivors


@dataclass(frozen=True, eq=False, repr=False)
class GlobalUnstructured(Method):
    """Smallest-score entries across all parameters together; see :func:`global_unstructured`."""

    amount: Amount = positional()
    scores: Literal["l1", "random"] = "l1"
    seed: int = 0
    factory: ClassVar[str] = "global_unstructured"

    def _prune(self, params: Params, masks: Mapping[str, Tensor], scores: Scores) -> Masks:
        survivors = [masks.get(key) for key in params]
        remaining = _remaining(params, survivors)
        known = (
            sum(p.numel() for p in params.values()) if all(s is None for s in survivors) else None
        )
        count = units_to_prune(
            self.amount, remaining, key="<all parameters>", unit="entries", known=known
        )
        if self.scores == "random":
            kept = prune_smallest_random(self.seed, params, survivors, count)
            return dict(zip(params, kept, strict=True))
        sources = [score_source(k, p, scores.get(k), self.factory) for k, p in params.items()]
        kept = prune_smallest_magnitudes(sources, survivors, count)
        return dict(zip(params, kept, strict=True))


def _remaining(params: Params, survivors: list[Tensor | None]) -> Tensor:
    """The surviving entries of all parameters, a 0-d int64 tensor: a count only per mask.

    It lives where a sum of per-parameter counts would: on an accelerator (or ``meta``) if any
    parameter is there, else on the CPU.
    """
    devices = {p.device for p in params.values()}
    device = next((d for d in devices if d.type != "cpu"), torch.device("cpu"))
    whole = sum(p.numel() for p, s in zip(params.values(), survivors, strict=True) if s is None)
    counts = (s.sum() for s in survivors if s is not None)
    return sum(counts, start=torch.tensor(whole, device=device))


def identity() -> Identity:
    """A method that prunes nothing: it returns the incoming masks (all-``True`` where missing).

    >>> import torch, funcprune as fp
    >>> fp.identity()({"b": torch.zeros(2)})
    {'b': tensor([True, True])}
    """
    return Identity()


def random_unstructured(amount: Amount, *, seed: int = 0) -> RandomUnstructured:
    """Prune ``amount`` of the remaining entries of each parameter at random.

    Randomness is a counter-based hash of ``(seed, key, flat index)``: the same on every run,
    thread count and device, independent of the global RNG, and nested across amounts.

    >>> import torch, funcprune as fp
    >>> m = fp.random_unstructured(2, seed=1)({"w": torch.zeros(5)})["w"]
    >>> int((~m).sum())
    2
    """
    return RandomUnstructured(check_amount(amount), check_int("seed", seed))


def l1_unstructured(amount: Amount) -> L1Unstructured:
    """Prune ``amount`` of the remaining entries with the smallest magnitude.

    Scores are ``|importance_scores[key]|`` when given, else ``|param|``. Ties at the threshold
    are pruned lowest flat index first.

    >>> import torch, funcprune as fp
    >>> fp.l1_unstructured(0.5)({"w": torch.tensor([3.0, -1.0, 2.0, 0.5])})["w"]
    tensor([ True, False,  True, False])
    """
    return L1Unstructured(check_amount(amount))


def custom_from_mask(masks: Mapping[str, Tensor]) -> CustomFromMask:
    """Prune what the given masks prune (nonzero keeps), on top of the incoming masks.

    Keys not in ``masks`` are left as they are. Applying it twice changes nothing more. The masks
    are copied when the method is built: later edits to the caller's tensors do not change it.

    >>> import torch, funcprune as fp
    >>> fp.custom_from_mask({"b": torch.tensor([1, 0, 1])})({"b": torch.zeros(3)})["b"]
    tensor([ True, False,  True])
    """
    check_tensor_mapping("custom_from_mask: masks", masks)
    items = tuple((key, mask.detach() != 0) for key, mask in masks.items())  # fresh copies
    return CustomFromMask(items)


def global_unstructured(
    amount: Amount, *, scores: Literal["l1", "random"] = "l1", seed: int = 0
) -> GlobalUnstructured:
    """Prune ``amount`` of the remaining entries across all parameters together.

    A float is a fraction of all remaining entries of all keys. ``scores="l1"`` ranks by
    ``|importance_scores[key]|`` (else ``|param|``); ``"random"`` by the seeded counter hash. Ties
    are pruned lowest index first in the order of ``params``' keys, as if concatenated.

    >>> import torch, funcprune as fp
    >>> params = {"a": torch.tensor([1.0, 4.0]), "b": torch.tensor([2.0, 3.0])}
    >>> fp.global_unstructured(0.5)(params)
    {'a': tensor([False,  True]), 'b': tensor([False,  True])}
    """
    if scores not in ("l1", "random"):
        raise ValueError(f"scores={scores!r} is not supported; allowed: 'l1' or 'random'")
    return GlobalUnstructured(check_amount(amount), scores, check_int("seed", seed))
