"""Turning a plain-text quiz (the format of ``shared/seed/rnn_lstm_quiz.txt``) into a rubric.

The format, one question after another::

    Question 2 Multiple Choice          <- header: number and type (may be missing)
    A language model must remember ...  <- prompt
    AA vanilla RNN, because ...         <- options: a letter, then the text
    BAn LSTM, because ...
    Answer: B                           <- key (may be missing)
    The LSTM was designed ...           <- explanation

True/false questions list ``TTrue``/``FFalse`` and an ``Answer:`` line; short
answers have a ``Model answer:`` block and an explanation whose quoted phrases
('...') become key phrases. A missing multiple-choice key is inferred from the
explanation, marked ``needs_confirmation: true`` and reported as a warning.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from grader.errors import InputDataError
from grader.rubric import Rubric, parse_rubric
from grader.text import content_stems

_HEADER = re.compile(r"^\s*question\s+(\d+)\s*[.:)]?\s*(multiple[\s-]*choice|true\s*/\s*false|true[\s-]*or[\s-]*false|"
                     r"short[\s-]*answer|essay|free[\s-]*text)?\s*$", re.I)
_ANSWER = re.compile(r"^\s*(?:correct\s+)?answer\s*[:=]\s*(.+?)\s*$", re.I)
_MODEL = re.compile(r"^\s*(?:model|reference|sample|example)\s+answer\s*[:=]\s*(.*)$", re.I)
_FILLER = re.compile(r"^\s*(?:think about your answer|reveal (?:it )?below|\(?\d+\s*points?\)?\s*$)", re.I)
_TF_OPTION = re.compile(r"^\s*(?:T\s*[).:]?\s*True|F\s*[).:]?\s*False|True|False)\s*$", re.I)
_QUOTED = re.compile(r"(?<![A-Za-z])['‘\"“]([^'’\"”\n]{3,80}?)[.,;:!?]?['’\"”](?![A-Za-z])")


@dataclass
class ImportResult:
    """The rubric data read from a quiz file and the warnings a human should read."""

    data: dict
    warnings: list[str] = field(default_factory=list)

    def to_yaml(self) -> str:
        """The rubric as YAML, in the field order of the hand-written rubrics."""
        return yaml.safe_dump(self.data, sort_keys=False, allow_unicode=True, width=100)


def _type_of(name: str | None) -> str | None:
    if not name:
        return None
    name = name.lower()
    if "multiple" in name:
        return "multiple_choice"
    if "true" in name:
        return "true_false"
    return "short_answer"


def _option_run(lines: list[str], start: int) -> tuple[int, list[tuple[str, str]]]:
    """(index of the first option line, options) for the longest run of lines starting A, B, C, ..."""
    for i in range(start, len(lines)):
        run: list[tuple[str, str]] = []
        j = i
        while j < len(lines) and lines[j][:1] == chr(ord("A") + len(run)):
            text = re.sub(r"^[).:]\s*|^\s+", "", lines[j][1:]).strip()
            if not text:
                break
            run.append((lines[j][0], text))
            j += 1
        if len(run) >= 2:
            return i, run
    return -1, []


def _infer_key(options: list[tuple[str, str]], explanation: str, language: str) -> tuple[str, float]:
    """The option whose distinctive words the explanation shares most, and its margin over the runner-up."""
    stems = [content_stems(text, language) for _, text in options]
    df = Counter(s for group in stems for s in group)
    expl = content_stems(explanation, language)
    n = len(options)
    scores = []
    for group in stems:
        weight = sum(math.log(1 + n / df[s]) for s in group & expl)
        scores.append(weight / math.sqrt(max(len(group), 1)))
    order = sorted(range(n), key=lambda i: -scores[i])
    margin = scores[order[0]] - (scores[order[1]] if n > 1 else 0.0)
    return options[order[0]][0], margin


def _key_phrases(explanation: str) -> list[str]:
    """Quoted phrases of the sentence that names the key phrases, else every quoted phrase."""
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z])", explanation)
    named = [s for s in sentences if re.search(r"\bkey (?:phrase|idea|concept|term)s?\b", s, re.I)]
    phrases = [m.group(1).strip() for s in (named or [explanation]) for m in _QUOTED.finditer(s)]
    return list(dict.fromkeys(p for p in phrases if len(p.split()) >= 2 or not named))


def parse_quiz(text: str, *, source: str = "<quiz>", rubric_id: str = "quiz", title: str = "",
               language: str = "en", choice_points: float = 1.0, short_answer_points: float = 5.0) -> ImportResult:
    """Read a plain-text quiz into rubric data (validated) plus warnings."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    blocks: list[tuple[int | None, str | None, int, list[str]]] = []
    current: list[str] = []
    number, kind, first = None, None, 1
    for no, line in enumerate(lines, 1):
        m = _HEADER.match(line)
        if m:
            if any(s.strip() for s in current):
                blocks.append((number, kind, first, current))
            number, kind, first, current = int(m.group(1)), _type_of(m.group(2)), no, []
        else:
            current.append(line)
    if any(s.strip() for s in current):
        blocks.append((number, kind, first, current))
    if not blocks:
        raise InputDataError("no questions found; expected lines like 'Question 1 Multiple Choice'", source=source)
    warnings: list[str] = []
    questions = []
    for index, (number, kind, line_no, body) in enumerate(blocks):
        if number is None:
            following = next((b[0] for b in blocks[index + 1:] if b[0] is not None), None)
            number = (following - 1) if following and following > 1 else index + 1
        body = [b.strip() for b in body if b.strip()]
        qid = f"q{number}"
        prompt = body[0]
        rest = body[1:]
        opt_at, options = _option_run(body, 1)
        answer, model, expl_lines = None, None, []
        guessed = None
        if kind is None:
            guessed = ("multiple_choice" if options else
                       "true_false" if any(_TF_OPTION.match(b) for b in rest) else "short_answer")
            kind = guessed
            warnings.append(f"{source}: line {line_no}: question {number} has no type header "
                            f"('Question {number} ...'); read as {kind.replace('_', ' ')}")
        if kind == "multiple_choice":
            if not options:
                raise InputDataError(f"line {line_no}: question {number} is multiple choice but lists no lettered "
                                     "options (lines starting A, B, ...)", source=source)
            prompt = " ".join(body[:opt_at])
            rest = body[opt_at + len(options):]
        i = 0
        while i < len(rest):
            line = rest[i]
            if kind == "true_false" and _TF_OPTION.match(line):
                pass
            elif (m := _ANSWER.match(line)) and answer is None and model is None:
                answer = m.group(1)
            elif (m := _MODEL.match(line)) and model is None:
                model = m.group(1).strip()
                while not model and i + 1 < len(rest):
                    i += 1
                    model = rest[i]
            elif _FILLER.match(line) and not expl_lines:
                pass
            elif kind == "short_answer" and model is None and not expl_lines and line.endswith("?"):
                prompt += " " + line
            else:
                expl_lines.append(line)
            i += 1
        explanation = " ".join(expl_lines) or None
        q: dict = {"id": qid, "type": kind, "prompt": prompt}
        if kind == "multiple_choice":
            q["options"] = [{"id": oid, "text": text} for oid, text in options]
            ids = [oid for oid, _ in options]
            if answer:
                correct = [c for c in re.split(r"[\s,;/]+|\band\b", answer.upper()) if c]
                correct = [c.strip(").:") for c in correct]
                bad = [c for c in correct if c not in ids]
                if bad:
                    raise InputDataError(f"question {number}: 'Answer: {answer}' names no option of {ids}",
                                         source=source)
                q["correct"] = correct
                q["points"] = choice_points
            else:
                if not explanation:
                    raise InputDataError(f"question {number}: no 'Answer:' line and no explanation to infer the key "
                                         "from; add 'Answer: <letter>'", source=source)
                key, margin = _infer_key(options, explanation, language)
                q["correct"] = [key]
                q["points"] = choice_points
                q["needs_confirmation"] = True
                warnings.append(f"{source}: question {number} ({qid}) has no 'Answer:' line; inferred key {key} from "
                                f"the explanation (margin {margin:.2f}); confirm it and remove needs_confirmation")
        elif kind == "true_false":
            value = (answer or "").strip().lower().rstrip(".")
            if value not in ("true", "false", "t", "f"):
                raise InputDataError(f"question {number}: a true/false question needs 'Answer: True' or "
                                     f"'Answer: False'. Got {answer!r}.", source=source)
            q["correct"] = value in ("true", "t")
            q["points"] = choice_points
        else:
            if model:
                q["reference_answers"] = [model]
            else:
                warnings.append(f"{source}: question {number} ({qid}) has no 'Model answer:'; grading relies on "
                                "key phrases and examples")
            q["max_points"] = short_answer_points
            q["points_step"] = short_answer_points / 10
            phrases = _key_phrases(explanation or "")
            if phrases:
                q["key_phrases"] = [{"text": p, "points": 1.0} for p in phrases]
        if explanation:
            q["explanation"] = explanation
        questions.append(q)
    seen = Counter(q["id"] for q in questions)
    dup = [k for k, v in seen.items() if v > 1]
    if dup:
        raise InputDataError(f"question numbers repeat: {', '.join(dup)}", source=source)
    data = {"id": rubric_id, "title": title or rubric_id.replace("_", " "), "language": language,
            "questions": questions}
    parse_rubric(data, source=source)  # the output must be a valid rubric
    return ImportResult(data, warnings)


def import_quiz(path: str | Path, **kwargs) -> ImportResult:
    """Read the quiz file at ``path``; the rubric id defaults to its file name."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputDataError("file not found", source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputDataError(f"cannot read the quiz as UTF-8 text: {exc}", source=str(path)) from None
    if "rubric_id" not in kwargs or not kwargs["rubric_id"]:
        stem = re.sub(r"[^A-Za-z0-9_.\-]+", "_", path.stem).strip("_.-") or "quiz"
        kwargs["rubric_id"] = re.sub(r"_quiz$", "", stem) or stem
    return parse_quiz(text, source=str(path), **kwargs)


def to_rubric(result: ImportResult) -> Rubric:
    """The imported data as a validated :class:`Rubric`."""
    return parse_rubric(result.data)
