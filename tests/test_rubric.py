"""The rubric format: validation errors name file, question and field.

That every field is documented is checked in tests/test_docs.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from grader.errors import RubricError, UnknownQuestionError
from grader.rubric import load_rubric, load_rubric_dir
from tests.conftest import RUBRIC


def test_example_rubric_holds_the_whole_quiz(rubric):
    assert [q.id for q in rubric.questions] == ["q1", "q2", "q3", "q4", "q5"]
    assert [q.type for q in rubric.questions] == ["multiple_choice"] * 2 + ["true_false"] * 2 + ["short_answer"]
    q5 = rubric.question("q5")
    texts = [k.text for k in q5.key_phrases]
    assert "additive updates with gating" in texts and "multiplicative recurrence" in texts
    assert len(q5.key_phrases) >= 5 and len(q5.misconceptions) >= 3
    assert rubric.question("q1").correct == ("B",)
    assert rubric.question("q3").correct is True and rubric.question("q4").correct is False


def _write(tmp_path, data) -> Path:
    path = tmp_path / "quiz.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _base():
    return {"id": "quiz", "questions": [
        {"id": "a1", "type": "short_answer", "prompt": "Why?", "reference_answers": ["Because."], "max_points": 2,
         "key_phrases": [{"text": "because", "points": 1}]},
        {"id": "m1", "type": "multiple_choice", "options": [{"id": "A", "text": "x"}, {"id": "B", "text": "y"}],
         "correct": "B"},
    ]}


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d["questions"][0].update(max_points=-1), ["question 'a1'", "max_points", "greater than 0", "-1"]),
    (lambda d: d["questions"][0]["key_phrases"][0].update(points=0), ["question 'a1'", "key_phrases[0].points"]),
    (lambda d: d["questions"][0].update(colour="red"), ["question 'a1'", "colour", "not permitted"]),
    (lambda d: d["questions"][1].update(correct="Z"), ["question 'm1'", "correct must name option ids"]),
    (lambda d: d["questions"][1].update(type="essay"), ["question 'm1'", "type"]),
    (lambda d: d["questions"].append(dict(d["questions"][0])), ["duplicate question id 'a1'"]),
    (lambda d: d.pop("id"), ["field 'id'", "required"]),
    (lambda d: d["questions"][0].update(examples=[{"answer": "x", "points": 5}]), ["question 'a1'", "max_points"]),
    (lambda d: d["questions"][0].update(examples=[{"answer": "x"}]), ["question 'a1'", "needs `points` or `label`"]),
])
def test_errors_name_file_question_and_field(tmp_path, mutate, expected):
    data = _base()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(RubricError) as info:
        load_rubric(path)
    message = str(info.value)
    assert str(path) in message
    for part in expected:
        assert part in message, message


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("id: x\nquestions:\n  - id: [unclosed\n")
    with pytest.raises(RubricError, match=r"bad.yaml: invalid YAML at line \d+"):
        load_rubric(path)


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(RubricError, match="file not found"):
        load_rubric(tmp_path / "nope.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(RubricError, match="must be a mapping"):
        load_rubric(path)


def test_unknown_question_lists_valid_ids(rubric):
    with pytest.raises(UnknownQuestionError, match="Valid ids: q1, q2, q3, q4, q5"):
        rubric.question("q9")


def test_rubric_dir_rejects_duplicate_ids(tmp_path):
    (tmp_path / "a.yaml").write_text(RUBRIC.read_text())
    (tmp_path / "b.yaml").write_text(RUBRIC.read_text())
    with pytest.raises(RubricError, match="also used by"):
        load_rubric_dir(tmp_path)


def test_check_rubric_cli(tmp_path, capsys):
    from grader.cli import main

    assert main(["check-rubric", str(RUBRIC)]) == 0
    out = capsys.readouterr().out
    assert "5 questions" in out and "needs_confirmation" not in out  # the example quiz's keys are confirmed
    data = _base()
    data["questions"][0]["max_points"] = 0
    bad = _write(tmp_path, data)
    assert main(["check-rubric", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "question 'a1'" in err and "max_points" in err


def test_a_reversal_costs_half_the_concepts_points_unless_the_rubric_says_otherwise():
    from grader.rubric import KeyPhrase

    assert KeyPhrase(text="additive updates", points=2).reversal_cost == 1.0
    assert KeyPhrase(text="additive updates", points=2, reversal_penalty=0).reversal_cost == 0.0
    assert KeyPhrase(text="additive updates", reversal_penalty=1.5).reversal_cost == 1.5
    with pytest.raises(ValueError):
        KeyPhrase(text="additive updates", reversal_penalty=-1)
