"""Where an answer stands among its classmates' answers to the same question.

A similarity of 0.6 to the model answer is a fine answer to one question and a
weak one to another: how close answers come depends on the question, its model
answer and how students word it, and a question never seen in training gives the
combiner no way to tell. The class does. When one call grades at least
:data:`MIN_COHORT` distinct answers to a question, each answer's percentile among
them on :data:`COHORT_SIGNALS` (centred: -0.5 the lowest, +0.5 the highest) is read
by a second set of the combiner's weights fitted with those percentiles
(:attr:`~grader.scoring.combiner.LinearCombiner.cohort_`). On SAF, with whole
questions held out, this lifts accuracy by about 4 points on the English corpus
(docs/evaluation.md).

A question with enough graded examples for a model of their own
(:mod:`grader.scoring.exemplars`) is not graded this way: its examples already show
where its answers stand, and on SAF the class added nothing there (-1.4 to 0
points of accuracy with 20 or all other answers graded, against +4.3 and +4.5 on
English with none or 5; docs/evaluation.md).

The percentiles sharpen the combiner's view of the absolute signals, which keep
weights of their own: they are not a curve. Still, an answer's grade then depends
on the class it is graded with. A call with fewer answers to the question (one
answer over HTTP) is graded by the first set of weights alone, and
``Grader(cohort=False)`` (``--no-cohort``) grades every answer on its own.
"""

from __future__ import annotations

import numpy as np

from grader.scoring.features import FEATURES

MIN_COHORT = 10  # distinct answers to one question in one call for their standing to be read
COHORT_SIGNALS = ("ref_sim", "ref_cover", "concept_cover", "answer_precision", "lex_recall", "lex_precision",
                  "misconception", "log_len", "q_sim")
COHORT_FEATURES = tuple(f"cohort_{name}" for name in COHORT_SIGNALS)
_AT = [FEATURES.index(name) for name in COHORT_SIGNALS]


def standing(features: np.ndarray) -> np.ndarray | None:
    """Centred percentile of each answer (row of ``features``, in :data:`FEATURES` order) among all the rows,
    per signal of :data:`COHORT_SIGNALS` (ties share their mean rank); None below :data:`MIN_COHORT` rows."""
    features = np.asarray(features, dtype=np.float64)
    n = len(features)
    if n < MIN_COHORT:
        return None
    values = features[:, _AT]
    out = np.empty_like(values)
    for j in range(values.shape[1]):
        column = values[:, j]
        order = np.argsort(column, kind="stable")
        ranks = np.empty(n)
        ranks[order] = np.arange(1, n + 1, dtype=np.float64)
        # ties: the mean of the ranks they span
        _, inverse, counts = np.unique(column, return_inverse=True, return_counts=True)
        sums = np.bincount(inverse, weights=ranks)
        ranks = sums[inverse] / counts[inverse]
        out[:, j] = (ranks - 0.5) / n - 0.5
    return out


def graded_as_class(prepared) -> bool:
    """Whether answers to ``prepared`` (a :class:`~grader.scoring.features.PreparedQuestion`) are read among
    their classmates: its graded examples, if any, are too few for a fitted model of their own."""
    return prepared.example_model is None or prepared.example_model.steps == 0
