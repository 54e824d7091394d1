"""Labels are a function of points: within a question, equal points get equal labels, more points no lower label."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from grader.rubric import KeyPhrase, ShortAnswerQuestion
from grader.scoring.policy import label_for_points

# Answers to q5 of every kind, from the model answer to junk, so that many share points.
PIECES = [
    "The vanilla RNN multiplies the hidden state by the same weight matrix at every step, so gradients vanish or explode.",
    "The LSTM keeps a separate cell state that is updated additively.",
    "Gates decide what to keep and what to write, so the update is additive and gated.",
    "When the forget gate is near 1 the information and the gradient pass through unchanged.",
    "LSTMs use attention to look directly at earlier time steps.",
    "LSTMs have more parameters.",
    "The RNN forgets things.",
    "I am not sure.",
]


def _answers() -> list[str]:
    out = []
    for k in range(1, 4):
        out += [" ".join(c) for c in itertools.combinations(PIECES, k)]
    return out


def test_equal_points_equal_labels_and_monotone(grader):
    results = grader.grade_many([("q5", a) for a in _answers()])
    by_points: dict[float, set[str]] = {}
    for r in results:
        by_points.setdefault(r.points, set()).add(r.label)
    assert all(len(labels) == 1 for labels in by_points.values()), by_points
    rank = {"incorrect": 0, "partially_correct": 1, "correct": 2}
    ordered = [rank[next(iter(by_points[p]))] for p in sorted(by_points)]
    assert ordered == sorted(ordered), by_points
    assert len(by_points) >= 4  # the answers really spread over the scale


VALUES = np.array([1.0, 0.0, 0.6])  # correct, incorrect, partially_correct


@pytest.mark.parametrize("points, expected", [(0, 1), (1, 1), (1.5, 2), (3.5, 2), (4, 0), (5, 0)])
def test_boundaries_are_midpoints_on_the_points_grid(points, expected):
    # midpoints 0.3 * 5 = 1.5 and 0.8 * 5 = 4.0, already on the 0.5 grid; points on a boundary go up
    assert label_for_points(points, 5, 0.5, VALUES) == expected


def test_boundaries_round_to_the_step():
    values = np.array([1.0, 0.0, 0.614])  # midpoints 0.307 and 0.807 of 5: 1.535 and 4.035 -> 1.5 and 4.0
    assert label_for_points(4.0, 5, 0.5, values) == 0
    assert label_for_points(3.5, 5, 0.5, values) == 2
    assert label_for_points(1.5, 5, 0.5, values) == 2


@pytest.mark.parametrize("step", [0.1, 0.25, 0.5, 1.0])
def test_labels_are_monotone_in_points(step):
    grid = np.arange(0, 5 + 1e-9, step)
    ranks = [float(VALUES[label_for_points(p, 5, step, VALUES)]) for p in grid]
    assert ranks == sorted(ranks)


def test_unknown_fractions_give_none():
    assert label_for_points(1, 5, 0.5, np.array([np.nan, 0.0])) is None


def test_a_missing_required_concept_keeps_the_label_below_the_top(grader):
    q = ShortAnswerQuestion(id="lungs", prompt="What do the lungs do?", max_points=5, points_step=0.5,
                            reference_answers=("The lungs take in oxygen and remove carbon dioxide from the blood.",),
                            key_phrases=(KeyPhrase(text="take in oxygen", points=0.5),
                                         KeyPhrase(text="remove carbon dioxide", points=0.5, required=True)))
    r = grader.grade_pairs([(q, "The lungs take in oxygen from the air into the blood.")])[0]
    assert "missing_required" in {f.code for f in r.flags}
    assert r.label != "correct"
    assert r.label == grader.combiner.classes_[label_for_points(r.points, r.max_points, q.step,
                                                                grader.combiner.label_fractions_)]
