"""Which columns of a submissions file hold what: layout detection and column -> question mapping.

*Long* files have one row per answer (student id, question id, answer);
*wide* files have one row per student and one column per question, as in
Moodle's "Responses" export, Canvas's "Student Analysis" and Google Forms.
Headers are matched to rubric questions by id, by number ("Q. 5", "Question 5",
"Response 5", "5") and by similarity to the prompt. Explicit options override
every guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from grader.errors import InputDataError
from grader.rubric import Rubric
from grader.text import normalize

ID_NAMES = ("student_id", "student id", "studentid", "student", "user", "username", "user id", "userid",
            "id number", "email", "email address", "learner", "participant", "name", "sis user id")
QUESTION_NAMES = ("question_id", "question id", "questionid", "qid", "question", "item", "question number",
                  "item id")
ANSWER_NAMES = ("answer", "response", "student answer", "answer text", "response text", "submission", "text",
                "student_answer", "student response")
_NUMBER = re.compile(r"^(?:(?P<kind>q|question|frage|aufgabe|response|answer|antwort|réponse|reponse|respuesta|"
                     r"item|r)\s*\.?\s*#?\s*)?(?P<n>\d+)"
                     r"(?:\s*[/:.)\-]\s*(?P<rest>.*))?$", re.I)
_SKIP = re.compile(r"^(?:right answer|correct answer|richtige antwort|grade|mark|score|points?)\b", re.I)
_RESPONSE_KINDS = {"response", "answer", "antwort", "réponse", "reponse", "respuesta", "r"}
# How sure a header match is; among columns for one question the highest rank wins.
RANK_ID, RANK_RESPONSE, RANK_PROMPT, RANK_NUMBER = 4, 3, 2, 1
PROMPT_THRESHOLD = 0.6


@dataclass
class ColumnMap:
    """The layout of a file and the columns that feed grading.

    ``long``: ``question_col`` and ``answer_col`` (and optionally ``id_col``) are
    column indexes. ``wide``: ``questions`` maps question id -> column index.
    ``notes`` explains each choice, for printing.
    """

    layout: str
    header: list[str]
    id_col: int | None = None
    question_col: int | None = None
    answer_col: int | None = None
    questions: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """The mapping as lines a user can check (and copy into `maps` options)."""
        h = self.header
        lines = [f"layout: {self.layout}"]
        if self.layout == "long":
            for role, idx in (("student id", self.id_col), ("question id", self.question_col),
                              ("answer", self.answer_col)):
                lines.append(f"  {role:<12} <- " + (f"column {idx + 1} {h[idx]!r}" if idx is not None else "(none)"))
        else:
            for qid, idx in self.questions.items():
                lines.append(f"  {qid:<12} <- column {idx + 1} {h[idx]!r}")
            if self.id_col is not None:
                lines.append(f"  {'student id':<12} <- column {self.id_col + 1} {h[self.id_col]!r}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def _norm(header: str) -> str:
    return re.sub(r"\s+", " ", normalize(header or "").replace("_", " ")).strip(" :")


def find_column(header: list[str], spec: str, option: str, source: str = "<csv>") -> int:
    """The index of the column ``spec`` names: a header (case-insensitive) or ``#N`` for the N-th column."""
    if spec.startswith("#") and spec[1:].isdigit():
        idx = int(spec[1:]) - 1
        if 0 <= idx < len(header):
            return idx
        raise InputDataError(f"`{option}` {spec}: the file has {len(header)} columns", field=option, source=source)
    exact = [i for i, h in enumerate(header) if h == spec]
    if not exact:
        exact = [i for i, h in enumerate(header) if _norm(h) == _norm(spec)]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        cols = ", ".join(f"#{i + 1}" for i in exact)
        raise InputDataError(f"`{option}` {spec!r}: the header has duplicate columns of that name ({cols}); "
                             f"name one by position, e.g. `{option}` '#{exact[0] + 1}'", field=option, source=source)
    raise InputDataError(f"`{option}` {spec!r}: no such column. Columns: {_list(header)}", field=option, source=source)


