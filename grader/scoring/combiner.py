"""A fitted combiner's parameters and prediction, without scikit-learn.

Grading needs only a standardise-multiply-softmax over the signals, so the
engine loads the JSON file into a :class:`LinearCombiner` and never imports
scikit-learn or SciPy (about a second of start-up on a laptop). Fitting lives in
:class:`grader.evaluation.estimator.GradeCombiner`, which shares this class's prediction and
persistence code, so a file written by either reads back in both.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from grader.errors import ModelError
from grader.scoring.features import FEATURES

DEFAULT_COMBINER = Path(__file__).resolve().parent.parent / "models" / "default.json"

FORMAT = "grader-combiner/1"
# Fractions for label names common in grading corpora, used when training data has no scores.
KNOWN_LABEL_FRACTIONS = {
    "correct": 1.0, "partially_correct": 0.5, "partially correct": 0.5, "partial": 0.5, "incorrect": 0.0,
    "wrong": 0.0, "contradictory": 0.0, "irrelevant": 0.0, "non_domain": 0.0, "true": 1.0, "false": 0.0,
    "partially_correct_incomplete": 0.5,
}


def _is_number(value) -> bool:
    try:
        return np.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


class LinearCombiner:
    """Calibrated multinomial logistic regression, fitted elsewhere: label probabilities and grade fractions.

    Attributes (as scikit-learn names them): ``classes_``, ``label_fractions_`` (mean grade
    fraction of each label), ``feature_names_``, ``mean_``/``scale_`` (standardisation),
    ``coef_``/``intercept_`` and ``temperature_``; the grade regression ``score_coef_``/
    ``score_intercept_`` and its weight ``score_weight_`` (None in older files).

    A combiner with a ``gate_`` (the index of a signal in [0, 1], saved by name) reads every signal twice:
    as it is and multiplied by the gate. It is two linear models in one, blended by the gate: the grader's
    gate is ``ex_weight``, so a question graded with many examples gets weights of its own (its examples
    outweigh its model answer) and a question without any gets the other set. Without a gate (older files)
    it reads each signal once.
    """

    gate_: int | None = None

    def _design(self, X: np.ndarray) -> np.ndarray:
        """The columns the weights apply to: the signals, then (with a gate) the signals times the gate."""
        if self.gate_ is None:
            return X
        return np.hstack([X, X * X[:, self.gate_ : self.gate_ + 1]])

    def __init__(self, **params):
        self.params_ = params

    def _params(self) -> dict:
        return dict(self.params_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise ModelError("the combiner has no parameters yet: fit it or load one")

    # -- prediction -----------------------------------------------------------------
    def decision_function(self, X) -> np.ndarray:
        """Uncalibrated class logits."""
        self._check_fitted()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-dimensional (answers x signals). Got shape {X.shape}.")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but the combiner expects {self.n_features_in_}.")
        if not np.isfinite(X).all():
            raise ValueError("X contains NaN or infinity.")
        return ((self._design(X) - self.mean_) / self.scale_) @ self.coef_.T + self.intercept_

    def predict_proba(self, X) -> np.ndarray:
        """Calibrated class probabilities, columns in ``classes_`` order."""
        return softmax(self.decision_function(X) / self.temperature_)

    def predict(self, X) -> np.ndarray:
        """Most probable label of each answer."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def _score(self, Z: np.ndarray) -> np.ndarray:
        return np.clip(Z @ self.score_coef_ + self.score_intercept_, 0.0, 1.0)

    def predict_fraction(self, X, proba: np.ndarray | None = None) -> np.ndarray:
        """Grade fraction in [0, 1]: the grade regression blended with the expected grade under the
        predicted probabilities (by ``score_weight_``); the expected grade alone in combiners saved
        without a regression. ``proba``: :meth:`predict_proba` of ``X`` when the caller has it already."""
        expected = (self.predict_proba(X) if proba is None else proba) @ self.label_fractions_
        if getattr(self, "score_coef_", None) is None:
            return expected
        X = np.asarray(X, dtype=np.float64)
        w = self.score_weight_
        return w * self._score((self._design(X) - self.mean_) / self.scale_) + (1 - w) * expected

    @property
    def labels_follow_points(self) -> bool:
        """True when the labels are score levels (a scored corpus): then the label is the level of the
        points. Otherwise the points follow the label: they stay inside its band."""
        return all(_is_number(c) for c in self.classes_)

    @property
    def cutoffs(self) -> np.ndarray:
        """Ascending grade fractions at which the next label (in order of grade) begins: midway
        between adjacent labels' mean grades."""
        values = np.sort(self.label_fractions_)
        return (values[:-1] + values[1:]) / 2

    def band_index(self, fraction: float) -> int:
        """Index in ``classes_`` of the label whose band holds the grade ``fraction``."""
        order = np.argsort(self.label_fractions_, kind="stable")
        return int(order[int(np.searchsorted(self.cutoffs, fraction + 1e-9, side="right"))])

    def label_bands(self) -> list[tuple[str, float, float]]:
        """Each label with the grade fractions it covers, ``[low, high)``, lowest first."""
        order = np.argsort(self.label_fractions_, kind="stable")
        edges = [0.0, *self.cutoffs.tolist(), 1.0]
        return [(str(self.classes_[i]), float(edges[k]), float(edges[k + 1])) for k, i in enumerate(order)]

    # -- persistence ----------------------------------------------------------------
    def to_dict(self, metadata: dict | None = None) -> dict:
        """JSON-ready state: parameters, learned arrays and ``metadata``."""
        self._check_fitted()
        return {
            "format": FORMAT,
            "params": self._params(),
            "feature_names": self.feature_names_,
            "gate": None if self.gate_ is None else self.feature_names_[self.gate_],
            "classes": [str(c) for c in self.classes_],
            "label_fractions": self.label_fractions_.tolist(),
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "coef": self.coef_.tolist(),
            "intercept": self.intercept_.tolist(),
            "temperature": self.temperature_,
            "score_coef": None if getattr(self, "score_coef_", None) is None else self.score_coef_.tolist(),
            "score_intercept": getattr(self, "score_intercept_", None),
            "score_weight": getattr(self, "score_weight_", None),
            "metadata": dict(metadata or getattr(self, "metadata_", {}) or {}),
        }

    @classmethod
    def from_dict(cls, data: dict, source: str = "<combiner>"):
        """Rebuild a fitted combiner from :meth:`to_dict` output, checking every field."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ModelError(f"not a grader combiner (expected format '{FORMAT}')", source=source)
        try:
            model = cls(**data["params"])
            model.feature_names_ = list(data["feature_names"])
            gate = data.get("gate")
            model.gate_ = None if gate is None else model.feature_names_.index(gate)
            model.classes_ = np.array(data["classes"], dtype=object)
            model.label_fractions_ = np.array(data["label_fractions"], dtype=np.float64)
            model.mean_ = np.array(data["mean"], dtype=np.float64)
            model.scale_ = np.array(data["scale"], dtype=np.float64)
            model.coef_ = np.array(data["coef"], dtype=np.float64)
            model.intercept_ = np.array(data["intercept"], dtype=np.float64)
            model.temperature_ = float(data["temperature"])
            model.metadata_ = dict(data.get("metadata") or {})
            score_coef = data.get("score_coef")
            model.score_coef_ = None if score_coef is None else np.array(score_coef, dtype=np.float64)
            model.score_intercept_ = None if score_coef is None else float(data["score_intercept"])
            model.score_weight_ = None if score_coef is None else float(data["score_weight"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"combiner file is incomplete or malformed: {exc}", source=source) from None
        model.n_features_in_ = len(model.feature_names_)
        k, d = len(model.classes_), model.n_features_in_ * (1 if model.gate_ is None else 2)
        shapes_ok = (model.coef_.shape == (k, d) and model.intercept_.shape == (k,) and model.mean_.shape == (d,)
                     and model.scale_.shape == (d,) and model.label_fractions_.shape == (k,))
        if model.score_coef_ is not None and model.score_coef_.shape != (d,):
            shapes_ok = False
        if model.score_weight_ is not None and not 0.0 <= model.score_weight_ <= 1.0:
            shapes_ok = False
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
    def load(cls, path: str | Path):
        """Read a combiner saved by :meth:`save`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError("combiner file not found", source=str(path)) from None
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read combiner JSON: {exc}", source=str(path)) from None
        return cls.from_dict(data, source=str(path))


