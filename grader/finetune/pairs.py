"""(first text, answer) pairs and their targets, from a labelled corpus or a rubric question.

The first text is what a grader reads before the answer: the question, then the model
answer. Where a question has no model answer, its best-graded example stands in (the
same rule as :func:`grader.scoring.features.prepare_question`), so a corpus without
reference answers still trains and grades. Training and grading build the first text
with the same function, :func:`first_text`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

SEPARATOR = "\n"


def first_text(prompt: str, references: Sequence[str], examples: Iterable[tuple[str, float | None]] = ()) -> str:
    """The question followed by its first model answer, or by its best-graded example when it has none."""
    prompt = (prompt or "").strip()
    reference = next((r.strip() for r in references if r and r.strip()), "")
    if not reference:
        graded = [(f, a.strip()) for a, f in examples if f is not None and a and a.strip()]
        if graded:
            top = max(f for f, _ in graded)
            reference = next(a for f, a in graded if f >= top - 1e-9)
    return SEPARATOR.join(t for t in (prompt, reference) if t)


def question_key(prompt: str, references: Sequence[str]) -> str:
    """The sha256 that names a question to a scorer: of its prompt and model answer as :func:`first_text` joins
    them (examples left out: a rubric's examples are not a corpus's rows)."""
    return hashlib.sha256(first_text(prompt, references).encode("utf-8")).hexdigest()


def _by_question(rows) -> dict[str, tuple[str, list[str], list]]:
    """{question id: (prompt, distinct model answers, rows)} of corpus ``rows``."""
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(r.question_id, []).append(r)
    out = {}
    for qid, group in groups.items():
        prompt = next((r.question for r in group if (r.question or "").strip()), "")
        refs = list(dict.fromkeys(r.reference_answer.strip() for r in group if (r.reference_answer or "").strip()))
        out[qid] = (prompt, refs, group)
    return out


def question_keys(rows) -> list[str]:
    """The sorted :func:`question_key` of each question of corpus ``rows``."""
    return sorted({question_key(prompt, refs) for prompt, refs, _ in _by_question(rows).values()})


def question_text(question, label_fractions: dict[str, float] | None = None) -> str:
    """:func:`first_text` of a rubric :class:`~grader.rubric.ShortAnswerQuestion`."""
    fractions = label_fractions or {}
    examples = []
    for ex in question.examples:
        if ex.points is not None:
            examples.append((ex.answer, min(1.0, ex.points / question.max_points)))
        else:
            examples.append((ex.answer, fractions.get(ex.label)))
    return first_text(question.prompt, question.reference_answers, examples)


@dataclass
class Pairs:
    """Training pairs: texts, label index (-1 when unknown), score fraction (nan when unknown), question."""

    first: list[str]
    answers: list[str]
    labels: np.ndarray  # int64, index into ``label_set``
    fractions: np.ndarray  # float32
    groups: np.ndarray  # question id of each pair
    label_set: tuple[str, ...]
    label_fractions: dict[str, float]

    def __len__(self) -> int:
        return len(self.answers)

    def subset(self, index) -> "Pairs":
        """The pairs at ``index`` (same label set)."""
        index = np.asarray(index, dtype=int)
        return Pairs([self.first[i] for i in index], [self.answers[i] for i in index], self.labels[index],
                     self.fractions[index], self.groups[index], self.label_set, self.label_fractions)


def _fraction(row) -> float | None:
    value = getattr(row, "fraction", None)
    return None if value is None else float(value)


def build_pairs(rows, label_fractions: dict[str, float] | None = None) -> Pairs:
    """Pairs of every row with a non-blank answer and a label or a score.

    ``rows`` are :class:`~grader.evaluation.corpus.LabeledAnswer` (anything with ``question_id``,
    ``question``, ``reference_answer``, ``answer``, ``label`` and ``fraction``). The label set is
    the corpus's own, sorted by mean score fraction where known, else by name.
    ``label_fractions`` gives the grade of labels without scores (for the stand-in example).
    """
    rows = [r for r in rows if (r.answer or "").strip() and (r.label or _fraction(r) is not None)]
    fractions = dict(label_fractions or {})
    sums: dict[str, list[float]] = {}
    for r in rows:
        if r.label and _fraction(r) is not None:
            sums.setdefault(r.label, []).append(_fraction(r))
    fractions.update({k: float(np.mean(v)) for k, v in sums.items()})
    labels = sorted({r.label for r in rows if r.label}, key=lambda k: (fractions.get(k, np.inf), k))
    firsts: dict[str, str] = {}
    for qid, (prompt, refs, group) in _by_question(rows).items():
        examples = [(r.answer, _fraction(r) if _fraction(r) is not None else fractions.get(r.label)) for r in group]
        firsts[qid] = first_text(prompt, refs, examples)
    index = {k: i for i, k in enumerate(labels)}
    return Pairs(
        first=[firsts[r.question_id] for r in rows],
        answers=[r.answer for r in rows],
        labels=np.array([index[r.label] if r.label else -1 for r in rows], dtype=np.int64),
        fractions=np.array([np.nan if _fraction(r) is None else _fraction(r) for r in rows], dtype=np.float32),
        groups=np.array([r.question_id for r in rows], dtype=object),
        label_set=tuple(labels),
        label_fractions={k: float(fractions[k]) for k in labels if k in fractions},
    )
