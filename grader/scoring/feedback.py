"""Feedback to students: what they got, what is missing, what is wrong.

:func:`compose` names the instructor's concepts and quotes the student's own words
as evidence, but never quotes the model answer. :func:`result_view` shows a grade
at a feedback level: ``instructor`` (everything), ``student`` (no key phrase, no
span of a model answer: :class:`AnswerKey` says what would leak) or ``none``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from grader.result import ConceptResult, Flag, GradeResult, MisconceptionResult

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
    found = [c for c in concepts if c.found and not c.uncertain]
    unsure = [c for c in concepts if c.uncertain]
    missing = [c for c in concepts if not c.found and not c.uncertain]
    if found:
        items = "; ".join(f"{c.concept} (\"{_quote(c.evidence)}\")" for c in found)
        parts.append(f"You stated: {items}.")
    if unsure:
        items = "; ".join(c.concept + (f" (perhaps in \"{_quote(c.evidence)}\")" if c.evidence else "")
                          for c in unsure)
        parts.append(f"Unclear, a grader will check: {items}.")
    if missing:
        items = []
        for c in missing:
            hint = hints.get(c.concept)
            note = " - you state its opposite" if c.negated else ""
            items.append(f"{c.concept}{note}" + (f" ({hint})" if hint else ""))
        parts.append("Missing: " + "; ".join(items) + ".")
    for m in misconceptions:
        if m.uncertain:
            parts.append(f"Possible misconception, a grader will check: {m.feedback or m.misconception} "
                         f"(perhaps in \"{_quote(m.evidence)}\"; no points taken off).")
        else:
            parts.append(f"Misconception: {m.feedback or m.misconception} (\"{_quote(m.evidence)}\").")
    if not concepts:
        if label == "correct":
            parts.append("Your answer covers what the question asks.")
        elif coverage >= 0.5:
            parts.append("Your answer covers part of what the question asks; some points are missing.")
        else:
            parts.append("Your answer misses most of what the question asks.")
    for f in flags:
        if f.code not in {"empty", "restates_question", "misconception", "uncertain"}:
            parts.append(f"Note: {f.reason}.")
    return " ".join(parts)


# -- feedback levels ------------------------------------------------------------------------
LEVELS = ("instructor", "student", "none")
SPAN_WORDS = 6  # a run of this many words of a model answer counts as quoting it
_BLOCKING = {"empty", "restates_question"}


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


@dataclass(frozen=True)
class AnswerKey:
    """What a student must never be shown of a question: its key phrases and their alternatives, and any run
    of ``SPAN_WORDS`` words of a reference answer."""

    phrases: tuple[str, ...]  # each phrasing's words, space-joined and space-padded
    spans: frozenset  # hashes of the references' word 6-grams (a collision only ever hides more)

    @classmethod
    def of(cls, question) -> "AnswerKey":
        """The answer key of a question (empty for multiple-choice and true/false questions)."""
        try:
            return _answer_key(question)
        except TypeError:  # an unhashable stand-in for a question
            return cls.build(question)

    @classmethod
    def build(cls, question) -> "AnswerKey":
        """:meth:`of`, computed anew."""
        phrasings = [t for kp in getattr(question, "key_phrases", ())
                     for t in (kp.text, *kp.alternatives, *(e.text for e in getattr(kp, "examples", ()) if e.states))]
        phrases = tuple(dict.fromkeys(f" {' '.join(w)} " for w in map(_words, phrasings) if w))
        spans = set()
        for reference in getattr(question, "reference_answers", ()):
            words = _words(reference)
            spans.update(hash(tuple(words[i:i + SPAN_WORDS])) for i in range(len(words) - SPAN_WORDS + 1))
        return cls(phrases, frozenset(spans))

    def leaks(self, text: str | None) -> bool:
        """Whether ``text`` states a key phrase (or an alternative) or quotes a reference answer."""
        if not text:
            return False
        words = _words(text)
        joined = f" {' '.join(words)} "
        if any(p in joined for p in self.phrases):
            return True
        return any(hash(tuple(words[i:i + SPAN_WORDS])) in self.spans for i in range(len(words) - SPAN_WORDS + 1))

    def safe(self, text: str | None) -> str | None:
        """``text`` when it leaks nothing, else None."""
        return None if text is None or self.leaks(text) else text


@lru_cache(maxsize=64)  # a key of a 20,000-character question holds ~3,000 hashes: a few MB in all
def _answer_key(question) -> AnswerKey:
    return AnswerKey.build(question)


def _safe_reason(flag: Flag, key: AnswerKey) -> str:
    """A flag's reason, cut to its generic part (before ':') or to its code when the rest would leak."""
    if not key.leaks(flag.reason):
        return flag.reason
    head = flag.reason.split(":", 1)[0].strip()
    return head if head and not key.leaks(head) else flag.code.replace("_", " ")


