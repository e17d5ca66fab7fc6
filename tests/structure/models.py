"""Small models, one per op kind that channel groups must handle, and the differential check."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.utils import _pytree as pytree

import funcprune as fp
from funcprune.structure import ChannelGroups, channel_groups, group_structured, shrink


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random norm statistics and affine parameters, so pruned channels are not trivially zero."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if (
                isinstance(module, nn.modules.batchnorm._NormBase)
                and module.running_mean is not None
            ):
                module.running_mean.copy_(
                    torch.randn(module.running_mean.shape, generator=generator)
                )
                module.running_var.copy_(
                    torch.rand(module.running_var.shape, generator=generator) + 0.5
                )
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    return model


def assert_close(expected: object, got: object) -> float:
    """Outputs equal up to float reassociation; returns the largest difference."""
    worst = 0.0
    want, have = pytree.tree_leaves(expected), pytree.tree_leaves(got)
    assert len(want) == len(have)
    for a, b in zip(want, have, strict=True):
        assert isinstance(a, Tensor) and isinstance(b, Tensor)
        assert a.shape == b.shape
        scale = a.abs().max().item() if a.numel() else 0.0
        diff = (a - b).abs().max().item() if a.numel() else 0.0
        assert diff <= 1e-5 + 1e-4 * scale, f"outputs differ by {diff} (scale {scale})"
        worst = max(worst, diff)
    return worst


def prune_and_shrink(
    model: nn.Module,
    inputs: Sequence[object],
    amount: float = 0.4,
    *,
    groups: ChannelGroups | None = None,
    train: bool = True,
) -> tuple[ChannelGroups, nn.Module, dict[str, Tensor], dict[str, Tensor]]:
    """Prune ``amount`` of the groups, shrink, and compare with ``masked_call`` on a new input.

    Eval mode always; train mode too when ``train`` (models without dropout).
    """
    groups = channel_groups(model, inputs) if groups is None else groups
    params = {k: v.detach() for k, v in model.named_parameters()}
    masks = group_structured(amount, groups)(params)
    small = shrink(model, params, masks, inputs, groups=groups)
    fresh = [
        x + 0.1 * torch.randn_like(x) if isinstance(x, Tensor) and x.is_floating_point() else x
        for x in inputs
    ]
    model.eval()
    small.eval()
    with torch.no_grad():
        assert_close(fp.masked_call(model, params, masks, *fresh), small(*fresh))
    if train:
        dense, trained = copy.deepcopy(model).train(), copy.deepcopy(small).train()
        with torch.no_grad():
            assert_close(fp.masked_call(dense, params, masks, *fresh), trained(*fresh))
    return groups, small, params, masks


class ConvNet(nn.Module):
    """Conv/BN/ReLU, a residual add, a flatten into a linear classifier (N-d conv)."""

    def __init__(self, dims: int = 2, bias: bool = True) -> None:
        super().__init__()
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
        norm = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims]
        self.stem = conv(3, 8, 3, padding=1, bias=bias)
        self.bn = norm(8)
        self.a = conv(8, 6, 3, padding=1, bias=bias)
        self.b = conv(6, 8, 1, bias=bias)
        self.bn2 = norm(8)
        self.head = nn.Linear(8 * 4**dims, 5)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        x = x + self.bn2(self.b(torch.relu(self.a(x))))
        return self.head(torch.flatten(x, 1))


class Grouped(nn.Module):
    """A grouped conv, a depthwise conv with channel multiplier 2, and a transposed conv."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 1)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=4)
        self.depthwise = nn.Conv2d(8, 16, 3, padding=1, groups=8)
        self.prelu = nn.PReLU(16)
        self.up = nn.ConvTranspose2d(16, 6, 2, stride=2)
        self.norm = nn.GroupNorm(3, 6)
        self.inorm = nn.InstanceNorm2d(6, affine=True)
        self.out = nn.Conv2d(6, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.depthwise(torch.relu(self.grouped(self.stem(x))))
        x = self.norm(self.up(self.prelu(x)))
        return self.out(torch.relu(self.inorm(x)))


class GroupedTranspose(nn.Module):
    """A grouped transposed conv between two convs."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.up = nn.ConvTranspose2d(8, 12, 2, stride=2, groups=4)
        self.b = nn.Conv2d(12, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.b(torch.relu(self.up(torch.relu(self.a(x)))))


class CatSplit(nn.Module):
    """``cat`` of two branches (offsets), ``chunk`` into a gated unit, squeeze-excitation, mul."""

    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Conv2d(3, 4, 1)
        self.right = nn.Conv2d(3, 5, 3, padding=1)
        self.mix = nn.Conv2d(9, 12, 1)
        self.squeeze = nn.Conv2d(6, 3, 1)
        self.excite = nn.Conv2d(3, 6, 1)
        self.out = nn.Conv2d(6, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.cat([torch.relu(self.left(x)), torch.relu(self.right(x))], dim=1)
        value, gate = self.mix(x).chunk(2, dim=1)
        x = value * torch.sigmoid(gate)
        scale = torch.sigmoid(self.excite(torch.relu(self.squeeze(x.mean((2, 3), keepdim=True)))))
        return self.out(x * scale)


class Tokens(nn.Module):
    """An embedding, a per-token MLP and a LayerNorm'ed residual stream."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.up = nn.Linear(8, 16)
        self.down = nn.Linear(16, 8)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 3)

    def forward(self, ids: Tensor) -> Tensor:
        x = self.embed(ids)
        x = self.norm(x + self.down(torch.relu(self.up(x))))
        return self.head(x)


class HeadAttention(nn.Module):
    """q/k/v Linear layers viewed into heads (sdpa with an explicit scale), then an output Linear."""

    def __init__(self, width: int = 12, heads: int = 3, fixed: bool = False) -> None:
        super().__init__()
        self.head_dim = width // heads
        self.fixed = fixed
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.o_proj = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        shape = (*x.shape[:-1], -1, self.head_dim)
        q, k, v = (
            p(x).view(shape).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj)
        )
        y = nn.functional.scaled_dot_product_attention(q, k, v, scale=self.head_dim**-0.5)
        merged = y.transpose(1, 2).reshape(x.shape if self.fixed else (*x.shape[:-1], -1))
        return x + self.o_proj(merged)


class MatmulAttention(nn.Module):
    """The same with explicit matmuls and softmax (the pre-sdpa way)."""

    def __init__(self, width: int = 12, heads: int = 3) -> None:
        super().__init__()
        self.head_dim = width // heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (t.unflatten(-1, (-1, self.head_dim)).transpose(1, 2) for t in (q, k, v))
        weights = torch.softmax(q @ k.transpose(-1, -2) / self.head_dim**0.5, dim=-1)
        return self.out((weights @ v).transpose(1, 2).flatten(2))


class TorchMHA(nn.Module):
    """``nn.MultiheadAttention``, whose embed_dim must equal num_heads * head_dim."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))

    def forward(self, x: Tensor) -> Tensor:
        x = self.attn(x, x, x, need_weights=False)[0]
        return self.mlp(x)
