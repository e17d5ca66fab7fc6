"""check_masks_agree's boundary checks, in one process (the multi-rank cases run in dist_training)."""

from __future__ import annotations

import pytest
import torch

import funcprune.distributed as fpd


def test_one_process_agrees_with_itself() -> None:
    assert (
        fpd.check_masks_agree(
            {"w": torch.tensor([True, False]), "b": torch.ones(0, dtype=torch.bool)}
        )
        is None
    )


def test_bad_masks_are_type_errors_naming_keys() -> None:
    with pytest.raises(TypeError, match="mapping"):
        fpd.check_masks_agree([torch.ones(2, dtype=torch.bool)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"not at keys \['a', 'c'\]"):
        fpd.check_masks_agree(
            {"a": torch.ones(2), "b": torch.ones(2, dtype=torch.bool), "c": "x"}  # type: ignore[dict-item]
        )


def test_fingerprints_take_any_key_and_tell_crc32_twins_apart() -> None:
    """Keys with lone surrogates hash (crc32 of .encode() raised), and crc32 twins differ."""
    from funcprune.distributed.checks import _fingerprint

    mask = torch.tensor([True, False, True])
    assert _fingerprint("w\udc80", mask)[1:3] == [3, 2]
    assert _fingerprint("plumless", mask)[0] != _fingerprint("buckeroo", mask)[0]
