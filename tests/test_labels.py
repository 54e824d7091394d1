"""Points and labels agree: labels partition the grade, and grades are learned as numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.evaluation.estimator import GradeCombiner
from grader.result import ConceptResult, GradeResult, MisconceptionResult
from grader.rubric import KeyPhrase, ShortAnswerQuestion
from grader.scoring.combiner import LinearCombiner, load_combiner
from grader.scoring.feedback import compose, compose_student
from grader.scoring.policy import label_and_points, snap

DEFAULT = load_combiner()
STEPS = [(5.0, 0.5), (5.0, 0.25), (1.0, 0.25), (2.0, 1.0), (10.0, 1.0), (1.0, 1.0)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3), st.floats(0.0, 1.0), st.booleans(), st.booleans(),
       st.sampled_from(STEPS))
def test_points_and_label_are_consistent(weights, fraction, lowered, missing_required, scale):
    max_points, step = scale
    proba = np.asarray(weights) + 1e-3
    proba = proba / proba.sum()
    index, points = label_and_points(DEFAULT, proba, fraction, lowered, missing_required, max_points, step)
    assert 0.0 <= points <= max_points
    assert abs(points / step - round(points / step)) < 1e-6
    # The label is the one whose band holds the points: equal points, equal label.
    assert index == DEFAULT.band_index(points / max_points)


def test_missing_required_keeps_the_label_below_the_top():
    top = int(np.argmax(DEFAULT.label_fractions_))
    proba = np.zeros(len(DEFAULT.classes_))
    proba[top] = 1.0
    index, points = label_and_points(DEFAULT, proba, 1.0, False, True, 5.0, 0.5)
    assert index != top and points < 5.0
    assert index == DEFAULT.band_index(points / 5.0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3), st.floats(0.0, 1.0), st.sampled_from(STEPS))
def test_a_points_scheme_keeps_its_points_whatever_the_combiner_thinks(weights, fraction, scale):
    max_points, step = scale
    proba = np.asarray(weights) + 1e-3
    index, points = label_and_points(DEFAULT, proba / proba.sum(), fraction, False, False, max_points, step,
                                     points_decide=True)
    assert points == snap(fraction * max_points, step, max_points)  # never moved into the likeliest label's band
    assert index == DEFAULT.band_index(points / max_points)


def test_class_of_one_question_never_gets_two_labels_for_the_same_points(grader):
    from tests.test_feedback_levels import Q5_ANSWERS

    answers = list(Q5_ANSWERS) + [
        "LSTMs have gates.", "The RNN forgets because of vanishing gradients.",
        "The LSTM adds to its cell state under the control of gates, so the gradient survives; the RNN "
        "multiplies by the same matrix every step, so its gradient vanishes or explodes.",
        "Because it uses attention over all earlier steps.", "More parameters make the LSTM remember more.",
    ]
    seen: dict[float, str] = {}
    for answer in answers:
        result = grader.grade("q5", answer)
        assert seen.setdefault(result.points, result.label) == result.label, (result.points, seen)


def _scored(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    grade = 1 / (1 + np.exp(-(1.5 * X[:, 0] + X[:, 1])))
    levels = np.round(grade * 4) / 4  # scores 0..1 in steps of 0.25
    return X, np.array([f"{v:.4g}" for v in levels], dtype=object), levels, np.repeat(np.arange(n // 20), 20)


def test_scores_are_learned_as_numbers():
    X, y, fractions, groups = _scored()
    model = GradeCombiner(C=1.0).fit(X, y, fractions=fractions, groups=groups)
    assert 0.0 <= model.score_weight_ <= 1.0
    predicted = model.predict_fraction(X)
    assert predicted.min() >= 0.0 and predicted.max() <= 1.0
    assert np.corrcoef(predicted, fractions)[0, 1] > 0.85
    assert model.labels_follow_points  # score levels: the label is the level of the points


def test_regression_survives_json_and_old_files_still_load(tmp_path):
    X, y, fractions, groups = _scored()
    model = GradeCombiner(C=1.0).fit(X, y, fractions=fractions, groups=groups)
    path = model.save(tmp_path / "c.json")
    back = LinearCombiner.load(path)
    assert np.allclose(back.predict_fraction(X), model.predict_fraction(X))
    data = json.loads(path.read_text())
    for key in ("score_coef", "score_intercept", "score_weight"):
        data.pop(key)
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = LinearCombiner.load(tmp_path / "old.json")
    assert np.allclose(old.predict_fraction(X), old.predict_proba(X) @ old.label_fractions_)
    data["score_coef"], data["score_intercept"], data["score_weight"] = [1.0], 0.0, 0.5  # wrong shape
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(Exception, match="inconsistent shapes"):
        LinearCombiner.load(tmp_path / "bad.json")


def test_label_bands_partition_the_grade():
    bands = DEFAULT.label_bands()
    assert bands[0][1] == 0.0 and bands[-1][2] == 1.0
    assert all(a[2] == b[1] for a, b in zip(bands, bands[1:]))
    assert [DEFAULT.band_index((lo + hi) / 2) for _, lo, hi in bands] == [
        list(DEFAULT.classes_).index(name) for name, _, _ in bands]


# -- uncertain evidence is said to be uncertain ---------------------------------------------
UNSURE_CONCEPT = ConceptResult("a separate cell state", 1.0, 0.5, True, 0.55, "keeps a memory", "semantic",
                               uncertain=True)
UNSURE_MISCONCEPTION = MisconceptionResult("LSTMs work because they have more parameters", 1.5, 0.55,
                                           "LSTMs keep a separate cell", "More parameters do not explain it.",
                                           uncertain=True)


def test_feedback_never_asserts_what_is_uncertain():
    text = compose((UNSURE_CONCEPT,), (UNSURE_MISCONCEPTION,), (), {}, 0.5, "partially_correct")
    assert "You stated" not in text and "Unclear, a grader will check: a separate cell state" in text
    assert "Possible misconception, a grader will check" in text and "no points taken off" in text
    assert "Misconception: More" not in text


def test_student_is_never_told_an_uncertain_misconception():
    class Q:
        key_phrases = ()
        reference_answers = ()
        misconceptions = ()

    result = GradeResult("q5", "short_answer", 2.0, 5.0, "partially_correct", 0.5, True, "",
                         concepts=(UNSURE_CONCEPT,), misconceptions=(UNSURE_MISCONCEPTION,))
    text = compose_student(result, Q())
    assert "isconception" not in text and "parameters" not in text
    assert "A grader will check whether you stated point 1" in text


# -- labels set by the rubric ------------------------------------------------------------------
def _question(**extra):
    from grader.rubric import ShortAnswerQuestion

    return ShortAnswerQuestion.model_validate({"id": "q", "reference_answers": ["x"], "max_points": 5,
                                               "points_step": 0.5, **extra})


def test_rubric_labels_map_points_to_labels():
    q = _question(labels={"correct": 4, "partially_correct": 1.5, "incorrect": 0})
    assert [q.label_of(p) for p in (0, 1.0, 1.5, 3.5, 4.0, 5.0)] == [
        "incorrect", "incorrect", "partially_correct", "partially_correct", "correct", "correct"]
    hash(q)  # questions stay hashable: prepared questions are cached by them


@pytest.mark.parametrize("labels, message", [
    ({"correct": 4, "partially_correct": 1.5}, "minimum of 0"),
    ({"correct": 4, "good": 4, "incorrect": 0}, "distinct minimums"),
    ({"correct": 6, "incorrect": 0}, "between 0 and max_points"),
])
def test_bad_rubric_labels_are_refused(labels, message):
    with pytest.raises(Exception, match=message):
        _question(labels=labels)


def test_engine_labels_follow_the_rubric_bands(grader):
    q5 = next(q for q in grader.rubric.questions if q.id == "q5")
    assert q5.labels
    for answer in ["LSTMs have gates.", "The LSTM adds to its cell state under the control of gates so the "
                   "gradient survives, while the RNN multiplies by the same weight matrix at every step so its "
                   "gradients vanish or explode.", "Because of attention."]:
        result = grader.grade("q5", answer)
        assert result.label == q5.label_of(result.points)


# A subject of its own, graded by a points scheme: two key phrases of one point each make up the question's points.
ICE = dict(id="ice", prompt="Why does ice float on liquid water?", max_points=2, points_step=0.5,
           reference_answers=["Water expands when it freezes because hydrogen bonds hold the molecules in an open "
                              "lattice, so ice is less dense than liquid water and floats."])
ICE_KEYS = [KeyPhrase(text="ice is less dense than liquid water", points=1),
            KeyPhrase(text="hydrogen bonds hold the molecules in an open lattice", points=1)]
ICE_ANSWERS = ["Ice is less dense than the water around it, because hydrogen bonds lock the molecules into an "
               "open crystal lattice.",
               "Because frozen water is lighter per litre than liquid water.",
               "Ice is cold and it is found on lakes in winter.",
               "Water is a very important molecule for life on earth.",
               "Its hydrogen bonds make an open structure."]


def test_the_key_phrases_weight_follows_the_rubric_points_scheme():
    assert ShortAnswerQuestion(**ICE, key_phrases=ICE_KEYS).key_weight == 1.0  # 1 + 1 = max_points
    assert ShortAnswerQuestion(**ICE, key_phrases=ICE_KEYS[:1]).key_weight == 0.5  # one point of two
    assert ShortAnswerQuestion(**ICE).key_weight == 0.5
    assert ShortAnswerQuestion(**ICE, key_phrases=ICE_KEYS, criteria_weight=0.3).key_weight == 0.3  # as written
    # graded examples are the instructor's own grades of the question, read by the combiner: it keeps its half
    graded = ShortAnswerQuestion(**ICE, key_phrases=ICE_KEYS, examples=[{"answer": "Ice is lighter.", "points": 1}])
    assert graded.key_weight == 0.5


def test_a_points_scheme_grades_an_answer_by_the_concepts_it_states(embedder):
    from grader.engine import Grader

    grader = Grader(None, embedder=embedder)
    scheme = ShortAnswerQuestion(**ICE, key_phrases=ICE_KEYS)
    holistic = ShortAnswerQuestion(**ICE, key_phrases=ICE_KEYS, criteria_weight=0.0)
    by_scheme = grader.grade_pairs([(scheme, a) for a in ICE_ANSWERS])
    by_combiner = grader.grade_pairs([(holistic, a) for a in ICE_ANSWERS])
    for r in by_scheme:  # the points are the concepts' points, nothing from the combiner
        assert r.points == snap(sum(c.awarded for c in r.concepts), 0.5, 2.0), r
    assert by_scheme[0].points == 2.0 and by_scheme[3].points <= 0.5 and by_scheme[3].label == "incorrect"
    # the combiner alone grades otherwise: the scheme, not the combiner, set those points
    assert any(a.points != b.points for a, b in zip(by_scheme, by_combiner))
    # the confidence still holds the combiner's view: it is not certain of every grade
    assert min(r.confidence for r in by_scheme) < 0.9
