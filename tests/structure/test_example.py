"""Smoke test of examples/channel_pruning.py with tiny settings (the lead imports it into
tests/test_examples.py so that every example has its ``test_<name>``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"


def test_channel_pruning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("sklearn")
    monkeypatch.syspath_prepend(str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(
        "example_channel_pruning", EXAMPLES / "channel_pruning.py"
    )
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, demo)
    spec.loader.exec_module(demo)

    results = demo.main(["--epochs", "1", "--finetune", "1", "--repeats", "2", "--amount", "0.5"])

    dense, masked, small = (
        results["dense"],
        results["pruned + fine-tuned (masks)"],
        results["shrunk"],
    )
    assert small["accuracy"] == masked["accuracy"]
    assert small["params"] < 0.5 * dense["params"] and small["macs"] < 0.5 * dense["macs"]
    assert small["disk_kib"] < 0.5 * dense["disk_kib"]
    assert masked["params"] == dense["params"]
    out = capsys.readouterr().out
    assert "| shrunk |" in out and "channel groups" in out
