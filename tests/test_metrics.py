"""Each metric against values computed by hand on small fixtures."""

from __future__ import annotations

import math

import pytest

from grader.evaluation.metrics import coverage_at, coverage_curve, label_metrics, reliability, score_metrics

TRUE = ["a", "a", "b", "b", "c"]
PRED = ["a", "b", "b", "b", "a"]


def test_label_metrics_by_hand():
    m = label_metrics(TRUE, PRED, groups=["q1", "q1", "q1", "q2", "q2"])
    assert m["n"] == 5
    assert m["accuracy"] == pytest.approx(0.6)
    # F1: a = 0.5 (P 1/2, R 1/2), b = 0.8 (P 2/3, R 1), c = 0
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert m["weighted_f1"] == pytest.approx((2 * 0.5 + 2 * 0.8 + 1 * 0.0) / 5)
    assert m["labels"] == ["a", "b", "c"]
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert m["per_question"] == {"q1": {"n": 3, "accuracy": pytest.approx(2 / 3)},
                                 "q2": {"n": 2, "accuracy": pytest.approx(0.5)}}


def test_label_the_grader_never_predicts_keeps_its_row():
    m = label_metrics(["a", "z"], ["a", "a"], labels=["a", "b", "z"])
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 0, 0], [1, 0, 0]]
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.0) / 2)  # over the human labels a and z


def test_coverage_by_hand():
    correct = [1, 1, 1, 0, 1, 0]
    conf = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    # accuracy of the k most confident: 1, 1, 1, .75, .8, .667
    assert coverage_at(correct, conf, 0.90) == pytest.approx(0.5)
    assert coverage_at(correct, conf, 0.95) == pytest.approx(0.5)
    assert coverage_at(correct, conf, 0.75) == pytest.approx(5 / 6)
    assert coverage_at([0, 0], [0.9, 0.8], 0.9) == 0.0
    m = label_metrics(["x"] * 6, ["x" if c else "y" for c in correct], confidence=conf)
    assert m["coverage_at_90"] == pytest.approx(0.5)


def test_coverage_keeps_ties_together():
    cov, acc = coverage_curve([1, 0, 1], [0.9, 0.9, 0.5])
    assert cov.tolist() == pytest.approx([2 / 3, 1.0])
    assert acc.tolist() == pytest.approx([0.5, 2 / 3])
    assert coverage_at([1, 0, 1], [0.9, 0.9, 0.5], 0.9) == 0.0


def test_score_metrics_by_hand():
    m = score_metrics([0, 1, 2, 3], [0, 1, 2, 4])
    assert m["rmse"] == pytest.approx(0.5)
    assert m["mae"] == pytest.approx(0.25)
    assert m["pearson"] == pytest.approx(6.5 / math.sqrt(5 * 8.75))
    assert m["spearman"] == pytest.approx(1.0)
    assert m["qwk"] == pytest.approx(1.0)  # 4 snaps to the top human level, 3


def test_quadratic_weighted_kappa_by_hand():
    # O has one disagreement (1 vs 2): weight 1/4. E = outer([1,1,1],[1,0,2])/3: sum(w*E) = 1.25
    m = score_metrics([0, 1, 2], [0, 2, 2])
    assert m["qwk"] == pytest.approx(1 - 0.25 / 1.25)


def test_constant_predictions_have_no_correlation():
    m = score_metrics([0, 1, 2], [1, 1, 1])
    assert m["pearson"] is None and m["spearman"] is None
    assert m["mae"] == pytest.approx(2 / 3)


def test_reliability_bins_by_hand():
    data = reliability([1, 0, 1, 1], [0.15, 0.15, 0.95, 0.85], bins=10)
    assert data["confidence"] == pytest.approx([0.15, 0.85, 0.95])
    assert data["accuracy"] == pytest.approx([0.5, 1.0, 1.0])
    assert data["count"] == [2, 1, 1]


@pytest.mark.parametrize("bad", [([], []), (["a"], ["a", "b"])])
def test_label_metrics_reject_bad_input(bad):
    with pytest.raises(ValueError):
        label_metrics(*bad)
