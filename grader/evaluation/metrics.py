"""Agreement between the grader and human graders.

Label metrics (accuracy, macro/weighted F1, confusion matrix, per-question
accuracy), score metrics on the human scale (Pearson, Spearman, RMSE, MAE,
quadratic weighted kappa) and coverage: the share of answers the grader can
grade on its own at a target accuracy when its least confident answers go to a
human. Every statistic comes from scikit-learn or SciPy.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.calibration import calibration_curve
from sklearn.metrics import (accuracy_score, cohen_kappa_score, confusion_matrix, f1_score, mean_absolute_error,
                             mean_squared_error)

COVERAGE_TARGETS = (0.90, 0.95)


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def label_metrics(y_true: Sequence[str], y_pred: Sequence[str], *, groups: Sequence[str] | None = None,
                  confidence: Sequence[float] | None = None, labels: Sequence[str] | None = None) -> dict:
    """Accuracy, macro-F1, weighted-F1, confusion matrix and per-question accuracy of predicted labels.

    ``labels`` fixes the confusion-matrix order (default: every label seen in either
    sequence, sorted); a human label the grader never predicts still gets its row.
    """
    y_true = np.asarray([str(v) for v in y_true], dtype=object)
    y_pred = np.asarray([str(v) for v in y_pred], dtype=object)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true and y_pred must have the same length. Got {len(y_true)} and {len(y_pred)}.")
    if not len(y_true):
        raise ValueError("no answers to compare: y_true is empty")
    labels = list(labels) if labels is not None else sorted(set(y_true) | set(y_pred))
    out = {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=sorted(set(y_true)), average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
        "labels": labels,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
    if groups is not None:
        groups = np.asarray([str(g) for g in groups], dtype=object)
        out["per_question"] = {
            str(g): {"n": int((groups == g).sum()),
                     "accuracy": float(accuracy_score(y_true[groups == g], y_pred[groups == g]))}
            for g in sorted(set(groups))
        }
    if confidence is not None:
        out.update(coverage_metrics(y_true == y_pred, confidence))
    return out


def score_metrics(true_scores: Sequence[float], pred_scores: Sequence[float],
                  levels: Sequence[float] | None = None) -> dict:
    """Pearson, Spearman, RMSE, MAE and quadratic weighted kappa of predicted scores on the human scale.

    Kappa compares grade levels: both scores are snapped to the nearest of ``levels``
    (default: the distinct human scores).
    """
    t = np.asarray(true_scores, dtype=np.float64)
    p = np.asarray(pred_scores, dtype=np.float64)
    if t.shape != p.shape:
        raise ValueError(f"true and predicted scores must have the same length. Got {len(t)} and {len(p)}.")
    if not len(t):
        raise ValueError("no scores to compare")
    constant = np.ptp(t) == 0 or np.ptp(p) == 0
    out = {
        "n": int(len(t)),
        "pearson": None if constant else _finite(pearsonr(t, p).statistic),
        "spearman": None if constant else _finite(spearmanr(t, p).statistic),
        "rmse": float(math.sqrt(mean_squared_error(t, p))),
        "mae": float(mean_absolute_error(t, p)),
    }
    grid = np.unique(np.round(t, 6)) if levels is None else np.unique(np.asarray(levels, dtype=np.float64))
    ti, pi = snap_to_levels(t, grid), snap_to_levels(p, grid)
    out["qwk"] = None if len(grid) < 2 else _finite(
        cohen_kappa_score(ti, pi, weights="quadratic", labels=list(range(len(grid)))))
    out["levels"] = grid.tolist()
    return out


def snap_to_levels(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Index of the nearest level for each value."""
    return np.abs(np.asarray(values, dtype=np.float64)[:, None] - levels[None, :]).argmin(axis=1)


def coverage_curve(correct: Sequence[bool], confidence: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Coverage (share auto-graded) and accuracy on the auto-graded share, most confident first.

    Answers with equal confidence are kept or routed together, so each point is a
    threshold a user could actually set.
    """
    correct = np.asarray(correct, dtype=np.float64)
    confidence = np.asarray(confidence, dtype=np.float64)
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    kept = np.arange(1, len(order) + 1)
    sorted_conf = confidence[order]
    last_of_tie = np.r_[sorted_conf[1:] != sorted_conf[:-1], True]
    return kept[last_of_tie] / len(order), hits[last_of_tie] / kept[last_of_tie]


def coverage_at(correct: Sequence[bool], confidence: Sequence[float], target: float) -> float:
    """Largest share of answers that can be auto-graded with accuracy >= ``target`` (0 when none)."""
    if not len(correct):
        return 0.0
    coverage, accuracy = coverage_curve(correct, confidence)
    ok = accuracy >= target - 1e-12
    return float(coverage[ok].max()) if ok.any() else 0.0


def coverage_metrics(correct: Sequence[bool], confidence: Sequence[float]) -> dict:
    """Coverage at each of :data:`COVERAGE_TARGETS`, plus the mean confidence and calibration error."""
    correct = np.asarray(correct, dtype=bool)
    confidence = np.asarray(confidence, dtype=np.float64)
    out = {f"coverage_at_{round(t * 100)}": coverage_at(correct, confidence, t) for t in COVERAGE_TARGETS}
    out["mean_confidence"] = float(confidence.mean())
    out["expected_calibration_error"] = expected_calibration_error(correct, confidence)
    return out


def reliability(correct: Sequence[bool], confidence: Sequence[float], bins: int = 10) -> dict:
    """Reliability diagram data: per confidence bin, mean confidence, accuracy and count."""
    correct = np.asarray(correct, dtype=int)
    confidence = np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0)
    if len(np.unique(correct)) < 2:  # calibration_curve needs both outcomes
        return {"confidence": [float(confidence.mean())], "accuracy": [float(correct.mean())], "count": [len(correct)]}
    acc, conf = calibration_curve(correct, confidence, n_bins=bins, strategy="uniform")
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], confidence), minlength=bins)  # calibration_curve's bins
    return {"confidence": conf.tolist(), "accuracy": acc.tolist(), "count": [int(c) for c in counts if c]}


def expected_calibration_error(correct: Sequence[bool], confidence: Sequence[float], bins: int = 10) -> float:
    """Count-weighted mean gap between confidence and accuracy over the reliability bins."""
    data = reliability(correct, confidence, bins)
    counts = np.asarray(data["count"], dtype=np.float64)
    gaps = np.abs(np.asarray(data["confidence"]) - np.asarray(data["accuracy"]))
    return float((gaps * counts).sum() / counts.sum()) if counts.sum() else 0.0
