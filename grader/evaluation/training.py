"""Turning a labelled corpus into combiner training data, and fitting the combiner.

Instructors rarely grade with a model answer alone: they have graded answers.
Training therefore simulates instructors who hand-graded N answers per question
(``example_counts``): those become the question's graded examples and the rest
are training rows, so the combiner learns to use examples when they exist.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import sklearn

from grader.evaluation.estimator import KNOWN_LABEL_FRACTIONS, GradeCombiner
from grader.evaluation.corpus import LabeledAnswer, build_questions
from grader.encoding.embedder import iter_each_list
from grader.engine import Grader
from grader.errors import ConfigError, InputDataError
from grader.scoring.features import FEATURES, answer_signals
from grader.rubric import GradedExample, ShortAnswerQuestion
from grader.text import normalize

log = logging.getLogger(__name__)
TARGETS = ("label", "score")
MAX_SCORE_CLASSES = 11


@dataclass
class Dataset:
    """Signals and targets of the rows used for training or scoring."""

    X: np.ndarray
    y: np.ndarray  # target class per row (labels, or score levels as strings)
    fractions: np.ndarray  # human grade fraction per row (nan when unknown)
    groups: np.ndarray  # question id per row
    rows: list[LabeledAnswer] = field(default_factory=list)
    example_count: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    draws: np.ndarray = field(default_factory=lambda: np.zeros(0, object))  # schedule entry per row (N or ALL)


def resolve_target(rows: list[LabeledAnswer], target: str | None) -> str:
    """``target`` if given, else 'label' when labels are filled, else 'score'."""
    if target is not None:
        if target not in TARGETS:
            raise InputDataError(f"target must be one of {TARGETS}. Got '{target}'.", field="target")
        return target
    if any(r.label for r in rows):
        return "label"
    if any(r.fraction is not None for r in rows):
        return "score"
    raise InputDataError("the corpus has neither labels nor scores", field="label")


def score_class(fraction: float, levels: np.ndarray) -> str:
    """The score level nearest ``fraction``, as a class name."""
    return f"{levels[int(np.argmin(np.abs(levels - fraction)))]:.4g}"


def score_levels(rows: list[LabeledAnswer]) -> np.ndarray:
    """Distinct grade fractions of the corpus, binned to tenths when there are too many."""
    values = np.unique([round(r.fraction, 4) for r in rows if r.fraction is not None])
    if len(values) > MAX_SCORE_CLASSES:
        values = np.linspace(0.0, 1.0, MAX_SCORE_CLASSES)
    return values


def targets(rows: list[LabeledAnswer], target: str, levels: np.ndarray | None = None) -> list[str | None]:
    """The class of each row under ``target`` (None where the row has none)."""
    if target == "label":
        return [r.label for r in rows]
    levels = score_levels(rows) if levels is None else levels
    return [score_class(r.fraction, levels) if r.fraction is not None else None for r in rows]


def _seed(*parts) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


def with_examples(question: ShortAnswerQuestion, examples: list[LabeledAnswer], label_target: bool,
                  ) -> ShortAnswerQuestion:
    """``question`` with ``examples`` as its graded examples."""
    graded = []
    for ex in examples:
        if not label_target and ex.fraction is not None:
            graded.append(GradedExample(answer=ex.answer, points=ex.fraction * question.max_points))
        elif ex.label:
            graded.append(GradedExample(answer=ex.answer, label=ex.label))
        elif ex.fraction is not None:
            graded.append(GradedExample(answer=ex.answer, points=ex.fraction * question.max_points))
    return question.model_copy(update={"examples": tuple(graded)})


def build_dataset(grader: Grader, rows: list[LabeledAnswer], target: str, *,
                  questions: dict[str, ShortAnswerQuestion] | None = None, example_counts=(0,), seed: int = 0,
                  levels: np.ndarray | None = None, example_pool: list[LabeledAnswer] | None = None,
                  cache: dict | None = None, on_error: Callable[[LabeledAnswer, Exception], None] | None = None,
                  ) -> Dataset:
    """Signals for ``rows``; for each N in ``example_counts`` N answers per question become its examples.

    Examples are drawn from ``example_pool`` (default: ``rows``) and the rows drawn are not scored.
    Empty answers are left out: the grader gives them 0 by rule, not by the combiner.
    ``cache`` (a dict kept by the caller) holds signals per (question, answer) so that folds
    and learning-curve points sharing a question configuration compute them once.
    Questions that are not short-answer (multiple choice, true/false) are graded exactly and skipped.
    ``on_error(row, exc)``, when given, is told of each row whose signals cannot be computed, and
    the row is left out; without it the first such error is raised.
    """
    questions = questions or build_questions(rows)
    classes = targets(rows, target, levels)
    pool = example_pool if example_pool is not None else rows
    pool_classes = targets(pool, target, levels)
    by_q: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_q.setdefault(r.question_id, []).append(i)
    pool_by_q: dict[str, list[int]] = {}
    for i, r in enumerate(pool):
        if pool_classes[i] is not None and r.answer.strip():
            pool_by_q.setdefault(r.question_id, []).append(i)
    X, y, fr, groups, used, counts, draws = [], [], [], [], [], [], []
    for qid, idx in by_q.items():
        question = questions[qid]
        if not isinstance(question, ShortAnswerQuestion):
            continue
        idx = [i for i in idx if rows[i].answer.strip() and normalize(rows[i].answer)]
        encodings = _encodings(grader, [rows[i] for i in idx], on_error)
        for n in example_counts:
            candidates = pool_by_q.get(qid, [])
            for picked, scored in _draws(n, candidates, idx, pool is rows, _seed(seed, qid, n)):
                examples = [pool[j] for j in picked]
                q = with_examples(question, examples, target == "label") if examples else question
                try:
                    prepared = grader.prepare(q)
                except Exception as exc:  # noqa: BLE001 - reported for every row of the question
                    if on_error is None:
                        raise
                    for i in scored:
                        on_error(rows[i], exc)
                    continue
                known = cache.setdefault(q, {}) if cache is not None else {}
                for i in scored:
                    r = rows[i]
                    if classes[i] is None:
                        continue
                    text = grader.clip(r.answer)[0]
                    if text not in encodings:  # its encoding failed, and on_error was told
                        continue
                    features = known.get(text)
                    if features is None:
                        try:
                            features = known[text] = answer_signals(prepared, text, encodings[text]).features
                        except Exception as exc:  # noqa: BLE001 - one row's failure must not lose the others
                            if on_error is None:
                                raise
                            on_error(r, exc)
                            continue
                    X.append(features)
                    y.append(classes[i])
                    fr.append(np.nan if r.fraction is None else r.fraction)
                    groups.append(qid)
                    used.append(r)
                    counts.append(len(examples))
                    draws.append(n)
    if not X:
        raise InputDataError("no row has both a non-empty answer and a target to learn from")
    return Dataset(np.array(X), np.array(y, dtype=object), np.array(fr), np.array(groups, dtype=object), used,
                   np.array(counts), np.array(draws, dtype=object))


def _draws(n, candidates: list[int], idx: list[int], same_pool: bool, seed: int):
    """(example indices in the pool, row indices scored) per draw of ``n`` examples of one question.

    A number draws once: N random candidates become examples and, when the pool is the rows themselves, those
    rows are not scored. :data:`ALL` cross-fits: the question's rows are split into :data:`ALL_PARTS` parts and
    each part is scored with every candidate outside it as examples (an instructor who graded all the others).
    """
    rng = np.random.default_rng(seed)
    if n != ALL:
        picked = [int(j) for j in rng.choice(candidates, size=min(n, len(candidates)), replace=False)] if n else []
        skip = set(picked) if same_pool else set()
        yield picked, [i for i in idx if i not in skip]
        return
    if not same_pool:
        yield list(candidates), list(idx)
        return
    order = rng.permutation(len(idx))
    for part in range(ALL_PARTS):
        scored = [idx[k] for k in order[part::ALL_PARTS]]
        held = set(scored)
        if scored:
            yield [j for j in candidates if j not in held], scored


def _encodings(grader: Grader, rows: list[LabeledAnswer], on_error) -> dict:
    """Encodings of the rows' answers in one pass; one by one when that fails and ``on_error`` is given."""
    try:
        return grader.encode_answers(grader.clip(r.answer)[0] for r in rows)
    except Exception:  # noqa: BLE001 - find the row(s) that fail, keep the rest
        if on_error is None:
            raise
    out = {}
    for r in rows:
        try:
            out.update(grader.encode_answers([grader.clip(r.answer)[0]]))
        except Exception as exc:  # noqa: BLE001
            on_error(r, exc)
    return out


