"""The fine-tuned cross-encoder: training, its folder and manifest, ONNX fp32/int8, and grading with it.

A tiny corpus (4 SAF-en questions x 8 answers) and 1 epoch over 32 tokens keep this
file within about a minute; the agreement figures are measured by ``grader eval --finetune``
(docs/finetune.md), not here.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, SAF_EN

pytestmark = pytest.mark.skipif(not SAF_EN.is_file(), reason="needs ../shared/data/saf_en")
QUESTIONS, PER_QUESTION = 4, 8


def _env(tmp) -> dict:
    # The session's own state folder: another one would hold another cache-sealing key, re-seal the
    # shared ONNX cache with it and make every later process distrust (and rebuild) that cache.
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    return env


def _cli(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A labelled CSV of QUESTIONS questions x PER_QUESTION answers of SAF-en, and a few answers to the example
    rubric's q5 (its key phrases and misconceptions as answers), so that the scorer knows one rubric question."""
    from tests.conftest import RUBRIC
    from grader.rubric import load_rubric

    with open(SAF_EN, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    ids = list(dict.fromkeys(r["question_id"] for r in rows))[:QUESTIONS]
    keep = [r for q in ids for r in [r for r in rows if r["question_id"] == q][:PER_QUESTION]]
    q5 = load_rubric(RUBRIC).question("q5")
    graded = [(k.text, 0.6) for k in q5.key_phrases] + [(m.text, 0.0) for m in q5.misconceptions]
    graded.append((q5.reference_answers[0], 1.0))
    for n, (answer, fraction) in enumerate(graded):
        label = "correct" if fraction == 1.0 else "partially_correct" if fraction else "incorrect"
        keep.append({**{k: "" for k in rows[0]}, "question_id": "q5", "question": q5.prompt,
                     "reference_answer": q5.reference_answers[0], "answer": answer, "score": str(5 * fraction),
                     "max_score": "5", "label": label, "answer_id": f"q5-{n}"})
    path = tmp_path_factory.mktemp("finetune") / "tiny.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(keep)
    return path


@pytest.fixture(scope="module")
def folder(tiny):
    """A scorer folder written by the real CLI: `grader train --finetune`."""
    out = tiny.parent / "scorer"
    done = _cli("train", tiny, "--finetune", "-o", out, "--epochs", 1, "--max-length", 32, "--examples-schedule", 0,
                "--no-validate", env=_env(tiny.parent))
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["output"] == str(out) and summary["epochs"] == 1
    assert "ETA" in done.stderr  # the progress bar
    return out


def test_training_writes_weights_onnx_files_combiner_and_a_manifest_of_their_sha256(folder, tiny):
    from grader.encoding.weights import BUILTIN_MODELS, sha256_of
    from grader.finetune.folder import REQUIRED

    manifest = json.loads((folder / "manifest.json").read_text())
    files = {p.name for p in folder.iterdir()} - {"manifest.json"}
    assert set(manifest["files"]) == files and set(REQUIRED) | {"combiner.json", "combiner-new-questions.json"} <= files
    assert all(manifest["files"][name] == sha256_of(folder / name) for name in files)
    meta = manifest["metadata"]
    assert meta["base_sha256"] == BUILTIN_MODELS["minilm"].sha256
    assert meta["training_data_sha256"] == sha256_of(tiny)
    assert meta["labels"] == ["incorrect", "partially_correct", "correct"]
    assert (meta["seed"], meta["epochs"], meta["max_length"]) == (0, 1, 32)
    assert meta["train_seconds"] > 0 and "validation" in meta
    stacking = json.loads((folder / "combiner.json").read_text())["metadata"]["stacking"]
    assert isinstance(stacking["trusted"], bool) and stacking["log_loss_with"] > 0
    combiner = json.loads((folder / "combiner.json").read_text())
    assert combiner["feature_names"][-2:] == ["ce_fraction", "ce_expected"]
    new_questions = json.loads((folder / "combiner-new-questions.json").read_text())
    assert "ce_fraction" not in new_questions["feature_names"]  # it grades without the scorer
    assert new_questions["metadata"]["training_rows"] == combiner["metadata"]["training_rows"]


def test_the_same_seed_gives_the_same_predictions(tiny):
    from grader.evaluation.corpus import read_corpus
    from grader.finetune import build_pairs
    from grader.finetune.train import FinetuneConfig, finetune, predict

    pairs = build_pairs(read_corpus(tiny)[:12])
    config = FinetuneConfig(epochs=1, max_length=24, batch_size=4, validation=0.0, seed=3)
    first = predict(finetune(pairs, config, progress=False), pairs.first, pairs.answers)
    again = predict(finetune(pairs, config, progress=False), pairs.first, pairs.answers)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert np.ptp(first[1]) > 0  # trained: the answers get different scores


def test_eval_fine_tunes_inside_each_fold_and_reports_it(tiny):
    done = _cli("eval", tiny, "--cv", "unseen-answers", "--folds", 2, "--finetune", "--epochs", 1, "--max-length", 32,
                "--examples-per-question", 0, "--json", env=_env(tiny.parent))
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    with open(tiny, encoding="utf-8", newline="") as fh:
        n_rows = sum(1 for _ in csv.DictReader(fh))
    assert out["protocol"]["name"] == "unseen-answers" and out["rows"] == n_rows > QUESTIONS * PER_QUESTION
    assert out["finetune"]["crossfit_by"] == ["answers", "answers"]  # each fold's test questions were seen
    assert len(out["finetune"]["seconds_per_fold"]) == 2 and "every training row" in out["finetune"]["stacking"]
    keys = ["gain_standard_error", "log_loss_with", "log_loss_without", "trusted"]
    assert [sorted(t) for t in out["finetune"]["trust"]] == [keys] * 2
    assert 0.0 <= out["systems"]["grader"]["accuracy"] <= 1.0


@pytest.mark.parametrize("name", ["model-int8.onnx", "model.onnx", "tokenizer.json", "combiner.json",
                                  "model.safetensors", "config.json"])
def test_a_changed_byte_in_any_file_is_refused_naming_the_file(folder, name):
    from grader.errors import ModelIntegrityError
    from grader.finetune import CrossEncoderScorer

    path = folder / name
    data = path.read_bytes()
    at = len(data) // 2
    try:
        path.write_bytes(data[:at] + bytes([data[at] ^ 1]) + data[at + 1:])
        with pytest.raises(ModelIntegrityError, match=name.replace(".", r"\.")):
            CrossEncoderScorer(folder, "int8")
    finally:
        path.write_bytes(data)
    CrossEncoderScorer(folder, "int8")  # restored: accepted again


def test_onnx_fp32_agrees_with_torch_and_int8_with_fp32_on_labels(folder, tiny):
    import torch

    from grader.evaluation.corpus import read_corpus
    from grader.finetune import CrossEncoderScorer, build_pairs
    from grader.finetune.folder import load_torch

    pairs = build_pairs(read_corpus(tiny))
    fp32 = CrossEncoderScorer(folder, "fp32")
    probs, fraction = fp32.predict(pairs.first, pairs.answers)
    model = load_torch(folder)
    with torch.no_grad():
        for i in range(0, len(pairs), 8):
            batch = fp32.tokenizer.pad(fp32.tokenizer.encode(pairs.first[i:i + 8], pairs.answers[i:i + 8]))
            logits, f = model(**{k: torch.from_numpy(v) for k, v in batch.items()})
            np.testing.assert_allclose(torch.softmax(logits, -1).numpy(), probs[i:i + 8], atol=1e-4)
            np.testing.assert_allclose(f.numpy(), fraction[i:i + 8], atol=1e-4)
    p8, f8 = CrossEncoderScorer(folder, "int8").predict(pairs.first, pairs.answers)
    top = np.sort(probs, axis=1)
    clear = top[:, -1] - top[:, -2] > 0.02  # a near tie may flip under any rounding
    assert (p8.argmax(1) == probs.argmax(1))[clear].all()
    assert np.abs(f8 - fraction).max() < 0.05


def _mpnet_installed() -> bool:
    from grader.encoding.weights import resolve_model
    from grader.errors import ModelError

    try:
        resolve_model("mpnet")
    except ModelError:
        return False
    return True


@pytest.mark.skipif(not _mpnet_installed(), reason="the quality model (mpnet) is not installed")
def test_mpnet_fine_tunes_exports_and_grades_as_minilm_does(tiny):
    import torch

    from grader.encoding.weights import BUILTIN_MODELS
    from grader.evaluation.corpus import read_corpus
    from grader.finetune import CrossEncoderScorer, build_pairs
    from grader.finetune.folder import load_torch
    from grader.finetune.model import input_names

    out = tiny.parent / "mpnet"
    done = _cli("train", tiny, "--finetune", "--model", "mpnet", "-o", out, "--epochs", 1, "--max-length", 24,
                "--examples-schedule", 0, "--no-validate", env=_env(tiny.parent))
    assert done.returncode == 0, done.stderr[-3000:]
    meta = json.loads((out / "manifest.json").read_text())["metadata"]
    assert meta["base_model"] == "all-mpnet-base-v2" and meta["base_sha256"] == BUILTIN_MODELS["mpnet"].sha256
    pairs = build_pairs(read_corpus(tiny))
    fp32 = CrossEncoderScorer(out, "fp32")
    probs, fraction = fp32.predict(pairs.first[:8], pairs.answers[:8])
    model = load_torch(out)
    names = input_names(model)
    assert "token_type_ids" not in names  # mpnet reads no segment ids
    with torch.no_grad():
        batch = fp32.tokenizer.pad(fp32.tokenizer.encode(pairs.first[:8], pairs.answers[:8]))
        logits, f = model(**{k: torch.from_numpy(v) for k, v in batch.items() if k in names})
    np.testing.assert_allclose(torch.softmax(logits, -1).numpy(), probs, atol=1e-4)
    np.testing.assert_allclose(f.numpy(), fraction, atol=1e-4)
    graded = _cli("eval", tiny, "--combiner", out, "--model", "mpnet", "--json", env=_env(tiny.parent))
    assert graded.returncode == 0, graded.stderr[-3000:]
    result = json.loads(graded.stdout)
    assert result["embedding_model"] == "all-mpnet-base-v2" and result["systems"]["grader"]["accuracy"] > 0.5


def test_a_combiner_that_reads_scorer_signals_needs_its_scorer(folder, embedder):
    from grader.engine import Grader
    from grader.errors import ModelError

    with pytest.raises(ModelError, match="ce_fraction"):
        Grader(None, embedder=embedder, combiner=folder / "combiner.json")


def test_grading_with_the_folder_through_the_cli_adds_the_scorer_signals(folder, tiny):
    with open(tiny, encoding="utf-8", newline="") as fh:
        row = next(csv.DictReader(fh))
    rubric = tiny.parent / "rubric.yaml"
    rubric.write_text(json.dumps({"id": "tiny", "title": "tiny", "questions": [
        {"id": "q1", "type": "short_answer", "prompt": row["question"], "max_points": 1,
         "reference_answers": [row["reference_answer"]]}]}), encoding="utf-8")
    env = _env(tiny.parent)
    graded = _cli("score", "--rubric", rubric, "--question", "q1", "--combiner", folder, row["answer"], env=env)
    assert graded.returncode == 0, graded.stderr[-3000:]
    result = json.loads(graded.stdout)
    assert {"ce_fraction", "ce_expected"} <= set(result["signals"])
    assert 0.0 <= result["points"] <= 1.0
    evaluated = _cli("eval", tiny, "--combiner", folder, "--json", env=env)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    summary = json.loads(evaluated.stdout)
    assert 0.0 <= summary["systems"]["grader"]["accuracy"] <= 1.0


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_cross_fitting_halves_split_by_answers_or_by_whole_questions(seed):
    from grader.evaluation.stacking import crossfit_halves

    groups = np.array([f"q{i % 5}" for i in range(60)] + ["q5"] * 3, dtype=object)
    by_answers = crossfit_halves(groups, seed, by="answers")
    assert all(set(by_answers[groups == q]) == {0, 1} for q in set(groups))  # every question in both halves
    by_questions = crossfit_halves(groups, seed, by="questions")
    assert all(len(set(by_questions[groups == q])) == 1 for q in set(groups))  # each question in one half
    assert abs(int((by_questions == 0).sum()) - int((by_questions == 1).sum())) <= 15
    np.testing.assert_array_equal(by_answers, crossfit_halves(groups, seed, by="answers"))


def _stacked_data(ce_informative: bool, seed: int = 0):
    from grader.evaluation.training import Dataset
    from grader.scoring.features import FEATURES

    rng = np.random.default_rng(seed)
    n, questions = 600, 8
    grade = rng.integers(0, 3, n)  # 0 incorrect, 1 partly, 2 correct
    signals = rng.normal(size=(n, len(FEATURES)))
    signals[:, 0] = grade + rng.normal(scale=1.5, size=n)  # one weak signal of the grade
    signals[:, FEATURES.index("ex_weight")] = 0.0  # no graded examples (the combiner's gate, in [0, 1])
    ce = np.column_stack([grade / 2 + rng.normal(scale=0.15, size=n)] * 2) if ce_informative \
        else rng.normal(size=(n, 2))
    y = np.array(["incorrect", "partially_correct", "correct"], dtype=object)[grade]
    return Dataset(np.hstack([signals, ce]), y, grade / 2, np.array([f"q{i % questions}" for i in range(n)], dtype=object))


@pytest.mark.parametrize("seed", [0, 1])
def test_the_combiner_reads_the_scorer_only_where_it_helps_on_held_out_questions(seed):
    from grader.evaluation.stacking import fit_stacked, trust

    useful = trust(_stacked_data(True, seed))
    assert useful["trusted"] and useful["log_loss_with"] + useful["gain_standard_error"] < useful["log_loss_without"]
    noise = _stacked_data(False, seed)
    verdict = trust(noise)
    # Noise may lower the held-out log loss by chance, never by more than a standard error here.
    assert not verdict["trusted"]
    assert verdict["log_loss_with"] + verdict["gain_standard_error"] >= verdict["log_loss_without"]
    model, again = fit_stacked(noise)
    assert again == verdict
    d = model.n_features_in_  # the scorer's signals are its last two, read again (times the gate) at the end
    np.testing.assert_array_equal(np.asarray(model.coef_)[:, [d - 2, d - 1, -2, -1]], 0.0)  # they weigh nothing
    model, _ = fit_stacked(_stacked_data(True, seed))
    assert np.abs(np.asarray(model.coef_)[:, d - 2 : d]).max() > 0.1


@pytest.mark.filterwarnings("ignore::grader.engine.scorer.UnseenQuestionWarning")  # a question it never saw, on purpose
def test_a_batch_resumed_with_another_scorer_precision_is_refused(folder, embedder, tmp_path):
    from grader.engine import Grader
    from grader.errors import InputDataError
    from grader.files.batch import grade_csv
    from grader.rubric import Rubric, ShortAnswerQuestion

    class Interrupted:  # failure injection: the run dies on its second chunk
        def __init__(self, real):
            self.real, self.calls = real, 0
            for name in ("max_answer_chars", "review_threshold", "embedder", "combiner", "scorer"):
                setattr(self, name, getattr(real, name))

        def grade_many(self, items):
            self.calls += 1
            if self.calls == 2:
                raise KeyboardInterrupt
            return self.real.grade_many(items)

    rubric = Rubric(id="net", questions=[ShortAnswerQuestion(
        id="q", prompt="What does TCP add to IP?", reference_answers=["Reliable, ordered delivery."])])
    src = tmp_path / "in.csv"
    src.write_text("id,question_id,answer\n" + "".join(f"{i},q,it resends lost segments {i}\n" for i in range(4)))
    int8 = Grader(rubric, embedder=embedder, combiner=str(folder))
    out = tmp_path / "out.csv"
    with pytest.raises(KeyboardInterrupt):
        grade_csv(src, rubric, out, grader=Interrupted(int8), chunk_size=2, log=lambda m: None)
    fp32 = Grader(rubric, embedder=embedder, combiner=str(folder), scorer_precision="fp32")
    with pytest.raises(InputDataError, match="another fine-tuned scorer"):
        grade_csv(src, rubric, out, grader=fp32, chunk_size=2, resume=True, log=lambda m: None)
    assert grade_csv(src, rubric, out, grader=int8, chunk_size=2, resume=True, log=lambda m: None).resumed_rows == 2


@pytest.mark.filterwarnings("ignore::grader.engine.scorer.UnseenQuestionWarning")  # a question it never saw, on purpose
def test_ray_grades_with_a_scorer_folder_as_the_local_engine_does(folder, tmp_path):
    pytest.importorskip("ray.data")
    from grader.cli import main
    from tests.test_ray import RUBRIC, Namespace, grade_command, make_submissions, read_csv, read_shards

    src = make_submissions(tmp_path / "answers.csv", 120, 3, extra=False)
    assert main(["grade", str(src), "--rubric", str(RUBRIC), "-o", str(tmp_path / "local.csv"), "--combiner",
                 str(folder), "--quiet"]) in (0, 1)
    want = read_csv(tmp_path / "local.csv")
    main(["grade", str(src), "--rubric", str(RUBRIC), "-o", str(tmp_path / "plain.csv"), "--quiet"])
    assert read_csv(tmp_path / "plain.csv") != want  # the scorer changes grades: the comparison below can fail
    ns = Namespace()
    try:
        run = ns.run(grade_command(src, tmp_path / "graded.csv", "--chunk-size", "60", "--combiner", str(folder)),
                     timeout=300)
    finally:
        ns.close()
    assert run.returncode in (0, 1), run.stderr[-3000:]
    _, rows = read_shards(tmp_path / "graded.csv")
    assert [r[:-2] for r in rows] == want[1:]  # the same grades, the scorer's signals included
    manifest = json.loads((tmp_path / "graded.csv" / "_grader.json").read_text())
    assert len(manifest["parts"]["scorer"]) == 64  # a rerun with another scorer is refused


def test_a_question_the_scorer_never_saw_is_graded_without_it(folder, tiny, embedder, tmp_path):
    """Measured on questions held out, a scorer lowers agreement there: the folder's combiner for new questions
    grades them, the scorer is not run for them, and a folder written before it had one warns instead."""
    import shutil
    import warnings

    from grader.engine import Grader
    from grader.engine.scorer import UnseenQuestionWarning
    from grader.evaluation.corpus import build_questions, read_corpus
    from grader.finetune.folder import NEW_QUESTIONS_COMBINER, read_manifest, write_manifest
    from grader.rubric import ShortAnswerQuestion

    rows = read_corpus(tiny)
    seen = build_questions(rows)[rows[0].question_id]  # a question of the corpus it was fine-tuned on
    new = ShortAnswerQuestion(id="new", prompt="Why does ice float?", reference_answers=["Ice is less dense."])
    answer = "Because ice is lighter than water."
    assert NEW_QUESTIONS_COMBINER in read_manifest(folder)["files"]
    grader = Grader(None, embedder=embedder, combiner=str(folder))
    assert grader.scorer.fallback is not None
    scored = []
    real = grader.scorer.signals
    grader.scorer.signals = lambda firsts, answers: scored.append(list(answers)) or real(firsts, answers)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with_scorer = grader.grade_pairs([(seen, rows[0].answer), (new, answer)])
    assert not [w for w in caught if issubclass(w.category, UnseenQuestionWarning)]
    assert scored == [[rows[0].answer]]  # the scorer ran for the seen question's answer alone
    alone = Grader(None, embedder=embedder, combiner=str(folder / NEW_QUESTIONS_COMBINER))
    expected = alone.grade_pairs([(new, answer)])[0]
    assert with_scorer[1].points == expected.points and with_scorer[1].confidence == expected.confidence
    assert with_scorer[1].label == expected.label

    older = tmp_path / "older"
    shutil.copytree(folder, older)
    (older / NEW_QUESTIONS_COMBINER).unlink()
    write_manifest(older, read_manifest(older)["metadata"])
    grader = Grader(None, embedder=embedder, combiner=str(older))
    assert grader.scorer.fallback is None
    with pytest.warns(UnseenQuestionWarning, match="not trained on question 'new'"):
        result = grader.grade_pairs([(new, answer)])[0]
    assert result.points is not None  # graded all the same, with the scorer


@pytest.mark.filterwarnings("ignore::grader.engine.scorer.UnseenQuestionWarning")  # a question it never saw, on purpose
def test_http_service_grades_with_a_scorer_folder(folder, embedder):
    """`GRADER_COMBINER` may name a scorer folder: the service loads it once and its signals reach the combiner."""
    import time

    import httpx

    from grader.api import create_app
    from grader.api.server import ServerThread
    from grader.finetune import CE_SIGNALS
    from grader.settings import Settings
    from tests.conftest import RUBRIC

    settings = Settings(api_keys="k" * 32, rubrics_dir=RUBRIC.parent, combiner=str(folder))
    with ServerThread(create_app(settings, loader=lambda: embedder)) as srv, \
            httpx.Client(base_url=srv.url, timeout=60, headers={"X-API-Key": "k" * 32}) as c:
        deadline = time.monotonic() + 120
        while c.get("/readyz").json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert c.get("/readyz").status_code == 200
        r = c.post("/v1/grade", json={"rubric_id": "rnn_lstm", "question_id": "q5", "feedback_level": "instructor",
                                      "answer": "The LSTM adds to its cell state through gates."})
        assert r.status_code == 200, r.text
        assert set(CE_SIGNALS) <= set(r.json()["signals"])
