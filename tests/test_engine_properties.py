"""Property tests: any rubric that validates, crossed with any answer, grades without raising.

Hypothesis draws small rubrics (prompts, references, key phrases with alternatives,
misconceptions, examples, points and steps, choice questions), many of them empty-ish or
odd, and answers of every kind: empty, punctuation, one word, lone surrogates, NULs,
right-to-left marks, other scripts, and 100 KB. For each: validation raises nothing but
RubricError; grading raises nothing; points stay within [0, max_points]; the same input
gives the same result, alone or in a batch; the result is valid JSON without NaN or
Infinity, and valid UTF-8.

The examples run against the real encoder (the session fixture). CI runs a bounded number
(< 60 s); ``HYPOTHESIS_PROFILE=long`` runs many more by hand.
"""

from __future__ import annotations

import json
import math
import os
import string

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from grader.errors import RubricError
from grader.rubric import MAX_POINTS, MIN_POINTS, parse_rubric

# The CI budget (< 60 s with the real encoder); HYPOTHESIS_PROFILE=long keeps that profile's
# number of examples (tests/conftest.py registers it), at least 500.
LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
ENGINE = settings(max_examples=max(settings.default.max_examples, 500) if LONG else 35, deadline=None, print_blob=True,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                         HealthCheck.data_too_large, HealthCheck.filter_too_much])

WORDS = ("the", "cell", "state", "gate", "forget", "gradient", "vanishes", "LSTM", "RNN", "is", "not", "because",
         "multiplied", "additively", "it", "x", "Same", "weights", "matrix", "and", "no", "never", "Zustand", "und")
ODD = ("", " ", ".", "?!", "\x00", "a\x00b", "\ud800", "x\udfff y", "\u200f\u202e", "\u202egate\u202c",
       "\ufeff", "\u0301", "\U0001f600", "\t\n\r", "It is.", "x", "Same.", "-", "•", "::", "1e308", "NaN")
SCRIPTS = ("日本語の答えです。", "Ответ: градиент исчезает.", "الجواب هو البوابة", "उत्तर यह है", "שער השכחה",
           "ゲート、セル、勾配", "Ελληνικά κείμενο")
BIG = " ".join(["the forget gate keeps the cell state so gradients flow"] * 1_900)  # about 100 KB


texts = st.one_of(
    st.sampled_from(ODD),
    st.sampled_from(SCRIPTS),
    st.text(max_size=40),
    st.text(alphabet=string.punctuation + " ", max_size=20),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=25).map(" ".join),
    st.tuples(st.sampled_from(("", " ", ", ", ". ", "\n- ", "; ")),
              st.lists(st.sampled_from(WORDS + ODD + SCRIPTS), min_size=1, max_size=12)).map(lambda t: t[0].join(t[1])),
)
answers = st.one_of(texts, st.just(BIG), st.none())
nonblank = texts.filter(lambda t: len(t) >= 1)
points = st.one_of(st.sampled_from([1.0, 2.0, 0.5, 5.0, MIN_POINTS, MAX_POINTS, 0.3, 1e-3]),
                   st.floats(min_value=MIN_POINTS, max_value=MAX_POINTS, allow_nan=False, allow_infinity=False))


@st.composite
def short_answer(draw, qid: str) -> dict:
    max_points = draw(points)
    question = {
        "id": qid, "type": "short_answer", "prompt": draw(texts), "max_points": max_points,
        "reference_answers": draw(st.lists(texts, max_size=3)),
        "criteria_weight": draw(st.floats(min_value=0, max_value=1)),
        "language": draw(st.sampled_from([None, "en", "de", "auto", "fr", "xx"])),
        "key_phrases": draw(st.lists(st.fixed_dictionaries(
            {"text": nonblank, "points": points, "alternatives": st.lists(texts, max_size=3),
             "required": st.booleans()}, optional={"hint": texts}), max_size=3)),
        "misconceptions": draw(st.lists(st.fixed_dictionaries(
            {"text": nonblank, "penalty": st.one_of(st.just(0.0), points), "alternatives": st.lists(texts, max_size=2)},
            optional={"feedback": texts}), max_size=2)),
        "examples": draw(st.lists(st.one_of(
            st.fixed_dictionaries({"answer": texts, "points": st.floats(min_value=0, max_value=max_points)}),
            st.fixed_dictionaries({"answer": texts, "label": st.sampled_from(["correct", "incorrect",
                                                                                "partially_correct", "odd"])})),
            max_size=3)),
    }
    if draw(st.booleans()):
        question["points_step"] = draw(st.sampled_from([max_points, max_points / 10, max_points * MIN_POINTS]))
    return question


@st.composite
def rubrics(draw) -> dict:
    questions = [draw(short_answer("s1"))]
    if draw(st.booleans()):
        questions.append({"id": "m1", "type": "multiple_choice", "points": draw(points), "correct": ["B"],
                          "options": [{"id": "A", "text": draw(nonblank)}, {"id": "B", "text": draw(nonblank)}]})
        questions.append({"id": "t1", "type": "true_false", "correct": draw(st.booleans()), "points": draw(points)})
    return {"id": "fuzz", "language": draw(st.sampled_from(["en", "de", "fr"])), "questions": questions}


def _check(result) -> dict:
    assert 0.0 <= result.points <= result.max_points, (result.points, result.max_points)
    assert 0.0 <= result.confidence <= 1.0
    data = result.to_dict()
    json.dumps(data, allow_nan=False, ensure_ascii=False).encode("utf-8")
    assert all(math.isfinite(v) for v in (data.get("signals") or {}).values())
    return data


@ENGINE
@given(data=rubrics(), replies=st.lists(answers, min_size=1, max_size=3))
def test_any_valid_rubric_grades_any_answer(grader, data, replies):
    try:
        rubric = parse_rubric(data, warn=False)
    except RubricError:
        reject()
    pairs = [(q, a) for q in rubric.questions for a in replies]
    batch = grader.grade_pairs(pairs)
    again = [grader.grade_pairs([pair])[0] for pair in pairs]
    for first, second in zip(batch, again):
        assert _check(first) == _check(second)  # the same input, alone or in a batch: the same result


@ENGINE
@given(data=rubrics())
def test_validation_raises_nothing_but_a_rubric_error(data):
    try:
        rubric = parse_rubric(data, warn=False)
    except RubricError as exc:
        assert exc.message and (exc.field is None or isinstance(exc.field, str))
        return
    for q in rubric.questions:
        assert 0 < q.max_points <= MAX_POINTS


@pytest.mark.parametrize("answer", ["", "\ud800", "\x00" * 50, BIG, "\u202e" * 3, SCRIPTS[0], "1e308 NaN Infinity"])
def test_the_example_quiz_grades_odd_answers(grader, answer):
    for qid in ("q1", "q3", "q5"):
        _check(grader.grade(qid, answer))
