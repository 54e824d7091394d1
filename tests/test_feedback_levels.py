"""Feedback levels (issue 22): what a grade shows to a student, an instructor, or nobody.

The ``student`` level, the HTTP API's default, must never hand out the answer key: no key-phrase
text or alternative, no hint that names one, no run of six words of a reference answer.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.conftest import RUBRIC
from tests.test_api_service import wait_ready

KEY = "levels-key-0123456"
AUTH = {"X-API-Key": KEY}

# An inline question whose first key phrase is an 8-word span of its reference answer, with a hint
# that names a key phrase and a hint that does not.
REFERENCE = ("Ice floats because the molecules form an open hexagonal lattice when water freezes, "
             "which makes solid ice less dense than the liquid water around it.")
INLINE = {
    "prompt": "Why does ice float on water?",
    "reference_answers": [REFERENCE],
    "max_points": 3,
    "key_phrases": [
        {"text": "form an open hexagonal lattice when water freezes", "points": 1,
         "alternatives": ["the crystal structure is open and hexagonal"], "hint": "Describe the crystal structure."},
        {"text": "solid ice is less dense than liquid water", "points": 1,
         "alternatives": ["ice has a lower density"], "hint": "Say that solid ice is less dense than liquid water."},
        {"text": "buoyancy pushes the less dense solid up", "points": 1},
    ],
    "misconceptions": [{"text": "ice floats because it contains air bubbles", "penalty": 1,
                        "feedback": "Air bubbles are not why ice floats."}],
}

Q5_ANSWERS = [
    "I do not know.",
    "",
    "idk",
    "The LSTM is better.",
    # The model answer itself, and close paraphrases of it.
    "The vanilla RNN repeatedly multiplies the hidden state by the same weight matrix, causing gradients to decay "
    "or explode exponentially over long sequences. The LSTM introduces a separate cell state that is updated "
    "additively rather than multiplicatively, and learned gates determine how much old information to keep and "
    "how much new information to write.",
    "An RNN multiplies by one weight matrix at each step so the gradient vanishes or explodes; an LSTM has a "
    "separate cell state updated additively, with gates deciding what to keep and what to write.",
    "Because the cell state update is additive and gated, gradients can flow back through time without being "
    "repeatedly squashed.",
    # The key phrases themselves, listed and rewritten into one sentence.
    "additive updates with gating, multiplicative recurrence, a separate cell state that is updated additively",
    "With additive updates with gating and a forget gate near 1 preserves information and the gradient, the LSTM "
    "avoids the multiplicative recurrence where the same weight matrix is multiplied at every step, so gradients "
    "vanish or explode, thanks to a separate cell state that is updated additively.",
    "LSTMs work because they use attention to look directly at earlier time steps.",
    "LSTMs have more parameters so they remember more.",
    "It is not the case that the cell state is updated additively.",
]
INLINE_ANSWERS = [
    "I do not know.",
    REFERENCE,
    "Ice floats because the molecules form an open hexagonal lattice when water freezes.",
    "Solid ice is less dense than liquid water, and buoyancy pushes the less dense solid up.",
    "Ice floats because it contains air bubbles.",
    "ice has a lower density; the crystal structure is open and hexagonal",
]


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def _forbidden(question: dict) -> tuple[list[list[str]], set[tuple[str, ...]]]:
    """Word lists that must not appear (phrases, alternatives, hints that name a phrase) and reference 6-grams."""
    phrases = []
    for kp in question.get("key_phrases", []):
        texts = [kp["text"], *kp.get("alternatives", [])]
        phrases += [_words(t) for t in texts]
    for kp in question.get("key_phrases", []):
        hint = kp.get("hint")
        if hint and any(_contains(_words(hint), p) for p in phrases):
            phrases.append(_words(hint))
    spans = set()
    for ref in question.get("reference_answers", []):
        w = _words(ref)
        spans |= {tuple(w[i:i + 6]) for i in range(len(w) - 5)}
    return phrases, spans


def _contains(words: list[str], phrase: list[str]) -> bool:
    return f" {' '.join(phrase)} " in f" {' '.join(words)} "


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def assert_no_leak(body: dict, question: dict) -> None:
    phrases, spans = _forbidden(question)
    for text in _strings(body):
        words = _words(text)
        for phrase in phrases:
            assert not _contains(words, phrase), (" ".join(phrase), text)
        for i in range(len(words) - 5):
            assert tuple(words[i:i + 6]) not in spans, (words[i:i + 6], text)


def _without_none(value):
    """What /v1/grade sends (it leaves out null fields)."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def _q5(rubric) -> dict:
    q = rubric.question("q5")
    return json.loads(q.model_dump_json())


