"""The one-time ONNX build says on stderr what it builds, where, about how long, and how long it took.

A real build takes about 5 s and tests/test_onnx_encoder.py already does one; here the
build copies the int8 folder the session's embedder put in the user cache (same key,
same seal), and builds for real only when there is none (a session on a GPU).
"""

from __future__ import annotations

import re
import shutil

import pytest

from grader.encoding import onnx_encoder
from grader.encoding.embedder import SentenceTransformerEmbedder
from grader.encoding.weights import resolve_model


@pytest.fixture
def fresh_cache(embedder, tmp_path, monkeypatch):
    """An empty cache folder whose first int8 build is quick: a copy of the user cache's file when it holds one."""
    folder, name, sha = resolve_model(None)
    built = onnx_encoder.cache_folder(folder, name, sha, "int8")
    real_build = onnx_encoder._build

    def build(target, *args, **kwargs):
        if built.is_dir():
            shutil.copytree(built, target)
            if onnx_encoder._read_verified(target, sha) is not None:
                return
            shutil.rmtree(target)
        real_build(target, *args, **kwargs)

    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(onnx_encoder, "_build", build)
    return tmp_path


def test_a_first_build_says_what_where_and_how_long_and_a_cached_load_says_nothing(fresh_cache, capfd):
    SentenceTransformerEmbedder(backend="int8", device="cpu").load()
    err = capfd.readouterr().err
    target = next((fresh_cache / "onnx").iterdir())
    assert f"building the int8 ONNX encoder for all-MiniLM-L6-v2 in {target} (once; about 5 s)..." in err
    assert re.search(r"^built the int8 ONNX encoder in \d+\.\d s$", err, re.MULTILINE), err
    assert err.index("building the") < err.index("built the")

    SentenceTransformerEmbedder(backend="int8", device="cpu").load()
    assert "ONNX encoder" not in capfd.readouterr().err


MINILM = onnx_encoder.BUILD_REFERENCE_BYTES


@pytest.mark.parametrize(("precision", "size", "seconds"), [("int8", MINILM, 5), ("fp32", MINILM, 5),
                                                            ("fp32", 438_000_000, 25), ("int8", 200_000_000, 15),
                                                            ("int8", 1_000_000, 5)])
def test_the_estimate_grows_with_the_weights(tmp_path, precision, size, seconds):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with open(tmp_path / "model.safetensors", "r+b") as fh:
        fh.truncate(size)  # sparse: no disk used
    assert onnx_encoder.build_estimate(tmp_path, precision) == seconds