def extra_signal_names(combiner: LinearCombiner) -> tuple[str, ...]:
    """Signals a combiner reads beyond :data:`FEATURES` (a fine-tuned scorer's outputs), in order."""
    return tuple(combiner.feature_names_[len(FEATURES):])


def _widened(combiner: LinearCombiner) -> LinearCombiner:
    """``combiner`` over the full :data:`FEATURES` layout when it was saved before some signal existed: the
    signals it never saw get zero weight, so it grades exactly as when it was saved. Others are returned as they
    are (and refused by the caller when their layout differs otherwise)."""
    names = list(combiner.feature_names_)
    known = [n for n in names if n in FEATURES]
    extras = names[len(known):]
    # The known signals must lead, once each and in FEATURES order (then no extra signal is a known one).
    if known == list(FEATURES) or names[:len(known)] != known or known != [n for n in FEATURES if n in known]:
        return combiner
    at = [FEATURES.index(n) for n in known] + list(range(len(FEATURES), len(FEATURES) + len(extras)))
    d = len(FEATURES) + len(extras)
    if combiner.gate_ is not None:  # the weights read every signal twice: as it is, then times the gate
        at, d = at + [d + a for a in at], 2 * d
        combiner.gate_ = FEATURES.index(names[combiner.gate_]) if combiner.gate_ < len(known) else \
            len(FEATURES) + combiner.gate_ - len(known)

    def spread(values: np.ndarray, fill: float) -> np.ndarray:
        out = np.full(values.shape[:-1] + (d,), fill, dtype=np.float64)
        out[..., at] = values
        return out

    combiner.mean_, combiner.scale_ = spread(combiner.mean_, 0.0), spread(combiner.scale_, 1.0)
    combiner.coef_ = spread(combiner.coef_, 0.0)
    if combiner.score_coef_ is not None:
        combiner.score_coef_ = spread(combiner.score_coef_, 0.0)
    combiner.feature_names_ = [*FEATURES, *extras]
    combiner.n_features_in_ = len(FEATURES) + len(extras)
    return combiner


def load_combiner(path: str | Path | None = None) -> LinearCombiner:
    """The combiner at ``path``, or the default one shipped with grader (``grader/models/default.json``).

    Its signals must be :data:`FEATURES`, optionally followed by extra signals that the caller
    supplies at grading time (see :func:`extra_signal_names`).
    """
    combiner = _widened(LinearCombiner.load(path or DEFAULT_COMBINER))
    if list(combiner.feature_names_[:len(FEATURES)]) != list(FEATURES):
        raise ModelError(
            f"combiner was trained on features {combiner.feature_names_}, but this grader computes "
            f"{list(FEATURES)}; retrain it with `grader train`", source=str(path or DEFAULT_COMBINER))
    return combiner
