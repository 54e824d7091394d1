"""`grader import-quiz`: the seed quiz becomes a rubric equivalent to rubrics/rnn_lstm.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from grader.cli import main
from grader.errors import InputDataError
from grader.files.quiz_import import import_quiz, parse_quiz, to_rubric
from grader.rubric import load_rubric

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT.parent / "shared" / "seed" / "rnn_lstm_quiz.txt"
RUBRIC = ROOT / "rubrics" / "rnn_lstm.yaml"

needs_seed = pytest.mark.skipif(not SEED.exists(), reason="../shared/seed is not beside the checkout")


@needs_seed
def test_seed_gives_a_rubric_equivalent_to_the_hand_written_one():
    result = import_quiz(SEED)
    got, want = to_rubric(result), load_rubric(RUBRIC)
    assert [q.id for q in got.questions] == [q.id for q in want.questions] == ["q1", "q2", "q3", "q4", "q5"]
    for g, w in zip(got.questions, want.questions):
        assert g.type == w.type
        assert " ".join(g.prompt.split()) == " ".join(w.prompt.split())
        assert g.max_points == w.max_points
        if g.type == "multiple_choice":
            assert [(o.id, " ".join(o.text.split())) for o in g.options] == \
                   [(o.id, " ".join(o.text.split())) for o in w.options]
            assert g.correct == w.correct and g.needs_confirmation is True
        if g.type == "true_false":
            assert g.correct == w.correct
        if g.type == "short_answer":
            assert [" ".join(r.split()) for r in g.reference_answers] == \
                   [" ".join(r.split()) for r in w.reference_answers]
            assert [k.text for k in g.key_phrases] == ["additive updates with gating", "multiplicative recurrence"]
            assert g.step == w.step
        assert " ".join((g.explanation or "").split()) == " ".join((w.explanation or "").split())


@needs_seed
def test_seed_warnings_name_the_missing_header_and_the_inferred_keys():
    warnings = import_quiz(SEED).warnings
    assert any("question 1 has no type header" in w for w in warnings)
    inferred = [w for w in warnings if "inferred key B" in w]
    assert len(inferred) == 2 and all("needs_confirmation" in w for w in inferred)


@needs_seed
def test_cli_writes_a_valid_rubric_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "rubric.yaml"
    assert main(["import-quiz", str(SEED), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "inferred key B" in err
    data = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert data["questions"][0]["needs_confirmation"] is True
    assert load_rubric(out).id == "rnn_lstm"
    assert main(["import-quiz", str(SEED), "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["import-quiz", str(SEED), "-o", str(out), "--force", "--id", "other"]) == 0
    assert load_rubric(out).id == "other"


QUIZ = """Question 1 Multiple Choice
Which gate decides what to drop from the cell state?
A) The input gate
B) The forget gate
C) The output gate
Answer: B
The forget gate scales the old cell state.

Question 2 True / False
GRUs have a separate cell state.
True
False
Answer: False
They merge it into the hidden state.

Question 3 Short Answer
Why do gradients vanish in vanilla RNNs?
Model answer:
Backpropagation multiplies by the same recurrent matrix at every step.
Key phrases: 'same recurrent matrix' and 'repeated multiplication'.
"""


def test_stated_keys_separators_and_multiline_model_answers():
    data = parse_quiz(QUIZ, rubric_id="gates").data
    q1, q2, q3 = data["questions"]
    assert [o["text"] for o in q1["options"]] == ["The input gate", "The forget gate", "The output gate"]
    assert q1["correct"] == ["B"] and "needs_confirmation" not in q1
    assert q2["correct"] is False
    assert q3["reference_answers"] == ["Backpropagation multiplies by the same recurrent matrix at every step."]
    assert [k["text"] for k in q3["key_phrases"]] == ["same recurrent matrix", "repeated multiplication"]


def test_points_are_configurable():
    data = parse_quiz(QUIZ, choice_points=2, short_answer_points=10).data
    assert data["questions"][0]["points"] == 2 and data["questions"][2]["max_points"] == 10


@pytest.mark.parametrize("text,message", [
    ("", "no questions found"),
    ("Question 1 True / False\nThe sky is green.\nAnswer: maybe\n", "needs 'Answer: True'"),
    ("Question 1 Multiple Choice\nPick one\nA) x\nB) y\nAnswer: E\n", "names no option"),
    ("Question 1 Multiple Choice\nPick one\nA) x\nB) y\n", "no 'Answer:' line and no explanation"),
    ("Question 1 Multiple Choice\nPick one but no options\n", "lists no lettered options"),
])
def test_broken_quizzes_say_what_is_wrong(text, message):
    with pytest.raises(InputDataError, match=message):
        parse_quiz(text, source="quiz.txt")


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(InputDataError, match="file not found"):
        import_quiz(tmp_path / "nope.txt")
