"""Graded examples as a per-question model, the combiner's example gate, and the cross-fitted 'all' draw."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.evaluation.corpus import LabeledAnswer
from grader.evaluation.estimator import GradeCombiner
from grader.evaluation.training import ALL, ALL_PARTS, _draws, build_dataset, fit_combiner, train_from_rows
from grader.rubric import GradedExample, ShortAnswerQuestion
from grader.scoring.combiner import LinearCombiner, load_combiner
from grader.scoring.exemplars import MIN_FIT, ExampleModel
from grader.scoring.features import EXAMPLES_HALF, FEATURES, answer_signals

GOOD = ["TCP numbers segments and retransmits the ones not acknowledged.",
        "Sequence numbers and acknowledgements; lost segments are sent again.",
        "Each segment gets a sequence number, the receiver acknowledges it, and TCP retransmits on timeout.",
        "Retransmission of unacknowledged segments, ordered by sequence numbers.",
        "Acknowledgements tell the sender what arrived; missing segments are retransmitted.",
        "It acknowledges every segment and resends lost ones using their sequence numbers."]
BAD = ["TCP is fast because it has no headers.", "It broadcasts packets to every host on the network.",
       "Because the cable is reliable.", "TCP never loses anything since routers are perfect.",
       "It is reliable because it is a newer protocol than UDP.", "Packets are encrypted so they arrive."]


def _vectors(embedder, texts):
    return np.asarray(embedder.encode(texts), dtype=np.float32)


def test_classifier_reads_wording_of_graded_examples(embedder):
    texts = GOOD + BAD
    model = ExampleModel.of(texts, [1.0] * len(GOOD) + [0.0] * len(BAD), _vectors(embedder, texts))
    assert len(texts) >= MIN_FIT and model.steps == 1
    good = "The sender retransmits segments that were never acknowledged, tracked by sequence number."
    bad = "It is reliable because it broadcasts to all hosts without headers."
    g, b = (model.predict(t, _vectors(embedder, [t])[0]) for t in (good, bad))
    assert g[0] > 0.6 > 0.4 > b[0]  # expected grade
    assert g[1] > b[1] and g[2] < b[2]  # chance of the top grade, of the bottom grade


def test_few_examples_use_the_nearest_and_exclude_grades_an_example_by_the_others(embedder):
    texts = [GOOD[0], BAD[0], BAD[1]]
    model = ExampleModel.of(texts, [1.0, 0.0, 0.0], _vectors(embedder, texts))
    assert model.steps == 0
    vec = _vectors(embedder, [GOOD[0]])[0]
    assert model.predict(GOOD[0], vec)[0] > 0.5  # nearest is itself
    assert model.predict(GOOD[0], vec, exclude=0) == (0.0, 0.0, 1.0)  # only the two bad ones are left


def test_examples_without_any_word_give_no_model(embedder):
    assert ExampleModel.of([], [], np.zeros((0, 384), np.float32)) is None
    assert ExampleModel.of(["  ", ""], [1.0, 0.0], np.zeros((2, 384), np.float32)) is None


def test_signals_of_a_question_with_and_without_examples(grader):
    base = ShortAnswerQuestion(id="tcp", prompt="Why is TCP reliable?", max_points=1.0,
                               reference_answers=("TCP uses sequence numbers, acknowledgements and retransmission.",))
    graded = base.model_copy(update={"examples": tuple(
        [GradedExample(answer=t, points=1.0) for t in GOOD] + [GradedExample(answer=t, points=0.0) for t in BAD])})
    answer = "Lost segments are retransmitted and the rest acknowledged by sequence number."
    plain = dict(zip(FEATURES, grader.signals(base, [answer])[0].features))
    rich = dict(zip(FEATURES, grader.signals(graded, [answer])[0].features))
    assert plain["ex_weight"] == 0.0 and plain["ex_lex"] == plain["ex_lex_top"] == plain["ex_lex_low"] == 0.0
    assert rich["ex_weight"] == pytest.approx(12 / (12 + EXAMPLES_HALF))
    assert rich["ex_lex"] > 0 and rich["ex_lex_top"] > 0 > rich["ex_lex_low"]  # log-odds: top grade likely
    # Grading example 0 by the others: one example fewer, and the classifier that saw it is not asked.
    prepared = grader.prepare(graded)
    enc = grader.encode_answers([GOOD[0]])[GOOD[0]]
    left_out = dict(zip(FEATURES, answer_signals(prepared, GOOD[0], enc, exclude_example=0).features))
    assert left_out["ex_weight"] == pytest.approx(11 / (11 + EXAMPLES_HALF))
    # The prepared-question cache counts the examples' model in its memory bound.
    from grader.engine.grader import estimate_bytes

    assert prepared.example_model.nbytes() > 10_000
    assert estimate_bytes(prepared) > estimate_bytes(grader.prepare(base)) + prepared.example_model.nbytes()
    # ... and the examples' token vectors (ex_tok_*).
    bank = prepared.example_tokens
    assert len(bank) == 12 and bank.rows.nbytes > 12 * 5 * 384 * 2
    assert estimate_bytes(prepared) >= (estimate_bytes(grader.prepare(base)) + prepared.example_model.nbytes()
                                        + bank.rows.nbytes)



def test_the_examples_model_reads_the_answers_signals_when_given(embedder):
    """Same wording, grades that follow a signal: the model fitted with the signals learns them, and asks for them."""
    texts = GOOD + BAD
    grades = np.array([1.0, 0.0] * (len(texts) // 2))  # unrelated to the wording
    signals = np.column_stack([grades * 0.5 + 0.2, np.linspace(0, 1, len(texts))])  # the first tells the grade
    vectors = _vectors(embedder, texts)
    model = ExampleModel.of(texts, grades, vectors, signals)
    assert model.reads_signals and not ExampleModel.of(texts, grades, vectors).reads_signals
    text = "TCP makes sure that data arrives."
    vector = _vectors(embedder, [text])[0]
    high, low = (model.predict(text, vector, signals=np.array([v, 0.5]))[0] for v in (0.7, 0.2))
    assert high > 0.7 and low < 0.45 and high - low > 0.3
    with pytest.raises(ValueError, match="signals"):
        model.predict(GOOD[0], vectors[0])
    assert model.nbytes() > ExampleModel.of(texts, grades, vectors).nbytes()
    # A signal the examples (nearly) share reads no further than MAX_Z of their spread: an answer far outside it
    # moves the grade as one just past the bound does, not without limit.
    nearly = np.column_stack([signals, np.r_[np.zeros(len(texts) - 1), 0.01]])
    bounded = ExampleModel.of(texts, grades, vectors, nearly)
    far, edge = (bounded.predict(text, vector, signals=np.array([0.5, 0.5, v])) for v in (1e6, 1.0))
    assert np.all(np.isfinite(far)) and far == pytest.approx(edge)


def test_a_prepared_question_fits_its_examples_on_the_signals_grading_computes(grader):
    from grader.scoring.features import EXAMPLE_SIGNALS

    base = ShortAnswerQuestion(id="tcp", prompt="Why is TCP reliable?", max_points=1.0,
                               reference_answers=("TCP uses sequence numbers, acknowledgements and retransmission.",))
    examples = tuple([GradedExample(answer=t, points=1.0) for t in GOOD] +
                     [GradedExample(answer=t, points=0.0) for t in BAD])
    model = grader.prepare(base.model_copy(update={"examples": examples})).example_model
    assert model.reads_signals
    own = np.array([[dict(zip(FEATURES, s.features))[n] for n in EXAMPLE_SIGNALS]
                    for s in grader.signals(base, GOOD + BAD)])
    np.testing.assert_allclose(model._signal_mean, own.mean(axis=0), atol=1e-6)
    # Without a model answer the best examples stand in for one: their signals against themselves are not read.
    bare = base.model_copy(update={"examples": examples, "reference_answers": ()})
    assert not grader.prepare(bare).example_model.reads_signals


def _gated_data(n=600, seed=0):
    """Label follows signal a without examples (gate 0) and signal b with many (gate 1)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    gate = (np.arange(n) % 2).astype(float)
    X = np.column_stack([a, b, gate])
    y = np.where(np.where(gate > 0, b, a) > 0, "correct", "incorrect").astype(object)
    return X, y, np.arange(n) % 10


