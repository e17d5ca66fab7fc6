"""Smoke tests of every example with tiny settings, so the examples never rot.

Each example is imported from ``examples/`` and its ``main(argv)`` run with a few training steps in
a temporary output folder; the checks are on what it returns, prints and writes.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

import funcprune as fp

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def load_example(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import ``examples/<name>.py`` as a module (its sibling helpers importable)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def assert_png(path: Path) -> None:
    assert path.is_file(), f"{path} was not written"
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC), f"{path} is not a PNG"
    assert len(data) > 10_000, f"{path} is suspiciously small ({len(data)} bytes)"


def threads() -> str:
    return str(torch.get_num_threads())


def test_every_example_has_a_smoke_test() -> None:
    """Each example has a ``test_<name>`` here or in a subsystem's tests (e.g. tests/structure/)."""
    scripts = {p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_")}
    tests = "".join(p.read_text() for p in Path(__file__).parent.rglob("test_*.py"))
    untested = sorted(s for s in scripts if f"def test_{s}(" not in tests)
    assert "digits_sweep" in scripts and not untested, f"examples without a smoke test: {untested}"


def test_digits_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = load_example("digits_sweep", monkeypatch)
    argv = ["--epochs", "1", "--amounts", "4", "--max-amount", "0.9", "--seed", "3"]
    results = demo.main([*argv, "--out", str(tmp_path / "out"), "--threads", threads()])

    assert set(results) == {
        "l1_unstructured",
        "global_unstructured",
        "ln_structured",
        "random_unstructured",
    }
    for name, result in results.items():
        assert len(result.sparsity) == len(result.accuracy) == len(result.per_key) == 4, name
        assert result.sparsity[0] == 0.0, name
        assert result.sparsity == sorted(result.sparsity), name
        assert all(0.0 <= acc <= 1.0 for acc in result.accuracy), name
        assert set(result.per_key[0]) == {"0.weight", "2.weight", "6.weight", "8.weight"}, name
    # Unpruned, every method evaluates the same (dense) model; unstructured amounts are exact.
    assert len({result.accuracy[0] for result in results.values()}) == 1
    for name in ("l1_unstructured", "global_unstructured", "random_unstructured"):
        assert math.isclose(results[name].sparsity[-1], 0.9, abs_tol=1e-4), name
    sizes = {"0.weight": 144, "2.weight": 4608, "6.weight": 32768, "8.weight": 640}
    for name in ("l1_unstructured", "random_unstructured"):
        expected = {key: round(0.9 * n) / n for key, n in sizes.items()}
        assert results[name].per_key[-1] == pytest.approx(expected), name

    printed = capsys.readouterr().out
    assert (
        "global_unstructured" in printed and "0.900" in printed and "dense test accuracy" in printed
    )
    assert_png(tmp_path / "out" / "accuracy_vs_sparsity.png")
    assert_png(tmp_path / "out" / "layer_sparsity.png")


def test_digits_sweep_rejects_bad_options(monkeypatch: pytest.MonkeyPatch) -> None:
    demo = load_example("digits_sweep", monkeypatch)
    with pytest.raises(SystemExit):
        demo.main(["--amounts", "1"])


def test_lottery_ticket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lottery = load_example("lottery_ticket", monkeypatch)
    argv = ["--rounds", "2", "--epochs", "1", "--out", str(tmp_path), "--threads", threads()]
    rounds = lottery.main(argv)

    sizes = [144, 4608, 32768, 640]
    remaining = [sizes]
    for _ in range(2):  # 20% of each layer's surviving weights per round, rounded half-to-even
        remaining.append([n - round(0.2 * n) for n in remaining[-1]])
    expected = [1 - sum(left) / sum(sizes) for left in remaining]
    assert [r.sparsity for r in rounds] == pytest.approx(expected)
    assert all(0.0 <= r.ticket <= 1.0 and 0.0 <= r.control <= 1.0 for r in rounds)
    printed = capsys.readouterr().out
    assert "ticket acc" in printed and printed.count("%") == 3 * 3
    assert_png(tmp_path / "lottery_ticket.png")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_migrate_from_torch_prune(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    migrate = load_example("migrate_from_torch_prune", monkeypatch)
    checks = migrate.main(["--seed", str(seed), "--out", str(tmp_path)])
    assert len(checks) == 8 and all(checks.values()), checks
    assert (tmp_path / "torch_pruned.pt").is_file()
    assert "funcprune.compat" in capsys.readouterr().out


def test_digits_sweep_vmapped_results_equal_a_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's two vmapped calls give what one call per amount gives."""
    demo = load_example("digits_sweep", monkeypatch)
    digits = sys.modules["_digits"]
    model = digits.make_model()
    params = digits.init_params(5)
    generator = torch.Generator().manual_seed(0)
    x, y = (
        torch.rand(40, 1, 8, 8, generator=generator),
        torch.randint(0, 10, (40,), generator=generator),
    )
    data = digits.Data(x, y, x, y)
    weights = digits.prunable(params)
    amounts = torch.tensor([0.0, 0.3, 0.55, 0.9])
    for name, factory in demo.method_factories(weights, seed=3).items():
        result = demo.sweep(model, params, factory, amounts, data, weights)
        for i, amount in enumerate(amounts.tolist()):
            masks = factory(torch.tensor(amount))(params)
            accuracy = float(digits.accuracy(model, params, masks, x, y))
            assert result.accuracy[i] == pytest.approx(accuracy, abs=1e-6), (name, amount)
            only_weights = {key: params[key] for key in weights}
            expected = fp.sparsity({k: masks[k] for k in weights}, only_weights)
            assert result.sparsity[i] == pytest.approx(expected.overall), (name, amount)
