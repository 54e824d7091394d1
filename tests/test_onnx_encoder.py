"""The ONNX Runtime backends: the encoder exported to ONNX (fp32, or int8-quantised), cached and run.

The int8 file is built once per test session into a temporary cache folder, to test the
build; the session's embedder (int8, the CPU default) and the fp32 encoder read the user cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from grader.encoding import onnx_encoder
from grader.encoding.embedder import SentenceTransformerEmbedder
from grader.errors import ConfigError, ModelError, ModelIntegrityError
from grader.encoding.weights import resolve_model

TEXTS = [
    "The forget gate keeps the cell state.",
    "Gradients vanish through repeated multiplication.",
    "LSTMs add a cell state that is updated additively, so the gradient does not vanish. " * 25,  # two windows
    "",
]


@pytest.fixture(scope="session")
def int8_cache(tmp_path_factory):
    """A cache folder holding the int8 ONNX file of the default model, built once."""
    root = tmp_path_factory.mktemp("grader-cache")
    previous = os.environ.get("GRADER_CACHE_DIR")
    os.environ["GRADER_CACHE_DIR"] = str(root)
    try:
        SentenceTransformerEmbedder(backend="int8", device="cpu").load()
    finally:
        if previous is None:
            os.environ.pop("GRADER_CACHE_DIR", None)
        else:
            os.environ["GRADER_CACHE_DIR"] = previous
    return root


@pytest.fixture
def int8(int8_cache, monkeypatch):
    """A fresh int8 embedder reading the session's cache."""
    monkeypatch.setenv("GRADER_CACHE_DIR", str(int8_cache))
    return SentenceTransformerEmbedder(backend="int8", device="cpu").load()


def _model_folder(cache: Path) -> Path:
    (folder,) = (cache / "onnx").iterdir()
    return folder


def _never_build():
    raise AssertionError("the cached ONNX file should have been used")


def test_int8_vectors_stay_close_to_fp32(int8, embedder):
    a, b = int8.encode_tokens(TEXTS), embedder.encode_tokens(TEXTS)
    assert int8.info()["backend"] == "int8" and int8.info()["sha256"] == embedder.info()["sha256"]
    cosines = [float(x.vector @ y.vector) for x, y in zip(a[:3], b[:3])]
    assert min(cosines) > 0.97 and np.mean(cosines) > 0.98, cosines
    for x, y in zip(a, b):
        assert x.tokens.shape == y.tokens.shape and x.tokens.dtype == np.float32
        assert np.array_equal(x.offsets, y.offsets)
        assert np.isclose(np.linalg.norm(x.vector), 1.0, atol=1e-4) or not len(x.tokens)
        if len(x.tokens):
            tok = (x.tokens * y.tokens).sum(1) / np.linalg.norm(x.tokens, axis=1) / np.linalg.norm(y.tokens, axis=1)
            assert tok.mean() > 0.95
    assert int8.encode([]).shape == (0, 384)
    assert int8.batch_size > 1  # activation scales are per token, so texts can share a call


def test_default_cpu_encoder_is_int8_and_fp32_matches_torch(embedder):
    """The default CPU encoder is int8 on ONNX Runtime; fp32 there gives the vectors of plain torch."""
    from grader.engine import get_embedder

    assert embedder.info()["backend"] == "int8" and embedder.info()["runtime"] == "onnxruntime"
    fp32 = get_embedder(None, "cpu", "fp32")
    assert fp32.load().info()["backend"] == "fp32" and fp32.info()["runtime"] == "onnxruntime"
    torch_fp32 = get_embedder(None, "cpu", "torch")
    assert torch_fp32.load().info()["runtime"] == "torch" and torch_fp32.backend == "fp32"
    for x, y in zip(fp32.encode_tokens(TEXTS), torch_fp32.encode_tokens(TEXTS)):
        assert x.tokens.shape == y.tokens.shape and np.array_equal(x.offsets, y.offsets)
        assert np.abs(x.vector - y.vector).max() < 1e-5
        assert not len(x.tokens) or np.abs(x.tokens - y.tokens).max() < 1e-4


