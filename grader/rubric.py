"""The rubric format: a quiz of short-answer, multiple-choice and true/false questions.

A rubric is a YAML file validated with pydantic. Every field is documented in
``rubrics/README.md``; ``tests/test_rubric_docs.py`` fails when one is not.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from grader.errors import RubricError, UnknownQuestionError

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyPhrase(_Strict):
    """A concept the answer should state, worth ``points``."""

    text: str = Field(min_length=1, description="The concept as the instructor would phrase it.")
    points: float = Field(default=1.0, gt=0, description="Points awarded when the concept is found.")
    alternatives: tuple[str, ...] = Field(default=(), description="Other phrasings that count as the same concept.")
    required: bool = Field(default=False, description="An answer missing it cannot be labelled correct.")
    hint: str | None = Field(default=None, description="Feedback shown when the concept is missing.")

    @field_validator("alternatives", mode="before")
    @classmethod
    def _drop_blank(cls, value):
        return tuple(a for a in (value or ()) if isinstance(a, str) and a.strip()) if isinstance(value, (list, tuple)) else value


class Misconception(_Strict):
    """A wrong idea that costs ``penalty`` points when the answer asserts it."""

    text: str = Field(min_length=1, description="The wrong idea, stated as a student would state it.")
    penalty: float = Field(default=1.0, ge=0, description="Points subtracted when it is detected.")
    alternatives: tuple[str, ...] = Field(default=(), description="Other phrasings of the same wrong idea.")
    feedback: str | None = Field(default=None, description="What to tell the student when it is detected.")


class GradedExample(_Strict):
    """An answer the instructor has already graded, by points or by label."""

    answer: str = Field(description="The example answer text.")
    points: float | None = Field(default=None, ge=0, description="Points the instructor gave.")
    label: str | None = Field(default=None, description="Label the instructor gave, when graded by label.")

    @model_validator(mode="after")
    def _needs_grade(self):
        if self.points is None and self.label is None:
            raise ValueError("an example needs `points` or `label`")
        return self


class _QuestionBase(_Strict):
    id: str = Field(pattern=_ID_PATTERN, description="Stable id, unique in the rubric.")
    prompt: str = Field(default="", description="The question as shown to students.")
    explanation: str | None = Field(default=None, description="Instructor's explanation; never shown in feedback.")


class ShortAnswerQuestion(_QuestionBase):
    """A free-text question graded against reference answers, key phrases and examples."""

    type: Literal["short_answer"] = "short_answer"
    reference_answers: tuple[str, ...] = Field(default=(), description="Model answers; may be empty.")
    key_phrases: tuple[KeyPhrase, ...] = Field(default=(), description="Concepts that earn points.")
    misconceptions: tuple[Misconception, ...] = Field(default=(), description="Wrong ideas that cost points.")
    max_points: float = Field(default=1.0, gt=0, description="Most points the question gives.")
    points_step: float | None = Field(default=None, gt=0, description="Points are rounded to multiples of this.")
    criteria_weight: float = Field(default=0.5, ge=0, le=1, description="Share of the grade set by the key phrases.")
    examples: tuple[GradedExample, ...] = Field(default=(), description="Answers already graded by the instructor.")
    language: str | None = Field(default=None, description="Language code; defaults to the quiz's.")

    @field_validator("reference_answers", mode="before")
    @classmethod
    def _listify(cls, value):
        if isinstance(value, str):
            return (value,)
        return value

    @model_validator(mode="after")
    def _check(self):
        for i, ex in enumerate(self.examples):
            if ex.points is not None and ex.points > self.max_points + 1e-9:
                raise ValueError(
                    f"examples[{i}].points must be <= max_points ({self.max_points:g}). Got {ex.points:g}."
                )
        return self

    @property
    def step(self) -> float:
        """The rounding step for points: ``points_step`` or a tenth of ``max_points``."""
        return self.points_step if self.points_step is not None else self.max_points / 10


class ChoiceOption(_Strict):
    """One option of a multiple-choice question."""

    id: str = Field(min_length=1, description="The option's letter or id, e.g. `A`.")
    text: str = Field(min_length=1, description="The option text.")


class MultipleChoiceQuestion(_QuestionBase):
    """A question graded exactly against its correct option(s)."""

    type: Literal["multiple_choice"] = "multiple_choice"
    options: tuple[ChoiceOption, ...] = Field(min_length=2, description="The options, in the order shown.")
    correct: tuple[str, ...] = Field(min_length=1, description="Id(s) of the correct option(s).")
    points: float = Field(default=1.0, gt=0, description="Points for a correct choice.")
    needs_confirmation: bool = Field(default=False, description="The key was inferred and awaits the instructor.")

    @field_validator("correct", mode="before")
    @classmethod
    def _listify(cls, value):
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self):
        ids = [o.id for o in self.options]
        if len(set(ids)) != len(ids):
            raise ValueError(f"options have duplicate ids: {ids}")
        unknown = [c for c in self.correct if c not in ids]
        if unknown:
            raise ValueError(f"correct must name option ids {ids}. Got {unknown}.")
        return self

    @property
    def max_points(self) -> float:
        return self.points


class TrueFalseQuestion(_QuestionBase):
    """A statement graded exactly against its truth value."""

    type: Literal["true_false"] = "true_false"
    correct: bool = Field(description="Whether the statement is true.")
    points: float = Field(default=1.0, gt=0, description="Points for the right value.")

    @property
    def max_points(self) -> float:
        return self.points


Question = Annotated[
    Union[ShortAnswerQuestion, MultipleChoiceQuestion, TrueFalseQuestion], Field(discriminator="type")
]


class Rubric(_Strict):
    """A quiz: an id, a title and its questions."""

    id: str = Field(pattern=_ID_PATTERN, description="Stable id of the quiz.")
    title: str = Field(default="", description="Human-readable title.")
    language: str = Field(default="en", description="Default language of answers (ISO 639-1).")
    questions: tuple[Question, ...] = Field(min_length=1, description="The questions, in order.")
    source: str | None = Field(default=None, exclude=True, description="File it was loaded from (set by the loader).")

    @model_validator(mode="after")
    def _unique_ids(self):
        seen: set[str] = set()
        for q in self.questions:
            if q.id in seen:
                raise ValueError(f"duplicate question id '{q.id}'")
            seen.add(q.id)
        return self

    def question(self, question_id: str):
        """The question with this id, or :class:`UnknownQuestionError` listing the valid ids."""
        for q in self.questions:
            if q.id == question_id:
                return q
        ids = ", ".join(q.id for q in self.questions)
        raise UnknownQuestionError(
            f"question '{question_id}' is not in rubric '{self.id}'. Valid ids: {ids}.", field="question_id"
        )

    @property
    def max_points(self) -> float:
        return math.fsum(q.max_points for q in self.questions)


def _describe(error: dict, data) -> tuple[str, str]:
    """(where, field) for one pydantic error, naming the question id when the error is inside one."""
    loc = list(error["loc"])
    where = ""
    if len(loc) >= 2 and loc[0] == "questions" and isinstance(loc[1], int):
        index = loc[1]
        qid = None
        try:
            qid = data["questions"][index].get("id")
        except (KeyError, IndexError, TypeError, AttributeError):
            pass
        where = f"question '{qid}'" if qid else f"questions[{index}]"
        loc = loc[2:]
        # The discriminated union adds the type tag to the path; it is noise to a user.
        if loc and loc[0] in ("short_answer", "multiple_choice", "true_false"):
            loc = loc[1:]
    field = ""
    for part in loc:
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    return where, field


def parse_rubric(data, source: str = "<rubric>") -> Rubric:
    """Validate an already-parsed mapping as a rubric; errors name ``source``, the question and the field."""
    if not isinstance(data, dict):
        raise RubricError(f"a rubric must be a mapping with `id` and `questions`. Got {type(data).__name__}.",
                          source=source)
    try:
        rubric = Rubric.model_validate(data)
    except ValidationError as exc:
        lines = []
        first_field = None
        for err in exc.errors():
            where, field = _describe(err, data)
            first_field = first_field or field
            got = err.get("input")
            got_text = "" if isinstance(got, (dict, list)) or got is None else f" Got {got!r}."
            msg = err["msg"].removeprefix("Value error, ")
            parts = [p for p in (where, f"field '{field}'" if field else "") if p]
            lines.append(f"{', '.join(parts)}: {msg}.{got_text}".replace("..", "."))
        raise RubricError("; ".join(lines), field=first_field, source=source) from None
    return rubric.model_copy(update={"source": source})


def load_rubric(path: str | Path) -> Rubric:
    """Read and validate a rubric YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise RubricError("file not found", source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RubricError(f"cannot read rubric: {exc}", source=str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RubricError(f"invalid YAML{where}: {problem}", source=str(path)) from None
    return parse_rubric(data, source=str(path))


def load_rubric_dir(folder: str | Path) -> dict[str, Rubric]:
    """Load every ``*.yaml``/``*.yml`` rubric in a folder, keyed by rubric id; any invalid file raises."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RubricError("not a folder", source=str(folder))
    rubrics: dict[str, Rubric] = {}
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        rubric = load_rubric(path)
        if rubric.id in rubrics:
            raise RubricError(f"rubric id '{rubric.id}' is also used by {rubrics[rubric.id].source}",
                              field="id", source=str(path))
        rubrics[rubric.id] = rubric
    if not rubrics:
        raise RubricError("no *.yaml rubric files found", source=str(folder))
    return rubrics
