"""Persistence and export: mask files, finalized parameters, shrunk-model files.

>>> import torch
>>> from funcprune.io import finalize
>>> finalize({"w": torch.ones(2)}, {"w": torch.tensor([False, True])})["w"]
tensor([0., 1.])
"""

from funcprune.io.finalize import finalize
from funcprune.io.mask_files import MaskFileInfo, load_masks, mask_file_info, save_masks

__all__ = [
    "MaskFileInfo",
    "finalize",
    "load_masks",
    "mask_file_info",
    "save_masks",
]
