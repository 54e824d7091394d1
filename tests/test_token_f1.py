"""Token alignment: how closely an answer's contextual token vectors align with a model answer's (token_f1) and
with the question's graded examples' (ex_tok_*)."""

from __future__ import annotations

import numpy as np
import pytest

from grader.encoding.embedder import Encoding
from grader.scoring.features import (FEATURES, TOKEN_CANDIDATES, TOKEN_CANDIDATES_PER_END, TokenBank,
                                     answer_signals, prepare_question, token_f1)

LABELS = {"correct": 1.0, "partially_correct": 0.5, "incorrect": 0.0}


@pytest.fixture(scope="module")
def q5(embedder, rubric):
    return prepare_question(rubric.question("q5"), embedder, "en", LABELS)


def _f1(q5, embedder, text):
    return token_f1(q5.reference_tokens, embedder.encode_tokens([text])[0].tokens)


def test_each_reference_is_kept_as_unit_token_vectors(q5, embedder, rubric):
    references = rubric.question("q5").reference_answers
    bank = q5.reference_tokens
    assert len(bank) == len(references) and bank.rows.dtype == np.float16
    for text, start, n in zip(references, bank.starts, bank.lengths):
        assert n == len(embedder.encode_tokens([text])[0].tokens) > 5
        np.testing.assert_allclose(np.linalg.norm(bank.rows[start:start + n].astype(np.float32), axis=1), 1.0,
                                   atol=2e-3)


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


def _encoding(rows):
    rows = np.asarray(rows, dtype=np.float32).reshape(-1, 3)
    return Encoding(vector=np.ones(3, np.float32), tokens=rows, offsets=np.zeros((len(rows), 2), int))


def test_the_bank_computes_bertscore_precision_recall_and_f1_per_text():
    bank = TokenBank.of([_encoding([[1, 0, 0], [0, 1, 0]]), _encoding([[0, 0, 1]]), _encoding([])])
    assert list(bank.lengths) == [2, 1, 1]  # a text without tokens keeps one zero row
    answer = np.array([[1, 0, 0], [0, 0, 2]], dtype=np.float32)  # unit rows once normalised
    # Text 0: precision (1 + 0) / 2, recall (1 + 0) / 2 -> F1 0.5; text 1: precision (0 + 1) / 2, recall 1 -> 2/3.
    np.testing.assert_allclose(bank.f1(answer), [0.5, 2 / 3, 0.0], atol=1e-3)
    np.testing.assert_allclose(bank.f1(answer, [1]), [2 / 3], atol=1e-3)
    assert token_f1(bank, answer) == pytest.approx(2 / 3, abs=1e-3)


def test_nothing_to_align_gives_zero():
    bank = TokenBank.of([_encoding(np.eye(3))])
    assert TokenBank.of([]) is None
    assert token_f1(None, np.eye(3, dtype=np.float32)) == 0.0
    assert token_f1(bank, np.zeros((0, 3), dtype=np.float32)) == 0.0
    assert len(bank.f1(np.eye(3, dtype=np.float32), [])) == 0


def test_the_signal_is_the_answers_token_f1(q5, embedder):
    text = "The LSTM adds to its cell state, so the gradient survives."
    encoding = embedder.encode_tokens([text])[0]
    features = answer_signals(q5, text, encoding).features
    assert features[FEATURES.index("token_f1")] == pytest.approx(token_f1(q5.reference_tokens, encoding.tokens))


def test_graded_examples_are_aligned_token_by_token(embedder, rubric, monkeypatch):
    """ex_tok_*: an answer worded like a top-graded example aligns with it; the example itself, left out of
    its own signals, does not count; and a question with many examples aligns each answer with a bounded few."""
    from grader.rubric import GradedExample

    question = rubric.question("q5")
    good = "The LSTM adds to its cell state through gates, so the gradient does not vanish."
    bad = "LSTMs are better because they have more parameters."
    filler = [f"Answer number {i} says something about networks and training." for i in range(60)]
    examples = [GradedExample(answer=good, label="correct"), GradedExample(answer=bad, label="incorrect")]
    examples += [GradedExample(answer=t, label="partially_correct") for t in filler]
    prepared = prepare_question(question.model_copy(update={"examples": tuple(examples)}), embedder, "en", LABELS)
    assert len(prepared.example_tokens) == len(examples)
    at = {n: FEATURES.index(n) for n in ("ex_tok_knn", "ex_tok_top", "ex_tok_low")}

    def signals(text, exclude=None):
        features = answer_signals(prepared, text, embedder.encode_tokens([text])[0], exclude).features
        return {n: features[i] for n, i in at.items()}

    near_good = signals("The LSTM adds to its cell state through its gates, so the gradient does not vanish.")
    assert near_good["ex_tok_top"] > 0.95 > near_good["ex_tok_low"]
    assert near_good["ex_tok_knn"] > 0.8
    near_bad = signals("LSTMs are better since they have more parameters.")
    assert near_bad["ex_tok_low"] > near_bad["ex_tok_top"] and near_bad["ex_tok_knn"] < 0.2
    assert signals(good)["ex_tok_top"] == pytest.approx(1.0, abs=1e-3)
    assert signals(good, exclude=0)["ex_tok_top"] < 0.9  # left out of its own signals, it is not found again

    calls = []
    f1 = TokenBank.f1

    def counted(self, tokens, which=None):
        if self is prepared.example_tokens:
            calls.append(len(which))
        return f1(self, tokens, which)

    monkeypatch.setattr(TokenBank, "f1", counted)
    signals(bad)
    assert calls and max(calls) <= TOKEN_CANDIDATES + 2 * TOKEN_CANDIDATES_PER_END < len(examples)
