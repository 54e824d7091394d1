"""An answer about something else is flagged `off_topic`; wrong answers on the topic are not."""

from __future__ import annotations

import pytest

from tests.test_engine import MODEL, PARAPHRASE, VANISHING_ONLY, WRONG_OPTIONS

OFF_TOPIC = [
    "I really enjoyed this module, the lecturer was great and I learned a lot.",
    "My favourite football team won the cup last weekend after a dramatic penalty shootout.",
    "Computers are fast and that is why it works.",
]
ON_TOPIC_WRONG = [
    *WRONG_OPTIONS.values(),
    VANISHING_ONLY,
    "The RNN is bad at remembering things because it is small.",
    "LSTMs are better because they are newer and more popular.",
    "The vanilla RNN uses additive updates, which is why its gradients vanish, while the LSTM uses multiplicative "
    "recurrence with gating.",
    "The LSTM does not update its cell state additively, and the gates do not decide what to keep.",
    "The forget gate near 0 preserves memory.",
    "LSTMs are just deeper networks with more layers.",
]


@pytest.mark.parametrize("answer", OFF_TOPIC)
def test_off_topic_answers_are_flagged_off_topic(grader, answer):
    result = grader.grade("q5", answer)
    codes = {f.code for f in result.flags}
    assert "off_topic" in codes and "filler_words" not in codes
    assert result.points == 0 and result.label == "incorrect" and result.needs_review


@pytest.mark.parametrize("answer", ON_TOPIC_WRONG + [MODEL, PARAPHRASE])
def test_on_topic_answers_are_not_flagged_off_topic(grader, answer):
    assert "off_topic" not in {f.code for f in grader.grade("q5", answer).flags}
