"""apply_masks' eager (uint8 cast) and compiled (opaque ATen cast) paths against torch's hook arithmetic."""

from __future__ import annotations

import pytest
import torch
from torch.func import grad, vmap

import funcprune as fp
from funcprune.masking import _mask_to


def _case(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(6, 7, generator=generator)
    w[0, :3] = torch.tensor([-0.0, -1.5, 2.0])
    return w, torch.rand(6, 7, generator=generator) < 0.5


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32)


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised inside inductor


def test_eager_and_compiled_apply_masks_equal_the_hook_bit_for_bit() -> None:
    w, m = _case(0)
    expected = m.to(w.dtype) * w
    compiled = torch.compile(lambda p, q: fp.apply_masks({"w": p}, {"w": q})["w"], fullgraph=True)
    assert torch.equal(_bits(fp.apply_masks({"w": w}, {"w": m})["w"]), _bits(expected))
    assert torch.equal(_bits(compiled(w, m)), _bits(expected))


def test_compiled_gradient_is_exactly_zero_on_pruned_entries() -> None:
    w, m = _case(1)
    x = torch.randn(7, 3)

    def loss(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return (fp.apply_masks({"w": p}, {"w": q})["w"] @ x).square().sum()

    eager = grad(loss)(w, m)
    p = w.clone().requires_grad_(True)
    (compiled,) = torch.autograd.grad(torch.compile(loss, fullgraph=True)(p, m), [p])
    assert torch.equal(compiled, eager)
    assert bool((compiled[~m] == 0).all())  # +-0.0, the sign from grad * 0 as in torch's hook


def test_the_opaque_cast_has_a_vmap_rule() -> None:
    masks = torch.rand(4, 3, 5) < 0.5
    assert torch.equal(vmap(_mask_to, in_dims=(0, None))(masks, torch.float64), masks.double())
    w = torch.randn(3, 5)
    swept = vmap(lambda q: _mask_to(q, w.dtype) * w)(masks)
    assert torch.equal(swept, masks.float() * w)
