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

import numpy as np
import sklearn

from grader.combiner import KNOWN_LABEL_FRACTIONS, GradeCombiner
from grader.corpus import LabeledAnswer, build_questions
from grader.engine import Grader
from grader.errors import InputDataError
from grader.features import FEATURES, answer_signals
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
                  levels: np.ndarray | None = None, example_pool: list[LabeledAnswer] | None = None) -> Dataset:
    """Signals for ``rows``; for each N in ``example_counts`` N answers per question become its examples.

    Examples are drawn from ``example_pool`` (default: ``rows``) and the rows drawn are not scored.
    Empty answers are left out: the grader gives them 0 by rule, not by the combiner.
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
    X, y, fr, groups, used, counts = [], [], [], [], [], []
    for qid, idx in by_q.items():
        question = questions[qid]
        idx = [i for i in idx if rows[i].answer.strip() and normalize(rows[i].answer)]
        encodings = grader.encode_answers(rows[i].answer for i in idx)
        for n in example_counts:
            candidates = pool_by_q.get(qid, [])
            rng = np.random.default_rng(_seed(seed, qid, n))
            picked = list(rng.choice(candidates, size=min(n, len(candidates)), replace=False)) if n else []
            examples = [pool[j] for j in picked]
            q = with_examples(question, examples, target == "label") if examples else question
            prepared = grader.prepare(q)
            skip = {id(pool[j]) for j in picked} if pool is rows else set()
            for i in idx:
                r = rows[i]
                if id(r) in skip or classes[i] is None:
                    continue
                sig = answer_signals(prepared, grader.clip(r.answer)[0], encodings[grader.clip(r.answer)[0]])
                X.append(sig.features)
                y.append(classes[i])
                fr.append(np.nan if r.fraction is None else r.fraction)
                groups.append(qid)
                used.append(r)
                counts.append(len(examples))
    if not X:
        raise InputDataError("no row has both a non-empty answer and a target to learn from")
    return Dataset(np.array(X), np.array(y, dtype=object), np.array(fr), np.array(groups, dtype=object), used,
                   np.array(counts))


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


def fit_combiner(data: Dataset, C: float = 1.0, class_weight=None) -> GradeCombiner:
    """Fit a :class:`GradeCombiner` on ``data`` (calibrated on folds grouped by question)."""
    combiner = GradeCombiner(C=C, class_weight=class_weight)
    fractions = data.fractions if np.isfinite(data.fractions).any() else None
    return combiner.fit(data.X, data.y, fractions=fractions, groups=data.groups, feature_names=FEATURES)


def training_metadata(data: Dataset, grader: Grader, **extra) -> dict:
    """What a saved combiner records about how it was made."""
    labels, counts = np.unique(data.y, return_counts=True)
    return {
        "embedding_model": grader.embedder.name,
        "embedding_sha256": grader.embedder.sha256,
        "features": list(FEATURES),
        "sklearn_version": sklearn.__version__,
        "training_rows": int(len(data.y)),
        "training_questions": int(len(np.unique(data.groups))),
        "label_counts": {str(k): int(v) for k, v in zip(labels, counts)},
        **extra,
    }
