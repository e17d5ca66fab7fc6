"""A shrunk model exports to ONNX and runs in onnxruntime with the masked model's outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from io_models import shrunk_of, small_cnn
from torch import nn

import funcprune as fp

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")  # torch.onnx.export(dynamo=True) needs it


def export(model: nn.Module, x: torch.Tensor, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=64)
    torch.onnx.export(
        model.eval(), (x,), path, dynamo=True, input_names=["x"], dynamic_shapes=({0: batch},)
    )


def run(path: Path, x: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"x": x.numpy()})[0])


def test_shrunk_model_in_onnxruntime(tmp_path: Path) -> None:
    x = torch.randn(2, 3, 6, 6)
    model, small, masks = shrunk_of(small_cnn, x)
    export(small, x, tmp_path / "small.onnx")
    onnx.checker.check_model(str(tmp_path / "small.onnx"))
    other_batch = torch.randn(5, 3, 6, 6)
    params = {k: v.detach() for k, v in model.named_parameters()}
    with torch.no_grad():
        expected = fp.masked_call(model, params, masks, other_batch)
    torch.testing.assert_close(run(tmp_path / "small.onnx", other_batch), expected)
    stored = sum(
        onnx.numpy_helper.to_array(t).size
        for t in onnx.load(tmp_path / "small.onnx").graph.initializer
    )
    dense = sum(t.numel() for t in model.state_dict().values())
    assert stored <= sum(t.numel() for t in small.state_dict().values()) < 0.6 * dense
