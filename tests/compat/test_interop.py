"""Interop: pruned modules and state dicts <-> (params, masks), losslessly and bit for bit."""

from __future__ import annotations

import copy

import pytest
import torch
from compat_ops import MODELS, operations, run, same_value, values
from hypothesis import event, given
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune as torch_prune

import funcprune as fp
import funcprune.compat as compat


def _outputs(value: object) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    assert isinstance(value, tuple)
    return [t for item in value for t in _outputs(item)]


def _same_dict(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    assert all(same_value(a[k], b[k]) for k in a), [k for k in a if not same_value(a[k], b[k])]


def _masks_in_param_dtype(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Masks cast to their parameter's dtype (torch writes float64 masks for float64 structured scores)."""
    out = dict(state)
    for key in state:
        orig = key.removesuffix("_mask") + "_orig"
        if key.endswith("_mask") and orig in state:
            out[key] = state[key].to(state[orig].dtype)
    return out


def _binary(model: nn.Module) -> bool:
    return all(
        bool(((b == 0) | (b == 1)).all()) for k, b in model.named_buffers() if k.endswith("_mask")
    )


@given(
    model_name=st.sampled_from(sorted(MODELS)),
    library=st.sampled_from(["torch", "compat"]),
    data=st.data(),
)
def test_pruned_modules_round_trip_bit_for_bit(
    model_name: str, library: str, data: st.DataObject
) -> None:
    prune = torch_prune if library == "torch" else compat
    factory, input_shape = MODELS[model_name]
    torch.manual_seed(0)
    base = factory()
    probe = copy.deepcopy(base)  # compat, which leaves a module intact when an operation fails
    model = probe if library == "compat" else copy.deepcopy(base)
    x = data.draw(values(input_shape), label="input")
    shapes = {k: tuple(p.shape) for k, p in base.named_parameters()}
    for index, op in enumerate(data.draw(operations(shapes))):
        torch.manual_seed(index)
        try:
            run(compat, probe, op, x)
        except Exception:
            break
        if model is not probe:
            torch.manual_seed(index)
            run(prune, model, op, x)
    if not _binary(model):
        event("non-binary mask")
        with pytest.raises(ValueError, match="other than 0 and 1"):
            fp.from_module(model)
        return
    params, masks = fp.from_module(model)
    event(f"{len(masks)} masks")
    assert sorted(params) == sorted(k for k, _ in base.named_parameters())
    assert all(m.dtype == torch.bool for m in masks.values())
    expected = _outputs(model(x))
    ours = _outputs(fp.masked_call(copy.deepcopy(base), params, masks, x))
    assert all(same_value(a, b) for a, b in zip(expected, ours, strict=True))
    _same_dict(fp.to_state_dict(params, masks), _masks_in_param_dtype(model.state_dict()))
    again_params, again_masks = fp.from_state_dict(model.state_dict())
    _same_dict(again_params, params)
    _same_dict(again_masks, masks)
    plain = copy.deepcopy(base)
    plain.load_state_dict({k: v.detach() for k, v in params.items()})
    fp.install_masks(plain, masks)
    assert all(same_value(a, b) for a, b in zip(expected, _outputs(plain(x)), strict=True))
    _same_dict(plain.state_dict(), _masks_in_param_dtype(model.state_dict()))


@given(data=st.data())
def test_state_dict_round_trip(data: st.DataObject) -> None:
    shapes = data.draw(
        st.dictionaries(
            st.sampled_from(["a", "b.w", "c_orig", "d_mask"]), st.sampled_from([(2,), (2, 3)])
        )
    )
    params = {k: data.draw(values(s)) for k, s in shapes.items()}
    masks = {
        k: data.draw(values(s, tied=True)) > 0
        for k, s in shapes.items()
        if data.draw(st.booleans())
    }
    state = fp.to_state_dict(params, masks)
    assert len(state) == len(params) + len(masks)
    back_params, back_masks = fp.from_state_dict(state)
    _same_dict(back_params, params)
    _same_dict(back_masks, masks)


def test_plain_module_and_loading_into_a_pruned_one() -> None:
    lin = nn.Linear(3, 2)
    params, masks = fp.from_module(lin)
    assert masks == {} and all(params[k] is p for k, p in lin.named_parameters())
    pruned = torch_prune.l1_unstructured(nn.Linear(3, 2), "weight", amount=3)
    new_masks = {"weight": torch.tensor([[True, False, True], [False, True, True]])}
    pruned.load_state_dict(fp.to_state_dict(params, new_masks))
    assert torch.equal(pruned.weight_mask, new_masks["weight"].float())
    x = torch.randn(4, 3)
    assert torch.equal(pruned(x), fp.masked_call(lin, params, new_masks, x))


def test_install_masks_on_nested_and_pruned_modules() -> None:
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    compat.l1_unstructured(net[0], "weight", amount=2)
    extra = {"0.weight": torch.ones(3, 2, dtype=torch.bool), "2.bias": torch.tensor([False])}
    extra["0.weight"][0, 0] = False
    fp.install_masks(net, extra)
    _, masks = fp.from_module(net)
    assert set(masks) == {"0.weight", "2.bias"} and not bool(masks["0.weight"][0, 0])
    assert int((~masks["0.weight"]).sum()) in (2, 3)
    with pytest.raises(KeyError, match="nope"):
        fp.install_masks(net, {"nope": torch.ones(1, dtype=torch.bool)})
    with pytest.raises(ValueError, match="shape"):
        fp.install_masks(net, {"2.weight": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(TypeError, match="bool"):
        fp.install_masks(net, {"2.weight": torch.ones(1, 3)})


def test_from_state_dict_keeps_unpaired_names() -> None:
    state = {
        "x_orig": torch.ones(1),
        "y_mask": torch.ones(1),
        "z_orig": torch.ones(2),
        "z_mask": torch.tensor([1.0, 0.0]),
    }
    params, masks = fp.from_state_dict(state)
    assert list(params) == ["x_orig", "y_mask", "z"] and list(masks) == ["z"]
    with pytest.raises(ValueError, match="'z'"):
        fp.from_state_dict({"z_orig": torch.ones(1), "z_mask": torch.tensor([0.5])})


def test_meta_modules_and_state_dicts_convert() -> None:
    """A model built on the meta device (values unreadable) converts like a real one."""
    lin = torch_prune.l1_unstructured(nn.Linear(3, 2, device="meta"), "weight", amount=2)
    params, masks = fp.from_module(lin)
    assert sorted(params) == ["bias", "weight"] and params["weight"] is lin.weight_orig
    assert masks["weight"].device.type == "meta" and masks["weight"].dtype == torch.bool
    params, masks = fp.from_state_dict(lin.state_dict())
    assert masks["weight"].shape == (2, 3) and masks["weight"].dtype == torch.bool
    assert fp.to_state_dict(params, masks).keys() == lin.state_dict().keys()


def test_state_dict_conversions_refuse_what_they_would_lose() -> None:
    """A key both a parameter and the ``_orig``/``_mask`` of a masked one, or a non-mapping."""
    params = {
        "w": torch.ones(2),
        "w_orig": torch.zeros(2),
        "b": torch.ones(1),
        "b_mask": torch.ones(1),
    }
    masks = {"w": torch.tensor([True, False]), "b": torch.tensor([True])}
    with pytest.raises(ValueError, match=r"\['b_mask', 'w_orig'\]"):
        fp.to_state_dict(params, masks)
    assert list(fp.to_state_dict(params, {})) == list(params)
    with pytest.raises(TypeError, match=r"state_dict must be a mapping .* got list"):
        fp.from_state_dict([("w", torch.ones(1))])  # type: ignore[arg-type]


def test_install_masks_refuses_tensors_pruned_by_torch_before_touching_anything() -> None:
    net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    torch_prune.l1_unstructured(net[1], "weight", amount=1)
    before = list(net.state_dict())
    masks = {
        "0.weight": torch.ones(3, 2, dtype=torch.bool),
        "1.weight": torch.ones(1, 3, dtype=torch.bool),
    }
    with pytest.raises(ValueError, match=r"\['1\.weight'\] .* torch\.nn\.utils\.prune"):
        fp.install_masks(net, masks)
    assert list(net.state_dict()) == before and not net[0]._forward_pre_hooks


def test_from_state_dict_refuses_corrupt_checkpoints_naming_every_problem() -> None:
    good = {"weight_orig": torch.ones(2, 3), "weight_mask": torch.ones(2, 3), "bias": torch.ones(2)}
    corrupt = {
        "mask without _orig": {"weight": torch.ones(2), "weight_mask": torch.ones(2)},
        "plain beside _orig": {**good, "weight": torch.ones(2, 3)},
        "wrong shape": {**good, "weight_mask": torch.ones(3, 2)},
        "not 0/1": {**good, "weight_mask": torch.full((2, 3), 0.5)},
    }
    messages = {
        "mask without _orig": r"'weight_mask' has no 'weight_orig' beside it",
        "plain beside _orig": r"'weight' is there beside 'weight_orig'",
        "wrong shape": r"'weight_mask' has shape \(3, 2\), 'weight_orig' \(2, 3\)",
        "not 0/1": "other than 0 and 1",
    }
    for name, state in corrupt.items():
        with pytest.raises(ValueError, match=messages[name]):
            fp.from_state_dict(state)
    both = {"a": torch.ones(1), "a_mask": torch.ones(1), **good, "weight": torch.ones(2, 3)}
    with pytest.raises(ValueError, match=r"'a_mask'.*'weight' is there"):
        fp.from_state_dict(both)
    with pytest.raises(TypeError, match=r"'x' \(float\)"):
        fp.from_state_dict({"x": 1.0})  # type: ignore[dict-item]


def test_to_state_dict_of_from_module_keeps_buffers_and_tied_names() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(3, 2))
    net(torch.randn(4, 2, 3, 3))  # running statistics that differ from a fresh model's
    compat.l1_unstructured(net[0], "weight", amount=5)
    params, masks = fp.from_module(net)
    assert {"1.running_mean", "1.running_var", "1.num_batches_tracked"} <= set(params)
    target = copy.deepcopy(net)
    for buffer in target.buffers():
        buffer.zero_()
    target.load_state_dict(fp.to_state_dict(params, masks), strict=True)
    _same_dict(target.state_dict(), net.state_dict())
    weights_only, _ = fp.from_module(net, buffers=False)
    assert sorted(weights_only) == sorted(
        k.removesuffix("_orig") for k, _ in net.named_parameters()
    )
    assert "1.running_mean" not in weights_only and "0.weight" in weights_only


def test_install_masks_puts_every_module_back_when_one_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import funcprune.interop as interop

    net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 2), nn.Linear(2, 1))
    compat.l1_unstructured(net[1], "weight", amount=1)  # a container hook to extend, too
    before = {k: v.clone() for k, v in net.state_dict().items()}
    hooks = [dict(m._forward_pre_hooks) for m in net]
    methods = list(next(iter(net[1]._forward_pre_hooks.values())).__dict__.items())
    calls = []

    def flaky(module: nn.Module, name: str, mask: torch.Tensor) -> nn.Module:
        calls.append(name)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return compat.custom_from_mask(module, name, mask)

    monkeypatch.setattr(interop, "custom_from_mask", flaky)
    masks = {
        "0.weight": torch.rand(3, 2) > 0.5,
        "1.weight": torch.rand(2, 3) > 0.5,
        "2.bias": torch.tensor([False]),
    }
    with pytest.raises(RuntimeError, match="disk full"):
        fp.install_masks(net, masks)
    assert len(calls) == 3
    _same_dict(net.state_dict(), before)
    assert [dict(m._forward_pre_hooks) for m in net] == hooks
    assert list(next(iter(net[1]._forward_pre_hooks.values())).__dict__.items()) == methods
    assert isinstance(net[0].weight, nn.Parameter) and not hasattr(net[0], "weight_orig")


def test_install_masks_checks_devices_and_buffers_before_touching_anything() -> None:
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    on_meta = {
        "0.bias": torch.ones(3, dtype=torch.bool),
        "1.weight": torch.ones(3, dtype=torch.bool, device="meta"),
    }
    with pytest.raises(ValueError, match=r"'1.weight' \(mask on meta, parameter on cpu\)"):
        fp.install_masks(net, on_meta)
    with pytest.raises(KeyError, match="running_mean"):
        fp.install_masks(
            net,
            {
                "0.bias": torch.ones(3, dtype=torch.bool),
                "1.running_mean": torch.ones(3, dtype=torch.bool),
            },
        )
    assert not net[0]._forward_pre_hooks and not hasattr(net[0], "bias_orig")


def test_install_masks_rolls_back_an_extended_container(monkeypatch: pytest.MonkeyPatch) -> None:
    import funcprune.interop as interop

    lin = nn.Linear(4, 2)
    compat.l1_unstructured(lin, "weight", amount=1)
    compat.l1_unstructured(lin, "weight", amount=1)  # now a PruningContainer of two methods
    container = next(iter(lin._forward_pre_hooks.values()))
    inner, mask = container._pruning_methods, lin.weight_mask.clone()

    def second_fails(module: nn.Module, name: str, mask: torch.Tensor) -> nn.Module:
        if name == "bias":
            raise RuntimeError("out of memory")
        return compat.custom_from_mask(module, name, mask)

    monkeypatch.setattr(interop, "custom_from_mask", second_fails)
    masks = {"weight": torch.zeros(2, 4, dtype=torch.bool), "bias": torch.ones(2, dtype=torch.bool)}
    with pytest.raises(RuntimeError, match="out of memory"):
        fp.install_masks(lin, masks)
    assert container._pruning_methods is inner and len(inner) == 2
    assert torch.equal(lin.weight_mask, mask)
