"""Learning from a review: the instructor's corrections folded into a question before regrading.

The instructor's grades become graded examples of the question (the rubric's ``examples``,
which the grader's example signals read), and each concept the instructor marked as stated
in an answer adds the answer's words for it as another phrasing of the concept (the
concept's ``alternatives``), so answers that say it the same way are credited too.
"""

from __future__ import annotations

from grader.rubric import GradedExample, ShortAnswerQuestion
from grader.text import analyze, normalize

MAX_PHRASING_WORDS = 40  # a phrasing longer than this (a whole paragraph) would match anything


def with_corrections(question: ShortAnswerQuestion, graded: list[tuple[str, float]],
                     phrasings: dict[str, list[str]] | None = None) -> ShortAnswerQuestion:
    """``question`` with ``graded`` (answer, points) pairs as examples and ``phrasings`` (concept -> texts) added."""
    known = {normalize(e.answer) for e in question.examples}
    examples = list(question.examples)
    for answer, points in graded:
        key = normalize(answer)
        if key and key not in known:
            known.add(key)
            examples.append(GradedExample(answer=answer, points=min(max(points, 0.0), question.max_points)))
    key_phrases = []
    for kp in question.key_phrases:
        extra = [t for t in (phrasings or {}).get(kp.text, []) if t.strip()]
        seen = {normalize(t) for t in (kp.text, *kp.alternatives)}
        new = [t for t in dict.fromkeys(extra) if normalize(t) not in seen]
        key_phrases.append(kp.model_copy(update={"alternatives": (*kp.alternatives, *new)}) if new else kp)
    data = question.model_dump()
    data.update(examples=[e.model_dump() for e in examples], key_phrases=[k.model_dump() for k in key_phrases])
    return ShortAnswerQuestion.model_validate(data)


def stated_phrasing(answer: str, concept: str, evidence: str | None, embedder, language: str = "en") -> str | None:
    """The words of ``answer`` that state ``concept``: the grader's evidence, else the closest sentence."""
    if evidence and evidence.strip():
        return evidence.strip()
    analysis = analyze(answer, language)
    sentences = [analysis.span_text(s, e) for s, e in analysis.sentences]
    sentences = [s for s in sentences if s.strip() and len(s.split()) <= MAX_PHRASING_WORDS]
    if not sentences:
        return None
    vectors = embedder.encode([concept, *sentences])
    return sentences[int((vectors[1:] @ vectors[0]).argmax())]
