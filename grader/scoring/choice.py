"""Exact grading of multiple-choice and true/false answers, however the LMS wrote them."""

from __future__ import annotations

import re

from grader.result import Flag, GradeResult
from grader.rubric import MultipleChoiceQuestion, TrueFalseQuestion
from grader.text import normalize

_TRUE = {"true", "t", "yes", "y", "1", "wahr", "richtig", "ja", "vrai", "verdadero"}
_FALSE = {"false", "f", "no", "n", "0", "falsch", "nein", "faux", "falso"}
_SPLIT = re.compile(r"\s*(?:[,;|/]|\band\b)\s*")
_LETTER = re.compile(r"^\(?([A-Za-z0-9]{1,3})[).:]?(?:\s|$)")


def parse_true_false(answer: str) -> bool | None:
    """True, False, or None when the text is neither."""
    text = normalize(answer).strip(" .!")
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def parse_choices(question: MultipleChoiceQuestion, answer: str) -> set[str] | None:
    """Option ids named by ``answer``: letters ("B", "b)", "A, C") or option texts; None if unreadable."""
    text = answer.strip()
    if not text:
        return set()
    by_id = {normalize(o.id): o.id for o in question.options}
    by_text = {normalize(o.text).strip(" ."): o.id for o in question.options}
    whole = normalize(text).strip(" .")
    if whole in by_text:
        return {by_text[whole]}
    for option_text, oid in by_text.items():  # "B) In vanilla RNNs, ..." or a text an LMS cut short
        if len(whole) >= 20 and (option_text.startswith(whole) or whole.endswith(option_text)):
            return {oid}
    chosen = set()
    for part in _SPLIT.split(text):
        part = part.strip()
        if not part:
            continue
        key = normalize(part).strip(" .")
        if key in by_id:
            chosen.add(by_id[key])
            continue
        m = _LETTER.match(part)
        if m and normalize(m.group(1)) in by_id:
            chosen.add(by_id[normalize(m.group(1))])
            continue
        return None
    return chosen


def grade_choice(question: MultipleChoiceQuestion | TrueFalseQuestion, answer: str) -> GradeResult:
    """Grade a multiple-choice or true/false answer exactly."""
    max_points = question.points
    flags: list[Flag] = []
    if not (answer or "").strip():
        return _result(question, 0.0, "incorrect", "No answer was given.", (Flag("empty", "the answer is empty", False),))
    if isinstance(question, TrueFalseQuestion):
        value = parse_true_false(answer)
        if value is None:
            flags.append(Flag("unreadable_choice", f"'{answer[:40]}' is not true or false"))
            return _result(question, 0.0, "incorrect", "The answer is not read as true or false.", tuple(flags))
        right = value == question.correct
        return _result(question, max_points if right else 0.0, "correct" if right else "incorrect",
                       "Correct." if right else "Incorrect.", ())
    chosen = parse_choices(question, answer)
    if chosen is None:
        flags.append(Flag("unreadable_choice", f"'{answer[:40]}' names no option of this question"))
        return _result(question, 0.0, "incorrect", "The answer does not name an option.", tuple(flags))
    right = chosen == set(question.correct)
    if question.needs_confirmation:
        flags.append(Flag("key_unconfirmed", "the answer key was inferred and awaits the instructor's confirmation"))
    return _result(question, max_points if right else 0.0, "correct" if right else "incorrect",
                   "Correct." if right else "Incorrect.", tuple(flags))


def _result(question, points: float, label: str, feedback: str, flags: tuple[Flag, ...]) -> GradeResult:
    return GradeResult(
        question_id=question.id,
        question_type=question.type,
        points=points,
        max_points=question.points,
        label=label,
        confidence=1.0,
        needs_review=any(f.review for f in flags),
        feedback=feedback,
        flags=flags,
    )
