"""Real architectures, tiny and randomly initialised: GPT-2 and BERT (transformers), ResNet-18 and
MobileNetV3 (torchvision), a ViT (timm). Every test compares outputs: masked_call against the
model with its weights multiplied in place, or against the same model pruned by torch."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping

import pytest
import tiny_models
import torch
from torch import nn
from torch.func import vmap
from torch.nn.utils import prune as torch_prune

import funcprune as fp
import funcprune.compat as compat
from funcprune.layers import along_inputs, along_outputs, feature_dims
from funcprune.report import FullyPrunedWarning, sparsity_report

timm = pytest.importorskip("timm")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inside transformers/timm


def _detached(params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in params.items()}


def _multiplied(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> nn.Module:
    """The stateful reference: a copy of ``model`` with each masked tensor multiplied in place."""
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for key, mask in masks.items():
            twin.get_parameter(key).mul_(mask)  # a tied alias twice: w * m * m == w * m
    return twin


def _weights(pattern: str = r"weight$") -> Callable[[fp.PruningMethod], fp.PruningMethod]:
    return lambda method: fp.only(method, include=pattern)


@pytest.fixture(scope="module")
def gpt2() -> nn.Module:
    torch.manual_seed(0)
    return tiny_models.gpt2(vocab_size=96, attn_implementation="eager").eval()


IDS = torch.tensor([[5, 17, 3, 88, 41, 0, 9, 63], [1, 2, 3, 4, 5, 6, 7, 8]])


def _logits(
    model: nn.Module, params: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    return fp.masked_call(model, params, masks, IDS).logits


def test_gpt2_tied_head_is_ranked_once_and_runs(gpt2: nn.Module) -> None:
    params = _detached(fp.from_module(gpt2)[0])
    assert params["lm_head.weight"].data_ptr() == params["transformer.wte.weight"].data_ptr()
    masks = _weights()(fp.global_unstructured(0.5))(params)
    assert torch.equal(masks["lm_head.weight"], masks["transformer.wte.weight"])
    unique = [k for k in params if k.endswith("weight") and k != "lm_head.weight"]
    total = sum(params[k].numel() for k in unique)
    assert sum(int((~masks[k]).sum()) for k in unique) == round(0.5 * total)  # counted once
    expected = _multiplied(gpt2, masks)(IDS).logits
    assert torch.equal(_logits(gpt2, params, masks), expected)
    named = _detached(dict(gpt2.named_parameters()))  # no lm_head.weight key: it follows wte
    assert torch.equal(
        _logits(gpt2, named, {k: m for k, m in masks.items() if k in named}), expected
    )


@pytest.mark.parametrize("library", [torch_prune, compat], ids=["torch", "compat"])
def test_gpt2_head_pruned_by_torch_converts_both_ways(gpt2: nn.Module, library: object) -> None:
    pruned = copy.deepcopy(gpt2)
    library.l1_unstructured(pruned.lm_head, "weight", amount=0.3)  # type: ignore[attr-defined]
    expected = pruned(IDS).logits  # the embedding still reads the dense matrix
    params, masks = fp.from_module(pruned)
    assert list(masks) == ["lm_head.weight"]
    assert torch.equal(_logits(gpt2, params, masks), expected)
    state = fp.to_state_dict(params, masks)
    assert list(state) == list(pruned.state_dict())
    assert all(torch.equal(state[k], v) for k, v in pruned.state_dict().items())
    again = fp.install_masks(copy.deepcopy(gpt2), masks)
    assert torch.equal(again(IDS).logits, expected)


def test_gpt2_nm_and_channels_along_each_layers_features(gpt2: nn.Module) -> None:
    params = _detached(fp.from_module(gpt2, buffers=False)[0])
    dims = feature_dims(gpt2)
    assert dims["transformer.h.0.attn.c_attn.weight"] == (0, 1)  # Conv1D stores (in, out)
    assert dims["transformer.wte.weight"] == (1, 0)  # tied to lm_head, a Linear (vocab, embd)
    masks = along_inputs(gpt2, lambda dim: fp.nm_semistructured(2, 4, dim=dim))(params)
    c_attn = masks["transformer.h.0.attn.c_attn.weight"]  # (32 in, 96 out): groups down dim 0
    assert bool((c_attn.reshape(8, 4, 96).sum(1) == 2).all())
    assert bool((masks["lm_head.weight"].reshape(96, 8, 4).sum(-1) == 2).all())
    assert torch.equal(masks["lm_head.weight"], masks["transformer.wte.weight"])
    assert torch.equal(_logits(gpt2, params, masks), _multiplied(gpt2, masks)(IDS).logits)
    channels = along_outputs(gpt2, lambda dim: fp.ln_structured(0.25, n=2, dim=dim))(params)
    fc = channels["transformer.h.1.mlp.c_fc.weight"]  # (32, 128): output neurons are columns
    assert int((~fc.any(dim=0)).sum()) == 32 and bool(fc.any(dim=1).all())
    assert torch.equal(_logits(gpt2, params, channels), _multiplied(gpt2, channels)(IDS).logits)


def test_gpt2_amount_sweep_under_vmap_and_masked_call_under_compile(gpt2: nn.Module) -> None:
    params = _detached(fp.from_module(gpt2)[0])
    method = _weights(r"(c_attn|c_fc|wte)\.weight$")

    def run(amount: torch.Tensor) -> torch.Tensor:
        return _logits(gpt2, params, method(fp.global_unstructured(amount))(params))

    amounts = torch.tensor([0.1, 0.5, 0.9])
    swept = vmap(run)(amounts)
    for i, amount in enumerate(amounts):
        torch.testing.assert_close(swept[i], run(amount), rtol=1e-5, atol=1e-5)  # batched matmuls
    masks = method(fp.global_unstructured(0.5))(params)
    compiled = torch.compile(_logits, backend="aot_eager", fullgraph=True)
    assert torch.equal(compiled(gpt2, params, masks), _logits(gpt2, params, masks))


def test_bert_tied_decoder_activation_norms_and_wanda() -> None:
    torch.manual_seed(1)
    bert = tiny_models.bert("BertForMaskedLM").eval()
    ids = IDS % 64
    params = _detached(dict(bert.named_parameters()))
    layer = bert.bert.encoder.layer[1].intermediate.dense
    norms = fp.activation_norms(bert, params, [ids, ids.flip(0)])
    key = "bert.encoder.layer.1.intermediate.dense.weight"
    inputs = torch.cat([x.reshape(-1, 32) for x in _hooked(layer, bert, [ids, ids.flip(0)])])
    torch.testing.assert_close(norms[key], inputs.norm(dim=0))
    assert "bert.embeddings.word_embeddings.weight" in norms  # as the tied decoder's weight
    scores = fp.wanda(params, norms)
    products = {
        k: d for k, d in feature_dims(bert).items() if "position" not in k and "token_type" not in k
    }
    assert products["bert.embeddings.word_embeddings.weight"] == (1, 0)  # the decoder's
    masks = along_inputs(products, lambda dim: fp.nm_semistructured(2, 4, dim=dim))(
        params, importance_scores=scores
    )
    state = _detached(bert.state_dict())  # both names of the tied decoder weight
    tied = fp.only(fp.l1_unstructured(0.5), include="word_emb|decoder.weight")(state)
    assert torch.equal(
        tied["cls.predictions.decoder.weight"], tied["bert.embeddings.word_embeddings.weight"]
    )
    for given, masks_ in ((params, masks), (state, tied)):
        expected = _multiplied(bert, masks_)(ids).logits
        assert torch.equal(fp.masked_call(bert, given, masks_, ids).logits, expected)


def _hooked(layer: nn.Module, model: nn.Module, batches: list[torch.Tensor]) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, i, _o: seen.append(i[0].detach()))
    with torch.no_grad():
        for batch in batches:
            model(batch)
    handle.remove()
    return seen


def test_resnet18_buffers_round_trip_and_train_mode_keeps_stats_when_asked() -> None:
    torch.manual_seed(2)
    model = tiny_models.resnet18()
    x = torch.randn(2, 3, 32, 32)
    model.train()(x)  # running statistics of its own
    early = [
        n
        for n, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and "layer3" not in n and "layer4" not in n
    ]
    pruned = copy.deepcopy(model)
    torch_prune.global_unstructured(
        [(pruned.get_submodule(n), "weight") for n in early], torch_prune.L1Unstructured, amount=0.7
    )
    params, masks = fp.from_module(pruned)
    fresh = fp.install_masks(tiny_models.resnet18(), masks)
    fresh.load_state_dict(fp.to_state_dict(params, masks), strict=True)  # buffers kept
    assert torch.equal(fresh.eval()(x), pruned.eval()(x))
    weights = fp.only(
        fp.global_unstructured(0.7), include=lambda k: k.removesuffix(".weight") in early
    )
    ours = weights(_detached(fp.from_module(model, buffers=False)[0]))
    assert all(torch.equal(ours[k], m) for k, m in masks.items()) and len(masks) == len(early)
    report = sparsity_report(masks, _detached(fp.from_module(model, buffers=False)[0]))
    assert report.overall == pytest.approx(
        fp.sparsity(masks, _detached(dict(model.named_parameters()))).overall
    )
    # train mode: BatchNorm updates the buffers it is given; pass copies to keep the module's
    plain = copy.deepcopy(model).train()
    before = {k: b.clone() for k, b in plain.named_buffers()}
    copies = {k: b.clone() for k, b in plain.named_buffers()}
    out = fp.masked_call(plain, {**_detached(dict(plain.named_parameters())), **copies}, masks, x)
    assert torch.equal(out, pruned.train()(x))
    assert all(torch.equal(b, before[k]) for k, b in plain.named_buffers())  # untouched
    twin_buffers = dict(pruned.named_buffers())
    assert all(torch.equal(copies[k], twin_buffers[k]) for k in copies)  # updated like torch's


def test_mobilenet_masks_equal_torch_global_and_grouped_conv_norms() -> None:
    torch.manual_seed(3)
    model = tiny_models.mobilenet_v3_small().eval()
    x = torch.randn(2, 3, 32, 32)
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    pruned = copy.deepcopy(model)
    torch_prune.global_unstructured(
        [(pruned.get_submodule(n), "weight") for n in names], torch_prune.L1Unstructured, amount=0.6
    )
    _, expected = fp.from_module(pruned)
    params = _detached(fp.from_module(model, buffers=False)[0])
    ours = fp.only(
        fp.global_unstructured(0.6), include=lambda k: k.removesuffix(".weight") in names
    )(params)
    assert all(torch.equal(ours[k], expected[k]) for k in expected)
    assert torch.equal(fp.masked_call(model, params, ours, x), pruned(x))
    depthwise = "features.1.block.0.0"  # a depthwise conv: groups == channels
    assert model.get_submodule(depthwise).groups == 16
    norms = fp.activation_norms(model, params, [x])
    (seen,) = _hooked(model.get_submodule(depthwise), model, [x])
    per_channel = seen.transpose(0, 1).reshape(16, -1).norm(dim=1)
    torch.testing.assert_close(norms[depthwise + ".weight"], per_channel.reshape(16, 1, 1, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FullyPrunedWarning)
        sparsity_report(ours, params)


def test_vit_sweep_under_vmap_and_nm_along_inputs() -> None:
    torch.manual_seed(4)
    model = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2, num_classes=10
    ).eval()
    for block in model.blocks:  # plain attention: vmap has no batching rule for fused CPU SDPA
        block.attn.fused_attn = False
    x = torch.randn(2, 3, 32, 32)
    params = _detached(dict(model.named_parameters()))
    blocks = _weights(r"blocks\.\d+\.(attn|mlp)\..*weight$")

    def run(amount: torch.Tensor) -> torch.Tensor:
        return fp.masked_call(model, params, blocks(fp.l1_unstructured(amount))(params), x)

    amounts = torch.tensor([0.0, 0.3, 0.6])
    swept = vmap(run)(amounts)
    for i, amount in enumerate(amounts):
        torch.testing.assert_close(swept[i], run(amount), rtol=1e-5, atol=1e-5)
    assert torch.equal(run(torch.tensor(0.0)), model(x))
    dims = {k: d for k, d in feature_dims(model).items() if k.startswith("blocks")}
    assert dims["blocks.0.attn.qkv.weight"] == (1, 0)
    masks = along_inputs(dims, lambda dim: fp.nm_semistructured(2, 4, dim=dim))(params)
    assert bool((masks["blocks.1.mlp.fc2.weight"].reshape(192, -1, 4).sum(-1) == 2).all())
    assert torch.equal(fp.masked_call(model, params, masks, x), _multiplied(model, masks)(x))


def _split_ties(mask: torch.Tensor, values: torch.Tensor, tie: float) -> bool:
    """Whether ``mask`` prunes some entries equal to ``tie`` and keeps others."""
    at = values.detach() == tie
    return bool((mask & at).any()) and bool((~mask & at).any())


def test_resnet18_sweep_over_parameters_that_require_grad_splits_norm_ties_like_the_loop() -> None:
    """Parameters as users pass them (requiring grad, BatchNorm included): the BatchNorm biases
    start at exactly 0 and the weights at exactly 1, and two of the amounts cut inside those
    ties, which the sweep splits as the loop does (lowest flat index pruned first)."""
    torch.manual_seed(3)
    model = tiny_models.resnet18().eval()
    params = dict(model.named_parameters())
    flat = torch.cat([p.detach().abs().reshape(-1) for p in params.values()])
    zeros, ones = int((flat == 0).sum()), int((flat == 1).sum())
    total = flat.numel()
    amounts = torch.tensor([zeros / 2 / total, 0.3, 0.8, 1 - ones / 2 / total], dtype=torch.float64)
    swept = vmap(lambda a: fp.global_unstructured(a)(params))(amounts)
    for index, amount in enumerate(amounts.tolist()):
        looped = fp.global_unstructured(amount)(params)
        assert all(torch.equal(swept[k][index], looped[k]) for k in params)
    assert _split_ties(torch.cat([m[0].reshape(-1) for m in swept.values()]), flat, 0.0)
    assert _split_ties(torch.cat([m[3].reshape(-1) for m in swept.values()]), flat, 1.0)
    masks = {k: m[2] for k, m in swept.items()}
    x = torch.randn(2, 3, 32, 32)
    expected = _multiplied(model, masks)(x)
    assert torch.equal(fp.masked_call(model, _detached(params), masks, x), expected)


def test_resnet18_compat_global_pruning_of_a_checkpoint_with_zeros_picks_torchs_tied_entries() -> (
    None
):
    """A checkpoint pruned once and made permanent holds exact zeros; pruning it again cuts inside
    them, so compat runs torch's (unsorted) topk and must pick torch's tied entries."""
    torch.manual_seed(4)
    model = tiny_models.resnet18().eval()

    def layers(net: nn.Module) -> list[tuple[nn.Module, str]]:
        return [(m, "weight") for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]

    torch_prune.global_unstructured(layers(model), torch_prune.L1Unstructured, amount=0.6)
    for module, name in layers(model):
        torch_prune.remove(module, name)
    theirs, ours = copy.deepcopy(model), copy.deepcopy(model)
    torch_prune.global_unstructured(layers(theirs), torch_prune.L1Unstructured, amount=0.4)
    compat.global_unstructured(layers(ours), compat.L1Unstructured, amount=0.4)
    pairs = list(zip(layers(theirs), layers(ours), strict=True))
    assert all(torch.equal(a.weight_mask, b.weight_mask) for (a, _), (b, _) in pairs)
    picked = torch.cat([a.weight_mask.reshape(-1) for (a, _), _ in pairs]).bool()
    values = torch.cat([a.weight_orig.detach().reshape(-1) for (a, _), _ in pairs])
    assert _split_ties(picked, values, 0.0)  # the cut fell among the zeros
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(theirs(x), ours(x))


def test_gpt2_masked_adamw_steps_equal_masking_by_hand() -> None:
    """masked_step on a real model (tied head, LayerNorms, Conv1D) trains exactly like its
    definition done by hand (masked gradients, a plain AdamW step, pruned weights and moments
    zeroed), although it lifts the known-zero pruned second moments during its steps."""
    torch.manual_seed(0)
    ours = tiny_models.gpt2(dropout=False, vocab_size=96).train()
    theirs = copy.deepcopy(ours)
    mine, by_hand = dict(ours.named_parameters()), dict(theirs.named_parameters())
    masks = fp.only(fp.l1_unstructured(0.5), include=r"weight$")(_detached(mine))
    masks = {k: m for k, m in masks.items() if k.endswith("weight")}
    opt = torch.optim.AdamW(ours.parameters(), lr=1e-2, weight_decay=0.1)
    reference = torch.optim.AdamW(theirs.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(4):
        for model, optimizer in ((ours, opt), (theirs, reference)):
            optimizer.zero_grad()
            model(IDS, labels=IDS).loss.backward()
        fp.masked_step(opt, mine, masks)
        with torch.no_grad():
            for key, mask in masks.items():
                by_hand[key].grad.mul_(mask)  # type: ignore[union-attr]
            reference.step()
            for key, mask in masks.items():
                by_hand[key].mul_(mask)
                for value in reference.state[by_hand[key]].values():
                    if value.shape == mask.shape:
                        value.mul_(mask)
    for key in mine:
        assert torch.equal(mine[key], by_hand[key]), key
        for name, value in opt.state[mine[key]].items():
            assert torch.equal(value, reference.state[by_hand[key]][name]), (key, name)
    for key, mask in masks.items():
        assert not mine[key][~mask].any(), key
    assert torch.equal(ours(IDS).logits, theirs(IDS).logits)
