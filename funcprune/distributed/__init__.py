"""Pruning on torch.distributed: DTensor parameters (FSDP2, tensor parallel) and DDP replicas.

Every funcprune method accepts DTensor parameters (``Shard(d)`` or ``Replicate()`` placements)
and returns masks placed like them, equal bit for bit to the single-process masks of the full
tensors; only small summaries (counts, histograms, one entry per slice) cross the wire. Nothing
to call for that: ``method(params)`` routes DTensors here. For DDP, :func:`check_masks_agree`
checks that every rank holds the same masks. See ``docs/distributed.md``.

>>> import torch, funcprune.distributed as fpd
>>> fpd.check_masks_agree({"w": torch.tensor([True])})
"""

from funcprune.distributed.checks import check_masks_agree

__all__ = ["check_masks_agree"]
