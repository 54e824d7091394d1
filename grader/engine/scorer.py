"""The engine's side of a fine-tuned scorer: loading its folder, and its signals for a batch of answers."""

from __future__ import annotations

import warnings
from pathlib import Path

from grader.errors import ModelError
from grader.finetune import CE_SIGNALS, CrossEncoderScorer, question_text
from grader.scoring.combiner import LinearCombiner


def load_scorer_folder(folder: str | Path, precision: str = "int8") -> tuple[CrossEncoderScorer, LinearCombiner]:
    """(scorer, combiner) of a folder written by ``grader train --finetune``; every file is checked first.

    The folder's combiner for new questions, when it has one, becomes ``scorer.fallback``: answers to a
    question the scorer was not trained on are graded with it and without the scorer's signals.
    """
    from grader.scoring.combiner import load_combiner

    scorer = CrossEncoderScorer(folder, precision)
    if scorer.combiner_path is None:
        raise ModelError("the scorer folder has no combiner.json; train it with `grader train --finetune`",
                         source=str(folder), field="combiner")
    if scorer.new_questions_combiner_path is not None:
        scorer.fallback = load_combiner(scorer.new_questions_combiner_path)
    return scorer, load_combiner(scorer.combiner_path)


def _unseen(scorer, question) -> bool:
    """Whether ``scorer`` records its training questions and ``question`` is not one of them."""
    return getattr(scorer, "trained_on", None) is not None and scorer.trained_on(question) is False


def grades_alone(scorer, question) -> bool:
    """Whether answers to ``question`` are graded without ``scorer``: it was not trained on the question and
    comes with a combiner for new questions (``scorer.fallback``)."""
    return scorer is not None and getattr(scorer, "fallback", None) is not None and _unseen(scorer, question)


def load_combiner_spec(spec, precision: str = "int8") -> tuple[CrossEncoderScorer | None, LinearCombiner]:
    """(scorer or None, combiner) of what a ``combiner`` option names: a scorer folder (both checked and
    loaded), a combiner JSON path or None (the shipped combiner), or a combiner already loaded."""
    from grader.scoring.combiner import load_combiner

    if isinstance(spec, (str, Path)) and Path(spec).is_dir():
        return load_scorer_folder(spec, precision)
    if spec is None or isinstance(spec, (str, Path)):
        return None, load_combiner(spec)
    return None, spec


class UnseenQuestionWarning(UserWarning):
    """A fine-tuned scorer grades a question it was not fine-tuned on."""


def scorer_signals(scorer, questions: list, texts: list[str], names, keys: list, label_fractions: dict) -> dict:
    """{key: {signal name: value}} of each (question, answer text); ``scorer.signals`` runs one batched pass.

    A question the scorer was not fine-tuned on gets no signals when the scorer has a combiner for new
    questions (:func:`grades_alone`: measured on questions held out, the scorer lowered agreement there), and
    is graded with the scorer all the same, with an :class:`UnseenQuestionWarning`, by an older folder.
    """
    firsts, alone = {}, set()
    for q in questions:
        if id(q) in firsts or id(q) in alone:
            continue
        if grades_alone(scorer, q):
            alone.add(id(q))
            continue
        firsts[id(q)] = question_text(q, label_fractions)
        if _unseen(scorer, q):  # an older folder, without a combiner for new questions
            warnings.warn(f"the fine-tuned scorer {scorer.folder} was not trained on question "
                          f"'{getattr(q, 'id', '?')}': on questions it has not seen it grades worse than no "
                          "scorer (docs/finetune.md); grade this question without it, or retrain the folder, "
                          "which then grades new questions without the scorer", UnseenQuestionWarning,
                          stacklevel=2)
    rows = [i for i, q in enumerate(questions) if id(q) in firsts]
    if not rows:
        return {}
    values = scorer.signals([firsts[id(questions[i])] for i in rows], [texts[i] for i in rows])
    columns = [CE_SIGNALS.index(n) for n in names]
    return {keys[i]: {n: float(values[k, c]) for n, c in zip(names, columns)} for k, i in enumerate(rows)}
