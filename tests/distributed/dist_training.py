"""Cases run inside the spawned ranks: FSDP2 training, DDP mask agreement, documented limits."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor, Shard, distribute_tensor, init_device_mesh

import funcprune as fp
import funcprune.distributed as fpd


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 3))


def _full(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: t.full_tensor() if isinstance(t, DTensor) else t for k, t in tensors.items()}


def fsdp_trains_like_one_process() -> None:
    """masked_call + masked_step / keep_pruned (torch.optim) on a fully_shard model equal one
    process's run step for step, and pruned weights stay zero on every shard."""
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    model, reference = _model(), _model()
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    params, ref_params = dict(model.named_parameters()), dict(reference.named_parameters())
    method = fp.chain(fp.global_unstructured(0.4), fp.random_unstructured(0.2, seed=1))
    masks = method(params)
    ref_masks = method({k: p.detach() for k, p in ref_params.items()})
    copies = {k: p.detach() for k, p in params.items()}
    with pytest.raises(ValueError, match=r"masks the module's own parameters"):
        fp.masked_call(model, copies, masks, torch.zeros(1, 6))
    assert _full(masks).keys() == ref_masks.keys()
    assert all(torch.equal(_full(masks)[k], ref_masks[k]) for k in ref_masks)
    for make, hooked in (
        (lambda ps: torch.optim.Adam(ps, lr=0.05, weight_decay=0.1), False),
        (lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9), False),
        (lambda ps: torch.optim.AdamW(ps, lr=0.05), True),
    ):
        opt, ref_opt = make(model.parameters()), make(reference.parameters())
        hooks = [fp.keep_pruned(opt, params, masks)] if hooked else []
        for step in range(3):
            x = torch.randn(5, 6, generator=torch.Generator().manual_seed(step))
            out = fp.masked_call(model, params, masks, x)
            expected = fp.masked_call(reference, ref_params, ref_masks, x)
            assert torch.equal(out, expected)
            out.square().sum().backward()
            expected.square().sum().backward()
            if hooked:  # fp.keep_pruned's hooks mask every plain step
                opt.step()
            else:
                fp.masked_step(opt, params, masks)
            fp.masked_step(ref_opt, ref_params, ref_masks)
            opt.zero_grad()
            ref_opt.zero_grad()
            full = _full({k: p.detach() for k, p in params.items()})
            for key, mask in ref_masks.items():
                assert torch.equal(full[key], ref_params[key].detach()), key
                assert bool((full[key][~mask] == 0).all()), key
        for hook in hooks:
            hook.remove()


def pure_optimizers_match() -> None:
    """fp.sgd and fp.adam step DTensor params like full tensors; pruned entries stay zero."""
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    params = {k: p.detach() for k, p in _model().named_parameters()}
    grads = {
        k: torch.randn(p.shape, generator=torch.Generator().manual_seed(1))
        for k, p in params.items()
    }
    masks = fp.l1_unstructured(0.5)(params)
    shard = {k: [Shard(0)] for k in params}

    def placed(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: distribute_tensor(t, mesh, shard[k]) for k, t in tensors.items()}

    for opt in (
        fp.sgd(0.1, momentum=0.9, dampening=0.1, weight_decay=0.1),
        fp.adam(0.1, weight_decay=0.1),
    ):
        full_p, full_state = params, opt.init(params)
        d_p, d_state = placed(params), opt.init(placed(params))
        for _ in range(2):
            full_p, full_state = opt.step(full_p, grads, full_state, masks)  # type: ignore[arg-type]
            d_p, d_state = opt.step(d_p, placed(grads), d_state, placed(masks))  # type: ignore[arg-type]
        got = _full(d_p)
        for key, mask in masks.items():
            assert torch.equal(got[key], full_p[key]), (opt, key)
            assert bool((got[key][~mask] == 0).all())


def ddp_masks_agree() -> None:
    """Random methods agree across ranks by construction, whatever each rank's global RNG."""
    rank = dist.get_rank()
    torch.manual_seed(0)
    params = {k: p.detach() for k, p in _model().named_parameters()}
    torch.manual_seed(1000 + rank)  # the ranks' global RNGs differ (as under DDP)
    for method in (
        fp.random_unstructured(0.5, seed=3),
        fp.only(fp.random_structured(0.5, dim=0), include="weight"),
        fp.global_unstructured(0.3, scores="random"),
    ):
        fpd.check_masks_agree(method(params))
    own = fp.l1_unstructured(0.5)(params)
    fpd.check_masks_agree(own)
    if rank == 1:  # move one kept entry: same count, other positions (only the hash sees it)
        moved = own["2.weight"].clone().reshape(-1)
        kept, pruned = int(moved.nonzero()[0]), int((~moved).nonzero()[0])
        moved[kept], moved[pruned] = False, True
        own["2.weight"] = moved.reshape(own["2.weight"].shape)
    with pytest.raises(ValueError, match=r"differ between ranks at keys \['2.weight'\]"):
        fpd.check_masks_agree(own)
    with pytest.raises(ValueError, match="different numbers of masks"):
        fpd.check_masks_agree(own if rank == 0 else {"0.weight": own["0.weight"]})


def limits_are_errors() -> None:
    """Documented limits raise clear errors on every rank (no hang, no wrong masks)."""
    world = dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    w = distribute_tensor(torch.randn(4, 12), mesh, [Shard(1)])  # 2 ranks: shards of 6
    with pytest.raises(ValueError, match="split groups of m=4"):
        fp.nm_semistructured(2, 4)({"w": w})
    with pytest.raises(ValueError, match=r"batched by torch\.func\.vmap"):
        torch.func.vmap(lambda a: fp.l1_unstructured(a)({"w": w})["w"])(torch.tensor([0.1, 0.5]))
    with pytest.raises(TypeError, match="mixes DTensors and plain tensors"):
        fp.l1_unstructured(0.5)({"w": w, "b": torch.zeros(3)})
    with pytest.raises(TypeError, match="its mask is a plain tensor"):
        fp.l1_unstructured(0.5)({"w": w}, {"w": torch.ones(w.shape, dtype=torch.bool)})
    with pytest.raises(
        ValueError, match=r"amount=1000 asks to prune 1000 entries but only 48 remain"
    ):
        fp.l1_unstructured(1000)({"w": w})
