"""The scoring policy: one encoded answer to a prepared question -> a :class:`~grader.result.GradeResult`.

:func:`score_answer` is the whole policy: signals, the combiner's label
probabilities mixed with the rubric's concept credit, misconception penalties,
required concepts, the detectors' caps, rounding to the question's step, the
label, the confidence, the review flag and the feedback. The engine calls it in
its own thread and the grading processes call it in theirs, so both grade alike.
"""

from __future__ import annotations

import math

import numpy as np

from grader.encoding.embedder import Encoding
from grader.result import ConceptResult, Flag, GradeResult, MisconceptionResult
from grader.rubric import ShortAnswerQuestion
from grader.scoring.combiner import LinearCombiner
from grader.scoring.detectors import AnswerView, cap_of, detect
from grader.scoring.features import FEATURES, PreparedQuestion, answer_signals, key_credit
from grader.scoring.feedback import compose
from grader.scoring.phrases import FOUND

REVIEW_THRESHOLD = 0.6
MAX_ANSWER_CHARS = 20_000


def snap(points: float, step: float, max_points: float) -> float:
    """Round ``points`` half-up to a multiple of ``step`` inside [0, max_points]."""
    snapped = math.floor(points / step + 0.5 + 1e-9) * step
    # Rounded to six decimals before clamping: rounding a max_points of 1.2875156 would exceed it.
    return float(min(max(round(snapped, 6), 0.0), max_points))


def interpolate(fraction: float, values: np.ndarray) -> np.ndarray:
    """A distribution over labels whose expected value is ``fraction`` (mass on the two nearest labels)."""
    order = np.argsort(values)
    v = values[order]
    out = np.zeros(len(values))
    fraction = min(max(fraction, v[0]), v[-1])
    k = int(np.searchsorted(v, fraction, side="right")) - 1
    if k >= len(v) - 1:
        out[order[-1]] = 1.0
    else:
        span = v[k + 1] - v[k]
        w = (fraction - v[k]) / span if span > 0 else 0.0
        out[order[k]] = 1.0 - w
        out[order[k + 1]] = w
    return out


def empty_result(question: ShortAnswerQuestion, combiner: LinearCombiner) -> GradeResult:
    """The grade of a blank answer: no points, the lowest label, certain."""
    low = str(combiner.classes_[int(np.argmin(combiner.label_fractions_))])
    flags = (Flag("empty", "the answer is empty", review=False),)
    return GradeResult(question.id, question.type, 0.0, question.max_points, low, 1.0, False,
                       "No answer was given.", flags=flags)


def score_answer(prepared: PreparedQuestion, text: str, encoding: Encoding, combiner: LinearCombiner, *,
                 truncated: bool = False, review_threshold: float = REVIEW_THRESHOLD,
                 max_answer_chars: int = MAX_ANSWER_CHARS) -> GradeResult:
    """Grade ``text``, encoded as ``encoding``, against ``prepared``'s question with ``combiner``.

    ``truncated`` says the text was cut to ``max_answer_chars`` (it adds a flag);
    ``review_threshold`` is the confidence below which the answer is flagged for review.
    """
    question = prepared.question
    sig = answer_signals(prepared, text, encoding)
    values = combiner.label_fractions_
    proba = combiner.predict_proba(sig.features[None, :])[0]
    flags: list[Flag] = []
    if truncated:
        flags.append(Flag("truncated", f"the answer was cut to its first {max_answer_chars} characters"))

    concepts = []
    for kp, m in zip(question.key_phrases, sig.key_matches):
        concepts.append(ConceptResult(kp.text, kp.points, round(kp.points * key_credit(m), 4), m.found,
                                      m.strength, m.evidence, m.method, m.negated, kp.required))
    mixed = proba
    if concepts:
        total = sum(c.points for c in concepts)
        concept_fraction = sum(c.awarded for c in concepts) / total
        w = question.criteria_weight
        mixed = (1 - w) * proba + w * interpolate(concept_fraction, values)
    fraction = float(mixed @ values)
    best = int(mixed.argmax())

    misconceptions = tuple(
        MisconceptionResult(mc.text, mc.penalty, m.strength, m.evidence, mc.feedback)
        for mc, m in zip(question.misconceptions, sig.misconception_matches) if m.strength >= FOUND
    )
    cap = 1.0
    penalty = sum(m.penalty for m in misconceptions) / question.max_points
    if misconceptions:
        flags.append(Flag("misconception", "the answer states a misconception", review=False))
    missing_required = [c for c in concepts if c.required and not c.found]
    if missing_required:
        cap = min(cap, 1.0 - sum(c.points - c.awarded for c in missing_required) / question.max_points)
        flags.append(Flag("missing_required", "a required concept is missing: "
                          + "; ".join(c.concept for c in missing_required), review=False))
    feature_values = sig.features.tolist()
    view = AnswerView(text, sig.analysis, dict(zip(FEATURES, feature_values)), prepared.prompt_stems,
                      prepared.reference_stems, sum(c.found for c in concepts), len(concepts), question)
    detections = detect(view)
    flags.extend(d.flag for d in detections)
    cap = min(cap, cap_of(detections))

    final = min(max(fraction - penalty, 0.0), cap)
    points = snap(final * question.max_points, question.step, question.max_points)
    label_index = best
    if final < fraction - 1e-9:  # a penalty or cap lowered the grade: the label follows it down
        nearest = int(np.argmin(np.abs(values - final)))
        if values[nearest] < values[best]:
            label_index = nearest
    if missing_required and values[label_index] >= values.max():
        lower = [i for i in np.argsort(-values) if values[i] < values.max()]
        label_index = int(lower[0]) if lower else label_index
    if points <= 0:
        label_index = int(np.argmin(values))
    label = str(combiner.classes_[label_index])
    confidence = float(mixed[label_index])
    if cap_of(detections) <= 0.0:
        confidence = max(confidence, 0.9)  # the detector is certain, the combiner's view does not matter
    needs_review = confidence < review_threshold or any(f.review for f in flags)
    hints = {kp.text: kp.hint for kp in question.key_phrases}
    feedback = compose(tuple(concepts), misconceptions, tuple(flags), hints,
                       feature_values[FEATURES.index("ref_cover")], label)
    return GradeResult(
        question_id=question.id,
        question_type=question.type,
        points=points,
        max_points=question.max_points,
        label=label,
        confidence=round(min(max(confidence, 0.0), 1.0), 4),
        needs_review=needs_review,
        feedback=feedback,
        concepts=tuple(concepts),
        misconceptions=misconceptions,
        flags=tuple(flags),
        signals={k: round(v, 4) for k, v in zip(FEATURES, feature_values)},
        probabilities={str(c): round(p, 4) for c, p in zip(combiner.classes_, mixed.tolist())},
    )
