"""An answer's standing among its classmates' answers: ranks, training, the combiner file and the engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata

from grader.engine import Grader
from grader.errors import ModelError
from grader.evaluation.corpus import LabeledAnswer
from grader.evaluation.training import Dataset, build_dataset, fit_combiner
from grader.rubric import ShortAnswerQuestion
from grader.scoring.cohort import COHORT_FEATURES, COHORT_SIGNALS, MIN_COHORT, standing
from grader.scoring.combiner import LinearCombiner, load_combiner
from grader.scoring.features import FEATURES

QUESTION = ShortAnswerQuestion(
    id="tcp", prompt="Why is TCP reliable?", max_points=2,
    reference_answers=("TCP numbers every segment, the receiver acknowledges it, and the sender retransmits "
                       "segments that are not acknowledged before a timeout.",))
CLASS = ["TCP numbers segments and retransmits the ones not acknowledged.",
         "Sequence numbers and acknowledgements; lost segments are sent again.",
         "Each segment gets a sequence number, the receiver acknowledges it, and TCP retransmits on timeout.",
         "Acknowledgements tell the sender what arrived; missing segments are retransmitted.",
         "It acknowledges segments.",
         "Because of sequence numbers.",
         "TCP is fast because it has no headers.",
         "It broadcasts packets to every host on the network.",
         "Because the cable is reliable.",
         "Packets are encrypted so they arrive.",
         "Routers never drop packets.",
         "It uses a checksum and resends what is lost."]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(-5, 5, allow_nan=False), min_size=len(FEATURES), max_size=len(FEATURES)),
                min_size=MIN_COHORT, max_size=40))
def test_standing_is_the_centred_percentile_with_shared_ties(rows):
    X = np.array(rows)
    ranks = standing(X)
    assert ranks.shape == (len(X), len(COHORT_SIGNALS))
    assert (ranks > -0.5).all() and (ranks < 0.5).all()
    for j, name in enumerate(COHORT_SIGNALS):
        expected = (rankdata(X[:, FEATURES.index(name)]) - 0.5) / len(X) - 0.5
        assert np.allclose(ranks[:, j], expected)


def test_no_standing_below_the_minimum_class():
    assert standing(np.zeros((MIN_COHORT - 1, len(FEATURES)))) is None
    assert standing(np.zeros((MIN_COHORT, len(FEATURES)))) is not None


def _rows():
    rows = []
    for q in range(4):
        for i, text in enumerate(CLASS):
            rows.append(LabeledAnswer(row=len(rows) + 1, question_id=f"q{q}", question=QUESTION.prompt,
                                      reference_answer=QUESTION.reference_answers[0], answer=text, score=None,
                                      max_score=None, answer_id=f"{q}-{i}",
                                      label="correct" if i < 4 else "partially_correct" if i < 6 else "incorrect"))
    return rows


@pytest.fixture(scope="module")
def trained(grader):
    signals = Grader.for_signals(grader.embedder)
    data = build_dataset(signals, _rows(), "label", example_counts=(0, 5))
    return data, fit_combiner(data)


def test_training_ranks_each_question_draw_among_its_own_rows(trained):
    data, _ = trained
    assert data.cohort.shape == (len(data.y), len(COHORT_FEATURES))
    full = data.example_count == 0  # 12 answers per question: a class; with 5 drawn as examples, 7 are not
    assert np.isfinite(data.cohort[full]).all() and np.isnan(data.cohort[~full]).all()
    for q in np.unique(data.groups):
        rows = np.flatnonzero(full & (data.groups == q))
        assert np.allclose(data.cohort[rows], standing(data.X[rows]))


def test_the_combiner_saves_and_loads_its_cohort_weights(trained, tmp_path):
    data, combiner = trained
    assert combiner.cohort_ is not None
    assert combiner.cohort_.feature_names_ == [*FEATURES, *COHORT_FEATURES]
    path = combiner.save(tmp_path / "c.json")
    loaded = load_combiner(path)
    X = np.hstack([data.X[:5], np.zeros((5, len(COHORT_FEATURES)))])
    assert np.allclose(loaded.cohort_.predict_proba(X), combiner.cohort_.predict_proba(X))
    broken = json.loads(path.read_text())
    broken["cohort"]["feature_names"] = broken["feature_names"] + ["cohort_x"] * len(COHORT_FEATURES)
    with pytest.raises(ModelError, match="cohort"):
        LinearCombiner.from_dict(broken)


def test_no_cohort_weights_without_classes(trained):
    data, _ = trained
    plain = Dataset(data.X, data.y, data.fractions, data.groups)
    assert fit_combiner(plain).cohort_ is None


def test_a_class_is_graded_with_its_standing_and_one_answer_without(grader):
    assert grader.combiner.cohort_ is not None, "the shipped combiner reads a class's standing"
    results = grader.grade_answers(QUESTION, CLASS)
    for result in results:
        assert set(COHORT_FEATURES) <= set(result.signals)
        assert all(-0.5 < result.signals[f] < 0.5 for f in COHORT_FEATURES)
    best = max(range(len(CLASS)), key=lambda i: results[i].signals["ref_sim"])
    assert results[best].signals["cohort_ref_sim"] == max(r.signals["cohort_ref_sim"] for r in results)
    alone = grader.grade_answers(QUESTION, CLASS[:1])[0]
    assert not set(COHORT_FEATURES) & set(alone.signals)
    # Fewer than MIN_COHORT distinct answers (duplicates count once), or cohort=False: each on its own.
    few = grader.grade_answers(QUESTION, CLASS[:MIN_COHORT - 1] * 3)
    assert all(not set(COHORT_FEATURES) & set(r.signals) for r in few)
    own = Grader(None, embedder=grader.embedder, cohort=False).grade_answers(QUESTION, CLASS)
    assert [r.points for r in own] == [grader.grade_answers(QUESTION, [a])[0].points for a in CLASS]
    assert all(not set(COHORT_FEATURES) & set(r.signals) for r in own)
    assert any(t.probabilities != o.probabilities for t, o in zip(results, own)), "the standing is read"
    # Grading the class changes what its standing says, and only that: the same signals and concepts.
    for together, single in zip(results, own):
        assert [c.found for c in together.concepts] == [c.found for c in single.concepts]
        assert {k: v for k, v in together.signals.items() if k in FEATURES} == single.signals


def test_evaluation_grades_each_folds_test_answers_as_a_class(grader):
    from grader.evaluation.protocols import evaluate

    rows = _rows()
    together = evaluate(rows, cv="unseen-questions", folds=2, embedder=grader.embedder, example_counts=(0,))
    alone = evaluate(rows, cv="unseen-questions", folds=2, embedder=grader.embedder, example_counts=(0,),
                     cohort=False)
    assert together.summary["protocol"]["cohort"] is True and alone.summary["protocol"]["cohort"] is False
    graded = together.predictions[("grader", None)].results
    assert len(graded) == len(rows) and all(set(COHORT_FEATURES) <= set(r.signals) for r in graded)
    assert not any(set(COHORT_FEATURES) & set(r.signals) for r in alone.predictions[("grader", None)].results)