def test_a_gated_combiner_learns_a_second_set_of_weights_and_round_trips():
    X, y, groups = _gated_data()
    names = ("a", "b", "g")
    plain = GradeCombiner(C=1.0).fit(X, y, groups=groups, feature_names=names)
    gated = GradeCombiner(C=1.0, gate="g").fit(X, y, groups=groups, feature_names=names)
    Xt, yt, _ = _gated_data(seed=1)
    assert (gated.predict(Xt) == yt).mean() > 0.95 > 0.85 > (plain.predict(Xt) == yt).mean()
    again = LinearCombiner.from_dict(json.loads(json.dumps(gated.to_dict())))
    assert again.to_dict()["gate"] == "g" and again.gate_ == 2 and again.n_features_in_ == 3
    np.testing.assert_allclose(again.predict_proba(Xt), gated.predict_proba(Xt))
    np.testing.assert_allclose(again.predict_fraction(Xt), gated.predict_fraction(Xt))
    with pytest.raises(ValueError, match="'g' must lie in \\[0, 1\\]"):
        GradeCombiner(gate="g").fit(X * 2, y, feature_names=names)
    broken = gated.to_dict()
    broken["gate"] = "nope"
    with pytest.raises(Exception, match="malformed"):
        LinearCombiner.from_dict(broken)


