"""Clauses encoded on their own: the encoder's parts, their scale, and how they state key phrases."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from grader.rubric import KeyPhrase, ShortAnswerQuestion
from grader.scoring.features import (MAX_ALONE, _alone_clauses, alone_scale, answer_signals, clause_splitter,
                                     prepare_question)
from grader.scoring.phrases import FOUND, AloneScale, AnswerSpans, Match, TargetSet, make_targets
from grader.text import analyze

ANSWER = ("Plain RNNs forget. The LSTM keeps a memory lane next to the hidden state, and each step only adds to it; "
          "the gates decide how much.")


@pytest.fixture(scope="module")
def fresh():
    """An encoder of its own: the tests set its splitter."""
    from grader.engine import get_embedder

    return get_embedder().load()


def test_parts_come_with_the_answer_and_read_as_the_clause_alone(fresh):
    fresh.splitter = clause_splitter(("en",))
    try:
        encoding = fresh.encode_tokens([ANSWER])[0]
    finally:
        fresh.splitter = None
    plain = fresh.encode_tokens([ANSWER])[0]
    assert plain.parts is None
    np.testing.assert_allclose(encoding.vector, plain.vector, atol=1e-5)  # the answer's own vectors unchanged
    np.testing.assert_allclose(encoding.tokens, plain.tokens, atol=1e-5)
    texts = [ANSWER[a:b] for a, b in encoding.part_spans]
    assert "The LSTM keeps a memory lane next to the hidden state" in texts
    assert len(encoding.parts) == len(texts)
    alone = fresh.encode(texts)
    assert (np.einsum("ij,ij->i", encoding.parts, alone) > 0.999).all()


def test_sentence_vectors_never_encode_parts(fresh):
    fresh.splitter = clause_splitter(("en",))
    try:
        with_splitter = fresh.encode([ANSWER, "Gates."])
    finally:
        fresh.splitter = None
    np.testing.assert_allclose(with_splitter, fresh.encode([ANSWER, "Gates."]), atol=1e-5)


def test_an_answer_without_clauses_gets_no_parts(fresh):
    fresh.splitter = clause_splitter(("en",))
    try:
        encoding = fresh.encode_tokens(["gates"])[0]
    finally:
        fresh.splitter = None
    assert encoding.parts is not None and len(encoding.parts) == 0


def test_splitter_caps_clauses_per_answer():
    many = "; ".join(f"the gate number {i} adds memory" for i in range(30))
    assert len(clause_splitter(("en",))(many)) == MAX_ALONE


def test_scale_from_the_concepts_own_phrasings():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 16))
    vectors = np.concatenate([centres[k] + 0.3 * rng.normal(size=(3, 16)) for k in range(2)])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    scale = alone_scale(vectors.astype(np.float32), [3, 3])
    sims = vectors @ vectors.T
    within = np.mean([sims[i, j] for i in range(6) for j in range(6) if i != j and i // 3 == j // 3])
    between = np.mean([sims[i, j] for i in range(6) for j in range(6) if i // 3 != j // 3])
    assert scale.floor < between < within < scale.ceil + (within - between)  # a quarter of the way up
    assert alone_scale(vectors[:3], [3]) is None  # one concept: no scale
    assert alone_scale(vectors[[0, 3]], [1, 1]) is None  # no two phrasings of one concept


def _spans(embedder, text, clause_vectors):
    analysis = analyze(text)
    return AnswerSpans(analysis, embedder.encode_tokens([text])[0], None, (),
                       (list(analysis.clauses), np.asarray(clause_vectors, dtype=np.float32)))


def _targets(embedder, scale):
    texts = [("a separate cell state that is updated additively", "a memory cell updated by addition"),
             ("the same weight matrix is multiplied at every step", "repeated multiplication by W")]
    vectors = embedder.encode([t for p in texts for t in p])
    return TargetSet.of(make_targets(["cell", "mult"], texts, vectors, "en"), (0.34, 0.66), None, scale)


def test_a_clause_read_alone_states_the_concept_it_reads_closest_to(embedder):
    text = "The RNN has trouble with long sequences; the LSTM has its own lane that grows."
    targets = _targets(embedder, AloneScale(0.2, 0.5))
    assert len(analyze(text).clauses) == 2
    cell = embedder.encode(["a memory cell updated by addition"])[0]
    # The second clause read alone as the cell concept: found, with that clause as evidence.
    noise = embedder.encode(["the weather is nice"])[0]
    matches = _spans(embedder, text, [noise, cell]).match_all(targets)
    assert matches[0].found and matches[0].evidence == "the LSTM has its own lane that grows"
    assert not matches[1].found
    # Without a scale for clauses read alone they state nothing: the pooled spans alone decide.
    pooled = _spans(embedder, text, [noise, cell]).match_all(_targets(embedder, None))
    assert pooled[0].strength < matches[0].strength


def test_a_clause_closer_to_another_concept_states_only_that_one(embedder):
    text = "The RNN has trouble with long sequences; the LSTM has its own lane that grows."
    cell, mult = embedder.encode(["a memory cell updated by addition", "repeated multiplication by W"])
    mixed = cell + 1.05 * mult
    mixed /= np.linalg.norm(mixed)
    spans = _spans(embedder, text, [mixed, mixed])
    strength = spans._semantic(spans.similarities(_targets(embedder, AloneScale(0.0, 0.3)).matrix),
                               _targets(embedder, None).needed, _targets(embedder, None).starts,
                               alone=AloneScale(0.0, 0.3))[0]
    alone_rows = strength[spans.n_pooled :]
    assert (alone_rows[:, 0] == 0).all() and (alone_rows[:, 1] > 0).all()


def test_a_clause_that_states_a_misconception_states_no_key_phrase(embedder):
    text = "The RNN has trouble with long sequences; the LSTM has its own lane that grows."
    cell = embedder.encode(["a memory cell updated by addition"])[0]
    noise = embedder.encode(["the weather is nice"])[0]
    spans = _spans(embedder, text, [noise, cell])
    start = text.index("the LSTM")
    spans.silence([Match(0.9, text[start:], start, len(text), "semantic", False)])
    assert spans.match_all(_targets(embedder, AloneScale(0.2, 0.5)))[0].strength < FOUND


def test_a_clause_that_goes_on_with_a_stated_misconception_states_no_key_phrase(embedder):
    text = "The RNN has trouble with long sequences; the LSTM has its own lane that grows."
    cell, wrong, noise = embedder.encode(["a memory cell updated by addition", "LSTMs have more parameters",
                                          "the weather is nice"])
    clause = cell + 1.2 * wrong  # read alone, the clause is near the cell concept and nearer the misconception
    clause /= np.linalg.norm(clause)
    targets = _targets(embedder, AloneScale(0.2, 0.5))
    rivals = TargetSet.of(make_targets(["params"], [("LSTMs have more parameters",)], wrong[None, :], "en"))
    first = text.index(";")

    def matched(strength):  # the misconception's match, its evidence in the first clause
        spans = _spans(embedder, text, [noise, clause])
        key_sims = spans.similarities(targets.matrix)
        spans.silence([Match(strength, text[:first], 0, first, "semantic", False)], rivals,
                      spans.similarities(rivals.matrix), key_sims, 0.3)
        return spans.match_all(targets, key_sims)[0]

    assert matched(0.9).strength < FOUND  # the answer states the misconception: the clause goes on with it
    assert matched(0.1).found  # it does not: the clause reads close to it, and states the key phrase


def test_questions_without_key_phrases_leave_the_encoder_alone(fresh):
    fresh.splitter = None
    question = ShortAnswerQuestion(id="saf", prompt="Why is the sky blue?", reference_answers=(
        "Air scatters blue light more than red light.",), max_points=1.0)
    prepared = prepare_question(question, fresh, "en", {})
    assert fresh.splitter is None and prepared.key_targets.alone is None
    encoding = fresh.encode_tokens(["Because the air scatters blue light."])[0]
    assert encoding.parts is None


def test_a_question_with_key_phrases_has_the_encoder_take_clauses(fresh, rubric):
    fresh.splitter = None
    q5 = next(q for q in rubric.questions if q.id == "q5")
    prepared = prepare_question(q5, fresh, "en", {})
    try:
        assert prepared.key_targets.alone is not None and "en" in fresh.splitter.languages
        batched = fresh.encode_tokens([ANSWER])[0]
        fresh_first = fresh.splitter
        fresh.splitter = None
        before = fresh.encode_tokens([ANSWER])[0]  # encoded before the question was prepared: no parts
        fresh.splitter = fresh_first
        with_parts = answer_signals(prepared, ANSWER, batched)
        late = answer_signals(prepared, ANSWER, before)  # its clauses are encoded when its signals are computed
        assert [m.strength for m in late.key_matches] == pytest.approx([m.strength for m in with_parts.key_matches],
                                                                     abs=1e-3)
        analysis = analyze(ANSWER)
        ranges, vectors = _alone_clauses(prepared, analysis, batched)
        assert ranges and set(ranges) <= set(analysis.clauses) and len(vectors) == len(ranges)
        # Grading processes get the question without the encoder.
        assert pickle.loads(pickle.dumps(prepared)).encoder is None
    finally:
        fresh.splitter = None


def test_key_phrase_question_built_in_code_gets_a_scale(fresh):
    question = ShortAnswerQuestion(id="m", prompt="How do mitosis and meiosis differ?", max_points=2.0,
                                   reference_answers=("Mitosis makes two identical cells; meiosis makes four "
                                                      "different ones.",),
                                   key_phrases=(KeyPhrase(text="mitosis gives two identical cells",
                                                          alternatives=("two genetically identical daughter cells",)),
                                                KeyPhrase(text="meiosis gives four different cells",
                                                          alternatives=("four genetically distinct gametes",))))
    try:
        prepared = prepare_question(question, fresh, "en", {})
        assert isinstance(prepared.key_targets.alone, AloneScale)
        assert prepared.key_targets.alone.floor < prepared.key_targets.alone.ceil
        assert prepared.misconception_targets.alone is None
    finally:
        fresh.splitter = None


def test_a_one_clause_answer_is_read_alone_from_its_own_vector(fresh, rubric):
    text = "The LSTM adds new information to a separate memory cell"
    assert clause_splitter(("en",))(text) == []  # nothing more to encode
    q5 = next(q for q in rubric.questions if q.id == "q5")
    try:
        prepared = prepare_question(q5, fresh, "en", {})
        encoding = fresh.encode_tokens([text])[0]
        ranges, vectors = _alone_clauses(prepared, analyze(text), encoding)
        assert ranges == [(0, len(analyze(text).words))]
        np.testing.assert_allclose(vectors[0], encoding.vector)
    finally:
        fresh.splitter = None
