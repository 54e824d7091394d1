"""Combiner variants on new questions: the grader's signals computed once, then refitted several ways.

    .venv/bin/python eval/combiner_variants.py ../shared/data/saf_en/train.csv [--folds 5] [--seed 0]

Each variant is fitted on the signals of the training questions of each fold of ``--cv unseen-questions``
(the same folds as ``grader eval``) and labels the held-out questions' answers; the script prints its
accuracy. The signals are those of a question graded from its model answer alone (no graded examples), as
on a new question. Variants:

- ``shipped form``: standardise, multinomial logistic regression, C 0.1 (the combiner's form; without its
  calibration and grade regression, so within a point of ``grader eval``);
- ``C ...``: the same with other regularisation;
- ``class-relative``: each signal also standardised within its question's answers (needs the whole class's
  answers at grading time, and makes one student's grade depend on the others');
- ``class ranks``: each signal's rank within its question's answers instead;
- ``question means``: each signal's mean over its question's answers beside it;
- ``boosted trees``: scikit-learn's HistGradientBoostingClassifier on the signals;
- ``regressed fraction``: ridge regression of the grade fraction, cut into labels at fixed thresholds.

The figures are in docs/evaluation.md, "What holds unseen questions back".
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression, Ridge  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from grader.encoding.registry import get_embedder  # noqa: E402
from grader.evaluation.corpus import read_corpus  # noqa: E402
from grader.evaluation.protocols import splits  # noqa: E402
from grader.evaluation.training import DEFAULT_IGNORED, CachingEmbedder, training_data  # noqa: E402
from grader.scoring.features import FEATURES  # noqa: E402

# the signals a question without graded examples has (FEATURES up to token_f1), less those the combiner ignores
OWN = [i for i, n in enumerate(FEATURES[: FEATURES.index("token_f1") + 1]) if n not in DEFAULT_IGNORED]


def per_question(X: np.ndarray, groups: np.ndarray, how: str) -> np.ndarray:
    """Each column of ``X`` standardised ('z'), ranked ('rank') or averaged ('mean') within each question."""
    out = np.zeros_like(X)
    for q in np.unique(groups):
        m = np.flatnonzero(groups == q)
        block = X[m]
        if how == "z":
            out[m] = (block - block.mean(0)) / (block.std(0) + 1e-6)
        elif how == "rank":
            out[m] = (np.argsort(np.argsort(block, 0), 0) + 0.5) / len(m)
        else:
            out[m] = block.mean(0)
    return out


def held_out(X, y, groups, folds, make) -> float:
    """Accuracy on every fold's held-out questions of the classifier ``make()`` fitted on the others."""
    pred = np.empty(len(y), dtype=object)
    for test_questions in folds:
        test = np.isin(groups, list(test_questions))
        scale = StandardScaler().fit(X[~test])
        pred[test] = make().fit(scale.transform(X[~test]), y[~test]).predict(scale.transform(X[test]))
    return float((pred == y).mean())


def regressed(X, y, fractions, groups, folds, cuts=(0.25, 0.75)) -> float:
    """Accuracy of a ridge regression of the grade fraction cut into three labels at ``cuts``."""
    pred = np.empty(len(y), dtype=object)
    known = ~np.isnan(fractions)
    for test_questions in folds:
        test = np.isin(groups, list(test_questions))
        fit = ~test & known
        scale = StandardScaler().fit(X[fit])
        p = Ridge(alpha=10.0).fit(scale.transform(X[fit]), fractions[fit]).predict(scale.transform(X[test]))
        pred[test] = np.where(p < cuts[0], "incorrect", np.where(p < cuts[1], "partially_correct", "correct"))
    return float((pred == y).mean())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    rows = read_corpus(args.corpus)
    folds = [{rows[i].question_id for i in test} for _, test in splits(rows, "unseen-questions", args.folds, args.seed)]
    _, _, _, data = training_data(rows, target="label", embedder=CachingEmbedder(get_embedder()), rubric=None,
                                  example_counts=(0,), seed=args.seed, label_col="label")
    X, y, groups = data.X[:, OWN], data.y, data.groups
    print(f"{len(y)} answers, {len(np.unique(groups))} questions, {args.folds} folds of unseen questions")

    def logistic(C=0.1):
        return lambda: LogisticRegression(C=C, max_iter=2000)

    def trees():
        return HistGradientBoostingClassifier(max_depth=3, learning_rate=0.05, max_iter=200)

    results = [("shipped form (C 0.1)", held_out(X, y, groups, folds, logistic()))]
    results += [(f"C {C}", held_out(X, y, groups, folds, logistic(C))) for C in (0.01, 1.0)]
    results += [
        ("class-relative (signals and their z within the question)",
         held_out(np.hstack([X, per_question(X, groups, "z")]), y, groups, folds, logistic())),
        ("class ranks (signals and their rank within the question)",
         held_out(np.hstack([X, per_question(X, groups, "rank")]), y, groups, folds, logistic())),
        ("question means (signals and the question's mean)",
         held_out(np.hstack([X, per_question(X, groups, "mean")]), y, groups, folds, logistic())),
        ("boosted trees", held_out(X, y, groups, folds, trees)),
        ("regressed fraction, cut at 0.25 / 0.75", regressed(X, y, data.fractions, groups, folds)),
    ]
    for name, accuracy in results:
        print(f"{name:60s} accuracy {accuracy:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