def test_many_grade_levels_pool_into_bins_of_about_equal_counts(embedder):
    """An averaged score (a dozen levels) gets one regression per step between at most MAX_BINS bins, whose
    edges fall between levels; each bin stands for its examples' mean grade, in order."""
    from grader.scoring.exemplars import MAX_BINS, _bins

    levels = np.round(np.arange(13) / 12, 6)
    grades = np.repeat(levels, [1, 1, 2, 3, 3, 4, 2, 2, 5, 3, 2, 1, 1])
    bins = _bins(grades, levels)
    assert bins.max() + 1 == MAX_BINS and (np.diff(bins[np.argsort(grades, kind="stable")]) >= 0).all()
    assert all(len(set(bins[grades == v])) == 1 for v in levels)  # a level never straddles two bins
    assert np.bincount(bins).min() >= 2
    np.testing.assert_array_equal(_bins(np.array([0.0, 0.5, 1.0, 1.0]), np.array([0.0, 0.5, 1.0])), [0, 1, 2, 2])
    texts = (GOOD + BAD) * 2
    model = ExampleModel.of(texts, grades[: len(texts)], _vectors(embedder, texts))
    assert model.steps == MAX_BINS - 1 and (np.diff(model.class_fractions) > 0).all()
    expected, top, bottom = model.predict(GOOD[0], _vectors(embedder, [GOOD[0]])[0])
    assert 0.0 <= expected <= 1.0 and 0.0 <= top <= 1.0 and 0.0 <= bottom <= 1.0


def test_a_combiner_saved_before_the_example_signals_grades_as_before(tmp_path):
    """A combiner file whose signals lack the newer ones gives those zero weight."""
    rng = np.random.default_rng(0)
    old = [n for n in FEATURES if n not in ("ex_lex", "ex_lex_top", "ex_lex_low", "ex_weight")]
    X_old = rng.normal(size=(60, len(old)))
    y = np.where(X_old[:, 0] > 0, "correct", "incorrect").astype(object)
    fitted = GradeCombiner(C=1.0).fit(X_old, y, feature_names=old)
    path = tmp_path / "old.json"
    fitted.save(path)
    loaded = load_combiner(path)
    assert loaded.feature_names_ == list(FEATURES)
    X = np.zeros((60, len(FEATURES)))
    X[:, [FEATURES.index(n) for n in old]] = X_old
    X[:, FEATURES.index("ex_lex")] = rng.normal(size=60) * 5  # any value: it has no weight
    np.testing.assert_allclose(loaded.predict_proba(X), fitted.predict_proba(X_old))
    np.testing.assert_allclose(loaded.predict_fraction(X), fitted.predict_fraction(X_old))


def test_all_draw_scores_each_row_once_with_every_other_answer_as_examples():
    idx = list(range(23))
    draws = list(_draws(ALL, idx, idx, True, seed=3))
    assert len(draws) == ALL_PARTS
    scored = [i for _, s in draws for i in s]
    assert sorted(scored) == idx  # every row once
    for picked, s in draws:
        assert not set(picked) & set(s) and sorted(set(picked) | set(s)) == idx
    # A separate pool: all of it are examples, every row scored once.
    assert list(_draws(ALL, [0, 1, 2], idx, False, seed=3)) == [([0, 1, 2], idx)]
    # A number still draws once, and the rows drawn are not scored.
    (picked, s), = _draws(5, idx, idx, True, seed=3)
    assert len(picked) == 5 and sorted(picked + s) == idx


def _rows(n_per_level=8):
    rows = []
    for qid, prompt, ref in (("tcp", "Why is TCP reliable?", "Sequence numbers, acknowledgements, retransmission."),
                             ("udp", "Why is UDP fast?", "No connection setup, no retransmission, small header.")):
        for level, texts in ((1.0, GOOD), (0.0, BAD)):
            for j in range(n_per_level):
                rows.append(LabeledAnswer(row=len(rows) + 1, question_id=qid, question=prompt, reference_answer=ref,
                                          answer=f"{texts[j % len(texts)]} ({j})", score=level, max_score=1.0,
                                          label="correct" if level else "incorrect", answer_id=f"{qid}-{level}-{j}"))
    return rows


