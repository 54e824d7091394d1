"""token_f1: how closely an answer's contextual token vectors align with the closest model answer's."""

from __future__ import annotations

import numpy as np
import pytest

from grader.scoring.features import FEATURES, answer_signals, prepare_question, token_f1

LABELS = {"correct": 1.0, "partially_correct": 0.5, "incorrect": 0.0}


@pytest.fixture(scope="module")
def q5(embedder, rubric):
    return prepare_question(rubric.question("q5"), embedder, "en", LABELS)


def _f1(q5, embedder, text):
    return token_f1(q5.reference_tokens, embedder.encode_tokens([text])[0].tokens)


def test_each_reference_is_kept_as_unit_token_vectors(q5, rubric):
    assert len(q5.reference_tokens) == len(rubric.question("q5").reference_answers)
    for rows in q5.reference_tokens:
        assert rows.ndim == 2 and len(rows) > 5
        np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)


def test_the_model_answer_aligns_fully_and_an_off_topic_one_least(q5, embedder, rubric):
    model = _f1(q5, embedder, rubric.question("q5").reference_answers[0])
    paraphrase = _f1(q5, embedder, "In a plain RNN the same weights multiply the gradient at every step, so it "
                                   "fades; the LSTM's memory is updated by adding, controlled by gates.")
    off_topic = _f1(q5, embedder, "I really enjoyed this module and the lecturer was great.")
    assert model == pytest.approx(1.0, abs=1e-4)
    assert model > paraphrase > off_topic + 0.1


def test_one_true_fragment_scores_below_the_whole_answer(q5, embedder, rubric):
    """High precision, low recall: the harmonic mean keeps a fragment below the full answer."""
    whole = _f1(q5, embedder, rubric.question("q5").reference_answers[0])
    fragment = _f1(q5, embedder, "gates")
    assert fragment < whole - 0.2


def test_nothing_to_align_gives_zero():
    rows = np.eye(3, dtype=np.float32)
    assert token_f1((), rows) == 0.0
    assert token_f1((rows,), np.zeros((0, 3), dtype=np.float32)) == 0.0
    assert token_f1((np.zeros((0, 3), dtype=np.float32),), rows) == 0.0


def test_the_signal_is_the_answers_token_f1(q5, embedder):
    text = "The LSTM adds to its cell state, so the gradient survives."
    encoding = embedder.encode_tokens([text])[0]
    features = answer_signals(q5, text, encoding).features
    assert features[FEATURES.index("token_f1")] == pytest.approx(token_f1(q5.reference_tokens, encoding.tokens))
