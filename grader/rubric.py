"""The rubric format: a quiz of short-answer, multiple-choice and true/false questions.

A rubric is a YAML file validated with pydantic. Every field is documented in
``docs/rubrics.md``; ``tests/test_docs.py`` fails when one is not.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo,
                      field_validator, model_validator)
from pydantic_core import InitErrorDetails, PydanticCustomError

from grader.errors import RubricError, UnknownQuestionError
from grader.text import content_stems, valid_text

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"

# Limits of the rubric format and loader. Points beyond a million are a typo, and sums of such
# numbers overflow to infinity; a points step finer than a millionth of the question is below
# the six decimals results are rounded to.
MAX_POINTS = 1_000_000.0
MIN_POINTS = 1e-6
MAX_RUBRIC_BYTES = 5_000_000
# YAML nodes once every alias is expanded: a rubric of 200 questions with 20 examples each has
# about 20,000; a 9 KB "billion laughs" file has hundreds of millions.
MAX_YAML_NODES = 200_000


class RubricWarning(UserWarning):
    """A rubric is valid and grades, but something in it is probably a mistake."""


def _not_bool(value):
    if isinstance(value, bool):  # pydantic would read true as 1.0
        raise PydanticCustomError("number_type", "must be a number; YAML read {value}", {"value": value})
    return value


def _small_enough(value: float) -> float:
    if 0 < value < MIN_POINTS:
        raise PydanticCustomError("points_too_small", "must be 0 or at least {limit:g}. Got {value!r}",
                                  {"limit": MIN_POINTS, "value": value})
    return value


# Every number of points: a number (not true/false), finite (the model config refuses inf and
# nan), at most a million and, when not 0, at least a millionth.
Points = Annotated[float, BeforeValidator(_not_bool), Field(le=MAX_POINTS), AfterValidator(_small_enough)]


def _valid_texts(value):
    """A value with every text in it, or in its list, made valid Unicode."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, (list, tuple)):
        return type(value)(valid_text(v) if isinstance(v, str) else v for v in value)
    return value


class _Strict(BaseModel):
    # allow_inf_nan=False: `.inf` or `.nan` in YAML is an error, not a crash when grading.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data):
        """Lone surrogates (from a JSON or YAML escape) become U+FFFD: the tokenizer cannot encode them."""
        if isinstance(data, dict):
            return {key: _valid_texts(value) for key, value in data.items()}
        return data


class ConceptExample(_Strict):
    """A sentence an instructor marked as stating a concept (``states: true``) or not (``states: false``)."""

    text: str = Field(min_length=1, description="The example sentence, as a student might write it.")
    states: bool = Field(description="Whether the sentence states the concept.")


class KeyPhrase(_Strict):
    """A concept the answer should state, worth ``points``."""

    text: str = Field(min_length=1, description="The concept as the instructor would phrase it.")
    points: Points = Field(default=1.0, gt=0, description="Points awarded when the concept is found.")
    alternatives: tuple[str, ...] = Field(default=(), description="Other phrasings that count as the same concept.")
    required: bool = Field(default=False, description="An answer missing it cannot be labelled correct.")
    hint: str | None = Field(default=None, description="Feedback shown when the concept is missing.")
    examples: tuple[ConceptExample, ...] = Field(default=(), description="Sentences that state it or do not.")
    reversal_penalty: Points | None = Field(
        default=None, ge=0, description="Points subtracted when the answer states its opposite or says it of the "
                                        "other side of a comparison (default: half its points).")

    @field_validator("alternatives", mode="before")
    @classmethod
    def _drop_blank(cls, value):
        return _drop_blank(value)

    @property
    def reversal_cost(self) -> float:
        """Points a reversed statement of the concept costs: ``reversal_penalty``, or half its points."""
        return self.points / 2 if self.reversal_penalty is None else self.reversal_penalty


def _drop_blank(value):
    """A list without its blank texts, which phrase nothing; any other value (a YAML mapping) is left to fail."""
    if isinstance(value, (list, tuple)):
        return tuple(a for a in value if not (isinstance(a, str) and not a.strip()))
    return value