def test_training_with_the_all_draw(grader):
    rows = _rows()
    data = build_dataset(grader, rows, "label", example_counts=(0, ALL))
    counts = data.example_count
    assert (counts == 0).sum() == len(rows) and (counts > 0).sum() == len(rows)  # each row twice, once per regime
    assert set(counts[counts > 0]) <= {len(rows) // 2 - len(rows) // 2 // ALL_PARTS - k for k in (0, 1)}
    combiner = fit_combiner(data)
    assert combiner.gate_ == FEATURES.index("ex_weight")
    _, meta = train_from_rows(rows, embedder=grader.embedder, example_counts=(0, ALL), validate=False)
    assert json.loads(json.dumps(meta))["example_counts"] == [0, "all"]


def test_cli_accepts_all_in_the_schedule(tmp_path):
    from grader.cli.train import parse_counts
    from grader.errors import ConfigError

    assert parse_counts("0, 5,ALL", "--examples-schedule", allow_all=True) == (0, 5, ALL)
    with pytest.raises(ConfigError, match="whole numbers >= 0 or 'all'"):
        parse_counts("0,most", "--examples-schedule", allow_all=True)
    with pytest.raises(ConfigError, match="whole numbers >= 0, comma"):
        parse_counts("all", "--learning-curve")


@pytest.mark.parametrize("grades", [[1.0, 0.0], [1.0, 0.5, 0.0]])
def test_grading_applies_the_fitted_models_exactly_as_scikit_learn_does(embedder, grades):
    """The model's own arithmetic (one answer at a time, without scikit-learn's per-call checks) gives the
    probabilities and nearest-example cosines of scikit-learn's transform and predict_proba."""
    from scipy import sparse

    texts = GOOD + BAD
    fractions = [grades[0]] * len(GOOD) + [grades[-1]] * (len(BAD) - 2) + [grades[len(grades) // 2]] * 2
    model = ExampleModel.of(texts, fractions, _vectors(embedder, texts))
    answers = ["Segments are acknowledged and resent when lost.", "UDP is faster.", "Ünïcode — ¿qué? 42 %", "!!"]
    vectors = _vectors(embedder, answers)
    rows = model.vectorizer.transform(answers)
    # scikit-learn's own fits of each step, on the inputs the model fitted its steps on
    from sklearn.linear_model import LogisticRegression

    from grader.scoring.exemplars import C, _bins

    rounded = np.round(np.asarray(fractions), 6)
    bins = _bins(rounded, np.unique(rounded))
    fitted = sparse.hstack([model.vectorizer.transform(texts), sparse.csr_matrix(_vectors(embedder, texts))],
                           format="csr")
    inputs = sparse.hstack([rows, sparse.csr_matrix(vectors)], format="csr")
    steps = [LogisticRegression(C=C, max_iter=1000).fit(fitted, bins >= step) for step in range(1, len(grades))]
    above = np.column_stack([step.predict_proba(inputs)[:, 1] for step in steps])
    above = np.minimum.accumulate(above, axis=1)
    proba = -np.diff(np.hstack([np.ones((len(answers), 1)), above, np.zeros((len(answers), 1))]), axis=1)
    assert model.steps == len(grades) - 1 and np.allclose(proba.sum(axis=1), 1.0)
    for k, answer in enumerate(answers):
        expected = (proba[k] @ model.class_fractions, proba[k][-1], proba[k][0])
        np.testing.assert_allclose(model.predict(answer, vectors[k]), expected, atol=1e-6)
    cosines = (rows @ model.matrix.T).toarray()
    for k, answer in enumerate(answers):
        cols, values = model._row(answer)
        np.testing.assert_allclose(model.matrix[:, cols] @ values, cosines[k], atol=1e-6)


@given(st.lists(st.sampled_from([i / 20 for i in range(21)]), min_size=2, max_size=200))
@settings(max_examples=200, deadline=None)
def test_grade_bins_keep_order_and_never_split_a_level(grades):
    """For any grades: levels map to bins in order, no bin is empty, there are at most MAX_BINS of them, and
    as many as levels when the levels are few."""
    from grader.scoring.exemplars import MAX_BINS, _bins

    grades = np.round(np.array(grades), 6)
    levels = np.unique(grades)
    bins = _bins(grades, levels)
    of_level = [set(bins[grades == v].tolist()) for v in levels]
    assert all(len(b) == 1 for b in of_level)
    order = [b.pop() for b in of_level]
    assert order == sorted(order) and order[0] == 0
    assert set(order) == set(range(bins.max() + 1))  # no empty bin
    assert bins.max() + 1 == len(levels) if len(levels) <= MAX_BINS else 2 <= bins.max() + 1 <= MAX_BINS