def label_fractions_of(rows: list[LabeledAnswer]) -> dict[str, float]:
    """Mean grade fraction of each label (known label names where rows have no scores)."""
    sums: dict[str, list[float]] = {}
    for r in rows:
        if r.label and r.fraction is not None:
            sums.setdefault(r.label, []).append(r.fraction)
    out = {k: KNOWN_LABEL_FRACTIONS[k.lower()] for k in {r.label for r in rows if r.label}
           if k.lower() in KNOWN_LABEL_FRACTIONS}
    out.update({k: float(np.mean(v)) for k, v in sums.items()})
    return out


# Signals left out of the default combiner: on unseen questions of SAF-en they hurt accuracy and
# macro-F1 (GroupKFold by question: 0.668/0.643 with them, 0.682/0.665 without; neutral on SAF-de).
DEFAULT_IGNORED = ("q_overlap", "ref_minus_q")
GATE = "ex_weight"  # the signal that gates the combiner's second set of weights (many graded examples)
DEFAULT_C = 0.1


def check_feature_names(names, allowed=FEATURES) -> tuple[str, ...]:
    """``names`` if each is in ``allowed`` (default ``FEATURES``), else an error naming the allowed ones."""
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise ConfigError(f"unknown feature(s) {unknown}; allowed: {list(allowed)}", field="ignore_features")
    return tuple(names)