class Misconception(_Strict):
    """A wrong idea that costs ``penalty`` points when the answer asserts it."""

    text: str = Field(min_length=1, description="The wrong idea, stated as a student would state it.")
    penalty: Points = Field(default=1.0, ge=0, description="Points subtracted when it is detected.")
    alternatives: tuple[str, ...] = Field(default=(), description="Other phrasings of the same wrong idea.")
    feedback: str | None = Field(default=None, description="What to tell the student when it is detected.")
    examples: tuple[ConceptExample, ...] = Field(default=(), description="Sentences that state it or do not.")

    @field_validator("alternatives", mode="before")
    @classmethod
    def _drop_blank(cls, value):
        return _drop_blank(value)


class GradedExample(_Strict):
    """An answer the instructor has already graded, by points or by label."""

    answer: str = Field(description="The example answer text.")
    points: Points | None = Field(default=None, ge=0, description="Points the instructor gave.")
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
    max_points: Points = Field(default=1.0, gt=0, description="Most points the question gives.")
    points_step: Points | None = Field(default=None, gt=0, description="Points are rounded to multiples of this.")
    criteria_weight: float | None = Field(
        default=None, ge=0, le=1, description="Share of the grade set by the key phrases. Default: 1 when the key "
                                              "phrases' points add up to max_points (the rubric is a points scheme) "
                                              "and the question has no graded examples, else 0.5.")
    examples: tuple[GradedExample, ...] = Field(default=(), description="Answers already graded by the instructor.")
    language: str | None = Field(default=None, description="Language code; defaults to the quiz's.")
    labels: tuple[tuple[str, Points], ...] | None = Field(
        default=None, description="The label each band of points earns: each label's minimum points (one must be 0). "
                                  "Default: the combiner's labels, banded between their mean grades.")

    @field_validator("reference_answers", mode="before")
    @classmethod
    def _listify(cls, value):
        if isinstance(value, str):
            return (value,)
        return value

    @property
    def key_weight(self) -> float:
        """The share of the grade the key phrases set: ``criteria_weight`` when given; else all of it when
        their points add up to ``max_points`` (the instructor wrote a points scheme: one point per concept)
        and the question has no graded examples; half otherwise. The rest comes from the learned combiner,
        which reads the graded examples: the instructor's own grades of this question."""
        if self.criteria_weight is not None:
            return self.criteria_weight
        scheme = self.key_phrases and sum(k.points for k in self.key_phrases) >= self.max_points - 1e-9
        return 1.0 if scheme and not self.examples else 0.5

    @field_validator("labels", mode="before")
    @classmethod
    def _label_pairs(cls, value):
        # Written as a map (label: minimum points); kept as pairs, highest minimum first, so the question stays hashable.
        if isinstance(value, dict):
            return tuple(sorted(value.items(), key=lambda kv: -kv[1] if isinstance(kv[1], (int, float)) else 0))
        return value

    @field_validator("points_step")
    @classmethod
    def _step_fits(cls, value, info: ValidationInfo):
        # A step below a millionth of the question rounds nothing (results keep six decimals)
        # and divides points into numbers too large for a float.
        max_points = info.data.get("max_points")
        if value is not None and max_points is not None and value < max_points * MIN_POINTS:
            raise PydanticCustomError("step_too_small", "must be at least max_points / 1,000,000 ({limit:g}). "
                                      "Got {value!r}", {"limit": max_points * MIN_POINTS, "value": value})
        return value

    @model_validator(mode="after")
    def _check(self):
        if self.labels is not None:
            minimums = sorted(low for _, low in self.labels)
            if not self.labels or minimums[0] != 0:
                raise ValueError(f"labels must give one label a minimum of 0 points. Got {self.labels}.")
            if len(set(minimums)) != len(minimums) or minimums[-1] > self.max_points + 1e-9:
                raise ValueError(f"labels must have distinct minimums between 0 and max_points "
                                 f"({self.max_points:g}). Got {self.labels}.")
            names = [name for name, _ in self.labels]
            if any(not name.strip() for name in names) or len(set(names)) != len(names):
                raise ValueError(f"labels must have distinct, non-empty names. Got {names}.")
        for i, ex in enumerate(self.examples):
            if ex.points is not None and ex.points > self.max_points + 1e-9:
                raise ValueError(
                    f"examples[{i}].points must be <= max_points ({self.max_points:g}). Got {ex.points:g}."
                )
        return self

    def label_of(self, points: float) -> str | None:
        """The label ``points`` earn under ``labels`` (None when the question sets no labels)."""
        if not self.labels:
            return None
        reached = [(low, name) for name, low in self.labels if points >= low - 1e-9]
        return max(reached)[1]

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
    points: Points = Field(default=1.0, gt=0, description="Points for a correct choice.")
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
    points: Points = Field(default=1.0, gt=0, description="Points for the right value.")

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
    # At least one question: checked after the items, since pydantic's own length check counts only
    # the valid ones and adds a false "should have at least 1 item" to every error inside a question.
    questions: tuple[Question, ...] = Field(description="The questions, in order.")
    feedback_level: Literal["student", "instructor", "none"] | None = Field(
        default=None, description="What the HTTP API shows of this rubric's grades when a request names no "
                                  "level: 'student', 'instructor' or 'none' (default: GRADER_FEEDBACK_LEVEL).")
    source: str | None = Field(default=None, exclude=True, description="File it was loaded from (set by the loader).")

    @field_validator("questions")
    @classmethod
    def _not_empty(cls, value):
        if not value:
            raise PydanticCustomError("too_short", "a rubric needs at least one question")
        return value

    @model_validator(mode="after")
    def _unique_ids(self):
        seen: dict[str, int] = {}
        for i, q in enumerate(self.questions):
            if q.id in seen:
                # Raised as a ValidationError so that it names the field: questions.<i>.id.
                raise ValidationError.from_exception_data("Rubric", [InitErrorDetails(
                    type=PydanticCustomError("duplicate_id", "duplicate question id {id}: questions[{first}] has it "
                                             "too", {"id": _got(q.id), "first": seen[q.id]}),
                    loc=("questions", i, "id"), input=q.id)])
            seen[q.id] = i
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


