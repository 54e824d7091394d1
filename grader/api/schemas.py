"""Request and response bodies of the HTTP API, separate from the engine's result types.

Requests are strict (unknown fields are rejected, not dropped). Responses are
built from :class:`~grader.result.GradeResult` and :class:`~grader.rubric.Rubric`
by the ``from_*`` constructors; a rubric read never includes the answer key,
reference answers, key phrases, misconceptions, examples or explanations.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from grader.api import examples as ex
from grader.errors import InputDataError

ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeyPhraseIn(_Request):
    """A concept the answer should state, worth ``points``."""

    text: str = Field(min_length=1, max_length=1000)
    points: float = Field(default=1.0, gt=0)
    alternatives: list[str] = Field(default=[], max_length=50)
    required: bool = False
    hint: str | None = Field(default=None, max_length=2000)


class MisconceptionIn(_Request):
    """A wrong idea that costs ``penalty`` points."""

    text: str = Field(min_length=1, max_length=1000)
    penalty: float = Field(default=1.0, ge=0)
    alternatives: list[str] = Field(default=[], max_length=50)
    feedback: str | None = Field(default=None, max_length=2000)


class InlineQuestion(_Request):
    """A short-answer question sent with the answer instead of named from a rubric."""

    prompt: str = Field(default="", max_length=10_000)
    reference_answers: list[str] = Field(default=[], max_length=20)
    key_phrases: list[KeyPhraseIn] = Field(default=[], max_length=50)
    misconceptions: list[MisconceptionIn] = Field(default=[], max_length=50)
    max_points: float = Field(default=1.0, gt=0)
    points_step: float | None = Field(default=None, gt=0)
    criteria_weight: float = Field(default=0.5, ge=0, le=1)
    language: str = Field(default="en", min_length=2, max_length=8)

    @model_validator(mode="after")
    def _needs_criteria(self):
        if not self.reference_answers and not self.key_phrases:
            raise ValueError("an inline question needs reference_answers or key_phrases")
        return self

    def to_question(self, field: str = "question"):
        """The engine's :class:`~grader.rubric.ShortAnswerQuestion` for this inline question."""
        from grader.rubric import ShortAnswerQuestion

        try:
            return ShortAnswerQuestion.model_validate({"id": "inline", **self.model_dump()})
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            name = f"{field}.{where}" if where else field
            raise InputDataError(f"field '{name}': {err['msg'].removeprefix('Value error, ')}.", field=name) from None


class GradeRequest(_Request):
    """One answer, to a rubric question (``rubric_id`` + ``question_id``) or to an inline ``question``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [ex.GRADE_REQUEST]})

    rubric_id: str | None = Field(default=None, pattern=ID, max_length=200)
    question_id: str | None = Field(default=None, pattern=ID, max_length=200)
    question: InlineQuestion | None = None
    answer: str = Field(description="The student's answer; may be empty.")

    @model_validator(mode="after")
    def _one_target(self):
        named = self.rubric_id is not None or self.question_id is not None
        if named and self.question is not None:
            raise ValueError("give either rubric_id + question_id or an inline question, not both")
        if not named and self.question is None:
            raise ValueError("give rubric_id + question_id, or an inline question")
        if named and (self.rubric_id is None or self.question_id is None):
            raise ValueError("rubric_id and question_id go together")
        return self


class BatchRequest(_Request):
    """Up to ``max_batch_size`` answers graded in one request."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [ex.BATCH_REQUEST]})

    items: list[GradeRequest] = Field(min_length=1)


class AttemptRequest(_Request):
    """All answers of one quiz attempt, keyed by question id; unanswered questions score 0."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [ex.ATTEMPT_REQUEST]})

    attempt_id: str | None = Field(default=None, pattern=ID, max_length=200,
                                   description="Your id for the attempt, echoed back.")
    answers: dict[str, str] = Field(description="question id -> answer text")


# -- responses ------------------------------------------------------------------------
class ConceptOut(BaseModel):
    """One key phrase: whether the answer states it, and the student's words that do."""

    concept: str
    points: float
    awarded: float
    found: bool
    strength: float
    evidence: str | None
    method: str | None
    negated: bool
    required: bool


class MisconceptionOut(BaseModel):
    """A misconception the answer asserts."""

    misconception: str
    penalty: float
    strength: float
    evidence: str | None
    feedback: str | None