def fit_combiner(data: Dataset, C: float = DEFAULT_C, class_weight=None, ignore=DEFAULT_IGNORED,
                 names=FEATURES) -> GradeCombiner:
    """Fit a :class:`GradeCombiner` on ``data`` (calibrated on folds grouped by question).

    Signals named in ``ignore`` are held constant at 0 during fitting, so the combiner gives them
    zero weight while keeping the full ``FEATURES`` layout the engine computes. ``names`` are the
    columns of ``data.X``: ``FEATURES``, followed by a fine-tuned scorer's signals when stacked.
    """
    combiner = GradeCombiner(C=C, class_weight=class_weight, gate=GATE)
    fractions = data.fractions if np.isfinite(data.fractions).any() else None
    X = data.X
    if ignore:
        X = X.copy()
        names = tuple(names)
        X[:, [names.index(n) for n in check_feature_names(ignore, names)]] = 0.0
    return combiner.fit(X, data.y, fractions=fractions, groups=data.groups, feature_names=tuple(names))


def training_metadata(data: Dataset, grader: Grader, **extra) -> dict:
    """What a saved combiner records about how it was made."""
    labels, counts = np.unique(data.y, return_counts=True)
    return {
        "embedding_model": grader.embedder.name,
        "embedding_sha256": grader.embedder.sha256,
        "embedding_backend": getattr(grader.embedder, "backend", None),
        "features": list(FEATURES),
        "sklearn_version": sklearn.__version__,
        "training_rows": int(len(data.y)),
        "training_questions": int(len(np.unique(data.groups))),
        "label_counts": {str(k): int(v) for k, v in zip(labels, counts)},
        **extra,
    }


ALL = "all"  # an example count: every other answer of the question (cross-fitted, see _draws)
ALL_PARTS = 5
DEFAULT_EXAMPLE_COUNTS = (0, 5, 20, ALL)


