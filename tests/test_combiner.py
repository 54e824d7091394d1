"""The combiner is a real scikit-learn estimator, saved as JSON that cannot execute code."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score

from grader.evaluation.estimator import GradeCombiner
from grader.errors import ModelError
from grader.scoring.combiner import LinearCombiner


def _data(seed=0, n=300):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    score = X[:, 0] + 0.5 * X[:, 1]
    y = np.where(score > 0.7, "correct", np.where(score < -0.7, "incorrect", "partially_correct"))
    fractions = np.where(y == "correct", 1.0, np.where(y == "incorrect", 0.0, 0.5))
    groups = np.arange(n) % 10
    return X, y, fractions, groups


def test_sklearn_contract():
    model = GradeCombiner(C=0.5)
    assert model.get_params() == {"C": 0.5, "class_weight": None, "calibrate": True, "cv": 5, "alpha": 10.0,
                                  "gate": None}
    assert not hasattr(model, "coef_")
    with pytest.raises(NotFittedError):
        model.predict(np.zeros((1, 4)))
    X, y, _, _ = _data()
    cloned = clone(model)
    assert cloned.fit(X, y) is cloned
    assert cross_val_score(GradeCombiner(), X, y, cv=3).mean() > 0.8


def test_learns_label_fractions_and_calibrates():
    X, y, fractions, groups = _data()
    model = GradeCombiner().fit(X, y, fractions=fractions, groups=groups)
    by_class = dict(zip(model.classes_, model.label_fractions_))
    assert by_class == {"correct": 1.0, "incorrect": 0.0, "partially_correct": 0.5}
    assert model.temperature_ > 0
    proba = model.predict_proba(X)
    assert np.allclose(proba.sum(axis=1), 1.0)
    fraction = model.predict_fraction(X)
    assert ((0 <= fraction) & (fraction <= 1)).all()
    assert (model.predict(X) == y).mean() > 0.85


def test_unknown_label_names_and_numeric_labels_get_ordered_fractions():
    X, y, _, _ = _data()
    numeric = [{"correct": "5", "partially_correct": "2", "incorrect": "0"}[v] for v in y]
    model = GradeCombiner(calibrate=False).fit(X, numeric)
    assert dict(zip(model.classes_, model.label_fractions_)) == {"0": 0.0, "2": 0.4, "5": 1.0}
    odd = [{"correct": "gold", "partially_correct": "silver", "incorrect": "bronze"}[v] for v in y]
    model = GradeCombiner(calibrate=False).fit(X, odd)
    by = dict(zip(model.classes_, model.label_fractions_))
    assert by["gold"] > by["silver"] > by["bronze"]


def test_binary_labels():
    X, y, _, _ = _data()
    yb = np.where(y == "correct", "correct", "incorrect")
    model = GradeCombiner().fit(X, yb)
    assert model.predict_proba(X).shape == (len(X), 2)
    assert (model.predict(X) == yb).mean() > 0.85


def test_json_round_trip(tmp_path):
    X, y, fractions, groups = _data()
    model = GradeCombiner().fit(X, y, fractions=fractions, groups=groups, feature_names=["a", "b", "c", "d"])
    path = model.save(tmp_path / "m.json", {"corpus": "synthetic"})
    data = json.loads(path.read_text())
    assert data["format"] == "grader-combiner/1" and data["metadata"]["corpus"] == "synthetic"
    loaded = GradeCombiner.load(path)
    assert np.allclose(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.feature_names_ == ["a", "b", "c", "d"]


@pytest.mark.parametrize("corrupt", [
    lambda d: d.update(format="pickle"),
    lambda d: d.pop("coef"),
    lambda d: d.update(coef=[[1.0]]),
    lambda d: d.update(temperature=-1),
])
def test_malformed_files_are_rejected(tmp_path, corrupt):
    X, y, _, _ = _data()
    path = GradeCombiner().fit(X, y).save(tmp_path / "m.json")
    data = json.loads(path.read_text())
    corrupt(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="m.json"):
        GradeCombiner.load(path)


def test_fit_validates_inputs():
    with pytest.raises(ValueError, match="at least 2 classes"):
        GradeCombiner().fit(np.zeros((5, 2)), ["a"] * 5)
    with pytest.raises(ValueError, match="`C` must be > 0"):
        GradeCombiner(C=-1).fit(np.zeros((4, 2)), ["a", "b", "a", "b"])


def test_default_combiner_metadata():
    from grader.scoring.combiner import DEFAULT_COMBINER, load_combiner
    from grader.scoring.features import FEATURES

    model = load_combiner()
    assert model.feature_names_ == list(FEATURES)
    data = json.loads(DEFAULT_COMBINER.read_text())
    assert set(data["classes"]) == {"correct", "partially_correct", "incorrect"}


def test_linear_combiner_reads_what_grade_combiner_writes(tmp_path):
    X, y, fractions, groups = _data()
    fitted = GradeCombiner(C=0.5).fit(X, y, fractions=fractions, groups=groups)
    loaded = LinearCombiner.load(fitted.save(tmp_path / "m.json"))
    assert np.allclose(loaded.predict_proba(X), fitted.predict_proba(X))
    assert list(loaded.predict(X)) == list(fitted.predict(X))
    assert GradeCombiner.load(loaded.save(tmp_path / "again.json")).get_params() == fitted.get_params()
    with pytest.raises(ValueError, match="expects 4"):
        loaded.predict_proba(X[:, :2])
    with pytest.raises(ValueError, match="NaN"):
        loaded.predict_proba(np.full_like(X[:1], np.nan))


def test_grading_does_not_import_scikit_learn():
    """Grading loads the combiner as plain arrays: scikit-learn and SciPy stay out of start-up."""
    code = ("import sys; from grader.engine import Grader; g = Grader(None); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("gate", [None, "ex_weight"])
def test_a_combiner_saved_before_a_signal_existed_grades_as_saved(tmp_path, gate):
    """A combiner whose signals lack one of today's (and may end with a scorer's extra signal) loads over
    today's layout: the missing signal gets no weight, gated or not, so its grades do not change."""
    from grader.scoring.combiner import load_combiner
    from grader.scoring.features import FEATURES

    old = [n for n in FEATURES if n != "token_f1"] + ["scorer_fraction"]
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, len(old)))
    X[:, old.index("ex_weight")] = rng.uniform(0, 1, size=200)
    score = X[:, 0] + X[:, 1] * X[:, old.index("ex_weight")] + X[:, -1]
    y = np.where(score > 0.5, "correct", np.where(score < -0.5, "incorrect", "partially_correct"))
    fitted = GradeCombiner(C=0.5, gate=gate).fit(X, y, feature_names=old)
    assert (fitted.gate_ is None) == (gate is None)
    loaded = load_combiner(fitted.save(tmp_path / "old.json"))
    assert loaded.feature_names_ == [*FEATURES, "scorer_fraction"]
    at = FEATURES.index("token_f1")
    wide = np.insert(X, at, rng.uniform(0, 1, size=200), axis=1)  # any value: the old combiner ignores it
    assert np.allclose(loaded.predict_proba(wide), fitted.predict_proba(X))
    if gate is not None:
        assert loaded.feature_names_[loaded.gate_] == gate
