"""Tiny, randomly initialised real architectures shared by the tests.

Each builder skips the calling test when its library (transformers, torchvision) is missing and
draws its weights from torch's global generator: seed before calling for the same weights. The
transformers builders take any configuration field as a keyword, overriding the tiny defaults;
``dropout=False`` sets every dropout probability to 0 (train-mode outputs become deterministic).
"""

from __future__ import annotations

from typing import Any

import pytest
from torch import nn


def _no_dropout(names: tuple[str, ...], dropout: bool) -> dict[str, float]:
    return {} if dropout else dict.fromkeys(names, 0.0)


def gpt2(*, dropout: bool = True, **config: Any) -> nn.Module:
    """A ``GPT2LMHeadModel``, its head tied to the token embedding.

    2 blocks of width 32, 2 heads, 64 tokens, 16 positions, token 0 as bos and eos.
    """
    hf = pytest.importorskip("transformers")
    sizes = {"n_layer": 2, "n_embd": 32, "n_head": 2, "vocab_size": 64, "n_positions": 16}
    quiet = _no_dropout(("resid_pdrop", "embd_pdrop", "attn_pdrop"), dropout)
    settings = {**sizes, "bos_token_id": 0, "eos_token_id": 0, **quiet, **config}
    model: nn.Module = hf.GPT2LMHeadModel(hf.GPT2Config(**settings))
    return model


def bert(head: str = "BertModel", *, dropout: bool = True, **config: Any) -> nn.Module:
    """The transformers BERT class named ``head`` (``BertModel``, ``BertForMaskedLM``...).

    2 layers of width 32, 2 heads, MLP width 64, 64 tokens, 16 positions.
    """
    hf = pytest.importorskip("transformers")
    sizes = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "vocab_size": 64}
    quiet = _no_dropout(("hidden_dropout_prob", "attention_probs_dropout_prob"), dropout)
    settings = {**sizes, "intermediate_size": 64, "max_position_embeddings": 16, **quiet, **config}
    model: nn.Module = getattr(hf, head)(hf.BertConfig(**settings))
    return model


def resnet18() -> nn.Module:
    """torchvision's ResNet-18 with 10 classes."""
    model: nn.Module = pytest.importorskip("torchvision").models.resnet18(num_classes=10)
    return model


def mobilenet_v3_small() -> nn.Module:
    """torchvision's MobileNetV3-small with 10 classes."""
    model: nn.Module = pytest.importorskip("torchvision").models.mobilenet_v3_small(num_classes=10)
    return model