def _list(header: list[str]) -> str:
    shown = ", ".join(repr(h) for h in header[:30])
    return shown + (f", ... ({len(header)} in all)" if len(header) > 30 else "")


def _by_name(header: list[str], names: tuple[str, ...], role: str, option: str, source: str) -> int | None:
    for name in names:  # names are in order of preference
        hits = [i for i, h in enumerate(header) if _norm(h) == name]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            cols = ", ".join(f"#{i + 1}" for i in hits)
            raise InputDataError(f"the header has {len(hits)} columns named {header[hits[0]]!r} ({cols}), so the "
                                 f"{role} column is ambiguous; choose one with `{option}` '#N'", field=option,
                                 source=source)
    return None


def match_question(header: str, rubric: Rubric) -> tuple[str, int, str] | None:
    """(question id, rank, reason) of the rubric question a header names, or None."""
    text = _norm(header)
    if not text or _SKIP.match(text):
        return None
    ids = {q.id.lower(): q.id for q in rubric.questions}
    if text in ids:
        return ids[text], RANK_ID, "header is the question id"
    m = _NUMBER.match(text)
    if m:
        n = int(m.group("n"))
        qid = _question_by_number(rubric, n)
        rest = (m.group("rest") or "").strip()
        kind = (m.group("kind") or "").lower()
        if qid and (not rest or kind and len(rest) < 12):
            rank = RANK_RESPONSE if kind in _RESPONSE_KINDS else RANK_NUMBER
            return qid, rank, f"header names question number {n}"
        if rest:  # Canvas: "12345: What is the fundamental ...?"
            text = _norm(rest)
    best, best_score = None, 0.0
    for q in rubric.questions:
        score = _prompt_similarity(text, _norm(q.prompt))
        if score > best_score:
            best, best_score = q.id, score
    if best is not None and best_score >= PROMPT_THRESHOLD:
        return best, RANK_PROMPT, f"header matches the prompt ({best_score:.0%})"
    return None


def _question_by_number(rubric: Rubric, n: int) -> str | None:
    for q in rubric.questions:
        digits = re.findall(r"\d+", q.id)
        if digits and int(digits[-1]) == n:
            return q.id
    if 1 <= n <= len(rubric.questions):
        return rubric.questions[n - 1].id
    return None


def _prompt_similarity(header: str, prompt: str) -> float:
    """Similarity of a header to a prompt; LMS headers often cut the prompt short."""
    if not header or not prompt or len(header) < 12:
        return 0.0
    words_h, words_p = set(header.split()), set(prompt.split())
    overlap = len(words_h & words_p) / len(words_h)
    prefix = 1.0 if prompt.startswith(header[:-3].rstrip(". ")) and len(header) >= 20 else 0.0
    ratio = SequenceMatcher(None, header, prompt[: len(header) + 20]).ratio()
    return max(prefix, 0.5 * overlap + 0.5 * ratio)