def compose_student(result: GradeResult, question, key: AnswerKey | None = None) -> str:
    """Feedback for a student: which key points (by number) the answer states, hints that give nothing away,
    misconceptions in the instructor's words, and notes; never a key phrase or a span of a model answer."""
    key = key or AnswerKey.of(question)
    if result.question_type != "short_answer":
        return result.feedback if not key.leaks(result.feedback) else ""
    blocking = [f for f in result.flags if f.code in _BLOCKING]
    if blocking:
        return " ".join(_sentence(_safe_reason(f, key)) for f in blocking)
    parts: list[str] = []
    concepts = result.concepts
    if concepts:
        found = [i for i, c in enumerate(concepts, 1) if c.found and not c.uncertain]
        unsure = [i for i, c in enumerate(concepts, 1) if c.uncertain]
        parts.append(f"You stated {len(found)} of the {len(concepts)} key points"
                     + (f" (point {', '.join(map(str, found))})." if found else "."))
        if unsure:
            parts.append(f"A grader will check whether you stated point {', '.join(map(str, unsure))}.")
        hints = {kp.text: kp.hint for kp in getattr(question, "key_phrases", ())}
        missing = []
        for i, c in enumerate(concepts, 1):
            if c.found or c.uncertain:
                continue
            note = " - you state its opposite" if c.negated else ""
            hint = key.safe(hints.get(c.concept))
            missing.append(f"point {i}{note}" + (f" ({hint.rstrip('.')})" if hint else ""))
        if missing:
            parts.append("Missing: " + "; ".join(missing) + ".")
    for m in result.misconceptions:
        if m.uncertain:  # a student is never told they said what the grader is unsure they said
            continue
        said = key.safe(m.feedback) or "part of the answer states a wrong idea"
        evidence = key.safe(m.evidence)
        parts.append(f"Misconception: {said.rstrip('.')}" + (f" (\"{_quote(evidence)}\")." if evidence else "."))
    if not concepts:
        coverage = float(result.signals.get("ref_cover", 0.0)) if result.signals else 0.0
        if result.label == "correct":
            parts.append("Your answer covers what the question asks.")
        elif coverage >= 0.5:
            parts.append("Your answer covers part of what the question asks; some points are missing.")
        else:
            parts.append("Your answer misses most of what the question asks.")
    for f in result.flags:
        if f.code not in _BLOCKING and f.code not in {"misconception", "uncertain"}:
            parts.append(f"Note: {_safe_reason(f, key)}.")
    return " ".join(parts)


def _sentence(reason: str) -> str:
    return reason[:1].upper() + reason[1:] + "."


def result_view(result: GradeResult, question=None, level: str = "instructor", *, signals: bool = True) -> dict:
    """``result`` as a JSON-ready dict for ``level``: 'instructor', 'student' or 'none'.

    ``instructor`` is :meth:`GradeResult.to_dict` (everything). ``student`` names no key
    phrase and quotes no model answer: each concept is reduced to its ``index`` (0-based, in
    rubric order), points, credit and whether it was found, with the student's own words as
    ``evidence`` only when they state no key phrase; misconceptions keep their penalty and the
    instructor's ``feedback`` (when it leaks nothing); the raw signals, which measure closeness
    to the model answer, are left out. ``none`` has no feedback text and no per-concept detail.
    ``question`` is the graded question (the answer key to keep back).
    """
    if level not in LEVELS:
        raise ValueError(f"`level` must be one of {', '.join(LEVELS)}. Got {level!r}.")
    out = result.to_dict(signals=signals)
    if level == "instructor":
        return out
    key = AnswerKey.of(question)
    out.pop("signals", None)
    out["flags"] = [{"code": f.code, "reason": _safe_reason(f, key), "review": f.review} for f in result.flags]
    if level == "none":
        out.update(feedback="", concepts=[], misconceptions=[])
        return out
    out["feedback"] = compose_student(result, question, key)
    out["concepts"] = [{"index": i, "points": c.points, "awarded": c.awarded, "found": c.found,
                        "negated": c.negated, "required": c.required, "uncertain": c.uncertain,
                        "evidence": key.safe(c.evidence)}
                       for i, c in enumerate(result.concepts)]
    out["misconceptions"] = [{"index": _index_of(question, m.misconception), "penalty": m.penalty,
                              "evidence": key.safe(m.evidence), "feedback": key.safe(m.feedback)}
                             for m in result.misconceptions if not m.uncertain]
    return out


def _index_of(question, misconception: str) -> int | None:
    texts = [m.text for m in getattr(question, "misconceptions", ())]
    return texts.index(misconception) if misconception in texts else None
