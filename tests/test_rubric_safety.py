"""Rubrics that would crash, stall or silently mislead the grader are refused, or warned about, when loaded.

Whatever `check-rubric` passes must grade; whatever grading would choke on, the loader refuses with a
RubricError that names the field, and `check-rubric` says so.
"""

from __future__ import annotations

import json
import textwrap
import time
import tracemalloc
import warnings

import pytest
import yaml

from grader.errors import RubricError
from grader.rubric import MAX_RUBRIC_BYTES, RubricWarning, load_rubric, parse_rubric, rubric_warnings
from tests.conftest import RUBRIC

QUESTION = {"id": "a1", "type": "short_answer", "prompt": "Why do gradients vanish in a vanilla RNN?",
            "reference_answers": ["The same weight matrix is multiplied at every step, so gradients shrink."],
            "max_points": 2, "key_phrases": [{"text": "the same weight matrix is multiplied", "points": 1}]}
ANSWERS = ["", "It is.", "x", "The same weights are multiplied again and again, so the gradient shrinks.",
           "It is not the case that the same weight matrix is multiplied at every step.", "\ud800", "abc \ud800 def",
           "\U0001f600 \u202egate\u202c \x00 日本語の答え"]


def _quiz(**question) -> dict:
    return {"id": "quiz", "questions": [dict(QUESTION, **question)]}