@pytest.fixture(scope="module")
def server(embedder):
    from grader.api import create_app
    from grader.api.server import ServerThread
    from grader.settings import Settings

    with ServerThread(create_app(Settings(api_keys=KEY, rubrics_dir=RUBRIC.parent), loader=lambda: embedder)) as srv:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            assert wait_ready(c).status_code == 200
        yield srv


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60, headers=AUTH) as c:
        yield c


# -- the student level leaks no answer key ------------------------------------------------
@pytest.mark.parametrize("answer", Q5_ANSWERS)
def test_student_level_grade_leaks_no_answer_key(client, rubric, answer):
    r = client.post("/v1/grade", json={"rubric_id": "rnn_lstm", "question_id": "q5", "answer": answer})
    assert r.status_code == 200
    body = r.json()
    assert_no_leak(body, _q5(rubric))
    assert all("concept" not in c for c in body["concepts"])
    assert all("misconception" not in m for m in body["misconceptions"])
    assert "signals" not in body


@pytest.mark.parametrize("answer", INLINE_ANSWERS)
def test_student_level_inline_grade_leaks_no_answer_key(client, answer):
    r = client.post("/v1/grade", json={"question": INLINE, "answer": answer})
    assert r.status_code == 200
    assert_no_leak(r.json(), INLINE)


def test_student_level_batch_and_attempt_leak_no_answer_key(client, rubric):
    items = [{"rubric_id": "rnn_lstm", "question_id": "q5", "answer": a} for a in Q5_ANSWERS]
    items += [{"question": INLINE, "answer": a} for a in INLINE_ANSWERS]
    r = client.post("/v1/grade/batch", json={"items": items})
    assert r.status_code == 200 and r.json()["failed"] == 0
    for item, out in zip(items, r.json()["results"]):
        assert_no_leak(out["result"], INLINE if "question" in item else _q5(rubric))
    for answer in Q5_ANSWERS[:6]:
        r = client.post("/v1/rubrics/rnn_lstm/attempts", json={"answers": {"q5": answer, "q1": "B"}})
        assert r.status_code == 200
        assert_no_leak(r.json(), _q5(rubric))


def test_student_level_says_which_points_are_missing_by_number_with_safe_hints(client):
    r = client.post("/v1/grade", json={"question": INLINE, "answer": "I do not know."})
    body = r.json()
    assert [c["index"] for c in body["concepts"]] == [0, 1, 2]
    assert [c["found"] for c in body["concepts"]] == [False, False, False]
    assert "Describe the crystal structure" in body["feedback"]  # a hint that names no key phrase is kept
    assert "point 1" in body["feedback"] and "point 3" in body["feedback"]


def test_student_level_keeps_the_grade(client):
    answer = Q5_ANSWERS[4]
    student = client.post("/v1/grade", json={"rubric_id": "rnn_lstm", "question_id": "q5", "answer": answer}).json()
    full = client.post("/v1/grade", json={"rubric_id": "rnn_lstm", "question_id": "q5", "answer": answer,
                                          "feedback_level": "instructor"}).json()
    for name in ("points", "max_points", "label", "confidence", "needs_review", "probabilities"):
        assert student[name] == full[name]
    assert [c["found"] for c in student["concepts"]] == [c["found"] for c in full["concepts"]]
    assert [f["code"] for f in student["flags"]] == [f["code"] for f in full["flags"]]


# -- choosing the level ---------------------------------------------------------------------
def test_instructor_level_is_everything_as_before(client, grader):
    answer = Q5_ANSWERS[0]
    r = client.post("/v1/grade", json={"rubric_id": "rnn_lstm", "question_id": "q5", "answer": answer,
                                       "feedback_level": "instructor"})
    assert r.status_code == 200
    assert r.json() == _without_none(json.loads(json.dumps(grader.grade("q5", answer).to_dict())))
    assert r.json()["concepts"][0]["concept"] == "additive updates with gating"


def test_none_level_has_no_feedback_or_concept_detail(client):
    r = client.post("/v1/grade/batch", json={"feedback_level": "none", "items": [
        {"rubric_id": "rnn_lstm", "question_id": "q5", "answer": Q5_ANSWERS[4]},
        {"rubric_id": "rnn_lstm", "question_id": "q5", "answer": "x", "feedback_level": "instructor"}]})
    assert r.status_code == 200
    first, second = (x["result"] for x in r.json()["results"])
    assert first["feedback"] == "" and first["concepts"] == [] and first["misconceptions"] == []
    assert first["points"] > 0
    assert second["concepts"][0]["concept"] == "additive updates with gating"  # an item's own level wins


