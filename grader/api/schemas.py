"""Request and response bodies of the HTTP API, separate from the engine's result types.

Requests are strict (unknown fields are rejected, not dropped). Responses are
built from :class:`~grader.result.GradeResult` and :class:`~grader.rubric.Rubric`
by the ``from_*`` constructors; a rubric read never includes the answer key,
reference answers, key phrases, misconceptions, examples or explanations.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator

from grader.api import examples as ex
from grader.api.errors import clip, valid_unicode
from grader.errors import InputDataError

ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
FeedbackLevel = Literal["student", "instructor", "none"]
LEVEL_DESCRIPTION = ("What the grade shows: 'student' (no key phrases, no text of a model answer), 'instructor' "
                     "(everything) or 'none' (no feedback text or per-concept detail). Default: GRADER_FEEDBACK_LEVEL.")


def _valid_unicode(value):
    """``value`` with every string in it (keys too) made valid Unicode: JSON may carry lone surrogates."""
    if isinstance(value, str):
        return valid_unicode(value)
    if isinstance(value, dict):
        return {_valid_unicode(k): _valid_unicode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_valid_unicode(v) for v in value]
    return value


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_surrogates(cls, data):
        return _valid_unicode(data)


class ConceptExampleIn(_Request):
    """A sentence that states a concept (``states: true``) or does not (``states: false``)."""

    text: str = Field(min_length=1, max_length=1000)
    states: bool


class KeyPhraseIn(_Request):
    """A concept the answer should state, worth ``points``."""

    text: str = Field(min_length=1, max_length=1000)
    points: float = Field(default=1.0, gt=0)
    alternatives: list[str] = Field(default=[], max_length=50)
    required: bool = False
    hint: str | None = Field(default=None, max_length=2000)
    examples: list[ConceptExampleIn] = Field(default=[], max_length=50)
    reversal_penalty: float | None = Field(default=None, ge=0)


class MisconceptionIn(_Request):
    """A wrong idea that costs ``penalty`` points."""

    text: str = Field(min_length=1, max_length=1000)
    penalty: float = Field(default=1.0, ge=0)
    alternatives: list[str] = Field(default=[], max_length=50)
    feedback: str | None = Field(default=None, max_length=2000)
    examples: list[ConceptExampleIn] = Field(default=[], max_length=50)


class InlineQuestion(_Request):
    """A short-answer question sent with the answer instead of named from a rubric."""

    prompt: str = Field(default="", max_length=10_000)
    reference_answers: list[str] = Field(default=[], max_length=20)
    key_phrases: list[KeyPhraseIn] = Field(default=[], max_length=50)
    misconceptions: list[MisconceptionIn] = Field(default=[], max_length=50)
    max_points: float = Field(default=1.0, gt=0)
    points_step: float | None = Field(default=None, gt=0)
    criteria_weight: float | None = Field(default=None, ge=0, le=1,
                                         description="Share of the grade set by the key phrases. Default: 1 when "
                                                     "their points add up to max_points and there are no graded "
                                                     "examples, else 0.5.")
    language: str = Field(default="en", min_length=2, max_length=8)
    labels: dict[str, float] | None = Field(default=None, max_length=20,
                                            description="Each label's minimum points (one must be 0).")

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
            message = clip(err["msg"].removeprefix("Value error, "))
            raise InputDataError(f"field '{name}': {message}.", field=name) from None


class GradeRequest(_Request):
    """One answer, to a rubric question (``rubric_id`` + ``question_id``) or to an inline ``question``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [ex.GRADE_REQUEST]})

    rubric_id: str | None = Field(default=None, pattern=ID, max_length=200)
    question_id: str | None = Field(default=None, pattern=ID, max_length=200)
    question: InlineQuestion | None = None
    answer: str = Field(description="The student's answer; may be empty.")
    feedback_level: FeedbackLevel | None = Field(default=None, description=LEVEL_DESCRIPTION)

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
    feedback_level: FeedbackLevel | None = Field(default=None, description="The level of items that name none. "
                                                 + LEVEL_DESCRIPTION)


class AttemptRequest(_Request):
    """All answers of one quiz attempt, keyed by question id; unanswered questions score 0."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [ex.ATTEMPT_REQUEST]})

    attempt_id: str | None = Field(default=None, pattern=ID, max_length=200,
                                   description="Your id for the attempt, echoed back.")
    answers: dict[str, str] = Field(description="question id -> answer text")
    feedback_level: FeedbackLevel | None = Field(default=None, description=LEVEL_DESCRIPTION)


# -- responses ------------------------------------------------------------------------
class ConceptOut(BaseModel):
    """One key phrase (instructor level): whether the answer states it, and the student's words that do."""

    concept: str
    points: float
    awarded: float
    found: bool
    strength: float
    evidence: str | None
    method: str | None
    negated: bool
    required: bool
    uncertain: bool = Field(default=False, description="The evidence is weak either way: a grader should check.")


class StudentConceptOut(BaseModel):
    """One key phrase at the student level: its place in the rubric, not its text."""

    index: int = Field(description="0-based position of the key phrase in the question.")
    points: float
    awarded: float
    found: bool
    negated: bool
    required: bool
    uncertain: bool = Field(default=False, description="A grader will check whether the answer states it.")
    evidence: str | None = Field(description="The student's own words, only when they state no key phrase.")


class MisconceptionOut(BaseModel):
    """A misconception the answer asserts (instructor level)."""

    misconception: str
    penalty: float
    strength: float
    evidence: str | None
    feedback: str | None
    uncertain: bool = Field(default=False, description="Weak evidence: sent to review, no points taken off.")


class StudentMisconceptionOut(BaseModel):
    """A misconception the answer asserts, at the student level: the instructor's feedback, not the rubric's text."""

    index: int | None
    penalty: float
    evidence: str | None
    feedback: str | None


def _level_of(names: tuple[str, str]):
    def tag(value) -> str:
        keys = value if isinstance(value, dict) else vars(value)
        return "instructor" if names[0] in keys else "student"
    return tag


Concept = Annotated[Union[Annotated[ConceptOut, Tag("instructor")], Annotated[StudentConceptOut, Tag("student")]],
                    Discriminator(_level_of(("concept", "index")))]
MisconceptionItem = Annotated[Union[Annotated[MisconceptionOut, Tag("instructor")],
                                    Annotated[StudentMisconceptionOut, Tag("student")]],
                              Discriminator(_level_of(("misconception", "index")))]


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
    concepts: list[Concept]
    misconceptions: list[MisconceptionItem]
    flags: list[FlagOut]
    signals: dict[str, float] | None = None
    probabilities: dict[str, float]

    @classmethod
    def from_result(cls, result, *, signals: bool = True, level: str = "instructor",
                    question=None) -> "GradeResponse":
        """The response body of a :class:`~grader.result.GradeResult` at a feedback ``level`` for ``question``."""
        from grader.scoring.feedback import result_view

        return cls.model_validate(result_view(result, question, level, signals=signals))


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
