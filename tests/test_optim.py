"""Training without regrowth: torch.optim helpers, functional SGD/Adam against torch.optim, and
straight-through masking."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call, grad, vmap

import funcprune as fp

STEPS = 40


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(16, 6, generator=gen, dtype=torch.float64), torch.randn(
        16, 3, generator=gen, dtype=torch.float64
    )


def _loss(model: nn.Module, params: dict[str, torch.Tensor]) -> torch.Tensor:
    x, y = _data()
    return ((functional_call(model, params, (x,)) - y) ** 2).mean()


def _pruned_after_warmup(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Dense steps (so momentum/moments are nonzero everywhere), then prune half of each weight."""
    params = dict(model.named_parameters())
    for _ in range(5):
        opt.zero_grad()
        _loss(model, params).backward()
        opt.step()
    masks = fp.only(fp.l1_unstructured(0.5), include="weight")(params)
    with torch.no_grad():
        for key, p in params.items():
            p.mul_(masks[key])
    return masks


def _assert_pruned_zero(params: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> None:
    for key, mask in masks.items():
        assert torch.count_nonzero(params[key].detach()[~mask]) == 0, key


OPTIMIZERS: list[Callable[[list[nn.Parameter]], torch.optim.Optimizer]] = [
    lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
    lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1),
    lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
    lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1),
    lambda ps: torch.optim.RMSprop(ps, lr=0.01, momentum=0.5, weight_decay=0.1),
]


@pytest.mark.parametrize("make", OPTIMIZERS)
@pytest.mark.parametrize("helper", ["masked_step", "keep_pruned"])
def test_torch_optimizers_never_regrow(
    make: Callable[[list[nn.Parameter]], torch.optim.Optimizer], helper: str
) -> None:
    model = _model()
    params = dict(model.named_parameters())
    opt = make(list(params.values()))
    masks = _pruned_after_warmup(model, opt)
    start = {k: p.detach().clone() for k, p in params.items()}
    handle = fp.keep_pruned(opt, params, masks) if helper == "keep_pruned" else None
    for _ in range(STEPS):
        opt.zero_grad()
        _loss(model, params).backward()
        if handle is None:
            fp.masked_step(opt, params, masks)
        else:
            opt.step()
        _assert_pruned_zero(params, masks)
    for key, mask in masks.items():  # the survivors still train
        assert not torch.equal(params[key].detach()[mask], start[key][mask])
    for key, mask in masks.items():  # per-entry state (momentum, moments) is zero where pruned
        buffers = [
            v for n, v in opt.state[params[key]].items() if n != "step" and v.shape == mask.shape
        ]
        assert buffers
        for value in buffers:
            assert torch.count_nonzero(value[~mask]) == 0 and torch.isfinite(value).all()


def test_without_helpers_pruned_weights_come_back() -> None:
    """The failure the helpers prevent (so the tests above can fail)."""
    model = _model()
    params = dict(model.named_parameters())
    opt = torch.optim.SGD(params.values(), lr=0.05, momentum=0.9, weight_decay=0.01)
    masks = _pruned_after_warmup(model, opt)
    opt.zero_grad()
    _loss(model, params).backward()
    for key, mask in masks.items():
        params[key].grad.mul_(mask)  # masking gradients alone is not enough: momentum remains
    opt.step()
    assert any(torch.count_nonzero(params[k].detach()[~m]) > 0 for k, m in masks.items())


def test_keep_pruned_remove_restores_plain_steps() -> None:
    w = nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([w], lr=0.5)
    handle = fp.keep_pruned(opt, {"w": w}, {"w": torch.tensor([True, False])})
    handle.remove()
    w.grad = torch.ones(2)
    opt.step()
    assert w.detach().tolist() == [0.5, 0.5]


