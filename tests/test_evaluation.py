"""Evaluation protocols on small corpora written by the tests (real encoder, shared per session)."""

from __future__ import annotations

import csv
import json

import pytest

from grader.evaluation.corpus import read_corpus
from grader.errors import ConfigError, InputDataError
from grader.evaluation.protocols import evaluate

COLUMNS = ["dataset", "split", "question_id", "question", "reference_answer", "student_id", "answer", "score",
           "max_score", "label", "label_5way"]
QUESTIONS = {
    "photo": ("What does photosynthesis produce?", "Plants turn light, water and carbon dioxide into glucose and oxygen.",
              ["Plants make glucose and oxygen from light, water and CO2.", "It produces sugar (glucose) and releases oxygen.",
               "Glucose and oxygen are made using sunlight.", "Light energy makes glucose; oxygen is given off."],
              ["It makes oxygen.", "Plants produce some food.", "Sugar, I think."],
              ["Plants eat soil.", "It produces carbon dioxide at night only.", "Roots drink water."]),
    "tcp": ("Why is TCP reliable?", "TCP uses sequence numbers, acknowledgements and retransmission of lost segments.",
            ["Segments are numbered and acknowledged, and lost ones are retransmitted.",
             "Sequence numbers plus ACKs, with retransmission on timeout.",
             "Acknowledgements and retransmissions of lost packets using sequence numbers.",
             "It retransmits segments that are not acknowledged, ordered by sequence number."],
            ["It uses acknowledgements.", "Packets are numbered.", "It resends things."],
            ["Because it is fast.", "TCP uses no headers.", "It broadcasts to everyone."]),
    "heart": ("What does the heart do?", "The heart pumps blood through the body, delivering oxygen to the organs.",
              ["It pumps blood around the body to bring oxygen to organs.", "Pumping oxygen-rich blood to the organs.",
               "The heart circulates blood so organs get oxygen.", "It pushes blood through vessels carrying oxygen."],
              ["It pumps blood.", "It moves stuff around.", "Blood goes through it."],
              ["It helps you think.", "The heart digests food.", "It makes bones grow."]),
    "ice": ("Why does ice float?", "Ice is less dense than liquid water because its crystal lattice holds molecules apart.",
            ["Ice is less dense than water since the crystal structure spaces molecules out.",
             "Its lattice keeps molecules apart so it is less dense and floats.",
             "Frozen water has lower density due to the hydrogen-bonded crystal.",
             "The crystal lattice makes ice lighter per volume than liquid water."],
            ["It is lighter.", "Because of density.", "Ice is cold and light."],
            ["Ice is heavier than water.", "Because it is white.", "Fish push it up."]),
}
LABELS = ("correct", "partially_correct", "incorrect")
FAST = {"example_counts": (0, 3)}  # a short training schedule keeps the tests fast


def corpus_rows(blank_prompts: bool = False, scale: float = 1.0, five_way: bool = False, labels: bool = True):
    """Rows of a 4-question corpus: 4 correct, 3 partial and 3 incorrect answers per question."""
    rows = []
    for qid, (prompt, ref, good, partial, bad) in QUESTIONS.items():
        for k, (level, answers) in enumerate(zip(LABELS, (good, partial, bad))):
            for j, answer in enumerate(answers):
                five = ["correct", "partially_correct_incomplete", "contradictory", "irrelevant", "non_domain"]
                label5 = five[0] if k == 0 else five[1] if k == 1 else five[2 + j % 3]
                rows.append({
                    "dataset": "fixture", "split": "train", "question_id": qid,
                    "question": "" if blank_prompts else prompt, "reference_answer": "" if blank_prompts else ref,
                    "student_id": f"{qid}-{k}-{j}", "answer": answer, "score": f"{(1.0, 0.5, 0.0)[k] * scale:g}",
                    "max_score": f"{scale:g}", "label": level if labels else "", "label_5way": label5,
                })
    return rows


def write_corpus(path, rows, columns=COLUMNS):
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return read_corpus(write_corpus(tmp_path_factory.mktemp("c") / "c.csv", corpus_rows()))


@pytest.fixture(scope="module")
def cached(embedder):
    """The session encoder behind one cache, so each fixture text is encoded once per module."""
    from grader.evaluation.training import CachingEmbedder

    return CachingEmbedder(embedder)