class CachingEmbedder:
    """Wraps an embedder so that each distinct text is encoded once per run.

    Folds, learning-curve points and baselines all reuse the same encodings; an
    evaluation encodes every distinct answer in one batched pass up front (:meth:`warm`).
    """

    def __init__(self, embedder):
        self.inner = embedder
        self._cache: dict = {}

    def __getattr__(self, name):
        return getattr(self.inner, name)

    @property
    def name(self):
        """The wrapped model's name."""
        return self.inner.name

    @property
    def sha256(self):
        """The wrapped model's weight hash."""
        return self.inner.sha256

    def warm(self, texts) -> None:
        """Encode every not yet cached text, in one batched pass."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            self._cache.update(zip(missing, self.inner.encode_tokens(missing)))

    def encode_tokens(self, texts):
        """Cached :meth:`Embedder.encode_tokens`."""
        texts = list(texts)
        self.warm(texts)
        return [self._cache[t] for t in texts]

    def iter_encode_tokens(self, texts):
        """Cached encodings with their indices; the inner embedder's own stream would skip the cache."""
        return enumerate(self.encode_tokens(texts))

    def iter_encode_lists(self, lists):
        """Cached encodings of each list with their list numbers and indices (not the inner stream's)."""
        return iter_each_list(self, lists)

    def encode(self, texts):
        """Cached sentence vectors (the sentence vectors of :meth:`encode_tokens`)."""
        texts = list(texts)
        if not texts:
            return self.inner.encode([])
        return np.stack([e.vector for e in self.encode_tokens(texts)])

    def __len__(self) -> int:
        return len(self._cache)


def questions_for(rows: list[LabeledAnswer], rubric=None) -> dict:
    """The question of each question_id: from ``rubric`` when given (matched by id), else built from the rows."""
    if rubric is None:
        return build_questions(rows)
    from grader.evaluation.corpus import safe_id

    ids = {q.id: q for q in rubric.questions}
    out, missing = {}, []
    for qid in dict.fromkeys(r.question_id for r in rows):
        question = ids.get(qid) or ids.get(safe_id(qid))
        if question is None:
            missing.append(qid)
        else:  # graded apart from its rubric, a question keeps the rubric's language as its own
            out[qid] = question if question.language or not isinstance(question, ShortAnswerQuestion) \
                else question.model_copy(update={"language": rubric.language})
    if missing:
        raise InputDataError(f"question_id(s) {missing[:10]} are not in rubric '{rubric.id}' "
                             f"(it has {sorted(ids)[:20]})", field="question_id")
    return out


def held_out_fits(data: Dataset, C: float = DEFAULT_C, class_weight=None, folds: int = 5, ignore=DEFAULT_IGNORED,
                  names=FEATURES) -> list[tuple[np.ndarray, GradeCombiner]] | str:
    """(test indices, combiner fitted like ``fit_combiner`` on the other rows) of each fold grouped by question;
    or why no such folds exist ("one question only", "a fold holds a single label")."""
    from sklearn.model_selection import GroupKFold

    n_groups = len(np.unique(data.groups))
    if n_groups < 2:
        return "one question only"
    splits = list(GroupKFold(n_splits=min(folds, n_groups)).split(data.X, data.y, data.groups))
    if any(len(np.unique(data.y[train])) < 2 for train, _ in splits):
        return "a fold holds a single label"
    return [(test, fit_combiner(Dataset(data.X[train], data.y[train], data.fractions[train], data.groups[train]),
                                C=C, class_weight=class_weight, ignore=ignore, names=names))
            for train, test in splits]


