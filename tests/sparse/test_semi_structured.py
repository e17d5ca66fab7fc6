"""2:4 semi-structured export: a clear error without a capable GPU, never a dense fallback."""

from __future__ import annotations

import pytest
import torch

import funcprune as fp
from funcprune.sparse import to_semi_structured


def two_four(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    params = {k: v.detach() for k, v in model.named_parameters()}
    return params, fp.only(fp.nm_semistructured(2, 4), include=r"weight$")(params)


def test_cpu_weights_are_a_runtime_error_saying_what_is_needed() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(64, 64))
    params, masks = two_four(model)
    with pytest.raises(RuntimeError, match=r"compute capability >= 8.0.*'0.weight' is on cpu"):
        to_semi_structured(model, params, masks)


def test_masks_that_are_not_two_four_name_the_key() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 6))
    params = {k: v.detach() for k, v in model.named_parameters()}
    masks = {**two_four(model)[1], "1.weight": fp.l1_unstructured(0.25)(params)["1.weight"]}
    with pytest.raises(ValueError, match=r"'1.weight': \d+ groups of 4 keep more than 2"):
        to_semi_structured(model, params, masks)
    odd = torch.nn.Sequential(torch.nn.Linear(6, 8))
    with pytest.raises(ValueError, match=r"'0\.weight': 6 input features are not a multiple of 4"):
        to_semi_structured(odd, *two_four_rows(odd))


def two_four_rows(
    model: torch.nn.Module,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    params = {k: v.detach() for k, v in model.named_parameters()}
    return params, {"0.weight": torch.zeros(params["0.weight"].shape, dtype=torch.bool)}


def _capable() -> bool:
    return torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 0)


@pytest.mark.skipif(not _capable(), reason="needs a CUDA GPU of compute capability >= 8.0")
def test_on_a_capable_gpu_outputs_equal_the_masked_model() -> None:
    model = torch.nn.Sequential(
        torch.nn.Linear(128, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64)
    )
    model = model.half().cuda().eval()
    params, masks = two_four(model)
    sparse = to_semi_structured(model, params, masks)
    weight = sparse[0].weight
    assert type(weight).__name__.startswith("SparseSemiStructuredTensor")
    x = torch.randn(64, 128, dtype=torch.float16, device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(
            sparse(x), fp.masked_call(model, params, masks, x), rtol=1e-2, atol=1e-2
        )