def _strip_timing(summary):
    return {k: v for k, v in summary.items() if k != "timing_s"}


def test_unseen_questions_is_grouped_and_deterministic(corpus, cached):
    a = evaluate(corpus, cv="unseen-questions", folds=4, seed=3, embedder=cached, **FAST)
    b = evaluate(corpus, cv="unseen-questions", folds=4, seed=3, embedder=cached, **FAST)
    assert _strip_timing(a.summary) == _strip_timing(b.summary)
    s = a.summary
    assert s["protocol"]["name"] == "unseen-questions" and s["protocol"]["folds"] == 4
    assert set(s["systems"]) == {"grader", "cosine", "lexical"}
    for m in s["systems"].values():
        assert m["n"] == 40 and 0 <= m["accuracy"] <= 1 and 0 <= m["macro_f1"] <= 1
        assert set(m["per_question"]) == set(QUESTIONS)
        assert len(m["confusion_matrix"]) == 3
        assert 0 <= m["coverage_at_90"] <= 1 and "score" in m
    # each question is tested in exactly one fold, by a model that never saw it
    folds = {}
    for row, fold in zip(a.predictions[("grader", None)].rows, a.predictions[("grader", None)].fold):
        folds.setdefault(row.question_id, set()).add(fold)
    assert all(len(f) == 1 for f in folds.values()) and len({min(f) for f in folds.values()}) == 4
    assert s["systems"]["grader"]["accuracy"] > 0.5
    assert set(s["margin"]) == {"cosine", "lexical"}


def test_unseen_answers_scores_every_answer_once(corpus, cached):
    ev = evaluate(corpus, cv="unseen-answers", folds=3, embedder=cached, **FAST)
    p = ev.predictions[("grader", None)]
    assert sorted(r.row for r in p.rows) == sorted(r.row for r in corpus)
    # every question appears in every fold's test set, and its training answers are its examples
    assert {(r.question_id, f) for r, f in zip(p.rows, p.fold)} == {(q, f) for q in QUESTIONS for f in range(3)}
    assert min(p.examples) >= 6


def test_train_test_files(tmp_path, cached):
    rows = corpus_rows()
    train = read_corpus(write_corpus(tmp_path / "train.csv", [r for r in rows if r["question_id"] != "ice"]))
    test = read_corpus(write_corpus(tmp_path / "test.csv", [r for r in rows if r["question_id"] == "ice"]))
    s = evaluate(test, train_rows=train, embedder=cached, **FAST).summary
    assert s["protocol"]["name"] == "train-test" and s["systems"]["grader"]["n"] == 10


def test_examples_per_question_scores_the_rest(corpus, cached):
    ev = evaluate(corpus, cv="unseen-questions", folds=2, examples_per_question=3, embedder=cached, **FAST)
    p = ev.predictions[("grader", 3)]
    assert len(p.rows) == 40 - 4 * 3 and set(p.examples) == {3}


def test_learning_curve_points(corpus, cached):
    s = evaluate(corpus, cv="unseen-questions", folds=2, learning_curve=(0, 2, 5), embedder=cached, **FAST).summary
    curve = s["learning_curve"]
    assert [c["examples_per_question"] for c in curve] == [0, 2, 5]
    assert [c["grader"]["n"] for c in curve] == [40, 32, 20]
    assert all(0 <= c[sys]["accuracy"] <= 1 for c in curve for sys in ("grader", "cosine", "lexical"))


def test_zero_shot_default_combiner(corpus, cached):
    s = evaluate(corpus, embedder=cached).summary
    assert s["protocol"]["name"] == "zero-shot" and list(s["systems"]) == ["grader"]
    assert s["systems"]["grader"]["n"] == 40 and s["systems"]["grader"]["accuracy"] > 0.4


def test_five_labels(tmp_path, cached):
    rows = read_corpus(write_corpus(tmp_path / "c.csv", corpus_rows()), label_col="label_5way")
    s = evaluate(rows, cv="unseen-answers", folds=2, embedder=cached, label_col="label_5way", **FAST).summary
    assert len(s["labels_seen_in_training"]) == 5
    assert len(s["systems"]["grader"]["confusion_matrix"]) == 5