def validate_combiner(data: Dataset, C: float = DEFAULT_C, class_weight=None, folds: int = 5,
                      ignore=DEFAULT_IGNORED, names=FEATURES) -> dict:
    """Held-out figures of a combiner trained like ``fit_combiner``, folds grouped by question.

    Reported per draw of graded examples the question had (``examples_N``, ``examples_all``).
    """
    from grader.evaluation.metrics import label_metrics

    fits = held_out_fits(data, C=C, class_weight=class_weight, folds=folds, ignore=ignore, names=names)
    if isinstance(fits, str):
        return {"note": f"{fits}: no grouped validation possible"}
    pred = np.empty(len(data.y), dtype=object)
    conf = np.zeros(len(data.y))
    for test, model in fits:
        proba = model.predict_proba(data.X[test])
        pred[test] = model.classes_[proba.argmax(axis=1)]
        conf[test] = proba.max(axis=1)
    out = {"protocol": f"GroupKFold by question_id, {len(fits)} folds, on training signals"}
    by = data.draws if len(data.draws) == len(data.y) else data.example_count
    for n in sorted(set(by.tolist()), key=lambda v: (isinstance(v, str), v)):
        mask = by == n
        m = label_metrics(data.y[mask], pred[mask], confidence=conf[mask])
        out[f"examples_{n}"] = {k: m[k] for k in ("n", "accuracy", "macro_f1", "weighted_f1", "coverage_at_90",
                                                  "coverage_at_95")}
    return out


def training_data(rows: list[LabeledAnswer], *, target: str | None, embedder, rubric, example_counts, seed: int,
                  label_col: str) -> tuple[str, np.ndarray | None, Grader, Dataset]:
    """The target, score levels, signal-computing grader and signals a combiner is trained on."""
    target = resolve_target(rows, target)
    levels = score_levels(rows) if target == "score" else None
    fractions = label_fractions_of(rows) if target == "label" else {}
    grader = Grader.for_signals(embedder, label_fractions=fractions)
    questions = questions_for(rows, rubric)
    data = build_dataset(grader, rows, target, questions=questions, example_counts=tuple(example_counts),
                         seed=seed, levels=levels)
    if len(np.unique(data.y)) < 2:
        raise InputDataError(f"training needs at least 2 distinct {target} values; got {sorted(set(data.y))}",
                             field=label_col if target == "label" else "score")
    return target, levels, grader, data


def fitted_metadata(data: Dataset, grader: Grader, combiner, rows: list[LabeledAnswer], *, target: str, levels,
                    label_col: str, example_counts, seed: int, C: float, class_weight, ignore, fingerprint,
                    **extra) -> dict:
    """What a combiner fitted on ``data`` (from ``rows``) records about how it was made."""
    return training_metadata(
        data, grader, target=target, label_col=label_col if target == "label" else None,
        labels=[str(c) for c in combiner.classes_],
        label_fractions={str(c): float(f) for c, f in zip(combiner.classes_, combiner.label_fractions_)},
        score_levels=None if levels is None else [float(v) for v in levels],
        example_counts=[n if n == ALL else int(n) for n in example_counts], seed=seed, C=C, class_weight=class_weight,
        ignored_features=list(ignore), corpus_fingerprint=fingerprint, rows_in_file=len(rows),
        rows_skipped={"empty_answer": sum(1 for r in rows if not normalize(r.answer)),
                      "no_target": sum(1 for t in targets(rows, target, levels) if t is None)},
        **extra,
    )


def train_from_rows(rows: list[LabeledAnswer], *, target: str | None = None, embedder=None, rubric=None,
                    example_counts=DEFAULT_EXAMPLE_COUNTS, seed: int = 0, C: float = DEFAULT_C, class_weight=None,
                    validate: bool = True, fingerprint: str | None = None, label_col: str = "label",
                    ignore=DEFAULT_IGNORED) -> tuple[GradeCombiner, dict]:
    """Fit a combiner on labelled rows; returns it and the metadata to save with it."""
    target, levels, grader, data = training_data(rows, target=target, embedder=embedder, rubric=rubric,
                                                 example_counts=example_counts, seed=seed, label_col=label_col)
    combiner = fit_combiner(data, C=C, class_weight=class_weight, ignore=ignore)
    meta = fitted_metadata(data, grader, combiner, rows, target=target, levels=levels, label_col=label_col,
                           example_counts=example_counts, seed=seed, C=C, class_weight=class_weight, ignore=ignore,
                           fingerprint=fingerprint)
    if validate:
        meta["validation"] = validate_combiner(data, C=C, class_weight=class_weight, ignore=ignore)
    return combiner, meta
