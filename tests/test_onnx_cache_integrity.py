"""Writing the ONNX cache is not enough to swap the model the grader runs."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from grader.encoding import onnx_encoder
from grader.encoding.weights import resolve_model
from grader.errors import ModelError
from tests.test_onnx_encoder import _model_folder, int8_cache  # noqa: F401  (the session's built cache)


def _rebuild_asked():
    raise ModelError("rebuild asked for")


def _copy(int8_cache, tmp_path, monkeypatch):  # noqa: F811
    shutil.copytree(int8_cache / "onnx", tmp_path / "onnx")
    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path))
    return _model_folder(tmp_path)


def test_the_cached_file_loads_without_a_rebuild(int8_cache, tmp_path, monkeypatch):  # noqa: F811
    _copy(int8_cache, tmp_path, monkeypatch)
    folder, name, sha = resolve_model(None)
    encoder = onnx_encoder.load_onnx_encoder(folder, name, sha, _rebuild_asked, threads=1)
    assert encoder.precision == "int8"


def test_a_swapped_file_with_a_matching_manifest_is_rebuilt(int8_cache, tmp_path, monkeypatch):  # noqa: F811
    """An attacker writes another model and a manifest that hashes it: the seal does not match."""
    folder_in_cache = _copy(int8_cache, tmp_path, monkeypatch)
    model, manifest_path = folder_in_cache / onnx_encoder.MODEL_FILE, folder_in_cache / onnx_encoder.MANIFEST_FILE
    swapped = bytearray(model.read_bytes())
    swapped[len(swapped) // 3] ^= 0x01
    model.write_bytes(bytes(swapped))
    manifest = json.loads(manifest_path.read_text())
    manifest["sha256"] = hashlib.sha256(bytes(swapped)).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    folder, name, sha = resolve_model(None)
    with pytest.raises(ModelError, match="rebuild asked for"):
        onnx_encoder.load_onnx_encoder(folder, name, sha, _rebuild_asked, threads=1)


@pytest.mark.parametrize("name", [onnx_encoder.MODEL_FILE, onnx_encoder.MANIFEST_FILE])
def test_a_link_to_a_device_is_rebuilt_not_read(int8_cache, tmp_path, monkeypatch, name):  # noqa: F811
    folder_in_cache = _copy(int8_cache, tmp_path, monkeypatch)
    (folder_in_cache / name).unlink()
    (folder_in_cache / name).symlink_to("/dev/zero")
    folder, model_name, sha = resolve_model(None)
    with pytest.raises(ModelError, match="rebuild asked for"):
        onnx_encoder.load_onnx_encoder(folder, model_name, sha, _rebuild_asked, threads=1)
