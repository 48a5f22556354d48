"""The restricted .pth reader, the sha256 check, the conversion and the weights cache (no TensorFlow)."""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from dermtool import DermtoolError
from dermtool.models import weights
from dermtool.models.weights import (
    RestrictedUnpickler,
    UnsafeWeightsError,
    WeightsIntegrityError,
    import_weights,
    import_weights_report,
    load_converted_weights,
    read_legacy_state_dict,
    restricted_loads,
)

LITE0 = weights.get_source("efficientnet-lite0")


class _SystemCall:
    """Unpickling this runs ``os.system(command)`` with an unrestricted unpickler."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Eval:
    def __init__(self, expression: str) -> None:
        self.expression = expression

    def __reduce__(self):
        return (eval, (self.expression,))


def _legacy_file(path: Path, main_object_pickle: bytes) -> Path:
    """A legacy-format container (magic, protocol, sys info) whose main pickle is ``main_object_pickle``."""
    with open(path, "wb") as handle:
        handle.write(pickle.dumps(weights.LEGACY_MAGIC_NUMBER, protocol=2))
        handle.write(pickle.dumps(weights.LEGACY_PROTOCOL_VERSION, protocol=2))
        handle.write(pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2))
        handle.write(main_object_pickle)
        handle.write(pickle.dumps([], protocol=2))
    return path


# --------------------------------------------------------------------------------- restricted unpickler


def test_os_system_payload_is_refused_and_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"weight": _SystemCall(f"touch {marker}")}, protocol=2)
    with pytest.raises(UnsafeWeightsError, match=r"refusing to load (posix|os)\.system"):
        restricted_loads(payload)
    assert not marker.exists()


def test_eval_payload_is_refused_although_plain_pickle_would_run_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Eval(f"open({str(marker)!r}, 'w').close()"), protocol=2)
    with pytest.raises(UnsafeWeightsError, match=r"(__builtin__|builtins)\.eval"):
        restricted_loads(payload)
    assert not marker.exists()
    pickle.loads(payload)  # control: the payload is live, so the refusal above is what protected us
    assert marker.exists()


def test_malicious_checkpoint_file_is_refused_before_anything_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _legacy_file(tmp_path / "evil.pth", pickle.dumps(_SystemCall(f"touch {marker}"), protocol=2))
    with pytest.raises(UnsafeWeightsError, match="refusing"):
        read_legacy_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize("module, name", [("torch", "load"), ("subprocess", "Popen"), ("collections", "Counter")])
def test_only_the_allow_list_resolves(module: str, name: str) -> None:
    with pytest.raises(UnsafeWeightsError):
        RestrictedUnpickler.__new__(RestrictedUnpickler).find_class(module, name)


def test_storage_stand_ins_cannot_be_called() -> None:
    # GLOBAL 'torch FloatStorage', EMPTY_TUPLE, REDUCE, STOP
    payload = b"\x80\x02ctorch\nFloatStorage\n)R."
    with pytest.raises(UnsafeWeightsError, match="FloatStorage"):
        restricted_loads(payload)


def test_garbage_and_truncated_files_give_a_clear_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UnsafeWeightsError):
        read_legacy_state_dict(garbage)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(LITE0.locate().read_bytes()[:60_000])
    with pytest.raises(UnsafeWeightsError, match="truncated"):
        read_legacy_state_dict(truncated)


# --------------------------------------------------------------------------------- sha256 and conversion


def test_sha256_mismatch_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corrupted = tmp_path / LITE0.file_name
    data = bytearray(LITE0.locate().read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the last float
    corrupted.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match="sha256"):
        read_legacy_state_dict(corrupted, expected_sha256=LITE0.sha256)

    wrong = weights.PretrainedSource(LITE0.name, LITE0.pip_name, LITE0.package, LITE0.file_name, "0" * 64)
    monkeypatch.setitem(weights.PRETRAINED_SOURCES, LITE0.name, wrong)
    with pytest.raises(WeightsIntegrityError, match="expected 0000"):
        import_weights(LITE0.name)
    assert isinstance(WeightsIntegrityError("x"), DermtoolError)


def test_reader_gives_every_tensor_of_the_real_checkpoint() -> None:
    tensors = read_legacy_state_dict(LITE0.locate(), expected_sha256=LITE0.sha256)
    assert len(tensors) == 296  # 247 float32 tensors + 49 int64 BatchNorm num_batches_tracked counters
    floats = {name: array for name, array in tensors.items() if not name.endswith("num_batches_tracked")}
    assert len(floats) == 247 and all(array.dtype == np.float32 for array in floats.values())
    assert sum(array.size for array in floats.values()) == 4_694_024
    assert tensors["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert tensors["_fc.weight"].shape == (1000, 1280)


def test_conversion_layouts() -> None:
    tensors = read_legacy_state_dict(LITE0.locate())
    converted = weights.convert_state_dict(tensors)
    assert converted["stem_conv/kernel"].shape == (3, 3, 3, 32)
    # conv (O, I, kh, kw) -> (kh, kw, I, O)
    np.testing.assert_array_equal(
        converted["block1_expand_conv/kernel"][0, 0], tensors["_blocks.1._expand_conv.weight"][:, :, 0, 0].T
    )
    # depthwise (C, 1, kh, kw) -> (kh, kw, C, 1)
    np.testing.assert_array_equal(
        converted["block3_dwconv/depthwise_kernel"][1, 2, :, 0], tensors["_blocks.3._depthwise_conv.weight"][:, 0, 1, 2]
    )
    np.testing.assert_array_equal(converted["block3_dwconv_bn/moving_variance"], tensors["_blocks.3._bn1.running_var"])
    np.testing.assert_array_equal(converted["predictions/kernel"], tensors["_fc.weight"].T)
    assert "block0_expand_conv/kernel" not in converted  # block 0 has expansion 1
    assert not any("num_batches_tracked" in key for key in converted)


# --------------------------------------------------------------------------------- cache


def test_import_converts_once_then_hits_the_cache(private_weights_cache: Path) -> None:
    first = import_weights_report("efficientnet-lite0")
    assert not first.cache_hit
    assert first.path.parent == private_weights_cache
    assert LITE0.sha256[:16] in first.path.name and first.path.suffix == ".npz"
    modified = first.path.stat().st_mtime_ns
    second = import_weights_report("efficientnet-lite0")
    assert second.cache_hit and second.path == first.path
    assert first.path.stat().st_mtime_ns == modified
    assert import_weights("efficientnet-lite0") == first.path
    assert sorted(p.name for p in private_weights_cache.iterdir()) == [first.path.name]  # no temp files

    arrays = load_converted_weights(first.path)  # allow_pickle=False inside
    assert len(arrays) == 247 and arrays["head_conv/kernel"].shape == (1, 1, 320, 1280)
    with np.load(first.path, allow_pickle=False) as archive:
        assert all(archive[key].dtype != object for key in archive.files)
    metadata = weights.read_cache_metadata(first.path)
    assert metadata["source_sha256"] == LITE0.sha256


def test_explicit_cache_dir_overrides_the_environment(tmp_path: Path, private_weights_cache: Path) -> None:
    path = import_weights("efficientnet-lite0", tmp_path / "elsewhere")
    assert path.parent == tmp_path / "elsewhere"
    assert not private_weights_cache.exists()


def test_cache_write_is_atomic(private_weights_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_savez = np.savez

    def savez_then_crash(handle, **arrays):
        real_savez(handle, **dict(list(arrays.items())[:5]))  # part of the data reaches the disk ...
        raise OSError("disk full")  # ... then the write fails

    monkeypatch.setattr(weights.np, "savez", savez_then_crash)
    with pytest.raises(DermtoolError, match="disk full"):
        import_weights("efficientnet-lite0")
    assert list(private_weights_cache.iterdir()) == []  # neither a partial cache file nor a temp file

    monkeypatch.setattr(weights.np, "savez", real_savez)
    report = import_weights_report("efficientnet-lite0")
    assert not report.cache_hit and len(load_converted_weights(report.path)) == 247


def test_a_corrupt_cache_file_is_converted_again(private_weights_cache: Path) -> None:
    path = weights.cache_path("efficientnet-lite0")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 half a zip")
    report = import_weights_report("efficientnet-lite0")
    assert not report.cache_hit
    assert len(load_converted_weights(path)) == 247


def test_unknown_weights_name() -> None:
    with pytest.raises(DermtoolError, match="efficientnet-lite0"):
        import_weights("resnet50")


def _tiny_checkpoint(path: Path, views: dict[str, tuple], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A hand-written legacy checkpoint: tensors ``name -> (offset, size, stride)`` over one storage [0..5]."""
    storage_type = weights.STORAGE_TYPES["FloatStorage"]
    monkeypatch.setattr(weights, "FloatStorage", storage_type, raising=False)  # so pickle can name it
    storage = object()

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", storage_type, "key0", "cpu", 6, None) if obj is storage else None

    class Tensor:
        def __init__(self, offset, size, stride):
            self.args = (storage, offset, size, stride, False, {})

        def __reduce__(self):
            return (weights._rebuild_tensor_v2, self.args)

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump({name: Tensor(*view) for name, view in views.items()})
    # The stand-ins live in dermtool.models.weights; rewrite their module paths into torch's.
    main = buffer.getvalue()
    main = main.replace(b"dermtool.models.weights\n_rebuild_tensor_v2", b"torch._utils\n_rebuild_tensor_v2")
    main = main.replace(b"dermtool.models.weights\nFloatStorage", b"torch\nFloatStorage")
    assert b"dermtool" not in main
    _legacy_file(path, main)
    data = path.read_bytes()[: -len(pickle.dumps([], protocol=2))]  # replace the empty key list
    values = np.arange(6, dtype="<f4")
    path.write_bytes(data + pickle.dumps(["key0"], protocol=2) + struct.pack("<q", 6) + values.tobytes())
    return path


def test_strided_views_are_materialised_correctly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    views = {
        "matrix": (0, (2, 3), (3, 1)),
        "transposed": (0, (3, 2), (1, 3)),  # a non-contiguous view of the same storage
        "tail": (4, (2,), (1,)),  # a view with an offset
    }
    tensors = read_legacy_state_dict(_tiny_checkpoint(tmp_path / "tiny.pth", views, monkeypatch))
    values = np.arange(6, dtype=np.float32)
    np.testing.assert_array_equal(tensors["matrix"], values.reshape(2, 3))
    np.testing.assert_array_equal(tensors["transposed"], values.reshape(2, 3).T)
    np.testing.assert_array_equal(tensors["tail"], values[4:])


def test_a_view_outside_its_storage_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _tiny_checkpoint(tmp_path / "overflow.pth", {"too_long": (4, (3,), (1,))}, monkeypatch)
    with pytest.raises(UnsafeWeightsError, match="outside its storage"):
        read_legacy_state_dict(path)
