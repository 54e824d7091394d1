"""Baselines the grader must beat, trained and tested exactly as the grader is.

* ``cosine``: cosine similarity of the answer to the closest reference answer,
  with thresholds between the labels learned from the training answers.
* ``lexical``: content-word overlap with the reference (the F1 of the grader's
  ``lex_recall`` and ``lex_precision`` signals), with learned thresholds.

Both read their one number from the grader's own signal vector (``FEATURES``
order), so they see the same reference answers (or, for a question without
one, the same best-graded examples standing in for it) as the grader does.
The thresholds are a one-feature logistic regression: on one ordered input a
multinomial logistic regression cuts the line into label intervals, and its
probabilities give the confidence used for coverage.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_array

from grader.scoring.features import FEATURES

BASELINES = ("cosine", "lexical")


def baseline_feature(name: str, X) -> np.ndarray:
    """The one number baseline ``name`` thresholds, for each row of signal matrix ``X``."""
    X = check_array(X, dtype=np.float64)
    if X.shape[1] != len(FEATURES):
        raise ValueError(f"X must have the {len(FEATURES)} grader signals as columns. Got {X.shape[1]}.")
    if name == "cosine":
        return X[:, FEATURES.index("ref_sim")]
    if name == "lexical":
        recall = X[:, FEATURES.index("lex_recall")]
        precision = X[:, FEATURES.index("lex_precision")]
        total = recall + precision
        return np.divide(2 * recall * precision, total, out=np.zeros_like(total), where=total > 0)
    raise ValueError(f"baseline must be one of {BASELINES}. Got '{name}'.")


class ThresholdBaseline(ClassifierMixin, BaseEstimator):
    """Labels from learned thresholds on one signal (``kind``: 'cosine' or 'lexical').

    ``label_fractions`` maps each label to its grade fraction, for predicted scores.
    """

    def __init__(self, kind: str = "cosine", label_fractions: dict | None = None):
        self.kind = kind
        self.label_fractions = label_fractions

    def fit(self, X, y):
        """Learn the thresholds from signal matrix ``X`` and labels ``y``."""
        x = baseline_feature(self.kind, X)[:, None]
        y = np.asarray([str(v) for v in y], dtype=object)
        if len(np.unique(y)) < 2:
            raise ValueError(f"training labels must hold at least 2 classes. Got {list(np.unique(y))}.")
        self.scaler_ = StandardScaler().fit(x)
        self.model_ = LogisticRegression(C=1.0, max_iter=2000).fit(self.scaler_.transform(x), y)
        self.classes_ = self.model_.classes_.astype(object)
        fractions = self.label_fractions or {}
        self.fractions_ = np.array([float(fractions.get(str(c), np.nan)) for c in self.classes_])
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Label probabilities, columns in ``classes_`` order."""
        if not hasattr(self, "model_"):
            raise NotFittedError("This ThresholdBaseline is not fitted yet. Call `fit` first.")
        return self.model_.predict_proba(self.scaler_.transform(baseline_feature(self.kind, X)[:, None]))

    def predict(self, X) -> np.ndarray:
        """Most probable label of each row."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def predict_fraction(self, X) -> np.ndarray:
        """Expected grade fraction (nan when the labels have no known fractions)."""
        return self.predict_proba(X) @ self.fractions_

    def thresholds(self) -> list[float]:
        """Signal values where the predicted label changes, lowest first (for reports)."""
        grid = np.linspace(-0.5, 1.5, 2001)
        X = np.zeros((len(grid), len(FEATURES)))
        X[:, FEATURES.index("ref_sim")] = grid
        X[:, FEATURES.index("lex_recall")] = grid
        X[:, FEATURES.index("lex_precision")] = grid  # F1 of (g, g) is g
        labels = self.predict(X)
        return [float(grid[i + 1]) for i in np.flatnonzero(labels[1:] != labels[:-1])]