@pytest.mark.parametrize(
    "opt",
    [
        fp.sgd(0.05, momentum=0.9, weight_decay=0.01),
        fp.sgd(0.05, momentum=0.9, nesterov=True, weight_decay=0.1),
        fp.sgd(0.05, momentum=0.5, dampening=0.3),
        fp.adam(0.01, weight_decay=0.1),
        fp.adam(0.01, weight_decay=0.1, decoupled_weight_decay=True),
    ],
)
def test_functional_optimizers_never_regrow(
    opt: fp.training.functional.SGD | fp.training.functional.Adam,
) -> None:
    model = _model()
    params = {k: v.detach() for k, v in model.named_parameters()}
    state = opt.init(params)
    for _ in range(5):  # dense warm-up fills momentum / moments everywhere
        params, state = opt.step(params, grad(lambda p: _loss(model, p))(params), state)  # type: ignore[arg-type]
    masks = fp.only(fp.l1_unstructured(0.5), include="weight")(params)
    params = fp.apply_masks(params, masks)
    before = dict(params)
    for _ in range(STEPS):
        params, state = opt.step(params, grad(lambda p: _loss(model, p))(params), state, masks)  # type: ignore[arg-type]
        _assert_pruned_zero(params, masks)
        buffers = (
            [state.momentum]
            if isinstance(state, fp.training.functional.SGDState)
            else [state.exp_avg, state.exp_avg_sq]
        )
        for buffer in buffers:
            _assert_pruned_zero(buffer, masks)
    for key, mask in masks.items():
        assert not torch.equal(params[key][mask], before[key][mask])


def _torch_twin(
    opt: fp.training.functional.SGD | fp.training.functional.Adam, ps: list[nn.Parameter]
) -> torch.optim.Optimizer:
    if isinstance(opt, fp.training.functional.SGD):
        return torch.optim.SGD(
            ps,
            lr=opt.lr,
            momentum=opt.momentum,
            dampening=opt.dampening,
            weight_decay=opt.weight_decay,
            nesterov=opt.nesterov,
        )
    make = torch.optim.AdamW if opt.decoupled_weight_decay else torch.optim.Adam
    return make(ps, lr=opt.lr, betas=opt.betas, eps=opt.eps, weight_decay=opt.weight_decay)


functional_optimizers = st.one_of(
    st.builds(
        lambda lr, m, d, wd, n: fp.sgd(
            lr, momentum=m, dampening=0.0 if n else d, weight_decay=wd, nesterov=n and m > 0
        ),
        st.floats(0.001, 0.5),
        st.sampled_from([0.0, 0.5, 0.9]),
        st.sampled_from([0.0, 0.1]),
        st.sampled_from([0.0, 0.01, 0.3]),
        st.booleans(),
    ),
    st.builds(
        lambda lr, b1, b2, wd, dec: fp.adam(
            lr, betas=(b1, b2), weight_decay=wd, decoupled_weight_decay=dec
        ),
        st.floats(0.001, 0.5),
        st.sampled_from([0.0, 0.9]),
        st.sampled_from([0.9, 0.999]),
        st.sampled_from([0.0, 0.01, 0.3]),
        st.booleans(),
    ),
)


