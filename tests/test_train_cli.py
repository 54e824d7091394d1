"""`grader train` and `grader eval` end to end on small corpora written by the tests."""

from __future__ import annotations

import csv
import json

import pytest

from grader.cli import main

COLUMNS = ["question_id", "question", "reference_answer", "answer", "score", "max_score", "label"]
DATA = {
    "q1": ("What do plants produce in photosynthesis?", "Glucose and oxygen from light, water and carbon dioxide.",
           ["They make glucose and oxygen using light.", "Sugar and oxygen are produced from CO2 and water.",
            "Glucose plus oxygen, powered by sunlight."], ["Oxygen.", "Some food."], ["Soil.", "Carbon dioxide only."]),
    "q2": ("Why does ice float?", "Ice is less dense than water because its lattice spaces molecules apart.",
           ["It is less dense than water due to its crystal lattice.", "The lattice keeps molecules apart so density drops.",
            "Lower density than liquid water because of hydrogen bonds."], ["It is lighter.", "Density."],
           ["It is heavier.", "Because it is white."]),
    "q3": ("What does the heart do?", "It pumps blood through the body, bringing oxygen to the organs.",
           ["Pumps blood around the body carrying oxygen to organs.", "It circulates oxygenated blood to the organs.",
            "It pushes blood through vessels so organs get oxygen."], ["It pumps blood.", "Blood moves."],
           ["It thinks.", "It digests food."]),
}


def write(path, columns=COLUMNS, scale=1.0, labels=True):
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for qid, (prompt, ref, *levels) in DATA.items():
            for k, answers in enumerate(levels):
                for a in answers:
                    w.writerow({"question_id": qid, "question": prompt, "reference_answer": ref, "answer": a,
                                "score": f"{(1, 0.5, 0)[k] * scale:g}", "max_score": f"{scale:g}",
                                "label": ("correct", "partially_correct", "incorrect")[k] if labels else ""})
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, embedder):  # the embedder fixture loads the shared model once
    return write(tmp_path_factory.mktemp("t") / "labeled.csv")


