"""Persistence: mask files, finalized parameters, and shrunk models that load again.

>>> import torch
>>> from funcprune.io import finalize
>>> finalize({"w": torch.ones(2)}, {"w": torch.tensor([False, True])})["w"]
tensor([0., 1.])
"""

from funcprune.io._finalize import finalize
from funcprune.io.mask_files import MaskFileInfo, load_masks, mask_file_info, save_masks
from funcprune.io.shrunk_files import load_shrunk, save_shrunk

__all__ = [
    "MaskFileInfo",
    "finalize",
    "load_masks",
    "load_shrunk",
    "mask_file_info",
    "save_masks",
    "save_shrunk",
]
