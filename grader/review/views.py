"""What a question's review page shows, as plain objects the templates read.

An answer's text is cut into segments at the edges of every evidence span, so the
template can highlight each concept's words, name the concept beside them, and never
has to build markup from the answer itself (Jinja escapes every segment).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from grader.review.store import Action, AnswerState

LABEL_CLASSES = {"correct": "correct", "partially_correct": "partial", "incorrect": "incorrect"}


@dataclass(frozen=True)
class Segment:
    """A piece of an answer: the concepts (C1..) and misconceptions (M1..) whose evidence covers it, and
    the tags of the evidence spans that end with it."""

    text: str
    concepts: tuple[int, ...] = ()
    misconceptions: tuple[int, ...] = ()
    ends: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConceptMark:
    """One concept of the question in one answer: found by the grader (``uncertain``: on weak evidence, for a
    human to check), and the instructor's mark."""

    number: int
    text: str
    found: bool
    mark: bool | None
    uncertain: bool = False


@dataclass
class AnswerView:
    """One answer as the page shows it."""

    row: int
    student: str
    text: str
    cluster: int
    machine: dict
    state: AnswerState | None
    segments: list[Segment]
    concepts: list[ConceptMark]
    misconceptions: list[tuple[int, str, str]]  # (number, misconception, evidence)

    @property
    def version(self) -> int:
        return self.state.version if self.state else 0

    @property
    def reviewed(self) -> bool:
        return bool(self.state and self.state.reviewed)

    @property
    def confidence(self) -> float:
        try:
            return float(self.machine.get("confidence", 0.0))
        except ValueError:
            return 0.0

    @property
    def label(self) -> str:
        return self.machine.get("label", "")

    @property
    def label_class(self) -> str:
        return LABEL_CLASSES.get(self.label, "other")

    @property
    def machine_points(self) -> str:
        return self.machine.get("points", "")

    @property
    def max_points(self) -> str:
        return self.machine.get("max_points", "")

    @property
    def final_points(self) -> str:
        if self.state is not None and self.state.points is not None:
            return f"{self.state.points:g}"
        return self.machine_points

    @property
    def source(self) -> str:
        if self.state is None or not self.state.reviewed:
            return "regrade" if self.state is not None and self.state.machine else "grader"
        return "accepted" if self.state.status == "accepted" else "instructor"

    @property
    def flags(self) -> list[str]:
        return [f for f in self.machine.get("flags", "").split("; ") if f]

    @property
    def needs_review(self) -> bool:
        return self.machine.get("needs_review") == "true" and not self.reviewed

    @property
    def comment(self) -> str:
        return self.state.comment if self.state else ""

    @property
    def ref(self) -> str:
        """The answer's row and version as the page's scripts send them back."""
        return json.dumps({"row": self.row, "version": self.version})


@dataclass
class ClusterView:
    """Similar answers (identical ones always together), their most typical one first in the header."""

    number: int
    answers: list[AnswerView]
    representative: int

    @property
    def size(self) -> int:
        return len(self.answers)

    @property
    def rep(self) -> AnswerView:
        return next(a for a in self.answers if a.row == self.representative)

    @property
    def reviewed(self) -> int:
        return sum(a.reviewed for a in self.answers)

    @property
    def mean_points(self) -> float:
        values = [float(a.final_points) for a in self.answers if a.final_points]
        return math.fsum(values) / len(values) if values else 0.0

    @property
    def doubt(self) -> float:
        """The grader's lowest confidence in an answer of the cluster."""
        return min((a.confidence for a in self.answers), default=1.0)

    @property
    def sort_key(self) -> tuple:
        """Most doubtful first; a decision does not move a cluster, so the keyboard's order stays put."""
        return (self.doubt, -self.size, self.number)

    @property
    def open_refs(self) -> str:
        """Rows and versions of the answers not yet reviewed, for "accept all"."""
        return json.dumps([{"row": a.row, "version": a.version} for a in self.answers if not a.reviewed])

    @property
    def all_refs(self) -> str:
        return json.dumps([{"row": a.row, "version": a.version} for a in self.answers])


@dataclass
class QuestionView:
    """A question's page: the prompt and concepts, clusters by doubt, progress, suggestions, the last regrade."""

    question: object
    clusters: list[ClusterView]
    reviewed: int
    total: int
    suggestions: list[tuple[AnswerView, str]] = field(default_factory=list)
    last_regrade: Action | None = None

    @property
    def remaining(self) -> int:
        return self.total - self.reviewed

    @property
    def short(self) -> bool:
        return self.question.type == "short_answer"


def segments(text: str, spans: list[tuple[int, int, str]]) -> list[Segment]:
    """``text`` cut at every edge of ``spans`` (start, end, tag "C2" or "M1"); tags name what covers each piece."""
    spans = [(s, e, t) for s, e, t in spans if 0 <= s < e <= len(text)]
    edges = sorted({0, len(text), *(s for s, _, _ in spans), *(e for _, e, _ in spans)})
    out = []
    for a, b in zip(edges, edges[1:]):
        cover = [t for s, e, t in spans if s <= a and b <= e]
        ends = tuple(dict.fromkeys(t for s, e, t in spans if e == b))
        out.append(Segment(text[a:b], tuple(int(t[1:]) for t in cover if t[0] == "C"),
                           tuple(int(t[1:]) for t in cover if t[0] == "M"), ends))
    return out or [Segment(text)]


def answer_view(question, answer, machine: dict, state: AnswerState | None, cluster: int) -> AnswerView:
    """The view of one answer with the grade ``machine`` (the graded file's columns plus evidence)."""
    found = set(filter(None, machine.get("concepts_found", "").split("; ")))
    key_phrases = getattr(question, "key_phrases", ())
    marks = state.concepts if state else {}
    unsure = set(machine.get("uncertain", ()))  # grades stored before uncertainty was recorded have none
    concepts = [ConceptMark(i, kp.text, kp.text in found, marks.get(kp.text), kp.text in found and kp.text in unsure)
                for i, kp in enumerate(key_phrases, 1)]
    numbers = {kp.text: i for i, kp in enumerate(key_phrases, 1)}
    spans = []
    for concept, evidence in machine.get("evidence", []):
        start = answer.answer.find(evidence) if evidence and concept in found else -1
        if start >= 0 and concept in numbers:
            spans.append((start, start + len(evidence), f"C{numbers[concept]}"))
    mis_numbers = {m.text: i for i, m in enumerate(getattr(question, "misconceptions", ()), 1)}
    misconceptions = []
    for text, evidence, *rest in machine.get("misconceptions", []):
        number = mis_numbers.get(text, 0)
        unsure = bool(rest and rest[0])  # stores written before uncertainty was recorded have two fields
        misconceptions.append((number, text + (" (uncertain: not penalised, please check)" if unsure else ""),
                               evidence or ""))
        start = answer.answer.find(evidence) if evidence else -1
        if start >= 0 and number:
            spans.append((start, start + len(evidence), f"M{number}"))
    return AnswerView(answer.row, answer.student, answer.answer, cluster, machine, state,
                      segments(answer.answer, spans), concepts, misconceptions)