def test_train_writes_json_with_metadata(corpus, tmp_path, capsys):
    out = tmp_path / "models" / "course.json"
    assert main(["train", str(corpus), "-o", str(out), "--examples-schedule", "0,2", "--seed", "1", "--C", "0.5"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["labels"] == ["correct", "incorrect", "partially_correct"]
    data = json.loads(out.read_text())
    meta = data["metadata"]
    from grader.evaluation.corpus import corpus_fingerprint
    from grader.scoring.features import FEATURES

    assert meta["labels"] == ["correct", "incorrect", "partially_correct"] and meta["target"] == "label"
    assert meta["features"] == list(FEATURES) and meta["embedding_model"] and len(meta["embedding_sha256"]) == 64
    assert meta["corpus_fingerprint"] == corpus_fingerprint(corpus) and meta["sklearn_version"]
    assert meta["example_counts"] == [0, 2] and meta["C"] == 0.5 and meta["seed"] == 1
    assert "accuracy" in meta["validation"]["examples_0"]

    from grader.engine import Grader, load_combiner
    from grader.rubric import ShortAnswerQuestion

    grader = Grader(None, combiner=load_combiner(out))
    q = ShortAnswerQuestion(id="q9", prompt="Why does ice float?", reference_answers=("Ice is less dense than water.",))
    assert grader.grade_answers(q, ["Ice is less dense than liquid water."])[0].label in meta["labels"]


def test_train_on_scores_without_labels(tmp_path):
    corpus = write(tmp_path / "scores.csv", [c for c in COLUMNS if c != "label"], scale=5.0, labels=False)
    out = tmp_path / "s.json"
    assert main(["train", str(corpus), "-o", str(out), "--examples-schedule", "0", "--no-validate"]) == 0
    meta = json.loads(out.read_text())["metadata"]
    assert meta["target"] == "score" and meta["labels"] == ["0", "0.5", "1"]


def test_train_with_rubric_matches_question_ids(tmp_path):
    rubric = tmp_path / "r.yaml"
    rubric.write_text("id: r\ntitle: r\nquestions:\n" + "".join(
        f"  - id: {qid}\n    type: short_answer\n    prompt: {json.dumps(p)}\n    reference_answers: [{json.dumps(ref)}]\n"
        for qid, (p, ref, *_) in DATA.items()), encoding="utf-8")
    corpus = write(tmp_path / "c.csv")
    out = tmp_path / "m.json"
    assert main(["train", str(corpus), "-o", str(out), "--rubric", str(rubric), "--examples-schedule", "0",
                 "--no-validate"]) == 0
    assert json.loads(out.read_text())["metadata"]["rubric"] == "r"


def test_train_errors_name_the_problem(tmp_path, capsys):
    missing = write(tmp_path / "m.csv", [c for c in COLUMNS if c != "answer"])
    assert main(["train", str(missing), "-o", str(tmp_path / "x.json")]) == 2
    assert "missing required column(s) ['answer']" in capsys.readouterr().err
    (tmp_path / "empty.csv").write_text("")
    assert main(["train", str(tmp_path / "empty.csv"), "-o", str(tmp_path / "x.json")]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["train", str(write(tmp_path / "c.csv")), "-o", str(tmp_path / "x.json"), "--label-col", "nope"]) == 2
    assert main(["train", str(tmp_path / "c.csv"), "-o", str(tmp_path / "x.json"), "--examples-schedule", "a"]) == 2
    assert "--examples-schedule must list whole numbers >= 0 or 'all'" in capsys.readouterr().err


def test_eval_json_and_table(corpus, tmp_path, capsys):
    assert main(["eval", str(corpus), "--cv", "unseen-questions", "--folds", "3", "--json",
                 "--examples-schedule", "0,2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["protocol"]["name"] == "unseen-questions" and summary["systems"]["grader"]["n"] == 21
    assert main(["eval", str(corpus), "--examples-per-question", "2", "--report", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "grader" in out and "acc" in out and (tmp_path / "rep" / "index.html").exists()


def test_eval_option_errors(corpus, capsys):
    assert main(["eval", str(corpus), "--cv", "unseen-answers", "--combiner", "grader/models/default.json"]) == 2
    assert "--combiner" in capsys.readouterr().err
    assert main(["eval", str(corpus), "--folds", "3"]) == 2
    assert main(["eval", str(corpus), "--learning-curve", "0,x"]) == 2


def test_read_corpora_pools_files_and_keeps_clashing_questions_apart(tmp_path):
    from grader.evaluation.corpus import read_corpora

    first = write(tmp_path / "first.csv")
    same = write(tmp_path / "same.csv")  # a second export of the same quiz: its questions are the same ones
    other = tmp_path / "b.csv"
    with open(other, "w", encoding="utf-8", newline="") as fh:  # the id q1 names another question there
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        w.writerow(["q1", "Wie viele Beine hat eine Spinne?", "Acht.", "Acht Beine.", "1", "1", "correct"])
        w.writerow(["q1", "Wie viele Beine hat eine Spinne?", "Acht.", "Sechs.", "0", "1", "incorrect"])
    rows = read_corpora([first, same, other])
    assert len(rows) == 21 + 21 + 2
    assert {r.question_id for r in rows} == {"q1", "q2", "q3", "b:q1"}
    assert {r.source for r in rows if r.question_id == "b:q1"} == {str(other)}
    assert [r.row for r in rows if r.question_id == "b:q1"] == [1, 2]  # row numbers stay those of their file


def test_read_corpora_refuses_corpora_graded_with_different_labels(tmp_path):
    from grader.errors import InputDataError
    from grader.evaluation.corpus import read_corpora

    three = write(tmp_path / "three.csv")
    other = tmp_path / "other.csv"
    other.write_text(three.read_text().replace("partially_correct", "partly"), encoding="utf-8")
    with pytest.raises(InputDataError, match=r"different labels \(three.csv: \['correct', 'incorrect', "
                                             r"'partially_correct'\]; other.csv: \['correct', 'incorrect', "
                                             r"'partly'\]\)"):
        read_corpora([three, other])
    scores = write(tmp_path / "scores.csv", labels=False)
    with pytest.raises(InputDataError, match="scores only"):
        read_corpora([three, scores])
    assert len(read_corpora([scores, scores])) == 42  # alike: pooled (the same file twice is allowed)
    fewer = tmp_path / "fewer.csv"  # a file that happens to use only some of the labels
    fewer.write_text("\n".join(line for line in three.read_text().splitlines() if "partially" not in line) + "\n",
                     encoding="utf-8")
    assert len(read_corpora([three, fewer])) == 21 + 15


def test_train_on_two_corpora_records_both(corpus, tmp_path, capsys):
    (tmp_path / "de").mkdir()
    second = write(tmp_path / "de" / "labeled.csv", scale=2.0)  # same name in another folder, same questions
    out = tmp_path / "pooled.json"
    assert main(["train", str(corpus), str(second), "-o", str(out), "--examples-schedule", "0", "--no-validate"]) == 0
    assert json.loads(capsys.readouterr().out)["training_rows"] == 42
    meta = json.loads(out.read_text())["metadata"]
    from grader.evaluation.corpus import corpora_fingerprint, corpus_fingerprint

    assert meta["training_file"] == f"{corpus.parent.name}/labeled.csv, de/labeled.csv"
    assert meta["corpus_fingerprints"] == {f"{corpus.parent.name}/labeled.csv": corpus_fingerprint(corpus),
                                           "de/labeled.csv": corpus_fingerprint(second)}
    assert meta["corpus_fingerprint"] == corpora_fingerprint([corpus_fingerprint(corpus), corpus_fingerprint(second)]) \
        != corpus_fingerprint(corpus)
    assert main(["eval", str(second), "--combiner", str(out), "--json"]) == 0  # either file warns
    assert any("trained on this very file" in w for w in json.loads(capsys.readouterr().out)["warnings"])
