"""Real architectures, small inputs: resnet18, mobilenet_v3_small, a ViT, tiny GPT-2 and BERT.

Each is pruned (30% of its channel groups), shrunk, and compared with ``masked_call`` on a fresh
input, in eval and (without dropout) train mode; module attributes must match the new shapes,
the state dict must round-trip, and the shrunk model must run under ``torch.compile``.
"""

from __future__ import annotations

import copy
import io

import pytest
import tiny_models
import torch
from torch import nn

from tests.structure.models import ConvNet, assert_close, prune_and_shrink, randomize


def assert_consistent(model: nn.Module) -> None:
    """Every shape attribute ``forward`` reads agrees with the parameters."""
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            per_group = module.in_channels // module.groups
            expected = (module.in_channels, module.out_channels // module.groups) if module.transposed else (
                module.out_channels, per_group)  # fmt: skip
            assert tuple(module.weight.shape[:2]) == expected, name
        elif isinstance(module, nn.Linear):
            assert tuple(module.weight.shape) == (module.out_features, module.in_features), name
        elif isinstance(module, nn.modules.batchnorm._NormBase) and module.weight is not None:
            assert module.weight.shape[0] == module.num_features, name
            if module.running_mean is not None:
                assert module.running_mean.shape[0] == module.num_features, name
        elif isinstance(module, nn.LayerNorm) and module.weight is not None:
            assert tuple(module.weight.shape) == tuple(module.normalized_shape), name
        elif type(module).__name__ == "Conv1D":
            assert tuple(module.weight.shape) == (module.nx, module.nf), name


def roundtrip(model: nn.Module) -> None:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = copy.deepcopy(model)
    for param in fresh.parameters():
        param.data.zero_()
    fresh.load_state_dict(torch.load(buffer))
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True)
    )


def _images(size: int, batch: int = 2) -> tuple[torch.Tensor]:
    return (torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0)),)


def test_resnet18() -> None:
    model = randomize(tiny_models.resnet18())
    # Train-mode batch norm over 2 images of 1x1 (layer4 at 32x32) divides by a variance of two
    # values: ill-conditioned, so float reassociation moved outputs by up to 1e-3 relative, past
    # the tolerance for some initialisations. 4 images of 2x2 there are well-conditioned (3e-7).
    _, small, _, _ = prune_and_shrink(model, _images(64, batch=4), 0.3)
    assert sum(p.numel() for p in small.parameters()) < 0.8 * sum(
        p.numel() for p in model.parameters()
    )
    assert_consistent(small)
    roundtrip(small)
    assert small.training == model.training


def test_mobilenet_v3_small() -> None:
    model = randomize(tiny_models.mobilenet_v3_small())
    _, small, _, _ = prune_and_shrink(model, _images(32), 0.3, train=False)  # dropout in train mode
    assert_consistent(small)
    roundtrip(small)


def test_vision_transformer() -> None:
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.VisionTransformer(
        image_size=32,
        patch_size=8,
        num_layers=2,
        num_heads=4,
        hidden_dim=32,
        mlp_dim=64,
        num_classes=10,
    )
    groups, small, _, _ = prune_and_shrink(randomize(model), _images(32), 0.3)
    assert len(groups) == 2 * 64  # MLP hidden units; nn.MultiheadAttention and the stream stay
    assert_consistent(small)


def _gpt2() -> nn.Module:
    return tiny_models.gpt2(dropout=False, n_head=4, vocab_size=50, use_cache=False)


def _bert() -> nn.Module:
    return tiny_models.bert(dropout=False, num_attention_heads=4, vocab_size=50)


@pytest.mark.parametrize(("build", "hidden"), [(_gpt2, 128), (_bert, 64)], ids=["gpt2", "bert"])
def test_transformers_heads_and_mlp(build: object, hidden: int) -> None:
    model = randomize(build())  # type: ignore[operator]
    ids = (torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(0)),)
    groups, small, _, _ = prune_and_shrink(model, ids, 0.5)
    heads = [g for g in groups if max(len(s.indices) for s in g.params) >= 8]  # head_dim 8
    assert len(heads) == 2 * 4
    assert len(groups) == 2 * 4 + 2 * hidden
    assert_consistent(small)
    layers = small.transformer.h if hasattr(small, "transformer") else small.encoder.layer
    for layer in layers:
        attention = layer.attn if hasattr(layer, "attn") else layer.attention.self
        width = (
            attention.c_attn.nf // 3
            if hasattr(attention, "c_attn")
            else attention.query.out_features
        )
        count = (
            attention.num_heads
            if hasattr(attention, "num_heads")
            else attention.num_attention_heads
        )
        assert count * 8 == width
    roundtrip(small)


def test_torch_compile_runs_the_shrunk_model() -> None:
    inputs = (torch.randn(2, 3, 4, 4),)
    _, small, _, _ = prune_and_shrink(randomize(ConvNet()), inputs, 0.3, train=False)
    small.eval()
    compiled = torch.compile(small, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        assert_close(small(*inputs), compiled(*inputs))