def test_auto_falls_back_to_fp32_when_int8_cannot_be_built(monkeypatch, caplog):
    """A model whose int8 file will not build still loads under auto: fp32 on ONNX Runtime, with a warning."""
    real = onnx_encoder.load_onnx_encoder

    def no_int8(*args, **kwargs):
        if (args[5] if len(args) > 5 else kwargs.get("precision")) == "int8":
            raise ModelError("injected: this model does not quantise")
        return real(*args, **kwargs)

    monkeypatch.setattr(onnx_encoder, "load_onnx_encoder", no_int8)
    with caplog.at_level("WARNING", logger="grader.encoding.embedder"):
        fallback = SentenceTransformerEmbedder(device="cpu").load()
    assert fallback.info()["backend"] == "fp32" and fallback.info()["runtime"] == "onnxruntime"
    assert "int8 on ONNX Runtime is not available (injected" in caplog.text
    assert "running the encoder in fp32 on ONNX Runtime" in caplog.text
    with pytest.raises(ModelError, match="injected"):  # asked for by name, int8 fails loudly
        SentenceTransformerEmbedder(device="cpu", backend="int8").load()


@pytest.mark.parametrize("backend", ["fp32", "int8"])
def test_batches_run_side_by_side_give_what_one_at_a_time_gives(backend, int8):
    """The pooled single-threaded calls return each batch's own vectors, in order."""
    from grader.engine import get_embedder

    enc = get_embedder(None, "cpu", "fp32") if backend == "fp32" else int8
    texts = [f"Answer number {i}: the cell state carries gradients" + " far" * (i % 7) for i in range(40)]
    together = enc.encode(texts)
    alone = np.stack([enc.encode([t])[0] for t in texts])
    assert np.abs(together - alone).max() < 1e-5


STREAM_TEXTS = ([f"Answer {i}: the cell state carries gradients" + " far" * (i % 9) for i in range(70)]
                + [TEXTS[2], "", TEXTS[2][:900] + " and the forget gate decides. " * 20, "Answer 3: the cell state"])


def _count_runs(encoder, monkeypatch, fail_at: int | None = None) -> list[int]:
    """Count the encoder's ONNX Runtime calls (as they start); the call numbered ``fail_at`` raises."""
    started = [0]
    run = encoder._model.run

    def counted(*args):
        started[0] += 1
        if started[0] == fail_at:
            raise RuntimeError("injected encoder failure")
        return run(*args)

    monkeypatch.setattr(encoder._model, "run", counted)
    return started


@pytest.mark.parametrize("backend", ["auto", "int8"])
def test_streamed_encodings_come_once_each_and_equal_those_of_one_text_alone(backend, embedder, int8):
    """Many batches side by side, texts of several windows, an empty text: each index once, right vectors."""
    enc = embedder if backend == "auto" else int8
    streamed = list(enc.iter_encode_tokens(STREAM_TEXTS))
    assert sorted(i for i, _ in streamed) == list(range(len(STREAM_TEXTS)))
    for i, got in streamed:
        alone = enc.encode_tokens([STREAM_TEXTS[i]])[0]
        assert got.tokens.shape == alone.tokens.shape and np.array_equal(got.offsets, alone.offsets)
        assert np.abs(got.vector - alone.vector).max() < 1e-5
        assert got.tokens.size == 0 or np.abs(got.tokens - alone.tokens).max() < 1e-4
    assert np.abs(np.linalg.norm(np.stack([e.vector for _, e in streamed]), axis=1) - 1).max() < 1e-5


