"""The scoring policy: one encoded answer to a prepared question -> a :class:`~grader.result.GradeResult`.

:func:`score_answer` is the whole policy: signals, the combiner's label
probabilities mixed with the rubric's concept credit, misconception and reversal penalties,
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
from grader.errors import ModelError
from grader.scoring.combiner import LinearCombiner, extra_signal_names
from grader.scoring.detectors import AnswerView, cap_of, detect
from grader.scoring.features import FEATURES, PreparedQuestion, answer_signals, key_credit
from grader.scoring.feedback import compose
from grader.scoring.phrases import FOUND, MISCONCEPTION_SURE, SURE

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


def _within(combiner: LinearCombiner, index: int, fraction: float, max_points: float, step: float) -> float | None:
    """Points on the ``step`` grid nearest ``fraction`` inside the band of label ``index`` (None if it has none)."""
    bands = {label: (lo, hi) for label, lo, hi in combiner.label_bands()}
    lo, hi = bands[str(combiner.classes_[index])]
    top = math.isclose(hi, 1.0)
    clamped = min(max(fraction, lo), hi) * max_points
    candidates = [snap(clamped, step, max_points), snap(clamped - step / 2 + 1e-9, step, max_points),
                  snap(clamped + step / 2, step, max_points)]
    inside = [p for p in candidates
              if lo - 1e-9 <= p / max_points and (p / max_points < hi - 1e-9 or (top and p <= max_points))]
    return min(inside, key=lambda p: abs(p - fraction * max_points)) if inside else None


def label_and_points(combiner: LinearCombiner, proba: np.ndarray, fraction: float, lowered: bool,
                     missing_required: bool, max_points: float, step: float,
                     points_decide: bool = False) -> tuple[int, float]:
    """The label (index in ``combiner.classes_``) and the points of a grade, consistent with each other.

    Labels partition the grade: each covers the band of fractions between the midpoints of its
    mean grade and its neighbours' (:meth:`LinearCombiner.label_bands`), so equal points always
    get the same label. When the labels are score levels, or the points are set by something
    other than the combiner (``points_decide``: a rubric's points scheme), the label is the band
    of the points. Otherwise the label is the most probable one (``proba``) and the points stay
    inside its band; a grade ``lowered`` below that band by a penalty or cap takes the lower
    band's label, and a ``missing_required`` concept keeps the label below the top one.
    """
    values = combiner.label_fractions_
    rank = np.argsort(np.argsort(values, kind="stable"), kind="stable")  # label index -> grade order
    if combiner.labels_follow_points or points_decide:
        points = snap(fraction * max_points, step, max_points)
        index = combiner.band_index(points / max_points)
    else:
        index = int(np.argmax(proba))
        band = combiner.band_index(fraction)
        if lowered and rank[band] < rank[index]:
            index = band
        if missing_required and rank[index] == len(values) - 1 and len(values) > 1:
            index = int(np.argsort(values, kind="stable")[-2])
        inside = _within(combiner, index, fraction, max_points, step)
        if inside is None:  # the band holds no multiple of the step: the label follows the points
            points = snap(fraction * max_points, step, max_points)
            index = combiner.band_index(points / max_points)
        else:
            points = inside
    return index, points


def rubric_label(question: ShortAnswerQuestion, combiner: LinearCombiner, proba: np.ndarray, fraction: float,
                 missing_required: bool) -> tuple[str, float, float]:
    """Label, points and confidence when the question sets its own ``labels``: the label is the band of the points.

    A ``missing_required`` concept keeps the points below the top label's minimum. The confidence
    is the probability of the combiner's label of that name, or else the probability of the labels
    whose mean grade falls in the band.
    """
    max_points, step = question.max_points, question.step
    points = snap(fraction * max_points, step, max_points)
    bands = dict(question.labels)
    minimums = sorted(bands.values())
    if missing_required and len(minimums) > 1 and points >= minimums[-1] - 1e-9:
        points = float(round(max(0.0, math.ceil(minimums[-1] / step - 1e-9) * step - step), 6))
    label = question.label_of(points)
    classes = [str(c) for c in combiner.classes_]
    if label in classes:
        return label, points, float(proba[classes.index(label)])
    low = bands[label]
    high = min((m for m in minimums if m > low), default=max_points + 1.0)
    grades = combiner.label_fractions_ * max_points
    inside = (grades >= low - 1e-9) & ((grades < high - 1e-9) | (high > max_points))
    return label, points, float(proba[inside].sum())


def empty_result(question: ShortAnswerQuestion, combiner: LinearCombiner) -> GradeResult:
    """The grade of a blank answer: no points, the lowest label, certain."""
    low = question.label_of(0.0) or str(combiner.classes_[int(np.argmin(combiner.label_fractions_))])
    flags = (Flag("empty", "the answer is empty", review=False),)
    return GradeResult(question.id, question.type, 0.0, question.max_points, low, 1.0, False,
                       "No answer was given.", flags=flags)


def score_answer(prepared: PreparedQuestion, text: str, encoding: Encoding, combiner: LinearCombiner, *,
                 truncated: bool = False, review_threshold: float = REVIEW_THRESHOLD,
                 max_answer_chars: int = MAX_ANSWER_CHARS,
                 extra_signals: dict[str, float] | None = None) -> GradeResult:
    """Grade ``text``, encoded as ``encoding``, against ``prepared``'s question with ``combiner``.

    ``truncated`` says the text was cut to ``max_answer_chars`` (it adds a flag);
    ``review_threshold`` is the confidence below which the answer is flagged for review;
    ``extra_signals`` holds the values of the signals the combiner reads beyond
    :data:`~grader.scoring.features.FEATURES` (a fine-tuned scorer's outputs), by name.
    """
    question = prepared.question
    sig = answer_signals(prepared, text, encoding)
    values = combiner.label_fractions_
    extra = extra_signal_names(combiner)
    if extra:
        missing = [n for n in extra if n not in (extra_signals or {})]
        if missing:
            raise ModelError(f"the combiner reads signals {missing} that were not computed for this answer; "
                             "load the fine-tuned scorer it was trained with")
        row = np.concatenate([sig.features, [float(extra_signals[n]) for n in extra]])
    else:
        row = sig.features
    proba = combiner.predict_proba(row[None, :])
    model_fraction = float(combiner.predict_fraction(row[None, :], proba)[0])
    proba = proba[0]
    flags: list[Flag] = []
    if truncated:
        flags.append(Flag("truncated", f"the answer was cut to its first {max_answer_chars} characters"))

    concepts = []
    for kp, m in zip(question.key_phrases, sig.key_matches):
        # A concept found on evidence below "sure" is reported as uncertain, never asserted.
        uncertain = m.found and m.strength < SURE and not m.negated
        concepts.append(ConceptResult(kp.text, kp.points, round(kp.points * key_credit(m), 4), m.found,
                                      m.strength, m.evidence, m.method, m.negated, kp.required, uncertain))
    mixed, fraction = proba, model_fraction
    if concepts:
        total = sum(c.points for c in concepts)
        concept_fraction = sum(c.awarded for c in concepts) / total
        w = question.key_weight
        # The label probabilities (the confidence) keep at least half of the combiner's view, so that an
        # answer the combiner and the concepts disagree about is not graded as certain.
        w_label = min(w, 0.5)
        mixed = (1 - w_label) * proba + w_label * interpolate(concept_fraction, values)
        fraction = (1 - w) * model_fraction + w * concept_fraction

    found_mc = [(mc, m) for mc, m in zip(question.misconceptions, sig.misconception_matches) if m.strength >= FOUND]
    misconceptions = tuple(
        MisconceptionResult(mc.text, mc.penalty, m.strength, m.evidence, mc.feedback, uncertain=m.strength < MISCONCEPTION_SURE)
        for mc, m in found_mc)
    cap = 1.0
    penalty = sum(m.penalty for m in misconceptions if not m.uncertain) / question.max_points
    # A concept the answer reverses ("the RNN adds, the LSTM multiplies") is a false claim, not just a gap.
    reversed_cost = sum(kp.reversal_cost for kp, c in zip(question.key_phrases, concepts) if c.negated and not c.found)
    penalty += reversed_cost / question.max_points
    if any(not m.uncertain for m in misconceptions):
        flags.append(Flag("misconception", "the answer states a misconception", review=False))
    missing_required = [c for c in concepts if c.required and not c.found]
    if missing_required:
        cap = min(cap, 1.0 - sum(c.points - c.awarded for c in missing_required) / question.max_points)
        flags.append(Flag("missing_required", "a required concept is missing: "
                          + "; ".join(c.concept for c in missing_required), review=False))
    unsure = [c.concept for c in concepts if c.uncertain] + [m.misconception for m in misconceptions if m.uncertain]
    if unsure:
        flags.append(Flag("uncertain", "the evidence is weak for: " + "; ".join(unsure)))
    feature_values = sig.features.tolist()
    view = AnswerView(text, sig.analysis, dict(zip(FEATURES, feature_values)), prepared.prompt_stems,
                      prepared.reference_stems, sum(c.found for c in concepts), len(concepts), question,
                      sum(c.found and not c.uncertain and not c.negated for c in concepts))
    detections = detect(view)
    flags.extend(d.flag for d in detections)
    cap = min(cap, cap_of(detections))

    final = min(max(fraction - penalty, 0.0), cap)
    if question.labels:
        label, points, confidence = rubric_label(question, combiner, mixed, final, bool(missing_required))
    else:
        # A points scheme (the key phrases set all of the grade) sets the points; its label is their band.
        label_index, points = label_and_points(combiner, mixed, final, final < fraction - 1e-9,
                                               bool(missing_required), question.max_points, question.step,
                                               points_decide=bool(concepts) and question.key_weight >= 1.0)
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
        signals={k: round(float(v), 4) for k, v in zip((*FEATURES, *extra), (*feature_values, *row[len(FEATURES):]))},
        probabilities={str(c): round(p, 4) for c, p in zip(combiner.classes_, mixed.tolist())},
    )
