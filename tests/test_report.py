"""sparsity_report: its numbers against fp.sparsity, its table, dict and chart; the warning."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import funcprune as fp
from funcprune.report import FullyPrunedWarning, sparsity_report, warn_fully_pruned


@given(seed=st.integers(0, 1000), amount=st.floats(0.0, 0.99))
def test_report_numbers_equal_sparsity(seed: int, amount: float) -> None:
    generator = torch.Generator().manual_seed(seed)
    params = {
        "a.weight": torch.randn(4, 5, generator=generator),
        "a.bias": torch.randn(4, generator=generator),
    }
    masks = fp.only(fp.l1_unstructured(amount), include="weight")(params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FullyPrunedWarning)
        report = sparsity_report(masks, params)
    reference = fp.sparsity(masks, params)
    assert report.overall == pytest.approx(reference.overall)
    assert {row.key: row.sparsity for row in report.layers} == pytest.approx(reference.per_key)
    assert [row.key for row in report.layers] == list(params)
    assert report.kept == sum(int(m.sum()) for m in masks.values())


def test_table_and_dict() -> None:
    params = {"conv.weight": torch.zeros(2, 1, 2, 2), "conv.bias": torch.zeros(2)}
    masks = {"conv.weight": torch.tensor([True] * 6 + [False] * 2).reshape(2, 1, 2, 2)}
    report = sparsity_report(masks, params)
    assert str(report).splitlines() == [
        "key          shape         kept/total  sparsity",
        "conv.weight  (2, 1, 2, 2)  6/8           25.00%",
        "conv.bias    (2,)          2/2            0.00%",
        "total                      8/10          20.00%",
    ]
    assert report.to_dict() == {
        "overall": pytest.approx(0.2),
        "kept": 8,
        "total": 10,
        "layers": {
            "conv.weight": {"shape": [2, 1, 2, 2], "kept": 6, "total": 8, "sparsity": 0.25},
            "conv.bias": {"shape": [2], "kept": 2, "total": 2, "sparsity": 0.0},
        },
    }


def test_bar_chart_shows_each_key() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    masks = {"a": torch.tensor([True, False, False, False]), "b": torch.tensor([True, True])}
    ax = sparsity_report(masks).plot()
    assert [float(bar.get_width()) for bar in ax.patches] == [0.75, 0.0]
    assert [label.get_text() for label in ax.get_yticklabels()] == ["a", "b"]
    plt.close(ax.figure)


def test_fully_pruned_tensors_warn_as_global_pruning_of_a_small_head_does() -> None:
    torch.manual_seed(0)
    params = {"body": torch.randn(1000), "fc": torch.randn(10) * 1e-3}  # uniformly tiny head
    masks = fp.global_unstructured(0.8)(params)
    with pytest.warns(FullyPrunedWarning, match=r"\['fc'\]"):
        report = sparsity_report(masks, params)
    assert report.fully_pruned == ["fc"]
    with pytest.warns(FullyPrunedWarning):
        assert warn_fully_pruned(masks) == ["fc"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sparsity_report(masks, params, warn=False).fully_pruned == ["fc"]
        assert warn_fully_pruned({"e": torch.ones(0, dtype=torch.bool)}) == []  # no entries
    assert issubclass(FullyPrunedWarning, UserWarning)


def test_report_validates_masks() -> None:
    with pytest.raises(TypeError, match="bool"):
        sparsity_report({"w": torch.ones(2)})
    with pytest.raises(ValueError, match="shape"):
        sparsity_report({"w": torch.ones(3, dtype=torch.bool)}, {"w": torch.ones(2)})