def test_several_lists_stream_as_one(int8, monkeypatch):
    """Each (list, index) once with its own vectors, and the next list's batches start before the
    previous list's last encoding is handed out, so no core idles at the seam."""
    if int8._model.threads == 1:
        pytest.skip("batches run side by side only on a machine with several cores")
    lists = [STREAM_TEXTS[:40], [], STREAM_TEXTS[40:], STREAM_TEXTS[:5]]
    started = _count_runs(int8, monkeypatch)
    list(int8.iter_encode_tokens(lists[0]))
    first_alone = started[0]
    started[0] = 0
    runs_at_last_of_first, seen = None, {}
    for n, i, encoding in int8.iter_encode_lists(iter(lists)):  # read lazily, as the grader's chunks are
        seen[(n, i)] = encoding
        if n == 0 and len(seen) == len(lists[0]):
            runs_at_last_of_first = started[0]
    assert runs_at_last_of_first > first_alone  # the second list was already being encoded
    assert sorted(seen) == [(n, i) for n, texts in enumerate(lists) for i in range(len(texts))]
    assert [n for n, _ in seen] == sorted(n for n, _ in seen)  # list after list
    for (n, i), encoding in seen.items():
        alone = int8.encode_tokens([lists[n][i]])[0]
        assert np.array_equal(encoding.offsets, alone.offsets)
        assert np.abs(encoding.vector - alone.vector).max() < 1e-5
        assert encoding.tokens.size == 0 or np.abs(encoding.tokens - alone.tokens).max() < 1e-4


def test_a_stream_closed_early_starts_no_more_batches(int8, monkeypatch):
    if int8._model.threads == 1:
        pytest.skip("batches run side by side only on a machine with several cores")
    started = _count_runs(int8, monkeypatch)
    stream = int8.iter_encode_tokens(STREAM_TEXTS * 4)  # about 20 batches
    next(stream)
    stream.close()
    int8._model._pool.submit(lambda: None).result()  # every batch already handed to the pool has run
    assert started[0] <= 2 * int8._model.threads + 1
    assert len(int8.encode_tokens(STREAM_TEXTS[:40])) == 40  # the encoder still works


def test_an_encoder_failure_in_a_side_by_side_batch_reaches_the_caller(int8, monkeypatch):
    _count_runs(int8, monkeypatch, fail_at=3)
    with pytest.raises(RuntimeError, match="injected encoder failure"):
        int8.encode_tokens(STREAM_TEXTS)
    monkeypatch.undo()
    assert len(int8.encode_tokens(STREAM_TEXTS)) == len(STREAM_TEXTS)


def _batch_rows(encoder, monkeypatch) -> list[int]:
    """The number of texts in each ONNX Runtime call of ``encoder``, as the calls start."""
    rows: list[int] = []
    run = encoder._model.run

    def recorded(ids, *rest):
        rows.append(len(ids))
        return run(ids, *rest)

    monkeypatch.setattr(encoder._model, "run", recorded)
    return rows


def test_a_short_list_is_cut_into_batches_for_every_core(int8, int8_cache, monkeypatch):
    """Eight answers (an HTTP request) run as two batches per core, side by side, not as one batch."""
    if int8._model.threads < 2:
        pytest.skip("one core: nothing runs side by side")
    texts = [f"Answer {i}: the cell state carries gradients" + " far" * i for i in range(8)]
    rows = _batch_rows(int8, monkeypatch)
    cut = int8.encode(texts)
    assert sum(rows) == 8 and len(rows) == 2 * int8._model.threads and max(rows) == 2
    fixed = SentenceTransformerEmbedder(backend="int8", device="cpu", batch_size=16).load()  # asked for: as given
    fixed_rows = _batch_rows(fixed, monkeypatch)
    assert np.abs(fixed.encode(texts) - cut).max() < 1e-5 and fixed_rows == [8]
    rows.clear()
    int8.encode([f"{t} ({k})" for k in range(20) for t in texts])  # a long list keeps full batches
    assert max(rows) == int8.batch_size


