"""Feedback to students: what they got, what is missing, what is wrong.

It names the instructor's concepts and quotes the student's own words as
evidence, but never quotes the model answer.
"""

from __future__ import annotations

from grader.result import ConceptResult, Flag, MisconceptionResult

_MAX_EVIDENCE = 90


def _quote(text: str | None) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= _MAX_EVIDENCE else text[: _MAX_EVIDENCE - 1] + "…"


def compose(concepts: tuple[ConceptResult, ...], misconceptions: tuple[MisconceptionResult, ...],
            flags: tuple[Flag, ...], hints: dict[str, str | None], coverage: float, label: str) -> str:
    """One paragraph of feedback for a short answer."""
    parts: list[str] = []
    blocking = [f for f in flags if f.code in {"empty", "restates_question"}]
    if blocking:
        return " ".join(f.reason[0].upper() + f.reason[1:] + "." for f in blocking)
    found = [c for c in concepts if c.found]
    missing = [c for c in concepts if not c.found]
    if found:
        items = "; ".join(f"{c.concept} (\"{_quote(c.evidence)}\")" for c in found)
        parts.append(f"You stated: {items}.")
    if missing:
        items = []
        for c in missing:
            hint = hints.get(c.concept)
            note = " - you state its opposite" if c.negated else ""
            items.append(f"{c.concept}{note}" + (f" ({hint})" if hint else ""))
        parts.append("Missing: " + "; ".join(items) + ".")
    for m in misconceptions:
        parts.append(f"Misconception: {m.feedback or m.misconception} (\"{_quote(m.evidence)}\").")
    if not concepts:
        if label == "correct":
            parts.append("Your answer covers what the question asks.")
        elif coverage >= 0.5:
            parts.append("Your answer covers part of what the question asks; some points are missing.")
        else:
            parts.append("Your answer misses most of what the question asks.")
    for f in flags:
        if f.code not in {"empty", "restates_question", "misconception"}:
            parts.append(f"Note: {f.reason}.")
    return " ".join(parts)