def test_an_unknown_level_is_422(client):
    r = client.post("/v1/grade", json={"rubric_id": "rnn_lstm", "question_id": "q5", "answer": "x",
                                       "feedback_level": "everything"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "feedback_level"


def test_the_setting_chooses_the_default_level(embedder, monkeypatch):
    from grader.api import create_app
    from grader.api.server import ServerThread
    from grader.settings import Settings

    monkeypatch.setenv("GRADER_FEEDBACK_LEVEL", "instructor")
    settings = Settings(api_keys=KEY, rubrics_dir=RUBRIC.parent)
    assert settings.feedback_level == "instructor"
    assert Settings.model_fields["feedback_level"].default == "student"
    with ServerThread(create_app(settings, loader=lambda: embedder)) as srv, \
            httpx.Client(base_url=srv.url, timeout=60, headers=AUTH) as c:
        assert wait_ready(c).status_code == 200
        r = c.post("/v1/grade", json={"rubric_id": "rnn_lstm", "question_id": "q5", "answer": "I do not know."})
        assert r.json()["concepts"][0]["concept"] == "additive updates with gating"


def test_a_rubric_chooses_its_level_and_a_request_overrides_it(embedder, tmp_path):
    from grader.api import create_app
    from grader.api.server import ServerThread
    from grader.rubric import load_rubric
    from grader.settings import Settings

    text = RUBRIC.read_text(encoding="utf-8").replace("\nlanguage: en\n",
                                                      "\nlanguage: en\nfeedback_level: instructor\n")
    (tmp_path / "rnn_lstm.yaml").write_text(text, encoding="utf-8")
    assert load_rubric(tmp_path / "rnn_lstm.yaml").feedback_level == "instructor"
    with ServerThread(create_app(Settings(api_keys=KEY, rubrics_dir=tmp_path), loader=lambda: embedder)) as srv, \
            httpx.Client(base_url=srv.url, timeout=60, headers=AUTH) as c:
        assert wait_ready(c).status_code == 200
        body = {"rubric_id": "rnn_lstm", "question_id": "q5", "answer": "I do not know."}
        assert c.post("/v1/grade", json=body).json()["concepts"][0]["concept"] == "additive updates with gating"
        student = c.post("/v1/grade", json={**body, "feedback_level": "student"}).json()
        assert "concept" not in student["concepts"][0]


def test_a_rubric_level_must_be_a_known_one(tmp_path):
    from grader.errors import RubricError
    from grader.rubric import load_rubric

    path = tmp_path / "r.yaml"
    text = RUBRIC.read_text(encoding="utf-8").replace("\nlanguage: en\n", "\nlanguage: en\nfeedback_level: all\n")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RubricError, match="feedback_level"):
        load_rubric(path)


# -- the pure function ------------------------------------------------------------------------
@pytest.mark.parametrize("answer", Q5_ANSWERS)
def test_result_view_levels(grader, rubric, answer):
    from grader.scoring.feedback import result_view

    result = grader.grade("q5", answer)
    question = rubric.question("q5")
    assert result_view(result, question, "instructor") == result.to_dict()
    assert result.to_dict()["concepts"] == [dict(vars(c)) for c in result.concepts]  # the Python API: everything
    student = result_view(result, question, "student")
    assert_no_leak(student, _q5(rubric))
    assert [c["index"] for c in student["concepts"]] == list(range(len(result.concepts)))
    assert (student["points"], student["label"]) == (result.points, result.label)
    none = result_view(result, question, "none")
    assert none["feedback"] == "" and none["concepts"] == [] and none["points"] == result.points
    with pytest.raises(ValueError, match="`level`"):
        result_view(result, question, "all")


def test_student_feedback_never_quotes_a_key_phrase_that_copies_the_reference(embedder):
    from grader.engine import Grader
    from grader.rubric import ShortAnswerQuestion
    from grader.scoring.feedback import result_view

    question = ShortAnswerQuestion.model_validate({"id": "ice", **INLINE})
    grader = Grader(None, embedder=embedder)
    for answer in INLINE_ANSWERS:
        result = grader.grade_answers(question, [answer])[0]
        assert_no_leak(result_view(result, question, "student"), INLINE)
    # The instructor's view does quote it: the guard above is not vacuous.
    result = grader.grade_answers(question, ["I do not know."])[0]
    with pytest.raises(AssertionError):
        assert_no_leak(result.to_dict(), INLINE)
