"""`grader eval` says when its figures mean less than they seem."""

from __future__ import annotations

import json

from grader.cli import main
from tests.test_train_cli import COLUMNS, write


def _eval(capsys, *args) -> dict:
    assert main(["eval", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_warns_when_the_combiner_was_trained_on_the_evaluated_file(tmp_path, capsys, embedder):
    corpus = write(tmp_path / "labeled.csv")
    model = tmp_path / "model.json"
    assert main(["train", str(corpus), "-o", str(model), "--examples-schedule", "0", "--no-validate"]) == 0
    capsys.readouterr()
    out = _eval(capsys, corpus, "--combiner", model)
    assert any("trained on this very file" in w for w in out["warnings"])
    other = write(tmp_path / "other.csv", scale=2.0)  # same answers, another file
    assert not any("trained on" in w for w in _eval(capsys, other, "--combiner", model)["warnings"])
    assert not any("trained on" in w for w in _eval(capsys, corpus)["warnings"])  # the shipped combiner


def test_warns_when_train_and_test_are_one_file(tmp_path, capsys, embedder):
    corpus = write(tmp_path / "labeled.csv")
    out = _eval(capsys, corpus, "--train", corpus, "--examples-schedule", "0")
    assert any("same file" in w for w in out["warnings"])


def test_warns_about_rows_without_reference_or_rubric_question(tmp_path, capsys, embedder):
    corpus = write(tmp_path / "bare.csv", columns=[c for c in COLUMNS if c != "reference_answer"])
    out = _eval(capsys, corpus)
    assert any("neither a reference answer nor a matching rubric question" in w for w in out["warnings"])
    assert main(["eval", str(corpus)]) == 0
    assert "warning: " in capsys.readouterr().out
    assert not _eval(capsys, write(tmp_path / "full.csv"))["warnings"]


def test_a_corpus_with_fewer_labels_is_graded_in_its_own_labels(tmp_path, capsys, embedder):
    two_way = tmp_path / "two_way.csv"
    two_way.write_text(write(tmp_path / "three.csv").read_text().replace("partially_correct", "incorrect"),
                       encoding="utf-8")
    out = _eval(capsys, two_way)  # the shipped combiner labels correct / partially_correct / incorrect
    assert out["labels_mapped"] == {"partially_correct": ["incorrect", "correct"]}
    grader = out["systems"]["grader"]
    assert grader["labels"] == ["correct", "incorrect"] and len(grader["confusion_matrix"]) == 2
    assert _eval(capsys, write(tmp_path / "same.csv"))["labels_mapped"] is None  # the same labels: nothing mapped
    assert main(["eval", str(two_way)]) == 0
    assert "counts as whichever of incorrect, correct" in capsys.readouterr().out