def _parse_maps(maps: list[str], header: list[str], rubric: Rubric, source: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for spec in maps:
        if "=" not in spec:
            raise InputDataError(f"`maps` must be HEADER=QUESTION_ID. Got {spec!r}.", field="maps", source=source)
        col, qid = spec.rsplit("=", 1)
        rubric.question(qid.strip())
        idx = find_column(header, col.strip(), "maps", source)
        if qid.strip() in out:
            raise InputDataError(f"`maps`: question {qid.strip()!r} is mapped twice", field="maps", source=source)
        out[qid.strip()] = idx
    return out


def map_columns(header: list[str], rubric: Rubric, *, layout: str = "auto", id_col: str | None = None,
                question_col: str | None = None, answer_col: str | None = None, maps: list[str] | None = None,
                source: str = "<csv>") -> ColumnMap:
    """Decide the layout of a file from its header and map its columns to roles and questions."""
    maps = list(maps or [])
    if layout not in ("auto", "long", "wide"):
        raise InputDataError(f"layout must be 'auto', 'long' or 'wide'. Got {layout!r}.", field="layout",
                             source=source)
    if not any(h.strip() for h in header):
        raise InputDataError("the header row is empty; the first row must name the columns", source=source)
    ident = find_column(header, id_col, "id_col", source) if id_col else None
    if layout == "auto":
        if question_col or answer_col:
            layout = "long"
        elif maps:
            layout = "wide"
        else:
            q = _by_name(header, QUESTION_NAMES, "question id", "question_col", source)
            a = _by_name(header, ANSWER_NAMES, "answer", "answer_col", source)
            wide = _auto_questions(header, rubric, source, quiet=True)
            layout = "long" if q is not None and (a is not None or not wide) else "wide"
    if ident is None:
        ident = _by_name(header, ID_NAMES, "student id", "id_col", source)
    if layout == "long":
        qcol = (find_column(header, question_col, "question_col", source) if question_col
                else _by_name(header, QUESTION_NAMES, "question id", "question_col", source))
        acol = (find_column(header, answer_col, "answer_col", source) if answer_col
                else _by_name(header, ANSWER_NAMES, "answer", "answer_col", source))
        if qcol is None:
            raise InputDataError(f"no question id column (looked for {', '.join(QUESTION_NAMES[:4])}); name it with "
                                 f"`question_col`. Columns: {_list(header)}", field="question_col", source=source)
        if acol is None:
            raise InputDataError(f"no answer column (looked for {', '.join(ANSWER_NAMES[:4])}); name it with "
                                 f"`answer_col`. Columns: {_list(header)}", field="answer_col", source=source)
        if acol == qcol:
            raise InputDataError(f"the question and answer columns are the same column ({header[acol]!r})",
                                 field="answer_col", source=source)
        return ColumnMap("long", header, ident, qcol, acol)
    explicit = _parse_maps(maps, header, rubric, source)
    questions, notes = _auto_questions(header, rubric, source, taken=explicit)
    questions.update(explicit)
    notes = [f"{qid} <- {header[i]!r} (given by `maps`)" for qid, i in explicit.items()] + notes
    if not questions:
        raise InputDataError("no column matches a rubric question (by id, number or prompt) and no question id "
                             f"column was found; use `maps` 'HEADER=QUESTION_ID' or `question_col`/`answer_col`. "
                             f"Columns: {_list(header)}", field="maps", source=source)
    order = {q.id: i for i, q in enumerate(rubric.questions)}
    questions = dict(sorted(questions.items(), key=lambda kv: order[kv[0]]))
    for q in rubric.questions:
        if q.id not in questions:
            notes.append(f"question {q.id} has no column, so it is not graded; add `maps` 'HEADER={q.id}'")
    return ColumnMap("wide", header, ident, questions=questions, notes=notes)


def _auto_questions(header: list[str], rubric: Rubric, source: str, taken: dict[str, int] | None = None,
                    quiet: bool = False):
    taken = taken or {}
    used_cols = set(taken.values())
    candidates: dict[str, list[tuple[int, int, str]]] = {}
    for i, h in enumerate(header):
        if i in used_cols:
            continue
        hit = match_question(h, rubric)
        if hit and hit[0] not in taken:
            candidates.setdefault(hit[0], []).append((hit[1], i, hit[2]))
    questions: dict[str, int] = {}
    notes: list[str] = []
    for qid, cands in candidates.items():
        top = max(r for r, _, _ in cands)
        best = [(i, why) for r, i, why in cands if r == top]
        if len(best) > 1:
            if quiet:
                continue
            cols = ", ".join(f"#{i + 1} {header[i]!r}" for i, _ in best)
            raise InputDataError(f"question {qid} matches several columns ({cols}); choose one with "
                                 f"`maps` '#{best[0][0] + 1}={qid}'", field="maps", source=source)
        questions[qid] = best[0][0]
        notes.append(f"{qid} <- {header[best[0][0]]!r}: {best[0][1]}")
    if quiet:
        return questions
    return questions, notes