class FlagOut(BaseModel):
    """Something a human should know about the answer."""

    code: str
    reason: str
    review: bool


class GradeResponse(BaseModel):
    """The grade of one answer: the same fields ``grader score`` prints."""

    model_config = ConfigDict(json_schema_extra={"examples": [ex.GRADE_RESPONSE]})

    question_id: str
    question_type: str
    points: float
    max_points: float
    label: str
    confidence: float
    needs_review: bool
    feedback: str
    concepts: list[ConceptOut]
    misconceptions: list[MisconceptionOut]
    flags: list[FlagOut]
    signals: dict[str, float] | None = None
    probabilities: dict[str, float]

    @classmethod
    def from_result(cls, result, *, signals: bool = True) -> "GradeResponse":
        """The response body of a :class:`~grader.result.GradeResult`."""
        data = result.to_dict(signals=signals)
        return cls.model_validate(data)


class ErrorDetail(BaseModel):
    """What went wrong: a stable code, a message, and the request field at fault."""

    code: str
    message: str
    field: str | None


class ErrorResponse(BaseModel):
    """The one error shape of the API."""

    model_config = ConfigDict(json_schema_extra={"examples": [ex.ERROR]})

    error: ErrorDetail


class BatchItemOut(BaseModel):
    """One item of a batch: its result, or the error that item alone hit."""

    index: int
    result: GradeResponse | None = None
    error: ErrorDetail | None = None


class BatchResponse(BaseModel):
    """Results in request order; ``failed`` counts items whose grading failed."""

    model_config = ConfigDict(json_schema_extra={"examples": [ex.BATCH_RESPONSE]})

    results: list[BatchItemOut]
    graded: int
    failed: int


class AttemptResponse(BaseModel):
    """Per-question results in rubric order, and the attempt's total."""

    model_config = ConfigDict(json_schema_extra={"examples": [ex.ATTEMPT_RESPONSE]})

    rubric_id: str
    attempt_id: str | None
    points: float
    max_points: float
    answered: int
    needs_review: bool
    results: list[GradeResponse]


class OptionOut(BaseModel):
    """A multiple-choice option as shown to students."""

    id: str
    text: str


class QuestionOut(BaseModel):
    """A question as shown to students: no key, no references, no key phrases."""

    id: str
    type: Literal["short_answer", "multiple_choice", "true_false"]
    prompt: str
    max_points: float
    options: list[OptionOut] | None = None

    @classmethod
    def from_question(cls, q) -> "QuestionOut":
        """The public view of a rubric question."""
        options = [OptionOut(id=o.id, text=o.text) for o in q.options] if q.type == "multiple_choice" else None
        return cls(id=q.id, type=q.type, prompt=q.prompt, max_points=q.max_points, options=options)


class RubricSummary(BaseModel):
    """A rubric's id, title and size."""

    id: str
    title: str
    language: str
    questions: int
    max_points: float

    @classmethod
    def from_rubric(cls, r) -> "RubricSummary":
        """The listing entry of a rubric."""
        return cls(id=r.id, title=r.title, language=r.language, questions=len(r.questions), max_points=r.max_points)


class RubricList(BaseModel):
    """Every rubric the service grades."""

    model_config = ConfigDict(json_schema_extra={"examples": [ex.RUBRIC_LIST]})

    rubrics: list[RubricSummary]


class RubricDetail(BaseModel):
    """A rubric's questions and points, without anything that gives an answer away."""

    model_config = ConfigDict(json_schema_extra={"examples": [ex.RUBRIC_DETAIL]})

    id: str
    title: str
    language: str
    max_points: float
    questions: list[QuestionOut]

    @classmethod
    def from_rubric(cls, r) -> "RubricDetail":
        """The public view of a rubric."""
        return cls(id=r.id, title=r.title, language=r.language, max_points=r.max_points,
                   questions=[QuestionOut.from_question(q) for q in r.questions])


class Health(BaseModel):
    """The process is up."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: str


class Readiness(BaseModel):
    """Whether the model is loaded, and which one."""

    model_config = ConfigDict(json_schema_extra={"examples": [ex.READY]})

    status: Literal["ready", "loading", "failed"]
    model: dict | None = None
    rubrics: int