_TAGS = ("short_answer", "multiple_choice", "true_false")
_YAML_KINDS = {dict: "a mapping (a `key: value` pair)", list: "a list", type(None): "an empty value"}


def _got(value) -> str:
    """``value`` quoted exactly (repr), cut to 200 characters: errors are shown to API clients too."""
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _describe(error: dict, data) -> tuple[str, str, str]:
    """(where, field, path) of one pydantic error: the question as named in ``data``, the field inside
    it for people (``key_phrases[1].alternatives[0]``) and the whole dotted path for programs
    (``questions.0.key_phrases.1.alternatives.0``)."""
    loc = [p for i, p in enumerate(error["loc"])  # the discriminated union puts the type tag in the path
           if not (i == 2 and p in _TAGS and error["loc"][0] == "questions")]
    path = ".".join(map(str, loc))
    where = ""
    if len(loc) >= 2 and loc[0] == "questions" and isinstance(loc[1], int):
        qid = None
        try:
            qid = data["questions"][loc[1]].get("id")
        except (KeyError, IndexError, TypeError, AttributeError):
            pass
        where = f"question {_got(qid)} (questions[{loc[1]}])" if qid is not None else f"questions[{loc[1]}]"
        loc = loc[2:]
    field = ""
    for part in loc:
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    return where, field, path


def _message(error: dict) -> str:
    """The error in words; a text field that YAML read as something else says what it read."""
    got = error.get("input")
    if error["type"] == "string_type":
        kind = _YAML_KINDS.get(type(got)) or f"{_got(got)}"
        hint = " - quote the line" if isinstance(got, (dict, list)) else " - quote it" if got is not None else ""
        return f"must be text; YAML read {kind}{hint}"
    if error["type"] in ("tuple_type", "list_type") and isinstance(got, dict):
        return "must be a list; YAML read a mapping (a `key: value` pair)"
    msg = error["msg"].removeprefix("Value error, ").rstrip(".")
    if isinstance(got, (dict, list, tuple)) or got is None or "Got " in msg or error["type"] == "duplicate_id":
        return msg
    return f"{msg}. Got {_got(got)}"


