"""The learned combiner: signals in, label probabilities and a grade fraction out.

:class:`GradeCombiner` is a scikit-learn estimator (``clone``, cross-validation
and grid search work on it). It is a multinomial logistic regression over
standardised signals, with a temperature fitted on held-out folds so that its
probabilities are calibrated. Each label carries the mean grade fraction of
its training answers; the expected fraction under the predicted probabilities
gives partial credit. It is saved as JSON, never pickle.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_array, check_X_y

from grader.errors import ModelError

FORMAT = "grader-combiner/1"
# Fractions for label names common in grading corpora, used when training data has no scores.
KNOWN_LABEL_FRACTIONS = {
    "correct": 1.0, "partially_correct": 0.5, "partially correct": 0.5, "partial": 0.5, "incorrect": 0.0,
    "wrong": 0.0, "contradictory": 0.0, "irrelevant": 0.0, "non_domain": 0.0, "true": 1.0, "false": 0.0,
    "partially_correct_incomplete": 0.5,
}


def _numeric(label) -> float | None:
    try:
        value = float(label)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class GradeCombiner(ClassifierMixin, BaseEstimator):
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
    """

    def __init__(self, C: float = 1.0, class_weight=None, calibrate: bool = True, cv: int = 5):
        self.C = C
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
        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 1e-12, scale, 1.0)
        Z = (X - self.mean_) / self.scale_
        self.coef_, self.intercept_, self.classes_ = self._fit_lr(Z, y)
        self.label_fractions_ = self._label_fractions(y, fractions, X)
        self.temperature_ = 1.0
        if self.calibrate:
            held_out = self._held_out_logits(Z, y, groups)
            if held_out is not None:
                self.temperature_ = self._fit_temperature(held_out, y)
        return self

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

    def _held_out_logits(self, Z, y, groups) -> np.ndarray | None:
        """Logits of every answer from a model that did not see it (None when folds cannot be made)."""
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
        for train, test in splitter:
            if len(np.unique(y[train])) < len(self.classes_):
                return None
            coef, intercept, _ = self._fit_lr(Z[train], y[train])
            logits[test] = Z[test] @ coef.T + intercept
        return logits

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

    # -- prediction -----------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "coef_"):
            raise NotFittedError("This GradeCombiner is not fitted yet. Call `fit` or load one with `load`.")

    def decision_function(self, X) -> np.ndarray:
        """Uncalibrated class logits."""
        self._check_fitted()
        X = check_array(X, dtype=np.float64)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but the combiner expects {self.n_features_in_}.")
        return ((X - self.mean_) / self.scale_) @ self.coef_.T + self.intercept_

    def predict_proba(self, X) -> np.ndarray:
        """Calibrated class probabilities, columns in ``classes_`` order."""
        return softmax(self.decision_function(X) / self.temperature_, axis=1)

    def predict(self, X) -> np.ndarray:
        """Most probable label of each answer."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def predict_fraction(self, X) -> np.ndarray:
        """Expected grade fraction in [0, 1] under the predicted probabilities."""
        return self.predict_proba(X) @ self.label_fractions_


    # -- persistence ----------------------------------------------------------------
    def to_dict(self, metadata: dict | None = None) -> dict:
        """JSON-ready state: parameters, learned arrays and ``metadata``."""
        self._check_fitted()
        return {
            "format": FORMAT,
            "params": self.get_params(),
            "feature_names": self.feature_names_,
            "classes": [str(c) for c in self.classes_],
            "label_fractions": self.label_fractions_.tolist(),
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "coef": self.coef_.tolist(),
            "intercept": self.intercept_.tolist(),
            "temperature": self.temperature_,
            "metadata": dict(metadata or getattr(self, "metadata_", {}) or {}),
        }

    @classmethod
    def from_dict(cls, data: dict, source: str = "<combiner>") -> "GradeCombiner":
        """Rebuild a fitted combiner from :meth:`to_dict` output, checking every field."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ModelError(f"not a grader combiner (expected format '{FORMAT}')", source=source)
        try:
            model = cls(**data["params"])
            model.feature_names_ = list(data["feature_names"])
            model.classes_ = np.array(data["classes"], dtype=object)
            model.label_fractions_ = np.array(data["label_fractions"], dtype=np.float64)
            model.mean_ = np.array(data["mean"], dtype=np.float64)
            model.scale_ = np.array(data["scale"], dtype=np.float64)
            model.coef_ = np.array(data["coef"], dtype=np.float64)
            model.intercept_ = np.array(data["intercept"], dtype=np.float64)
            model.temperature_ = float(data["temperature"])
            model.metadata_ = dict(data.get("metadata") or {})
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"combiner file is incomplete or malformed: {exc}", source=source) from None
        model.n_features_in_ = len(model.feature_names_)
        k, d = len(model.classes_), model.n_features_in_
        shapes_ok = (model.coef_.shape == (k, d) and model.intercept_.shape == (k,) and model.mean_.shape == (d,)
                     and model.scale_.shape == (d,) and model.label_fractions_.shape == (k,))
        if not shapes_ok or model.temperature_ <= 0:
            raise ModelError("combiner arrays have inconsistent shapes", source=source)
        return model

    def save(self, path: str | Path, metadata: dict | None = None) -> Path:
        """Write the combiner as JSON (atomically)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.to_dict(metadata)
        data["metadata"].setdefault("saved_at", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "GradeCombiner":
        """Read a combiner saved by :meth:`save`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError("combiner file not found", source=str(path)) from None
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read combiner JSON: {exc}", source=str(path)) from None
        return cls.from_dict(data, source=str(path))