def test_grading_starts_before_the_last_batch_is_encoded(int8, monkeypatch):
    """The grader takes each answer as soon as it is encoded, so its work overlaps the encoder's."""
    from grader.engine import Grader
    from grader.rubric import ShortAnswerQuestion

    grader = Grader(None, embedder=int8)
    question = ShortAnswerQuestion(id="q", prompt="Why do LSTMs keep gradients alive?", max_points=2.0,
                                   reference_answers=("The cell state is updated additively, with gates.",))
    grader.prepare(question)  # its own encoder calls (reference, prompt) are not the answers' stream
    started = _count_runs(int8, monkeypatch)
    runs_at_first_grade = []
    grade_short = grader._grade_short

    def noted(*args):
        runs_at_first_grade.append(started[0])
        return grade_short(*args)

    monkeypatch.setattr(grader, "_grade_short", noted)
    pairs = [(question, f"{t} ({i})") for i, t in enumerate(STREAM_TEXTS * 3)]
    results = grader.grade_pairs(pairs)
    batches = started[0]
    assert batches >= 10 and len(runs_at_first_grade) == len(pairs)
    assert runs_at_first_grade[0] <= 2 * int8._model.threads + 1 < batches
    alone = [grader.grade_pairs([pair])[0] for pair in pairs[::7]]  # one batch each, on the main session
    assert [(r.points, r.label) for r in results[::7]] == [(r.points, r.label) for r in alone]


def test_grades_do_not_depend_on_where_the_chunks_end(int8, monkeypatch):
    """Chunks of a few answers, all in one stream, grade every answer as one big chunk does."""
    from grader.engine import grader as engine
    from grader.engine import Grader
    from grader.rubric import ShortAnswerQuestion

    question = ShortAnswerQuestion(id="q", prompt="Why do LSTMs keep gradients alive?", max_points=2.0,
                                   reference_answers=("The cell state is updated additively, with gates.",))
    other = ShortAnswerQuestion(id="r", prompt="What does the forget gate do?", max_points=1.0,
                                reference_answers=("It decides what the cell state keeps.",))
    pairs = [(question if i % 3 else other, t) for i, t in enumerate(STREAM_TEXTS)]
    pairs += [(other, STREAM_TEXTS[4]), (question, STREAM_TEXTS[4])]  # one text, two questions
    whole = Grader(None, embedder=int8).grade_pairs(pairs)
    monkeypatch.setattr(engine, "ENCODE_CHUNK", 7)
    chunked = Grader(None, embedder=int8).grade_pairs(pairs)
    assert [(r.question_id, r.points, r.label, r.flags) for r in chunked] == \
        [(r.question_id, r.points, r.label, r.flags) for r in whole]
    for a, b in zip(chunked, whole):  # padding to other widths may move the last bits only
        assert max((abs(a.signals[k] - b.signals[k]) for k in a.signals), default=0.0) < 1e-3