def test_scores_zero_to_five_without_labels(tmp_path, cached):
    cols = [c for c in COLUMNS if c not in ("label", "label_5way")]
    rows = read_corpus(write_corpus(tmp_path / "c.csv", corpus_rows(scale=5.0, labels=False), cols))
    s = evaluate(rows, cv="unseen-questions", folds=2, embedder=cached, **FAST).summary
    assert s["target"] == "score" and s["score_levels"] == [0.0, 0.5, 1.0]
    score = s["systems"]["grader"]["score"]
    assert score["levels"] == [0.0, 2.5, 5.0] and score["n"] == 40
    assert score["pearson"] > 0.3 and score["qwk"] is not None and 0 <= score["mae"] <= 5


def test_no_question_text_and_no_reference(tmp_path, cached):
    rows = read_corpus(write_corpus(tmp_path / "c.csv", corpus_rows(blank_prompts=True)))
    s = evaluate(rows, cv="unseen-questions", folds=2, learning_curve=(0, 4), embedder=cached, **FAST).summary
    curve = {c["examples_per_question"]: c["grader"] for c in s["learning_curve"]}
    assert curve[4]["n"] == 24 and curve[4]["accuracy"] > 0.5  # the examples are the only guide here
    assert s["systems"]["cosine"]["n"] == 40


def test_label_not_seen_in_training(tmp_path, cached):
    rows = corpus_rows()
    test_rows = [dict(r, label="excellent") if r["label"] == "correct" else r for r in rows if r["question_id"] == "ice"]
    train = read_corpus(write_corpus(tmp_path / "train.csv", [r for r in rows if r["question_id"] != "ice"]))
    test = read_corpus(write_corpus(tmp_path / "test.csv", test_rows))
    s = evaluate(test, train_rows=train, embedder=cached, **FAST).summary
    assert s["labels_not_seen_in_training"] == ["excellent"]
    # the model's 'correct', which this corpus does not use, counts as the corpus label nearest its points
    assert s["labels_mapped"] == {"correct": ["incorrect", "partially_correct", "excellent"]}
    m = s["systems"]["grader"]
    assert m["labels"] == ["excellent", "incorrect", "partially_correct"]
    assert m["confusion_matrix"][0][0] >= 3  # most 'excellent' answers, graded 'correct', are right


def test_protocol_errors(corpus, cached):
    with pytest.raises(ConfigError, match="`cv` or `train_rows`"):
        evaluate(corpus, cv="unseen-answers", train_rows=corpus, embedder=cached, **FAST)
    with pytest.raises(ConfigError, match="unseen-questions needs at least 2"):
        evaluate([r for r in corpus if r.question_id == "ice"], cv="unseen-questions", embedder=cached, **FAST)


def test_missing_column_and_empty_file(tmp_path):
    path = write_corpus(tmp_path / "c.csv", corpus_rows(), [c for c in COLUMNS if c != "answer"])
    with pytest.raises(InputDataError, match="missing required column.*answer"):
        read_corpus(path)
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    with pytest.raises(InputDataError, match="empty"):
        read_corpus(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text(",".join(COLUMNS) + "\n", encoding="utf-8")
    with pytest.raises(InputDataError, match="no rows"):
        read_corpus(tmp_path / "header.csv")


def test_report_folder(corpus, cached, tmp_path):
    from grader.evaluation.report import format_table, write_report

    ev = evaluate(corpus, cv="unseen-questions", folds=2, learning_curve=(0, 3), embedder=cached, **FAST)
    out = write_report(ev, tmp_path / "report")
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "metrics.json", "predictions.csv", "index.html", "confusion_matrix.png", "reliability.png",
            "coverage_accuracy.png", "predicted_vs_human.png", "learning_curve.png"} <= names
    page = (out / "index.html").read_text()
    assert all(f'src="{n}"' in page for n in names if n.endswith(".png"))
    assert json.loads((out / "metrics.json").read_text())["systems"]["grader"]["n"] == 40
    assert "cosine" in format_table(ev.summary)