@given(functional_optimizers, st.integers(0, 2**16), st.booleans())
def test_functional_matches_torch_optim(
    opt: fp.training.functional.SGD | fp.training.functional.Adam, seed: int, masked: bool
) -> None:
    """Dense: the same numbers as torch.optim. Masked: the same as torch.optim + masked_step.
    Donated (into parameters that require grad): the same numbers, written in place."""
    gen = torch.Generator().manual_seed(seed)
    params = {
        "a": torch.randn(3, 4, generator=gen, dtype=torch.float64),
        "b": torch.randn(4, generator=gen, dtype=torch.float64),
    }
    masks = {"a": torch.rand(3, 4, generator=gen) > 0.5} if masked else {}
    params = fp.apply_masks(params, masks)
    twins = {k: nn.Parameter(v.clone()) for k, v in params.items()}
    torch_opt = _torch_twin(opt, list(twins.values()))
    state = opt.init(params)
    given: dict[str, torch.Tensor] = {k: nn.Parameter(v.clone()) for k, v in params.items()}
    given_state = opt.init(params)
    for _ in range(4):
        grads = {
            k: torch.randn(v.shape, generator=gen, dtype=torch.float64) for k, v in params.items()
        }
        params, state = opt.step(params, grads, state, masks)  # type: ignore[arg-type]
        before = dict(given)
        given, given_state = opt.step(given, grads, given_state, masks, donate=True)  # type: ignore[arg-type]
        assert all(given[k] is before[k] for k in params)  # written in place
        for key, g in grads.items():
            twins[key].grad = g.clone()
        fp.masked_step(torch_opt, twins, masks)
        for key, p in params.items():
            torch.testing.assert_close(p, twins[key].detach(), rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(given[key].detach(), p, rtol=1e-12, atol=1e-12)
    for ours, theirs in zip(given_state[1:], state[1:], strict=True):
        for key in ours:
            torch.testing.assert_close(ours[key], theirs[key], rtol=1e-12, atol=1e-12)


def test_functional_step_is_pure_and_vmappable() -> None:
    opt = fp.adam(0.1, weight_decay=0.1)
    params, grads = {"w": torch.randn(5, 4)}, {"w": torch.randn(5, 4)}
    copies = (params["w"].clone(), grads["w"].clone())
    masks = {"w": torch.rand(5, 4) > 0.5}
    new, _ = opt.step(params, grads, opt.init(params), masks)
    assert torch.equal(params["w"], copies[0]) and torch.equal(grads["w"], copies[1])

    def one(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return opt.step({"w": p}, {"w": g}, opt.init({"w": p}), {"w": m})[0]["w"]

    batched = vmap(one)(params["w"], grads["w"], masks["w"])
    torch.testing.assert_close(batched, new["w"])


def test_straight_through_values_and_dense_gradient() -> None:
    model = _model()
    params = {k: v.detach() for k, v in model.named_parameters()}
    masks = fp.l1_unstructured(0.5)(params)
    st_params = fp.straight_through(params, masks)
    for key, value in fp.apply_masks(params, masks).items():
        assert torch.equal(st_params[key], value)
    dense = grad(lambda p: _loss(model, fp.straight_through(p, masks)))(params)
    at_masked = grad(lambda p: _loss(model, p))(fp.apply_masks(params, masks))
    masked_grad = grad(lambda p: _loss(model, fp.apply_masks(p, masks)))(params)
    for key in params:
        torch.testing.assert_close(dense[key], at_masked[key], rtol=0, atol=0)
        assert torch.equal(masked_grad[key], at_masked[key] * masks[key])
    assert any(bool((dense[k][~m] != 0).any()) for k, m in masks.items())


def test_straight_through_under_vmap() -> None:
    w, m = torch.randn(3, 4), torch.rand(3, 4) > 0.5
    out = vmap(lambda p, k: fp.straight_through({"w": p}, {"w": k})["w"])(w, m)
    assert torch.equal(out, w * m)


def test_errors() -> None:
    w = nn.Parameter(torch.ones(2))
    other = nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([w], lr=0.1)
    with pytest.raises(ValueError, match=r"\['v'\] are not among the optimizer's parameters"):
        fp.masked_step(opt, {"w": w, "v": other}, {"v": torch.ones(2, dtype=torch.bool)})
    with pytest.raises(KeyError, match="not parameters"):
        fp.keep_pruned(opt, {"w": w}, {"x": torch.ones(2, dtype=torch.bool)})
    with pytest.raises(TypeError, match=r"torch\.optim\.Optimizer"):
        fp.masked_step("sgd", {"w": w}, {})  # type: ignore[arg-type]
    sgd = fp.sgd(0.1)
    with pytest.raises(KeyError, match=r"grads lacks keys \['b'\]"):
        sgd.step({"a": torch.ones(1), "b": torch.ones(1)}, {"a": torch.ones(1)}, sgd.init({}))
    with pytest.raises(ValueError, match="must match their parameters' shapes"):
        sgd.step({"a": torch.ones(1)}, {"a": torch.ones(2)}, sgd.init({}))
    with pytest.raises(ValueError, match="lr=-1"):
        fp.sgd(-1)
    with pytest.raises(ValueError, match="nesterov"):
        fp.sgd(0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        fp.adam(betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="eps"):
        fp.adam(eps="small")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lr=inf must be a finite number"):
        fp.sgd(math.inf)
    with pytest.raises(ValueError, match="betas=nan must be a finite number"):
        fp.adam(betas=(0.9, math.nan))


@pytest.mark.parametrize("opt", [fp.sgd(0.1, momentum=0.9), fp.adam()], ids=["sgd", "adam"])
def test_state_of_other_params_is_a_key_error(
    opt: fp.training.functional.SGD | fp.training.functional.Adam,
) -> None:
    params = {"a": torch.ones(2), "b": torch.ones(3)}
    grads = {k: torch.ones_like(p) for k, p in params.items()}
    with pytest.raises(KeyError, match=r"state lacks keys \['b'\]; .* init\(params\)"):
        opt.step(params, grads, opt.init({"a": params["a"]}))  # type: ignore[arg-type]


@pytest.mark.parametrize("helper", ["masked_step", "keep_pruned"])
@pytest.mark.parametrize("make", [torch.optim.AdamW, torch.optim.SGD, torch.optim.Adamax])
def test_pruned_entries_stay_zero_when_weights_state_or_masks_change_between_steps(
    helper: str, make: type[torch.optim.Optimizer]
) -> None:
    """The helpers skip re-zeroing only what no one touched since their last step: a weight
    written in place, a new mask object, a state reset or a closure each force it again."""
    gen = torch.Generator().manual_seed(0)
    w = nn.Parameter(torch.randn(6, 4, generator=gen))
    kwargs = {"momentum": 0.9} if make is torch.optim.SGD else {}
    opt = make([w], lr=0.1, **kwargs)  # type: ignore[arg-type]
    masks = {"w": torch.rand(6, 4, generator=gen) > 0.5}
    handle = fp.keep_pruned(opt, {"w": w}, masks) if helper == "keep_pruned" else None

    def step(current: dict[str, torch.Tensor], closure: bool = False) -> None:
        def loss() -> torch.Tensor:
            opt.zero_grad()
            value = (w * torch.randn(6, 4, generator=gen)).sum()
            value.backward()  # type: ignore[no-untyped-call]
            return value

        if not closure:
            loss()
        if handle is None:
            fp.masked_step(opt, {"w": w}, current, loss if closure else None)
        else:
            opt.step(loss) if closure else opt.step()  # type: ignore[no-untyped-call]

    def assert_zero(current: dict[str, torch.Tensor]) -> None:
        pruned = ~current["w"]
        assert torch.all(w.detach()[pruned] == 0)
        for name, value in opt.state[w].items():
            if isinstance(value, torch.Tensor) and value.shape == w.shape:
                assert torch.all(value[pruned] == 0), name

    for _ in range(2):
        step(masks)
        assert_zero(masks)
    with torch.no_grad():
        w.add_(1.0)  # in place: the helpers must notice
    step(masks)
    assert_zero(masks)
    for buffer in opt.state[w].values():
        if isinstance(buffer, torch.Tensor) and buffer.shape == w.shape:
            with torch.no_grad():
                buffer.add_(1.0)
    step(masks)
    assert_zero(masks)
    step(masks, closure=True)  # the closure recomputes unmasked gradients
    assert_zero(masks)
    if handle is None:  # a new, sparser mask object
        sparser = {"w": masks["w"] & (torch.rand(6, 4, generator=gen) > 0.5)}
        step(sparser)
        assert_zero(sparser)
    else:
        handle.remove()


def test_donation_is_not_taken_up_under_vmap() -> None:
    opt = fp.adam(0.1, weight_decay=0.1)
    params, grads = {"w": torch.randn(3, 4)}, {"w": torch.randn(3, 4)}
    masks = {"w": torch.rand(3, 4) > 0.5}
    copy = params["w"].clone()

    def one(g: torch.Tensor) -> torch.Tensor:
        return opt.step(params, {"w": g}, opt.init(params), masks, donate=True)[0]["w"]

    batched = vmap(one)(torch.stack([grads["w"], grads["w"]]))
    assert torch.equal(params["w"], copy)
    expected = opt.step(params, grads, opt.init(params), masks)[0]["w"]
    torch.testing.assert_close(batched, torch.stack([expected, expected]))


@pytest.mark.parametrize(
    "opt",
    [
        fp.adam(0.01, weight_decay=0.1),
        fp.adam(0.01, weight_decay=0.1, decoupled_weight_decay=True),
        fp.sgd(0.1, momentum=0.9, dampening=0.5, weight_decay=0.01),
        fp.sgd(0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
        fp.sgd(0.1),
    ],
    ids=repr,
)
def test_donated_steps_walk_large_tensors_in_chunks_with_the_same_results(
    opt: fp.training.functional.SGD | fp.training.functional.Adam,
) -> None:
    """Tensors larger than a chunk are stepped chunk by chunk when donated."""
    from funcprune.training._chunked import CHUNK

    gen = torch.Generator().manual_seed(0)
    shapes = {"big": (3, CHUNK + 7), "small": (5,), "strided": (4, 6)}
    params = {k: torch.randn(s, generator=gen, dtype=torch.float64) for k, s in shapes.items()}
    params["strided"] = params["strided"].t()  # not contiguous: stepped whole
    masks = {k: torch.rand(p.shape, generator=gen) > 0.3 for k, p in params.items()}
    pure, pure_state = dict(params), opt.init(params)
    given = {k: p.clone() for k, p in params.items()}
    given_state = opt.init(given)
    for _ in range(3):
        grads = {
            k: torch.randn(p.shape, generator=gen, dtype=torch.float64) for k, p in params.items()
        }
        pure, pure_state = opt.step(pure, grads, pure_state, masks)  # type: ignore[arg-type]
        given, given_state = opt.step(given, grads, given_state, masks, donate=True)  # type: ignore[arg-type]
    for key in params:
        torch.testing.assert_close(given[key], pure[key], rtol=1e-12, atol=1e-12)
        assert not given[key][~masks[key]].any()


def test_zero_pruned_walks_large_tensors_exactly() -> None:
    from funcprune.training._chunked import CHUNK, zero_pruned_

    gen = torch.Generator().manual_seed(1)
    tensors = [torch.randn(2 * CHUNK + 3, generator=gen), torch.randn(7, generator=gen)]
    masks = [torch.rand(t.shape, generator=gen) > 0.5 for t in tensors]
    expected = [t * m for t, m in zip(tensors, masks, strict=True)]
    zero_pruned_(tensors, masks)
    for got, want in zip(tensors, expected, strict=True):
        assert torch.equal(got, want)


@given(
    st.sampled_from([torch.float32, torch.float64, torch.bfloat16, torch.float16]),
    st.sampled_from([1e-8, 1e-6, 1e-12, 1e-30]),
    st.sampled_from([0.0, 0.9, 0.999, 0.999999]),
    st.integers(1, 10_000),
)
def test_the_second_moment_floor_never_changes_the_denominator(
    dtype: torch.dtype, eps: float, beta2: float, t: int
) -> None:
    """Zeros and subnormals raised to the floor give bit-identical Adam denominators."""
    from funcprune.training.functional import _sqrt_floor

    floor = _sqrt_floor({dtype}, eps, beta2)
    if floor is None:
        return
    info = torch.finfo(dtype)
    v = torch.tensor([0.0, info.tiny / 2, info.tiny / 1024, info.tiny, 1e-3], dtype=dtype)
    c2 = torch.tensor(1 - beta2**t, dtype=torch.float64).sqrt()
    plain = v.sqrt() / c2 + eps
    floored = v.clamp_min(floor).sqrt() / c2 + eps
    assert torch.equal(plain, floored)


ROOTED: list[Callable[[list[nn.Parameter]], torch.optim.Optimizer]] = [
    lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1),
    lambda ps: torch.optim.Adam(ps, lr=0.01, amsgrad=True),
    lambda ps: torch.optim.AdamW(ps, lr=0.01, eps=1e-12, foreach=False),
    lambda ps: torch.optim.NAdam(ps, lr=0.01),
    lambda ps: torch.optim.RAdam(ps, lr=0.01),  # unrectified steps first, rectified from the 6th
    lambda ps: torch.optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
    lambda ps: torch.optim.Adagrad(ps, lr=0.1),
]


def _pair() -> tuple[dict[str, nn.Parameter], dict[str, nn.Parameter], dict[str, torch.Tensor]]:
    """Twin parameters (one small, one walked in chunks) and their masks."""
    from funcprune.training._chunked import CHUNK

    gen = torch.Generator().manual_seed(0)
    shapes = {"small": (6, 4), "big": (CHUNK + 5,)}
    ours = {k: nn.Parameter(torch.randn(s, generator=gen)) for k, s in shapes.items()}
    theirs = {k: nn.Parameter(p.detach().clone()) for k, p in ours.items()}
    masks = {k: torch.rand(s, generator=gen) > 0.5 for k, s in shapes.items()}
    return ours, theirs, masks


def _state(opt: torch.optim.Optimizer, p: torch.Tensor) -> dict[str, torch.Tensor]:
    return {n: v for n, v in opt.state[p].items() if isinstance(v, torch.Tensor)}


@pytest.mark.parametrize("make", ROOTED)
def test_masked_step_equals_its_definition_bit_for_bit(
    make: Callable[[list[nn.Parameter]], torch.optim.Optimizer],
) -> None:
    """masked_step lifts known-zero pruned second moments to one during the step (torch's CPU
    square root is slow on zeros), yet equals its definition exactly: mask the gradients, take a
    plain step, zero the pruned weights and state."""
    ours, theirs, masks = _pair()
    opt, reference = make(list(ours.values())), make(list(theirs.values()))
    gen = torch.Generator().manual_seed(1)
    for _ in range(8):
        for key, p in ours.items():
            grad = torch.randn(p.shape, generator=gen)
            p.grad, theirs[key].grad = grad.clone(), grad * masks[key]
        fp.masked_step(opt, ours, masks)
        reference.step()
        with torch.no_grad():
            for key, p in theirs.items():
                p.mul_(masks[key])
                for value in _state(reference, p).values():
                    if value.shape == p.shape:
                        value.mul_(masks[key])
        for key, p in ours.items():
            assert torch.equal(p.detach(), theirs[key].detach()), key
            mine, wanted = _state(opt, p), _state(reference, theirs[key])
            assert mine.keys() == wanted.keys()
            for name, value in mine.items():
                assert torch.equal(value, wanted[name]), (key, name)


def test_masked_step_lifts_pruned_second_moments_only_during_the_step() -> None:
    ours, _, masks = _pair()
    opt = torch.optim.AdamW(list(ours.values()), lr=0.01)
    seen: list[bool] = []

    def during(_opt: torch.optim.Optimizer, _args: object, _kwargs: object) -> None:
        if opt.state:
            seen.append(
                all(
                    bool((opt.state[p]["exp_avg_sq"][~masks[k]] == 1).all())
                    for k, p in ours.items()
                )
            )

    opt.register_step_pre_hook(during)
    for _ in range(3):
        for p in ours.values():
            p.grad = torch.ones_like(p)
        fp.masked_step(opt, ours, masks)
        for key, p in ours.items():
            assert not opt.state[p]["exp_avg_sq"][~masks[key]].any()
    assert seen == [True, True]  # the first step zeroes state it did not know to be zero

    def fail(_opt: torch.optim.Optimizer, _args: object, _kwargs: object) -> None:
        raise RuntimeError("step failed")

    opt.register_step_pre_hook(fail)
    before = {k: opt.state[p]["exp_avg_sq"].clone() for k, p in ours.items()}
    with pytest.raises(RuntimeError, match="step failed"):
        fp.masked_step(opt, ours, masks)
    for key, p in ours.items():  # a failed step leaves the state as it found it
        assert torch.equal(opt.state[p]["exp_avg_sq"], before[key])
