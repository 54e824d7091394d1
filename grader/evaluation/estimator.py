"""The learned combiner: signals in, label probabilities and a grade fraction out.

:class:`GradeCombiner` is a scikit-learn estimator (``clone``, cross-validation
and grid search work on it). It is a multinomial logistic regression over
standardised signals, with a temperature fitted on held-out folds so that its
probabilities are calibrated. Each label carries the mean grade fraction of
its training answers. The grade itself is learned as a number: a ridge
regression of each answer's grade fraction (its score, or its label's mean
where it has none), blended with the expected fraction under the predicted
probabilities by a weight fitted on the same held-out folds. It is saved as
JSON, never pickle. Prediction and the
file format live in :mod:`grader.scoring.combiner`, which grading loads without
importing scikit-learn.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import log_softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_array, check_X_y

from grader.scoring.combiner import FORMAT, KNOWN_LABEL_FRACTIONS, LinearCombiner, softmax

__all__ = ["FORMAT", "KNOWN_LABEL_FRACTIONS", "GradeCombiner"]


def _numeric(label) -> float | None:
    try:
        value = float(label)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class GradeCombiner(ClassifierMixin, BaseEstimator, LinearCombiner):
    """Calibrated multinomial logistic regression over grading signals.

    Parameters
    ----------
    C : float
        Inverse regularisation strength of the logistic regression.
    class_weight : None | "balanced"
        Passed to the logistic regression.
    calibrate : bool
        Fit a softmax temperature on held-out folds.
    cv : int
        Folds for calibration (grouped by question when ``groups`` is given to ``fit``).
    alpha : float
        Ridge penalty of the grade regression.
    gate : str | None
        Name (in ``feature_names``) of a signal in [0, 1] that gates a second set of weights (see
        :class:`~grader.scoring.combiner.LinearCombiner`); None, or a name not among the signals: one set.
    """

    def __init__(self, C: float = 1.0, class_weight=None, calibrate: bool = True, cv: int = 5, alpha: float = 10.0,
                 gate: str | None = None):
        self.C = C
        self.gate = gate
        self.alpha = alpha
        self.class_weight = class_weight
        self.calibrate = calibrate
        self.cv = cv

    # -- fitting --------------------------------------------------------------------
    def fit(self, X, y, fractions=None, groups=None, feature_names=None):
        """Fit on signals ``X`` and labels ``y``; ``fractions`` are optional grade fractions per answer."""
        X, y = check_X_y(X, y, dtype=np.float64, y_numeric=False)
        if self.C <= 0:
            raise ValueError(f"`C` must be > 0. Got {self.C}.")
        y = np.asarray([str(v) for v in y], dtype=object)
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(f"training labels must hold at least 2 classes. Got {list(classes)}.")
        self.n_features_in_ = X.shape[1]
        self.feature_names_ = list(feature_names) if feature_names is not None else [f"x{i}" for i in range(X.shape[1])]
        self.gate_ = self.feature_names_.index(self.gate) if self.gate in self.feature_names_ else None
        if self.gate_ is not None and not ((X[:, self.gate_] >= 0) & (X[:, self.gate_] <= 1)).all():
            raise ValueError(f"the gate signal '{self.gate}' must lie in [0, 1]")
        design = self._design(X)
        self.mean_ = design.mean(axis=0)
        scale = design.std(axis=0)
        self.scale_ = np.where(scale > 1e-12, scale, 1.0)
        Z = (design - self.mean_) / self.scale_
        self.coef_, self.intercept_, self.classes_ = self._fit_lr(Z, y)
        self.label_fractions_ = self._label_fractions(y, fractions, X)
        self.temperature_ = 1.0
        target = self._fraction_targets(y, fractions)
        self.score_coef_, self.score_intercept_ = self._fit_score(Z, target)
        held_out = self._held_out(Z, y, target, groups)
        if held_out is not None and self.calibrate:
            self.temperature_ = self._fit_temperature(held_out[0], y)
        # The grade: the regression and the probabilities' expected grade, weighted by how well
        # each predicts grades of answers the model did not see.
        self.score_weight_ = self._fit_score_weight(held_out, target) if held_out is not None else 0.5
        return self

    def _fraction_targets(self, y, fractions) -> np.ndarray:
        """Each answer's grade fraction: its own where known, its label's mean otherwise."""
        by_label = dict(zip(self.classes_, self.label_fractions_))
        target = np.array([by_label[v] for v in y], dtype=np.float64)
        if fractions is not None:
            fractions = np.asarray(fractions, dtype=np.float64)
            known = np.isfinite(fractions)
            target[known] = np.clip(fractions[known], 0.0, 1.0)
        return target

    def _fit_score(self, Z, target) -> tuple[np.ndarray, float]:
        """Ridge regression of the grade fraction on the standardised signals."""
        from sklearn.linear_model import Ridge

        model = Ridge(alpha=self.alpha).fit(Z, target)
        return model.coef_.astype(np.float64), float(model.intercept_)

    def _fit_score_weight(self, held_out, target) -> float:
        """Weight in [0, 1] of the regression against the expected grade, by held-out squared error."""
        logits, scores = held_out
        expected = softmax(logits / self.temperature_) @ self.label_fractions_
        diff = scores - expected
        denom = float(diff @ diff)
        if denom <= 1e-12:
            return 0.5
        return float(np.clip(((target - expected) @ diff) / denom, 0.0, 1.0))

    def _fit_lr(self, Z, y):
        from sklearn.linear_model import LogisticRegression  # fitting only: keeps grading start-up light

        lr = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=5000)
        lr.fit(Z, y)
        coef, intercept = lr.coef_, lr.intercept_
        if coef.shape[0] == 1:  # binary: express as two-class softmax
            coef = np.vstack([-coef / 2, coef / 2])
            intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        return coef, intercept, lr.classes_.astype(object)

    def _label_fractions(self, y, fractions, X) -> np.ndarray:
        classes = list(self.classes_)
        if fractions is not None:
            fractions = np.asarray(fractions, dtype=np.float64)
            if len(fractions) != len(y):
                raise ValueError(f"`fractions` must have one value per answer ({len(y)}). Got {len(fractions)}.")
            ok = np.isfinite(fractions)
            if ok.any():
                out = []
                for c in classes:
                    mask = (y == c) & ok
                    out.append(float(fractions[mask].mean()) if mask.any() else np.nan)
                if not np.isnan(out).any():
                    return np.clip(np.array(out), 0.0, 1.0)
        known = [KNOWN_LABEL_FRACTIONS.get(str(c).strip().lower()) for c in classes]
        if all(v is not None for v in known):
            return np.array(known, dtype=np.float64)
        numbers = [_numeric(c) for c in classes]
        if all(v is not None for v in numbers):
            lo, hi = min(numbers), max(numbers)
            return np.array([(v - lo) / (hi - lo) if hi > lo else 1.0 for v in numbers])
        # Unknown label names: order them by how similar their answers are to the reference.
        means = np.array([X[y == c, 0].mean() for c in classes])
        ranks = np.argsort(np.argsort(means))
        return ranks / max(1, len(classes) - 1)

    def _held_out(self, Z, y, target, groups) -> tuple[np.ndarray, np.ndarray] | None:
        """Logits and grade fractions of every answer from a model that did not see it (None when folds cannot be made)."""
        from sklearn.model_selection import GroupKFold, StratifiedKFold

        n_splits = min(self.cv, len(np.unique(groups)) if groups is not None else self.cv)
        if n_splits < 2:
            return None
        if groups is not None:
            splitter = GroupKFold(n_splits=n_splits).split(Z, y, groups)
        else:
            counts = np.unique(y, return_counts=True)[1]
            if counts.min() < n_splits:
                return None
            splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=0).split(Z, y)
        logits = np.zeros((len(y), len(self.classes_)))
        scores = np.zeros(len(y))
        for train, test in splitter:
            if len(np.unique(y[train])) < len(self.classes_):
                return None
            coef, intercept, _ = self._fit_lr(Z[train], y[train])
            logits[test] = Z[test] @ coef.T + intercept
            w, b = self._fit_score(Z[train], target[train])
            scores[test] = np.clip(Z[test] @ w + b, 0.0, 1.0)
        return logits, scores

    def _fit_temperature(self, logits: np.ndarray, y: np.ndarray) -> float:
        """Softmax temperature minimising held-out log loss."""
        from scipy.optimize import minimize_scalar

        index = {c: i for i, c in enumerate(self.classes_)}
        target = np.array([index[v] for v in y])

        def nll(log_t):
            lp = log_softmax(logits / math.exp(log_t), axis=1)
            return -lp[np.arange(len(target)), target].mean()

        best = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
        return float(math.exp(best.x))

    def _params(self) -> dict:
        return self.get_params()

    def _check_fitted(self):
        if not hasattr(self, "coef_"):
            raise NotFittedError("This GradeCombiner is not fitted yet. Call `fit` or load one with `load`.")

    def decision_function(self, X) -> np.ndarray:
        """Uncalibrated class logits."""
        self._check_fitted()
        return super().decision_function(check_array(X, dtype=np.float64))
