"""Mask files: exact round trips, 1 bit per entry, metadata, clear errors, atomic writes."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import pytest
import safetensors.torch
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import funcprune as fp
from funcprune.io import _atomic, load_masks, mask_file_info, save_masks
from funcprune.io._bits import pack_bits, unpack_bits

shapes = st.lists(st.integers(0, 9), min_size=0, max_size=4).map(tuple)


def random_mask(shape: tuple[int, ...], seed: int, density: float = 0.5) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < density


def header_size(path: Path) -> int:
    """Bytes before the tensor data: the 8-byte length and the JSON header."""
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


@given(shape=shapes, seed=st.integers(0, 2**31 - 1), density=st.sampled_from([0.0, 0.3, 1.0]))
def test_bits_round_trip_exactly(shape: tuple[int, ...], seed: int, density: float) -> None:
    mask = random_mask(shape, seed, density)
    packed = pack_bits(mask)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(mask.numel() / 8)
    assert torch.equal(unpack_bits(packed, shape), mask)


def test_bits_are_little_endian_with_zero_padding() -> None:
    mask = torch.tensor([True, True, False, False, False, False, False, False, False, True])
    assert pack_bits(mask).tolist() == [0b11, 0b10]


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    masks=st.dictionaries(
        st.text(min_size=0, max_size=12).filter(lambda k: k != "__metadata__"),
        st.tuples(shapes, st.integers(0, 2**31 - 1)).map(lambda s: random_mask(*s)),
        max_size=4,
    )
)
def test_files_round_trip_exactly(masks: dict[str, torch.Tensor], tmp_path: Path) -> None:
    """Each example overwrites the same file, which also exercises replacing a file."""
    path = tmp_path / "m.safetensors"
    save_masks(path, masks)
    loaded = load_masks(path)
    assert list(loaded) == list(masks)
    for key, mask in masks.items():
        assert loaded[key].dtype == torch.bool and loaded[key].shape == mask.shape
        assert torch.equal(loaded[key], mask), key


def test_empty_zero_d_and_views_round_trip(tmp_path: Path) -> None:
    masks = {
        "empty": torch.zeros(0, 3, dtype=torch.bool),
        "scalar_kept": torch.tensor(True),
        "scalar_pruned": torch.tensor(False),
        "transposed": random_mask((5, 7), 1).T,
    }
    save_masks(tmp_path / "m.safetensors", masks)
    loaded = load_masks(tmp_path / "m.safetensors")
    assert {k: (v.shape, v.tolist()) for k, v in loaded.items()} == {
        k: (v.shape, v.tolist()) for k, v in masks.items()
    }


def test_file_is_one_thirty_second_of_float32_plus_header(tmp_path: Path) -> None:
    params = {"a.weight": torch.randn(300, 257), "a.bias": torch.randn(300), "c": torch.randn(5)}
    masks = fp.l1_unstructured(0.9)(params)
    path = tmp_path / "m.safetensors"
    save_masks(path, masks, method=fp.l1_unstructured(0.9))
    float32_bytes = sum(4 * p.numel() for p in params.values())
    data_bytes = path.stat().st_size - header_size(path)
    assert data_bytes == sum(math.ceil(p.numel() / 8) for p in params.values())
    assert path.stat().st_size <= float32_bytes / 32 + header_size(path) + len(params)
    assert header_size(path) < 1024


def test_metadata_records_method_versions_and_user_entries(tmp_path: Path) -> None:
    params = {"w": torch.randn(4, 4)}
    method = fp.chain(fp.l1_unstructured(0.5), fp.ln_structured(1, n=2, dim=0))
    save_masks(tmp_path / "m.safetensors", method(params), method=method, metadata={"step": "10"})
    info = mask_file_info(tmp_path / "m.safetensors")
    assert info.method == repr(method)
    assert info.shapes == {"w": (4, 4)}
    assert info.metadata == {"step": "10"}
    assert (info.funcprune_version, info.torch_version) == (fp.__version__, torch.__version__)
    save_masks(tmp_path / "n.safetensors", method(params))
    assert mask_file_info(tmp_path / "n.safetensors").method is None


def test_bad_masks_are_type_errors_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    with pytest.raises(TypeError, match=r"'fc.weight' \(torch.float32"):
        save_masks(path, {"ok": torch.ones(2, dtype=torch.bool), "fc.weight": torch.ones(2)})
    with pytest.raises(TypeError, match=r"mask keys must be str.*\b3\b"):
        save_masks(path, {3: torch.ones(2, dtype=torch.bool)})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match=r"'w' \(list\)"):
        save_masks(path, {"w": [True]})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="mapping"):
        save_masks(path, [torch.ones(2, dtype=torch.bool)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"'w' \(torch.bool, torch.sparse_coo"):
        save_masks(path, {"w": torch.ones(2, dtype=torch.bool).to_sparse()})
    assert not path.exists()


def test_bad_metadata(tmp_path: Path) -> None:
    masks = {"w": torch.ones(2, dtype=torch.bool)}
    with pytest.raises(TypeError, match="'n'"):
        save_masks(tmp_path / "m.safetensors", masks, metadata={"n": 3})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"\['funcprune.version'\] are reserved"):
        save_masks(tmp_path / "m.safetensors", masks, metadata={"funcprune.version": "x"})


def test_saving_leaves_the_masks_alone(tmp_path: Path) -> None:
    masks = {"w": random_mask((6, 6), 0)}
    before = masks["w"].clone()
    save_masks(tmp_path / "m.safetensors", masks)
    assert torch.equal(masks["w"], before)


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "m.safetensors"
    save_masks(path, {"fc.weight": random_mask((40, 40), 2), "fc.bias": random_mask((40,), 3)})
    return path


def test_a_flipped_byte_names_the_key(saved: Path) -> None:
    data = bytearray(saved.read_bytes())
    data[header_size(saved) + 1] ^= 0xFF  # inside the first tensor's data (safetensors sorts names)
    saved.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"corrupt: tensors \['fc.bias'\] do not match"):
        load_masks(saved)


@pytest.mark.parametrize("keep", [0, 5, 100, -1])
def test_a_truncated_file_is_a_value_error(saved: Path, keep: int) -> None:
    saved.write_bytes(saved.read_bytes()[:keep])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_masks(saved)


def test_other_safetensors_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "weights.safetensors"
    safetensors.torch.save_file({"w": torch.ones(2)}, str(path))
    with pytest.raises(ValueError, match=r"not a funcprune\.masks/1 file"):
        load_masks(path)


def test_inconsistent_shapes_name_the_key(saved: Path, tmp_path: Path) -> None:
    """A file whose shapes do not fit its data (written by hand) is refused, naming the key."""
    tensors = safetensors.torch.load(saved.read_bytes())
    metadata = dict(safetensors.safe_open(str(saved), "pt").metadata())
    metadata["funcprune.mask_shapes"] = json.dumps({"fc.weight": [40, 41], "fc.bias": [40]})
    forged = tmp_path / "forged.safetensors"
    safetensors.torch.save_file(tensors, str(forged), metadata=metadata)
    with pytest.raises(ValueError, match=r"mask 'fc.weight' of shape \(40, 41\) needs 205"):
        load_masks(forged)
    metadata["funcprune.mask_shapes"] = json.dumps({"fc.weight": [40, 40]})
    safetensors.torch.save_file(tensors, str(forged), metadata=metadata)
    with pytest.raises(ValueError, match=r"masks \['fc.bias'\] have no shape"):
        load_masks(forged)


def test_params_check_names_mismatched_keys(saved: Path) -> None:
    good = {"fc.weight": torch.zeros(40, 40), "fc.bias": torch.zeros(40), "other": torch.zeros(1)}
    assert set(load_masks(saved, params=good)) == {"fc.weight", "fc.bias"}
    wrong_shape = {**good, "fc.weight": torch.zeros(40, 39)}
    with pytest.raises(ValueError, match=r"'fc.weight': mask \(40, 40\) vs parameter \(40, 39\)"):
        load_masks(saved, params=wrong_shape)
    with pytest.raises(ValueError, match=r"keys that are not parameters: \['fc.bias'\]"):
        load_masks(saved, params={"fc.weight": torch.zeros(40, 40)})


def test_params_place_masks_on_their_devices(saved: Path) -> None:
    params = {"fc.weight": torch.zeros(40, 40, device="meta"), "fc.bias": torch.zeros(40)}
    loaded = load_masks(saved, params=params)
    assert loaded["fc.weight"].device.type == "meta" and loaded["fc.bias"].device.type == "cpu"


def test_loaded_masks_prune_like_the_originals(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    params = {k: v.detach() for k, v in model.named_parameters()}
    masks = fp.global_unstructured(0.7)(params)
    save_masks(tmp_path / "m.safetensors", masks)
    x = torch.randn(3, 8)
    loaded = load_masks(tmp_path / "m.safetensors", params=params)
    assert torch.equal(
        fp.masked_call(model, params, loaded, x), fp.masked_call(model, params, masks, x)
    )


def _fail(*args: object) -> None:
    raise OSError("simulated crash")


@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_a_crash_mid_write_keeps_the_previous_file(
    saved: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = saved.read_bytes()
    monkeypatch.setattr(_atomic.os, where, _fail)
    with pytest.raises(OSError, match="simulated crash"):
        save_masks(saved, {"fc.weight": torch.zeros(40, 40, dtype=torch.bool)})
    monkeypatch.undo()
    assert saved.read_bytes() == before
    assert sorted(p.name for p in saved.parent.iterdir()) == [saved.name]  # no temp file left
    assert load_masks(saved)["fc.weight"].any()


def test_a_crash_after_half_the_bytes_keeps_the_previous_file(
    saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = saved.read_bytes()
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, *args: object, **kwargs: object) -> None:
            self.file = real_fdopen(*args, **kwargs)  # type: ignore[arg-type]

        def __enter__(self) -> HalfWriter:
            return self

        def __exit__(self, *exc: object) -> None:
            self.file.close()

        def write(self, data: bytes) -> None:
            self.file.write(data[: len(data) // 2])
            self.file.flush()
            raise OSError("simulated crash")

    monkeypatch.setattr(_atomic.os, "fdopen", HalfWriter)
    with pytest.raises(OSError, match="simulated crash"):
        save_masks(saved, {"x": torch.ones(100, dtype=torch.bool)})
    monkeypatch.undo()
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def test_replacing_keeps_the_file_mode(saved: Path) -> None:
    saved.chmod(0o600)
    save_masks(saved, {"w": torch.ones(2, dtype=torch.bool)})
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert list(load_masks(saved)) == ["w"]