def test_auto_falls_back_to_torch_without_onnxruntime(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with caplog.at_level("WARNING", logger="grader.encoding.embedder"):
        fallback = SentenceTransformerEmbedder(device="cpu").load()
    assert fallback.info()["runtime"] == "torch" and fallback.backend == "fp32"
    assert "running the encoder in torch" in caplog.text and "onnxruntime" in caplog.text
    assert fallback.encode(["a cell state"]).shape == (1, 384)


def test_cached_file_is_reused_and_verified(int8_cache, monkeypatch):
    monkeypatch.setenv("GRADER_CACHE_DIR", str(int8_cache))
    folder, name, sha = resolve_model(None)
    target = _model_folder(int8_cache)
    assert target == onnx_encoder.cache_folder(folder, name, sha)
    manifest = json.loads((target / onnx_encoder.MANIFEST_FILE).read_text())
    assert manifest["source_sha256"] == sha and manifest["dimension"] == 384 and manifest["max_len"] == 256
    encoder = onnx_encoder.load_onnx_encoder(folder, name, sha, _never_build, threads=1)
    assert encoder.sha256 == manifest["sha256"]
    assert not [p for p in (int8_cache / "onnx").iterdir() if p.name.startswith(".")]  # no staging left


def test_int8_file_keeps_no_large_fp32_weights(int8_cache):
    """Matrices and the word table are int8: the file is a quarter of the fp32 one, and so is its memory."""
    import onnx
    from onnx import TensorProto

    graph = onnx.load(str(_model_folder(int8_cache) / onnx_encoder.MODEL_FILE)).graph
    size = {t: sum(int(np.prod(i.dims)) for i in graph.initializer if i.data_type == t)
            for t in (TensorProto.FLOAT, TensorProto.INT8)}
    assert size[TensorProto.INT8] > 20_000_000 and size[TensorProto.FLOAT] * 4 < 2_000_000, size
    assert {n.op_type for n in graph.node} >= {"MatMulIntegerToFloat", "ReduceMax"}  # scales per token row


def test_cache_key_follows_the_weights_and_the_settings(monkeypatch):
    folder, _, sha = resolve_model(None)
    key = onnx_encoder.cache_key(folder, sha)
    assert onnx_encoder.cache_key(folder, "0" * 64) != key
    monkeypatch.setattr(onnx_encoder, "SCHEME", "per-tensor")
    assert onnx_encoder.cache_key(folder, sha) != key


def test_a_build_removes_files_of_older_formats_only(tmp_path):
    """Upgrading leaves no stale ONNX files behind, and touches no other model, precision or version."""
    def folder(name, fmt):
        (tmp_path / name).mkdir()
        (tmp_path / name / onnx_encoder.MANIFEST_FILE).write_text(json.dumps({"settings": {"format": fmt}}))
        return tmp_path / name

    current = onnx_encoder.FORMAT
    target = folder("m-int8-aaa", current)
    older = folder("m-int8-bbb", current - 1)
    kept = [folder("m-int8-ccc", current), folder("m-fp32-ddd", current - 1), folder("m-int8-int8-eee", 1)]
    (tmp_path / "m-int8-fff").mkdir()  # no manifest: being built by another process
    onnx_encoder._prune_older_formats(target)
    assert not older.exists()
    assert target.exists() and all(k.exists() for k in kept) and (tmp_path / "m-int8-fff").exists()


@pytest.fixture
def tampered(int8_cache, tmp_path, monkeypatch):
    """A copy of the cache whose ONNX file has one byte changed."""
    shutil.copytree(int8_cache / "onnx", tmp_path / "onnx")
    model = _model_folder(tmp_path) / onnx_encoder.MODEL_FILE
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_tampered_file_is_not_loaded_but_rebuilt(tampered):
    folder, name, sha = resolve_model(None)

    def build():
        raise ModelError("rebuild asked for")

    with pytest.raises(ModelError, match="rebuild asked for"):
        onnx_encoder.load_onnx_encoder(folder, name, sha, build, threads=1)


def test_tampered_file_that_stays_wrong_is_an_integrity_error(tampered, monkeypatch):
    folder, name, sha = resolve_model(None)
    monkeypatch.setattr(onnx_encoder, "_build", lambda *args: None)  # a rebuild that changes nothing
    with pytest.raises(ModelIntegrityError, match="does not match the sha256"):
        onnx_encoder.load_onnx_encoder(folder, name, sha, _never_build, threads=1)


def test_missing_onnxruntime_names_the_backend_and_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=r"backend 'int8' needs the onnxruntime package.*pip install onnxruntime==1.32.0"):
        SentenceTransformerEmbedder(backend="int8", device="cpu").load()


def test_int8_refuses_a_gpu_device():
    with pytest.raises(ConfigError, match="CPU only"):
        SentenceTransformerEmbedder(backend="int8", device="cuda").load()


@pytest.mark.parametrize("backend", ["int8", "auto"])
def test_warm_onnx_start_does_not_import_torch(backend, int8_cache, embedder):
    code = ("import sys; from grader.encoding.embedder import SentenceTransformerEmbedder as E; "
            f"v = E(backend='{backend}').encode(['a cell state']); "
            "print(v.shape, 'torch' in sys.modules)")
    env = dict(os.environ)
    if backend == "int8":
        env["GRADER_CACHE_DIR"] = str(int8_cache)  # auto reads the session's own cache, built by its embedder
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["(1,", "384)", "False"]
