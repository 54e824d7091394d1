"""Stacking a fine-tuned cross-encoder under the combiner, without leakage.

The combiner must learn how far to trust the cross-encoder on answers it has not
seen. So its training signals come from cross-fitting: the training rows are split
in two halves, a cross-encoder is fine-tuned on each half and predicts the other, and
the combiner is fitted on those out-of-fold predictions. How the rows are split says
which trust it learns: ``by="answers"`` (each question's answers dealt to both halves)
matches grading new answers to the questions the scorer trained on, ``by="questions"``
(whole questions to each half) matches grading questions it never saw, where a
cross-encoder is much weaker. Whether the combiner reads the scorer at all is decided on
those out-of-fold signals (:func:`trust`): when, with folds grouped by question, they do
not lower the combiner's held-out log loss, it gives them zero weight, as a cross-encoder
fine-tuned on a few questions often tells nothing about others. The scorer that is shipped is then
fine-tuned on every row, and evaluation folds do the same on their training rows and
grade their test rows with it (:class:`FinalScorer`): the figures are those of the
scorer ``grader train --finetune`` would save.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from grader.evaluation.corpus import safe_id
from grader.evaluation.training import (DEFAULT_C, DEFAULT_EXAMPLE_COUNTS, DEFAULT_IGNORED, Dataset, fit_combiner,
                                        fitted_metadata, held_out_fits, label_fractions_of, training_data,
                                        validate_combiner)
from grader.errors import ConfigError, InputDataError
from grader.finetune import CE_SIGNALS, build_pairs, ce_signals, label_values
from grader.finetune.pairs import question_keys
from grader.scoring.features import FEATURES

CROSSFIT_FOLDS = 2
CROSSFIT_BY = ("answers", "questions")


@dataclass
class Stack:
    """Out-of-fold cross-encoder signals of training rows, the models that made them, and the final model."""

    signals: dict  # id(row) -> CE_SIGNALS values from a model that did not train on the row
    halves: list = field(default_factory=list)  # Trained
    final: object | None = None  # Trained on every row
    seconds: float = 0.0
    label_values: np.ndarray | None = None
    by: str = "answers"


def crossfit_halves(groups: np.ndarray, seed: int, folds: int = CROSSFIT_FOLDS, by: str = "questions") -> np.ndarray:
    """Fold number of each pair: each question's answers dealt to every fold (``by="answers"``), or whole
    questions dealt to folds of similar size (``by="questions"``; by answers when there are too few questions)."""
    if by not in CROSSFIT_BY:
        raise ConfigError(f"`crossfit` must be one of {CROSSFIT_BY}. Got '{by}'.", field="crossfit")
    questions, counts = np.unique(groups.astype(str), return_counts=True)
    fold = np.zeros(len(groups), dtype=int)
    if by == "answers" or len(questions) < folds:
        for k, q in enumerate(questions):
            idx = np.flatnonzero(groups.astype(str) == q)
            order = np.random.default_rng([seed, k]).permutation(idx)
            fold[order] = (np.arange(len(order)) + k) % folds
        return fold
    rng = np.random.default_rng(seed)
    order = sorted(rng.permutation(len(questions)).tolist(), key=lambda i: -counts[i])
    sizes = np.zeros(folds)
    assigned = {}
    for i in order:  # the largest question first, each to the smallest fold so far
        k = int(np.argmin(sizes))
        assigned[questions[i]] = k
        sizes[k] += counts[i]
    return np.array([assigned[g] for g in groups.astype(str)])


def crossfit(rows, config, *, final: bool = True, progress: bool = True, folds: int = CROSSFIT_FOLDS,
             by: str = "answers") -> Stack:
    """Fine-tune on each half of ``rows`` (split ``by`` answers or questions) and predict the other half;
    then (``final``) on every row."""
    from grader.finetune.train import finetune, predict

    started = time.perf_counter()
    pairs = build_pairs(rows, label_fractions_of(rows))
    if len(pairs) < 2 * folds:
        raise InputDataError(f"fine-tuning needs at least {2 * folds} answers with a label or a score; "
                             f"got {len(pairs)}")
    values = label_values(pairs.label_set, pairs.label_fractions)
    usable = [r for r in rows if (r.answer or "").strip() and (r.label or r.fraction is not None)]
    fold = crossfit_halves(pairs.groups, config.seed, folds, by)
    if by == "answers":
        # The scorer is to grade new answers to these very questions: none may be held out for early
        # stopping, so every model trains on every question for the configured epochs.
        config = replace(config, validation=0.0)
    out = np.zeros((len(pairs), len(CE_SIGNALS)))
    halves = []
    for k in range(folds):
        train, test = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        trained = finetune(pairs.subset(train), config, progress, label=f"fine-tuning half {k + 1}/{folds}")
        probs, fraction = predict(trained, [pairs.first[i] for i in test], [pairs.answers[i] for i in test])
        out[test] = ce_signals(probs, fraction, values)
        halves.append(trained)
    stack = Stack({id(r): out[i] for i, r in enumerate(usable)}, halves, label_values=values, by=by)
    if final:
        stack.final = finetune(pairs, config, progress, label="fine-tuning on every row")
    stack.seconds = time.perf_counter() - started
    return stack


class FinalScorer:
    """:data:`CE_SIGNALS` of the model fine-tuned on every training row (torch), for evaluation folds."""

    def __init__(self, stack: Stack, rows=None, fallback=None):
        """``rows``: the training rows, whose questions the scorer knows; ``fallback``: the combiner for other
        questions (see :func:`grader.engine.scorer.grades_alone`), as a saved folder has."""
        if stack.final is None:
            raise ValueError("the stack has no model fine-tuned on every row (crossfit(final=True))")
        self.stack = stack
        self.label_fractions = stack.final.label_fractions
        self.folder = "(fine-tuned in this fold)"
        self.fallback = fallback
        self._questions = None if rows is None else frozenset(safe_id(r.question_id) for r in rows)

    def trained_on(self, question) -> bool | None:
        """Whether the training rows hold answers to ``question`` (by its id, as the fold's questions are built
        from the corpus's question ids); None without rows."""
        if self._questions is None:
            return None
        return question.id in self._questions

    def signals(self, firsts: list[str], answers: list[str]) -> np.ndarray:
        from grader.finetune.train import predict

        return ce_signals(*predict(self.stack.final, firsts, answers), self.stack.label_values)


def stacked(data: Dataset, stack: Stack) -> Dataset:
    """``data`` with the out-of-fold cross-encoder signals of each row appended to its signals."""
    keep = [i for i, r in enumerate(data.rows) if id(r) in stack.signals]
    extra = np.array([stack.signals[id(data.rows[i])] for i in keep]).reshape(len(keep), len(CE_SIGNALS))
    return Dataset(np.hstack([data.X[keep], extra]), data.y[keep], data.fractions[keep], data.groups[keep],
                   [data.rows[i] for i in keep], data.example_count[keep],
                   data.draws[keep] if len(data.draws) else data.draws)


STACKED_FEATURES = (*FEATURES, *CE_SIGNALS)


def trust(data: Dataset, C: float = DEFAULT_C, class_weight=None, ignore=DEFAULT_IGNORED, folds: int = 5) -> dict:
    """Whether the scorer's out-of-fold signals in ``data`` (stacked) improve the combiner on held-out questions.

    The combiner is fitted with and without them on folds grouped by question, and the mean log loss
    of the held-out labels compared: they are trusted when they lower it by more than one standard error of
    the answers' paired differences (a gain that noise signals reach by chance is not one),
    ``{"trusted": bool, "log_loss_with": .., "log_loss_without": .., "gain_standard_error": ..}``.
    With fewer than two questions, or a fold holding one label, the scorer is trusted (nothing to test it on).
    """
    losses = {}
    for key, skip in (("with", tuple(ignore)), ("without", (*ignore, *CE_SIGNALS))):
        fits = held_out_fits(data, C=C, class_weight=class_weight, folds=folds, ignore=skip, names=STACKED_FEATURES)
        if isinstance(fits, str):
            return {"trusted": True, "note": f"{fits}: the scorer's signals cannot be validated"}
        probabilities = []
        for test, model in fits:
            proba = model.predict_proba(data.X[test])
            index = {str(c): i for i, c in enumerate(model.classes_)}
            seen = [index.get(str(v)) for v in data.y[test]]
            probabilities.append([proba[k, i] if i is not None else 1e-6 for k, i in enumerate(seen)])
        losses[key] = -np.log(np.clip(np.concatenate(probabilities), 1e-6, 1.0))
    with_, without = (float(np.mean(losses[k])) for k in ("with", "without"))
    gain = losses["without"] - losses["with"]
    se = float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else 0.0
    return {"trusted": float(gain.mean()) > se, "log_loss_with": round(with_, 4),
            "log_loss_without": round(without, 4), "gain_standard_error": round(se, 4)}


def fit_stacked(data: Dataset, C: float = DEFAULT_C, class_weight=None, ignore=DEFAULT_IGNORED):
    """The combiner over ``data``'s signals and the scorer's (stacked), and :func:`trust`'s verdict: the scorer's
    signals get zero weight when they do not help on held-out questions."""
    verdict = trust(data, C=C, class_weight=class_weight, ignore=ignore)
    skip = tuple(ignore) if verdict["trusted"] else (*ignore, *CE_SIGNALS)
    return fit_combiner(data, C=C, class_weight=class_weight, ignore=skip, names=STACKED_FEATURES), verdict


def train_scorer(rows, output: str | Path, config, *, target: str | None = None, embedder=None, rubric=None,
                 example_counts=DEFAULT_EXAMPLE_COUNTS, seed: int = 0, C: float = DEFAULT_C, class_weight=None,
                 validate: bool = True, fingerprint: str | None = None, label_col: str = "label",
                 ignore=DEFAULT_IGNORED, progress: bool = True, extra_metadata: dict | None = None,
                 crossfit_by: str = "answers") -> dict:
    """Fine-tune a scorer on ``rows``, fit its combiner on cross-fitted signals and write the folder ``output``.

    ``crossfit_by`` is how the combiner's training rows are cross-fitted (see the module's docstring).
    Returns the folder's metadata (as saved in its manifest).
    """
    from grader.finetune.folder import COMBINER, NEW_QUESTIONS_COMBINER, save, write_manifest

    started = time.perf_counter()
    target, levels, grader, data = training_data(rows, target=target, embedder=embedder, rubric=rubric,
                                                 example_counts=example_counts, seed=seed, label_col=label_col)
    stack = crossfit(rows, config, final=True, progress=progress, by=crossfit_by)
    plain = data
    data = stacked(data, stack)
    combiner, verdict = fit_stacked(data, C=C, class_weight=class_weight, ignore=ignore)
    # Questions the scorer was not trained on are graded without it (engine/scorer.py: on questions held
    # out it lowered agreement), by the combiner fitted on the same rows without its signals.
    new_questions = fit_combiner(plain, C=C, class_weight=class_weight, ignore=ignore)
    how = dict(target=target, levels=levels, label_col=label_col, example_counts=example_counts, seed=seed, C=C,
               class_weight=class_weight, ignore=ignore, fingerprint=fingerprint)  # both combiners were fitted so
    meta = fitted_metadata(data, grader, combiner, rows, **how,
                           stacking={"protocol": f"{CROSSFIT_FOLDS}-fold cross-fitting by {crossfit_by}",
                                     "signals": list(CE_SIGNALS), **verdict})
    meta["features"] = list(STACKED_FEATURES)
    if validate:
        meta["validation"] = validate_combiner(data, C=C, class_weight=class_weight, names=STACKED_FEATURES,
                                               ignore=tuple(ignore) if verdict["trusted"] else (*ignore, *CE_SIGNALS))
    out = Path(output)
    saved = save(stack.final, out, {"training_data_sha256": fingerprint, "training_rows": len(rows),
                                    # the questions it knows; others get NEW_QUESTIONS_COMBINER (engine/scorer.py)
                                    "training_questions_sha256": question_keys(rows),
                                    "crossfit_validation": [t.validation for t in stack.halves],
                                    **(extra_metadata or {})}, progress=progress)
    combiner.save(saved / COMBINER, meta)
    new_meta = fitted_metadata(plain, grader, new_questions, rows, **how)
    new_meta["grades"] = "questions the scorer was not fine-tuned on, without its signals"
    new_questions.save(saved / NEW_QUESTIONS_COMBINER, new_meta)
    manifest = json.loads((saved / "manifest.json").read_text(encoding="utf-8"))
    manifest["metadata"]["total_seconds"] = round(time.perf_counter() - started, 1)
    manifest["metadata"]["finetune_seconds"] = round(stack.seconds, 1)
    manifest["metadata"]["combiner"] = {k: meta[k] for k in ("labels", "training_rows", "training_questions")}
    manifest["metadata"]["combiner_validation"] = meta.get("validation")
    write_manifest(saved, manifest["metadata"])
    return manifest["metadata"]

