"""Result types of the grading engine. API schemas and CSV columns are built from these."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Flag:
    """Something about an answer a human should know: a code and a reason."""

    code: str
    reason: str
    review: bool = True  # whether it alone sends the answer to human review


@dataclass(frozen=True)
class ConceptResult:
    """One key phrase of the rubric: whether the answer states it, and where."""

    concept: str
    points: float
    awarded: float
    found: bool
    strength: float
    evidence: str | None
    method: str | None
    negated: bool = False
    required: bool = False
    uncertain: bool = False  # the evidence is weak either way: a human should check this concept


@dataclass(frozen=True)
class MisconceptionResult:
    """One misconception of the rubric that the answer asserts."""

    misconception: str
    penalty: float
    strength: float
    evidence: str | None
    feedback: str | None
    uncertain: bool = False  # weak evidence: reported for review, not penalised


@dataclass(frozen=True)
class GradeResult:
    """The grade of one answer, with everything needed to explain it."""

    question_id: str
    question_type: str
    points: float
    max_points: float
    label: str
    confidence: float
    needs_review: bool
    feedback: str
    concepts: tuple[ConceptResult, ...] = ()
    misconceptions: tuple[MisconceptionResult, ...] = ()
    flags: tuple[Flag, ...] = ()
    signals: dict = field(default_factory=dict)
    probabilities: dict = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return self.points / self.max_points if self.max_points else 0.0

    @property
    def concepts_found(self) -> list[str]:
        return [c.concept for c in self.concepts if c.found]

    @property
    def concepts_missing(self) -> list[str]:
        return [c.concept for c in self.concepts if not c.found]

    def to_dict(self, *, signals: bool = True) -> dict:
        """Plain JSON-ready dict; ``signals=False`` leaves out the raw combiner inputs."""
        out = asdict(self)
        out["concepts"] = [asdict(c) for c in self.concepts]
        out["misconceptions"] = [asdict(m) for m in self.misconceptions]
        out["flags"] = [asdict(f) for f in self.flags]
        if not signals:
            out.pop("signals")
        return out