def parse_rubric(data, source: str = "<rubric>", *, warn: bool = True) -> Rubric:
    """Validate an already-parsed mapping as a rubric; errors name ``source``, the question and the field.

    With ``warn``, what :func:`rubric_warnings` finds is issued as :class:`RubricWarning`.
    """
    if not isinstance(data, dict):
        raise RubricError(f"a rubric must be a mapping with `id` and `questions`. Got {type(data).__name__}.",
                          source=source)
    try:
        rubric = Rubric.model_validate(data)
    except ValidationError as exc:
        lines, first_path = [], None
        for err in exc.errors():
            where, field, path = _describe(err, data)
            first_path = first_path or path or None
            parts = [p for p in (where, f"field '{field}'" if field else "") if p]
            lines.append(f"{', '.join(parts)}: {_message(err)}." if parts else f"{_message(err)}.")
        raise RubricError(" ".join(lines), field=first_path, source=source) from None
    rubric = rubric.model_copy(update={"source": source})
    if warn:
        for message in rubric_warnings(rubric):
            warnings.warn(f"{source}: {message}", RubricWarning, stacklevel=2)
    return rubric


def rubric_warnings(rubric: Rubric) -> list[str]:
    """What in a valid rubric is probably a mistake, each naming the question and the field.

    These are warnings, not errors, because the rubric grades as written:

    * key-phrase points adding up to more than ``max_points``: concept credit is the share of
      key-phrase points an answer earns, so the points act as weights, but a missing ``required``
      phrase then costs more than the question is worth;
    * a reference answer with no content words ("It is."): nothing in it can be matched or
      contradicted, and the answer is graded by similarity to it alone.
    """
    out = []
    for q in rubric.questions:
        if not isinstance(q, ShortAnswerQuestion):
            continue
        where = f"question {q.id!r}"
        total = math.fsum(k.points for k in q.key_phrases)
        if total > q.max_points + 1e-9:
            out.append(f"{where}, field 'key_phrases': the key phrases' points add up to {total:g}, more than "
                       f"max_points ({q.max_points:g})")
        language = q.language or rubric.language
        for j, ref in enumerate(q.reference_answers):
            if not content_stems(ref, language):
                out.append(f"{where}, field 'reference_answers[{j}]': {_got(ref[:60])} has no content words; "
                           "grading compares answers with it by similarity alone")
    return out


class _LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing documents that aliases expand past ``MAX_YAML_NODES`` nodes.

    PyYAML builds an aliased node once and shares it, so a 9 KB "billion laughs" file loads in
    microseconds; it is validating and grading the expanded structure that takes gigabytes.
    The size is counted on the node graph, each shared node once, before anything is built.
    """

    def check_size(self, node) -> None:
        sizes: dict[int, int] = {}
        active: set[int] = set()

        def size(n) -> int:
            key = id(n)
            if key in sizes:
                return sizes[key]
            if key in active:
                raise yaml.YAMLError("an alias refers to its own anchor (a recursive structure)")
            active.add(key)
            children = n.value if isinstance(n, yaml.SequenceNode) else \
                [x for pair in n.value for x in pair] if isinstance(n, yaml.MappingNode) else ()
            total = 1
            for child in children:
                total += size(child)
                if total > MAX_YAML_NODES:
                    raise yaml.YAMLError(f"aliases expand the document past {MAX_YAML_NODES:,} nodes")
            active.discard(key)
            sizes[key] = total
            return total

        size(node)


def _load_yaml(text: str):
    loader = _LimitedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        loader.check_size(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_rubric(path: str | Path, *, warn: bool = True) -> Rubric:
    """Read and validate a rubric YAML file (at most ``MAX_RUBRIC_BYTES``, aliases expanding to at most
    ``MAX_YAML_NODES`` nodes); ``warn`` as in :func:`parse_rubric`."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file():
            raise RubricError("not a regular file", source=str(path))
        with open(path, "rb") as fh:
            raw = fh.read(MAX_RUBRIC_BYTES + 1)
        if len(raw) > MAX_RUBRIC_BYTES:
            raise RubricError(f"the file is larger than {MAX_RUBRIC_BYTES:,} bytes", source=str(path))
        text = raw.decode("utf-8-sig")
    except FileNotFoundError:
        raise RubricError("file not found", source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RubricError(f"cannot read rubric: {exc}", source=str(path)) from None
    try:
        data = _load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RubricError(f"invalid YAML{where}: {problem}", source=str(path)) from None
    except RecursionError:
        raise RubricError("invalid YAML: nested too deeply", source=str(path)) from None
    return parse_rubric(data, source=str(path), warn=warn)


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
