"""GPT-2's Conv1D layers (weights stored (in, out)) through to_sparse."""

from __future__ import annotations

import tiny_models
import torch

import funcprune as fp
from funcprune.sparse import SparseLinear, to_sparse


def test_tiny_gpt2_with_sparse_conv1d_equals_the_masked_model() -> None:
    torch.manual_seed(0)
    model = tiny_models.gpt2().eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    masks = fp.only(fp.l1_unstructured(0.8), include=r"\.(c_attn|c_proj|c_fc)\.weight$")(params)
    sparse = to_sparse(model, params, masks)
    converted = [n for n, m in sparse.named_modules() if isinstance(m, SparseLinear)]
    assert len(converted) == 2 * 4  # c_attn, attn.c_proj, c_fc, mlp.c_proj per block
    assert type(sparse.lm_head) is torch.nn.Linear  # tied to wte, not masked
    ids = torch.randint(0, 64, (2, 10))
    with torch.no_grad():
        torch.testing.assert_close(
            sparse(ids).logits, fp.masked_call(model, params, masks, ids).logits
        )