def test_grading_through_the_cache_never_calls_the_encoder_again(embedder, monkeypatch):
    """The grader streams encodings; the cache must serve that stream too, not hand it to the encoder."""
    from grader.engine import Grader
    from grader.rubric import ShortAnswerQuestion
    from grader.evaluation.training import CachingEmbedder

    cached = CachingEmbedder(embedder)
    answers = [f"The cell state is updated additively ({i})" for i in range(30)]
    question = ShortAnswerQuestion(id="q", prompt="Why do LSTMs keep gradients alive?",
                                   reference_answers=("Additive cell state updates with gates.",))
    first = Grader(None, embedder=cached).grade_pairs([(question, a) for a in answers])  # fills the cache

    def encoder_called(*args):
        raise AssertionError("the encoder ran although every text was cached")

    monkeypatch.setattr(embedder, "encode_tokens", encoder_called)
    monkeypatch.setattr(embedder, "iter_encode_tokens", encoder_called)
    monkeypatch.setattr(embedder, "iter_encode_lists", encoder_called)
    assert Grader(None, embedder=cached).grade_pairs([(question, a) for a in answers]) == first


# -- row isolation: one row that cannot be graded never aborts the evaluation ------------------
def test_a_reference_without_content_words_does_not_abort_the_corpus(tmp_path, cached):
    rows = [dict(r, reference_answer="It is.") if r["question_id"] == "ice" else r for r in corpus_rows()]
    s = evaluate(read_corpus(write_corpus(tmp_path / "c.csv", rows)), embedder=cached).summary
    assert s["systems"]["grader"]["n"] == 40 and s["skipped_rows"] == []


@pytest.fixture
def boom(monkeypatch):
    """Grading (a detector) and training (the signals) fail on any answer that says BOOM."""
    from grader.evaluation import training
    from grader.scoring import detectors

    def exploding(view):
        if "BOOM" in view.text:
            raise RuntimeError("detector exploded")
        return None

    def signals(prepared, text, *args, **kwargs):
        if "BOOM" in text:
            raise ZeroDivisionError("division by zero")
        return real(prepared, text, *args, **kwargs)

    real = training.answer_signals
    monkeypatch.setattr(detectors, "DETECTORS", [*detectors.DETECTORS, exploding])
    monkeypatch.setattr(training, "answer_signals", signals)
    rows = corpus_rows()
    rows[5] = dict(rows[5], answer=rows[5]["answer"] + " BOOM")
    return rows


@pytest.mark.parametrize("protocol", [{}, {"cv": "unseen-questions", "folds": 2}, {"cv": "unseen-answers", "folds": 2}])
def test_a_row_that_cannot_be_graded_is_reported_and_the_rest_are_evaluated(tmp_path, cached, boom, protocol):
    from grader.evaluation.report import format_table

    rows = read_corpus(write_corpus(tmp_path / "c.csv", boom))
    s = evaluate(rows, embedder=cached, **protocol, **FAST).summary
    assert s["rows"] == 40 and s["rows_not_graded"] == 1
    assert s["systems"]["grader"]["n"] == 39
    [skipped] = s["skipped_rows"]
    assert skipped["row"] == 6 and skipped["answer_id"] == boom[5]["student_id"]
    assert skipped["question_id"] == "photo" and skipped["file"] == "corpus"
    assert "exploded" in skipped["reason"] or "division by zero" in skipped["reason"]
    table = format_table(s)
    assert "rows that could not be graded, left out of every metric: 1" in table and "row 6" in table


def test_rows_of_a_question_that_cannot_be_built_are_skipped(tmp_path, cached):
    rows = [dict(r, max_score="1e308", score="0") if r["question_id"] == "ice" else r for r in corpus_rows()]
    s = evaluate(read_corpus(write_corpus(tmp_path / "c.csv", rows)), embedder=cached).summary
    assert s["systems"]["grader"]["n"] == 30 and s["rows_not_graded"] == 10
    assert {r["question_id"] for r in s["skipped_rows"]} == {"ice"}
    assert "max_points" in s["skipped_rows"][0]["reason"]


def test_eval_cli_lists_skipped_rows_in_its_json(tmp_path, capsys, boom):
    from grader.cli import main

    path = write_corpus(tmp_path / "c.csv", boom)
    assert main(["eval", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["row"] for r in data["skipped_rows"]] == [6] and data["systems"]["grader"]["n"] == 39
