"""Shrunk models saved with save_shrunk load into a fresh instance of the original class."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import tiny_models
import torch
from io_models import fresh, shrunk_of, small_cnn
from torch import nn

import funcprune as fp
from funcprune.io import load_masks, load_shrunk, save_shrunk


def test_round_trip_into_a_fresh_instance(tmp_path: Path) -> None:
    x = torch.randn(2, 3, 6, 6)
    _model, small, masks = shrunk_of(small_cnn, x)
    with torch.no_grad():  # pretend the small model was fine-tuned after shrinking
        for p in small.parameters():
            p.add_(0.01)
    small[1].running_mean.add_(0.5)
    save_shrunk(tmp_path / "small.safetensors", small, masks, metadata={"note": "ft"})
    target = fresh(small_cnn)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    again = load_shrunk(tmp_path / "small.safetensors", target, (x,))
    assert again[0].out_channels == small[0].out_channels < 8
    assert again.state_dict().keys() == small.state_dict().keys()
    assert all(torch.equal(v, small.state_dict()[k]) for k, v in again.state_dict().items())
    with torch.no_grad():
        assert torch.equal(again(x), small(x))
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items())  # untouched
    assert not again.training


def test_the_file_is_small(tmp_path: Path) -> None:
    x = torch.randn(2, 3, 6, 6)
    _model, small, masks = shrunk_of(small_cnn, x)
    path = tmp_path / "small.safetensors"
    save_shrunk(path, small, masks)
    state_bytes = sum(t.numel() * t.element_size() for t in small.state_dict().values())
    mask_bytes = sum(math.ceil(m.numel() / 8) for m in masks.values())
    header = 8 + int.from_bytes(path.read_bytes()[:8], "little")
    assert path.stat().st_size == header + state_bytes + mask_bytes


def test_a_torchvision_resnet(tmp_path: Path) -> None:
    resnet = pytest.importorskip("torchvision.models.resnet")

    def build() -> nn.Module:
        return resnet.ResNet(resnet.BasicBlock, [1, 1, 1, 1], num_classes=10)

    x = torch.randn(1, 3, 32, 32)
    model, small, masks = shrunk_of(build, x)
    save_shrunk(tmp_path / "resnet.safetensors", small, masks)
    again = load_shrunk(tmp_path / "resnet.safetensors", fresh(build), (x,))
    assert (
        sum(p.numel() for p in again.parameters()) < sum(p.numel() for p in model.parameters()) / 2
    )
    with torch.no_grad():
        assert torch.equal(again(x), small(x))
        params = {k: v.detach() for k, v in model.named_parameters()}
        torch.testing.assert_close(again(x), fp.masked_call(model, params, masks, x))


def test_a_transformers_gpt2_with_tied_embeddings(tmp_path: Path) -> None:
    def build() -> nn.Module:
        return tiny_models.gpt2(n_layer=1, n_head=4, vocab_size=50, use_cache=False)

    ids = torch.randint(0, 50, (1, 8))
    _model, small, masks = shrunk_of(
        build, ids, lambda m: fp.only(m, include=r"\.h\.\d+\.(mlp|attn)\.")
    )
    assert small.lm_head.weight is small.transformer.wte.weight
    save_shrunk(tmp_path / "gpt2.safetensors", small, masks)
    again = load_shrunk(tmp_path / "gpt2.safetensors", fresh(build), (ids,))
    assert again.lm_head.weight is again.transformer.wte.weight  # still tied
    assert again.transformer.h[0].mlp.c_fc.nf < 4 * 32
    with torch.no_grad():
        assert torch.equal(again(ids).logits, small(ids).logits)


def test_another_class_or_configuration_is_refused(tmp_path: Path) -> None:
    x = torch.randn(2, 3, 6, 6)
    _, small, masks = shrunk_of(small_cnn, x)
    path = tmp_path / "small.safetensors"
    save_shrunk(path, small, masks)
    with pytest.raises(
        ValueError, match=r"holds a shrunk torch\.nn\.modules\.container\.Sequential"
    ):
        load_shrunk(path, nn.Linear(3, 3), (x,))
    wider = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), *list(small_cnn())[1:])
    with pytest.raises(
        ValueError, match=r"'0\.weight': mask \(8, 3, 3, 3\) vs parameter \(16, 3, 3, 3\)"
    ):
        load_shrunk(path, wider, (x,))


def test_corrupt_and_wrong_files(tmp_path: Path) -> None:
    x = torch.randn(2, 3, 6, 6)
    _, small, masks = shrunk_of(small_cnn, x)
    path = tmp_path / "small.safetensors"
    save_shrunk(path, small, masks)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"corrupt: tensors \['(mask|state):.*'\] do not match"):
        load_shrunk(path, fresh(small_cnn), (x,))
    with pytest.raises(ValueError, match=r"not a funcprune\.masks/1 file"):
        load_masks(path)
    with pytest.raises(TypeError, match=r"'0\.weight' \(torch\.float32"):
        save_shrunk(path, small, {"0.weight": torch.ones(8, 3, 3, 3)})


def test_shared_storage_is_stored_once_or_copied() -> None:
    from funcprune.io.shrunk_files import _distinct

    base = torch.arange(6.0)
    state = {
        "a": base,
        "tied": base,
        "row": base[:3],
        "empty": torch.zeros(0),
        "e2": torch.zeros(0),
    }
    kept, aliases = _distinct(state)
    assert aliases == {"tied": "a"}
    assert set(kept) == {"a", "row", "empty", "e2"}
    assert kept["row"].untyped_storage().data_ptr() != base.untyped_storage().data_ptr()
    assert torch.equal(kept["row"], base[:3]) and kept["a"] is base