def _write(tmp_path, text: str, name: str = "quiz.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _check(path, capsys) -> tuple[int, str, str]:
    from grader.cli import main

    status = main(["check-rubric", str(path)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# -- 1. reference answers with no content words -------------------------------------------
@pytest.mark.parametrize("references", [["It is."], ["x"], ["Both."], [""], ["It is. Both."],
                                        ["x", "Gradients vanish because the same matrix is multiplied."]])
def test_a_reference_without_content_words_grades_every_answer(grader, references):
    with pytest.warns(RubricWarning, match="no content words"):
        rubric = parse_rubric(_quiz(reference_answers=references))
    question = rubric.questions[0]
    for result in grader.grade_answers(question, ANSWERS):
        assert 0 <= result.points <= result.max_points
        json.dumps(result.to_dict(), allow_nan=False)


def test_check_rubric_warns_about_a_reference_without_content_words(tmp_path, capsys):
    path = _write(tmp_path, yaml.safe_dump(_quiz(reference_answers=["It is."])))
    status, out, _ = _check(path, capsys)
    assert status == 0
    assert "warning: question 'a1', field 'reference_answers[0]': 'It is.' has no content words" in out


# -- 2. lone surrogates ------------------------------------------------------------------------
def test_lone_surrogates_in_answers_are_graded(grader):
    for answer in ["\ud800", "abc \ud800 def", "\udfff\ud800", "\ud83d\ude00 gradient"]:
        result = grader.grade("q5", answer)
        assert 0 <= result.points <= result.max_points
        json.dumps(result.to_dict(), ensure_ascii=False).encode("utf-8")  # no surrogate reaches the output


def test_lone_surrogates_in_a_reference_are_replaced_when_loaded(grader, tmp_path):
    path = _write(tmp_path, textwrap.dedent("""\
        id: quiz
        questions:
          - id: a1
            type: short_answer
            prompt: "Why \\ud800?"
            reference_answers: ["Gradients \\ud800 vanish because the same matrix is multiplied."]
            key_phrases:
              - text: "same \\udc00 matrix"
                alternatives: ["repeated \\ud800 multiplication"]
        """))
    question = load_rubric(path).questions[0]
    assert question.reference_answers[0] == "Gradients \ufffd vanish because the same matrix is multiplied."
    assert question.key_phrases[0].alternatives == ("repeated \ufffd multiplication",)
    result = grader.grade_answers(question, ["The same matrix is multiplied, gradients vanish \ud800."])[0]
    assert result.points > 0


def test_the_tokenizer_never_sees_a_lone_surrogate(embedder):
    vectors = embedder.encode(["a \ud800 b", "\udfff"])
    assert vectors.shape[0] == 2


# -- 3. non-finite and absurd numbers ----------------------------------------------------------
@pytest.mark.parametrize("yaml_text, field", [
    ("max_points: .inf", "questions.0.max_points"),
    ("max_points: -.inf", "questions.0.max_points"),
    ("max_points: Infinity", "questions.0.max_points"),
    ("max_points: .nan", "questions.0.max_points"),
    ("max_points: 1e308", "questions.0.max_points"),
    ("max_points: 1.0e+308", "questions.0.max_points"),
    ("max_points: 5.0e-324", "questions.0.max_points"),
    ("max_points: yes", "questions.0.max_points"),
    ("points_step: .nan", "questions.0.points_step"),
    ("points_step: 1.0e-300", "questions.0.points_step"),
    ("criteria_weight: .nan", "questions.0.criteria_weight"),
    ("key_phrases: [{text: t, points: .inf}]", "questions.0.key_phrases.0.points"),
    ("key_phrases: [{text: t, points: 1.0e+300}]", "questions.0.key_phrases.0.points"),
    ("misconceptions: [{text: t, penalty: .inf}]", "questions.0.misconceptions.0.penalty"),
    ("examples: [{answer: t, points: .nan}]", "questions.0.examples.0.points"),
])
def test_non_finite_and_absurd_numbers_are_refused_naming_the_field(tmp_path, capsys, yaml_text, field):
    path = _write(tmp_path, textwrap.dedent(f"""\
        id: quiz
        questions:
          - id: a1
            type: short_answer
            reference_answers: [Gradients vanish because the same matrix is multiplied.]
            {yaml_text}
        """))
    with pytest.raises(RubricError) as info:
        load_rubric(path)
    assert info.value.field == field
    status, _, err = _check(path, capsys)
    assert status == 2 and "FAIL" in err


@pytest.mark.parametrize("question", [
    {"id": "m1", "type": "multiple_choice", "options": [{"id": "A", "text": "x"}, {"id": "B", "text": "y"}],
     "correct": "A", "points": float("inf")},
    {"id": "t1", "type": "true_false", "correct": True, "points": float("nan")},
    {"id": "t1", "type": "true_false", "correct": True, "points": 1e308},
])
def test_choice_points_must_be_finite_too(question):
    with pytest.raises(RubricError) as info:
        parse_rubric({"id": "quiz", "questions": [question]})
    assert info.value.field == "questions.0.points"


def test_the_largest_allowed_points_grade_to_valid_json(grader):
    rubric = parse_rubric(_quiz(max_points=1_000_000, points_step=1, key_phrases=[
        {"text": "the same weight matrix is multiplied", "points": 1_000_000, "required": True}]))
    for result in grader.grade_answers(rubric.questions[0], ANSWERS):
        assert 0 <= result.points <= 1_000_000
        json.dumps(result.to_dict(), allow_nan=False)


def test_score_cli_refuses_an_infinite_max_points(tmp_path, capsys):
    from grader.cli import main

    path = _write(tmp_path, yaml.safe_dump(_quiz()).replace("max_points: 2", "max_points: .inf"))
    assert main(["score", "--rubric", str(path), "--question", "a1", "Gradients vanish."]) == 2
    assert "max_points" in capsys.readouterr().err


# -- 4. YAML alias bombs and oversized files ----------------------------------------------------
def _billion_laughs(levels: int = 9) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    lines += ["id: bomb", "questions:", "  - id: a1", "    type: short_answer",
              f"    reference_answers: *l{levels - 1}"]
    return "\n".join(lines) + "\n"


def test_a_billion_laughs_rubric_is_refused_quickly_and_in_little_memory(tmp_path, capsys):
    path = _write(tmp_path, _billion_laughs())
    assert path.stat().st_size < 10_000  # 9**9 = 387,420,489 strings once expanded
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(RubricError, match="aliases expand the document past"):
            load_rubric(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 5
    assert peak < 20_000_000
    status, _, err = _check(path, capsys)
    assert status == 2 and "aliases expand" in err


def test_aliases_within_the_limit_still_load(tmp_path):
    path = _write(tmp_path, textwrap.dedent("""\
        id: quiz
        questions:
          - id: a1
            type: short_answer
            reference_answers: &refs [Gradients vanish because the same matrix is multiplied.]
          - id: a2
            type: short_answer
            reference_answers: *refs
        """))
    rubric = load_rubric(path)
    assert rubric.questions[0].reference_answers == rubric.questions[1].reference_answers


def test_a_recursive_alias_is_refused(tmp_path):
    path = _write(tmp_path, "id: quiz\nquestions: &q [*q]\n")
    with pytest.raises(RubricError, match="refers to its own anchor"):
        load_rubric(path)


def test_oversized_and_non_regular_files_are_refused(tmp_path):
    path = _write(tmp_path, yaml.safe_dump(_quiz()) + "#" * MAX_RUBRIC_BYTES)
    with pytest.raises(RubricError, match="larger than"):
        load_rubric(path)
    with pytest.raises(RubricError, match="not a regular file"):
        load_rubric(tmp_path)


# -- 5-7. error messages: only the real errors, the field named, the value quoted exactly -------
def test_an_error_inside_a_question_reports_only_that_error():
    with pytest.raises(RubricError) as info:
        parse_rubric(_quiz(max_points=-1))
    message = str(info.value)
    assert "at least 1 item" not in message and "questions'" not in message
    assert message.count("Got ") == 1 and info.value.field == "questions.0.max_points"


def test_a_rubric_without_questions_says_so():
    with pytest.raises(RubricError, match="at least one question") as info:
        parse_rubric({"id": "quiz", "questions": []})
    assert info.value.field == "questions"


def test_a_duplicate_question_id_names_the_field():
    data = {"id": "quiz", "questions": [dict(QUESTION, id="a1"), dict(QUESTION, id="b2"), dict(QUESTION, id="a1")]}
    with pytest.raises(RubricError) as info:
        parse_rubric(data)
    assert info.value.field == "questions.2.id"
    assert "duplicate question id 'a1': questions[0] has it too" in str(info.value)


@pytest.mark.parametrize("bad_id", ["a..b/", "q 1", "..", "x" * 30 + "!"])
def test_an_invalid_id_is_quoted_exactly(bad_id):
    with pytest.raises(RubricError) as info:
        parse_rubric(_quiz(id=bad_id))
    assert f"Got {bad_id!r}." in str(info.value)
    assert f"question {bad_id!r}" in str(info.value)


# -- 8. key-phrase points beyond max_points ---------------------------------------------------
def test_key_phrase_points_over_max_points_are_a_warning(tmp_path, capsys):
    data = _quiz(max_points=2, key_phrases=[{"text": "multiplied", "points": 2}, {"text": "shrink", "points": 1.5}])
    with pytest.warns(RubricWarning, match=r"key phrases' points add up to 3.5, more than max_points \(2\)"):
        parse_rubric(data)
    status, out, _ = _check(_write(tmp_path, yaml.safe_dump(data)), capsys)
    assert status == 0 and "warning: question 'a1', field 'key_phrases': the key phrases' points add up" in out


def test_the_example_rubric_loads_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RubricWarning)
        rubric = load_rubric(RUBRIC)
    assert rubric_warnings(rubric) == []


# -- 9. values of the wrong type are errors, never silently dropped -----------------------------
MAPPING_ALTERNATIVE = """\
id: quiz
questions:
  - id: a1
    type: short_answer
    reference_answers: [The window halves on loss and grows by one segment per round trip.]
    key_phrases:
      - text: AIMD
      - text: congestion avoidance
        alternatives:
          - additive increase, multiplicative decrease: the window halves
          - AIMD
"""


def test_an_alternative_that_yaml_reads_as_a_mapping_is_an_error(tmp_path, capsys):
    path = _write(tmp_path, MAPPING_ALTERNATIVE)
    with pytest.raises(RubricError) as info:
        load_rubric(path)
    assert info.value.field == "questions.0.key_phrases.1.alternatives.0"
    assert "must be text; YAML read a mapping" in str(info.value) and "quote the line" in str(info.value)
    status, _, err = _check(path, capsys)
    assert status == 2 and "key_phrases[1].alternatives[0]" in err


@pytest.mark.parametrize("snippet, field, read", [
    ("reference_answers: [{a: b}]", "questions.0.reference_answers.0", "a mapping"),
    ("reference_answers: [[a, b]]", "questions.0.reference_answers.0", "a list"),
    ("reference_answers: {a: b}", "questions.0.reference_answers", "a mapping"),
    ("key_phrases: [{text: t, alternatives: [null]}]", "questions.0.key_phrases.0.alternatives.0", "an empty value"),
    ("key_phrases: [{text: t, alternatives: [3]}]", "questions.0.key_phrases.0.alternatives.0", "3"),
    ("key_phrases: [{text: t, alternatives: {a: b}}]", "questions.0.key_phrases.0.alternatives", "a mapping"),
    ("key_phrases: [{text: {a: b}}]", "questions.0.key_phrases.0.text", "a mapping"),
    ("misconceptions: [{text: t, alternatives: [a: b]}]", "questions.0.misconceptions.0.alternatives.0", "a mapping"),
    ("examples: [{answer: {a: b}, points: 1}]", "questions.0.examples.0.answer", "a mapping"),
    ("prompt: {a: b}", "questions.0.prompt", "a mapping"),
])
def test_every_list_of_texts_refuses_other_values(snippet, field, read):
    text = f"id: quiz\nquestions:\n  - id: a1\n    type: short_answer\n    {snippet}\n"
    with pytest.raises(RubricError) as info:
        parse_rubric(yaml.safe_load(text))
    assert info.value.field == field
    assert read in str(info.value)


def test_a_choice_answer_key_that_yaml_reads_as_a_mapping_is_an_error():
    data = {"id": "quiz", "questions": [{"id": "m1", "type": "multiple_choice", "correct": [{"A": "x"}],
                                         "options": [{"id": "A", "text": "x"}, {"id": "B", "text": "y"}]}]}
    with pytest.raises(RubricError) as info:
        parse_rubric(data)
    assert info.value.field == "questions.0.correct.0"
