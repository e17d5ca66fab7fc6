"""dtypes, meta tensors and the determinism of the counter-based random methods."""

from __future__ import annotations

import hashlib
import zlib

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from reference import torch_module, torch_prune
from strategies import tensors

import funcprune as fp
from funcprune._select import random_keys

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
METHODS = [
    fp.l1_unstructured(0.4),
    fp.random_unstructured(0.4, seed=2),
    fp.ln_structured(0.5, n=2, dim=1),
    fp.random_structured(0.5, dim=0),
    fp.global_unstructured(0.7),
    fp.chain(fp.l1_unstructured(0.3), fp.ln_structured(1, n=1, dim=0)),
    fp.nm_semistructured(2, 3),
    fp.per_key(fp.random_unstructured, {"w": 0.5}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@given(
    w=tensors(min_dims=2, max_dims=2, min_side=1, dtypes=(torch.float64,)), amount=st.floats(0, 1)
)
def test_low_precision_masks_equal_those_of_the_exact_float64_values(
    dtype: torch.dtype, w: torch.Tensor, amount: float
) -> None:
    low = w.to(dtype)
    exact = low.to(torch.float64)  # the same values, exactly
    for method in (
        fp.l1_unstructured(amount),
        fp.ln_structured(amount, n=1, dim=0),
        fp.global_unstructured(amount),
    ):
        got = method({"w": low})["w"]
        assert got.dtype == torch.bool
        if method.factory != "ln_structured":  # norms are rounded in the parameter's dtype
            assert torch.equal(got, method({"w": exact})["w"])
    module = torch_module({"w": low})
    torch_prune.l1_unstructured(module, "w", amount=amount)
    assert int(module.w_mask.sum()) == int(fp.l1_unstructured(amount)({"w": low})["w"].sum())


@pytest.mark.parametrize("method", METHODS, ids=repr)
def test_meta_tensors_give_meta_masks_of_the_right_shape(method: fp.PruningMethod) -> None:
    params = {"w": torch.empty(4, 6, device="meta")}
    masks = method(params)
    assert masks["w"].device.type == "meta" and masks["w"].shape == (4, 6)
    assert masks["w"].dtype == torch.bool
    assert fp.apply_masks(params, masks)["w"].device.type == "meta"


def test_meta_tensors_still_get_shape_errors() -> None:
    with pytest.raises(ValueError, match="dim=2 is out of range"):
        fp.ln_structured(0.5, n=2, dim=2)({"w": torch.empty(4, 6, device="meta")})


def _python_keys(seed: int, key: str, n: int) -> list[int]:
    """The documented hash, in plain Python integers (wrapping at 64 bits)."""
    mask = (1 << 64) - 1
    golden = 0x9E3779B97F4A7C15

    def finalize(z: int) -> int:
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    start = finalize((seed * golden + int.from_bytes(digest, "little")) & mask)
    return [finalize(((i ^ start) * golden) & mask) >> 33 for i in range(n)]


@given(seed=st.integers(0, 2**62), key=st.text(max_size=12), n=st.integers(0, 40))
def test_random_keys_are_the_documented_counter_hash(seed: int, key: str, n: int) -> None:
    assert random_keys(seed, key, n, torch.device("cpu")).tolist() == _python_keys(seed, key, n)


def test_keys_with_equal_crc32_get_independent_streams() -> None:
    assert zlib.crc32(b"plumless") == zlib.crc32(b"buckeroo")  # the collision of issue 10
    params = {"plumless": torch.zeros(64), "buckeroo": torch.zeros(64)}
    for method in (fp.random_unstructured(0.5), fp.global_unstructured(0.5, scores="random")):
        masks = method(params)
        assert not torch.equal(masks["plumless"], masks["buckeroo"])


def test_surrogate_keys_get_their_own_stream() -> None:
    a, b = "w\udc80", "w\udc81"  # lone surrogates: not encodable as strict UTF-8
    params = {a: torch.zeros(64), b: torch.zeros(64)}
    masks = fp.random_unstructured(0.5, seed=1)(params)
    assert not torch.equal(masks[a], masks[b])
    assert torch.equal(masks[a], fp.random_unstructured(0.5, seed=1)(params)[a])


def test_random_masks_do_not_depend_on_threads_or_the_global_rng() -> None:
    params = {"a": torch.randn(300, 200), "b": torch.randn(1000)}
    method = fp.chain(
        fp.random_unstructured(0.3, seed=11), fp.global_unstructured(0.5, scores="random")
    )
    threads = torch.get_num_threads()
    try:
        first = method(params)
        torch.set_num_threads(1)
        torch.manual_seed(123)
        second = method(params)
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(first[k], second[k]) for k in params)
    other_seed = fp.random_unstructured(0.3, seed=12)(params)
    assert not torch.equal(other_seed["a"], fp.random_unstructured(0.3, seed=11)(params)["a"])


def test_random_methods_leave_the_global_rng_alone() -> None:
    params = {"w": torch.randn(5, 5)}
    state = torch.get_rng_state()
    fp.chain(fp.random_unstructured(0.5), fp.random_structured(0.5, dim=0))(params)
    assert torch.equal(state, torch.get_rng_state())
