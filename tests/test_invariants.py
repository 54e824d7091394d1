"""Invariants that must hold for any answer: bounds, determinism, monotonicity, no credit for restating."""

from __future__ import annotations

import pytest

ANSWERS = [
    "LSTMs have gates.",
    "Gradients vanish in RNNs.",
    "The RNN multiplies by the same matrix at every step.",
    "The cell state of the LSTM is updated additively.",
    "LSTMs use attention over all earlier steps.",
    "asdf qwer zxcv",
    "I think it is because of the forget gate which can stay near one so that information is kept.",
    "Recurrent nets are neural networks.",
]
# (answer, a missing key concept to add)
MONOTONE = [
    ("Gradients vanish in RNNs because the same weight matrix is multiplied at every step.",
     " The LSTM has a separate cell state that is updated additively."),
    ("The LSTM has a separate cell state that is updated additively.",
     " In a vanilla RNN the same weight matrix is multiplied at every step, so gradients vanish or explode."),
    ("The LSTM keeps a cell state.", " Its forget gate near 1 preserves information and the gradient."),
    ("RNNs forget things.", " LSTMs use additive updates with gating."),
    ("The vanilla RNN has multiplicative recurrence.", " The LSTM uses additive updates with gating."),
]
RESTATED = [
    "What is the fundamental architectural insight that allows LSTMs to maintain long-range dependencies, and why "
    "does the vanilla RNN fail at this?",
    "The fundamental architectural insight that allows LSTMs to maintain long-range dependencies and why the vanilla "
    "RNN fails at this.",
    "It is the fundamental architectural insight allowing LSTMs to maintain long range dependencies, which vanilla "
    "RNNs fail at.",
]


@pytest.mark.parametrize("answer", ANSWERS)
def test_points_within_bounds(grader, answer):
    result = grader.grade("q5", answer)
    assert 0.0 <= result.points <= result.max_points
    assert 0.0 <= result.confidence <= 1.0
    assert abs(sum(result.probabilities.values()) - 1.0) < 1e-3


@pytest.mark.parametrize("answer", ANSWERS[:4])
def test_results_are_deterministic(grader, rubric, answer):
    from grader.engine import Grader

    first = grader.grade("q5", answer).to_dict()
    again = Grader(rubric, embedder=grader.embedder).grade("q5", answer).to_dict()
    assert first == again


@pytest.mark.parametrize("answer, addition", MONOTONE)
def test_adding_a_missing_concept_never_lowers_the_score(grader, answer, addition):
    before = grader.grade("q5", answer)
    after = grader.grade("q5", answer + addition)
    assert after.points >= before.points
    assert len(after.concepts_found) >= len(before.concepts_found)


@pytest.mark.parametrize("answer", RESTATED)
def test_restating_the_question_earns_at_most_ten_percent(grader, answer):
    result = grader.grade("q5", answer)
    assert result.points <= 0.1 * result.max_points


@pytest.mark.parametrize("max_points", [1.2875156340305693, 0.1 + 0.2, 1e-6, 1_000_000, 2 / 3])
@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.99999999, 1.0])
def test_snapped_points_never_exceed_max_points(max_points, fraction):
    from grader.scoring.policy import snap

    for step in (max_points, max_points / 10, max_points * 1e-6):
        points = snap(fraction * max_points, step, max_points)
        assert 0.0 <= points <= max_points


def test_a_question_worth_an_odd_number_of_points_keeps_its_maximum(grader):
    """Hypothesis found it: rounding to six decimals lifted 1.2875156... to 1.287516."""
    from grader.rubric import ShortAnswerQuestion

    odd = 1.2875156340305693
    question = ShortAnswerQuestion(id="odd", max_points=odd, points_step=odd, criteria_weight=1.0,
                                   key_phrases=[{"text": "forget gate"}, {"text": "cell state"}])
    result = grader.grade_answers(question, ["The forget gate keeps the cell state."])[0]
    assert 0.0 <= result.points <= result.max_points == odd
