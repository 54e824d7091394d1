"""Exports of a graded CSV once an instructor has reviewed it.

:func:`read_graded` reads a file that :func:`~grader.files.batch.grade_csv` wrote back into
answers, in either layout. The instructor's decisions come in as a plain mapping of
:class:`Decision` by (question id, row), so the exports need nothing of the review workspace
that records them. Four formats (:data:`FORMATS`):

* ``csv``: the graded CSV with final points (the instructor's where given, the grader's
  elsewhere) and columns for their source, the comment and the grader's own points;
* ``moodle``: a grade-import CSV: the student's email (or ID number), the grade, the feedback;
* ``canvas``: a gradebook-import CSV: Student, ID, SIS User ID, Section and the assignment;
* ``feedback``: one HTML page per student with each question, the answer, the points and
  the feedback. It never shows the model answer or the instructor's explanation.

Every CSV cell goes through the same cleaning and formula neutralisation as ``grader grade``.
"""

from __future__ import annotations

import html
import math
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from grader.errors import InputDataError
from grader.files.batch import BLANK_MARKS, FIELDS
from grader.files.csvio import CsvFormat, CsvReader, detect_format, format_rows, neutralize
from grader.files.mapping import ANSWER_NAMES, ID_NAMES, QUESTION_NAMES, map_columns, match_question
from grader.files.summary import write_atomic
from grader.rubric import Rubric

FORMATS = ("csv", "moodle", "canvas", "feedback")
SOURCES = ("grader", "regrade", "accepted", "instructor")
ADDED = ("source", "comment", "grader_points")  # columns the csv export adds per answer block


@dataclass(frozen=True)
class Decision:
    """What the review decided for one answer.

    ``points`` are the instructor's (None keeps the machine's); ``fields`` replace grade
    columns after a regrade; ``concepts`` maps a concept to whether the instructor found it
    stated; ``source`` is one of :data:`SOURCES`.
    """

    points: float | None = None
    source: str = "grader"
    comment: str = ""
    fields: dict | None = None
    concepts: dict | None = None


@dataclass
class GradedAnswer:
    """One graded answer of a graded CSV."""

    question_id: str
    row: int  # 1-based data row of the file
    student: str
    answer: str  # as graded: formula neutralisation undone, a blank mark ("-") read as empty
    fields: dict[str, str]  # the grade columns (FIELDS) as written

    def final(self, decision: Decision | None) -> tuple[dict[str, str], str]:
        """The grade columns after the review, and their source."""
        fields, source = dict(self.fields), "grader"
        if decision is None:
            return fields, source
        if decision.fields:
            fields.update({k: v for k, v in decision.fields.items() if k in FIELDS})
            source = "regrade"
        if decision.concepts:
            found = [c for c in fields["concepts_found"].split("; ") if c and decision.concepts.get(c) is not False]
            missing = [c for c in fields["concepts_missing"].split("; ") if c and not decision.concepts.get(c)]
            found += [c for c, stated in decision.concepts.items() if stated and c not in found]
            missing += [c for c, stated in decision.concepts.items() if stated is False and c not in missing]
            fields["concepts_found"], fields["concepts_missing"] = "; ".join(found), "; ".join(missing)
        if decision.points is not None:
            fields["points"] = f"{decision.points:g}"
            fields["needs_review"] = "false"
            source = decision.source if decision.source in ("accepted", "instructor") else "instructor"
        return fields, source


@dataclass
class GradedTable:
    """A graded CSV: its rows as written and the graded answers found in them."""

    path: Path
    format: CsvFormat
    header: list[str]
    rows: list[list[str]]
    layout: str  # "long" or "wide"
    prefix: str  # "grader_" when the input had a column named like a grade column, else ""
    blocks: dict[str | None, int]  # first column of each question's grade block (key None in a long file)
    question_ids: list[str]
    id_col: int | None
    answers: list[GradedAnswer] = field(default_factory=list)

    def column(self, *names: str) -> int | None:
        """The first column whose header is one of ``names`` (case and spacing ignored), or None."""
        wanted = [_norm(n) for n in names]
        heads = [_norm(h) for h in self.header]
        for name in wanted:
            if name in heads:
                return heads.index(name)
        return None

    def students(self) -> list[tuple[str, list[int]]]:
        """(student key, row numbers) in file order: one row each in a wide file, grouped by id in a long one."""
        out: dict[str, list[int]] = {}
        for n, row in enumerate(self.rows, start=1):
            key = _cell(row, self.id_col).strip() if self.id_col is not None else ""
            out.setdefault(key or f"row {n}", []).append(n)
        return list(out.items())


def _norm(text: str) -> str:
    return " ".join(text.replace("_", " ").lower().split())


def _cell(row: list[str], col: int | None) -> str:
    return row[col] if col is not None and col < len(row) else ""


def unneutralize(cell: str) -> str:
    """A cell as it was before :func:`~grader.files.csvio.neutralize` prefixed it with a quote."""
    return cell[1:] if cell.startswith("'") and neutralize(cell[1:]) == cell else cell


def _find_blocks(header: list[str], source: str) -> tuple[str, str, dict[str | None, int]]:
    """(layout, prefix, blocks) from the columns grade_csv added at the end of the header."""
    for prefix in ("", "grader_"):
        if not header or header[-1] != prefix + "error":
            continue
        n = len(FIELDS)
        start = len(header) - 1 - n
        if start >= 0 and header[start:-1] == [prefix + f for f in FIELDS]:
            return "long", prefix, {None: start}
        if header[-3:-1] != [prefix + "total", prefix + "max_total"]:
            continue
        blocks: dict[str | None, int] = {}
        start = len(header) - 3 - n
        while start >= 0 and header[start].startswith(prefix) and header[start].endswith("_points"):
            qid = header[start][len(prefix):-len("_points")]
            if header[start:start + n] != [f"{prefix}{qid}_{f}" for f in FIELDS]:
                break
            blocks[qid] = start
            start -= n
        if blocks:
            return "wide", prefix, dict(reversed(blocks.items()))
    raise InputDataError("this is not a file written by `grader grade`: its last columns are not the grade "
                         "columns (points, max_points, ..., error)", source=source)


def _by_name(header: list[str], names: tuple[str, ...]) -> int | None:
    heads = [_norm(h) for h in header]
    for name in names:
        if heads.count(name) == 1:
            return heads.index(name)
    return None


class _Reader:
    """How to cut each row of a graded file into graded answers."""

    def __init__(self, header: list[str], rubric: Rubric | None, source: str):
        self.layout, self.prefix, self.blocks = _find_blocks(header, source)
        self.width = len(header)
        original = header[:min(self.blocks.values())]
        self.id_col = _by_name(original, ID_NAMES)
        self.rubric = rubric
        self.question_col = self.answer_col = None
        self.answer_cols: dict[str, int] = {}
        if self.layout == "long":
            self.question_col, self.answer_col = _by_name(original, QUESTION_NAMES), _by_name(original, ANSWER_NAMES)
        elif rubric is not None:
            self.answer_cols = _answer_columns(original, rubric, list(self.blocks))
        self._ids = {q.id for q in rubric.questions} if rubric is not None else set()
        self._resolved: dict[str, str | None] = {}

    def answers(self, number: int, row: list[str]) -> list[GradedAnswer]:
        """The graded answers of data row ``number``; a row grading could not place (an error) has none."""
        padded = row + [""] * (self.width - len(row))
        n = len(FIELDS)
        student = _cell(row, self.id_col)
        if self.layout == "long":
            fields = dict(zip(FIELDS, padded[self.blocks[None]:self.blocks[None] + n]))
            qid = self._question(_cell(row, self.question_col).strip())
            if not qid or not fields["points"]:
                return []
            return [GradedAnswer(qid, number, student, _answer(_cell(row, self.answer_col)), fields)]
        out = []
        for qid, start in self.blocks.items():
            fields = dict(zip(FIELDS, padded[start:start + n]))
            if fields["points"]:
                out.append(GradedAnswer(qid, number, student, _answer(_cell(row, self.answer_cols.get(qid))), fields))
        return out

    def _question(self, value: str) -> str | None:
        if self.rubric is None or value in self._ids:
            return value or None
        if value not in self._resolved and len(self._resolved) < 10_000:
            hit = match_question(value, self.rubric)
            self._resolved[value] = hit[0] if hit else None
        return self._resolved.get(value)


@contextmanager
def _graded_rows(path: Path):
    """(format, header, reader of the remaining rows) of a graded CSV; an empty file is an error."""
    fmt = detect_format(path)
    with CsvReader(path, fmt) as reader:
        try:
            header = next(reader)
        except StopIteration:
            raise InputDataError("the file is empty", source=str(path)) from None
        yield fmt, header, reader


def iter_graded(path: str | Path, rubric: Rubric | None = None) -> Iterator[tuple[int, list[str], list[GradedAnswer]]]:
    """(data row number, row, graded answers of the row) of a graded CSV, read as a stream."""
    path = Path(path)
    with _graded_rows(path) as (_, header, reader):
        cut = _Reader(header, rubric, str(path))
        number = 0
        for row in reader:
            if row:
                number += 1
                yield number, row, cut.answers(number, row)


def read_graded(path: str | Path, rubric: Rubric | None = None) -> GradedTable:
    """Read a graded CSV written by ``grader grade`` into memory.

    With ``rubric``, a wide file's answer columns are found as grading found them and a long
    file's question cells ("Q5", a prompt) resolve to question ids; without it, a wide file's
    answers are left empty (its grades and totals are read all the same).
    """
    path = Path(path)
    with _graded_rows(path) as (fmt, header, reader):
        rows = [row for row in reader if row]
    cut = _Reader(header, rubric, str(path))
    table = GradedTable(path, fmt, header, rows, cut.layout, cut.prefix, cut.blocks, [], cut.id_col)
    for number, row in enumerate(rows, start=1):
        table.answers.extend(cut.answers(number, row))
    if cut.layout == "wide":
        table.question_ids = [q for q in cut.blocks if q is not None]
    else:
        table.question_ids = list(dict.fromkeys(a.question_id for a in table.answers))
        if rubric is not None:
            order = [q.id for q in rubric.questions]
            table.question_ids.sort(key=lambda q: order.index(q) if q in order else len(order))
    return table


def _answer(cell: str) -> str:
    text = unneutralize(cell)
    return "" if text.strip() in BLANK_MARKS else text


def _answer_columns(header: list[str], rubric: Rubric, qids: list[str | None]) -> dict[str, int]:
    """Each question's answer column in a wide file, matched to the rubric as grading matched it."""
    try:
        cmap = map_columns(header, rubric, layout="wide")
    except InputDataError:
        return {}
    return {q: i for q, i in cmap.questions.items() if q in qids}


# -- writing ------------------------------------------------------------------------------------------

def _points(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        return 0.0
    return number if math.isfinite(number) else 0.0


def _write_csv(path: Path, rows: list[list[str]], fmt: CsvFormat | None = None) -> Path:
    """Rows as CSV; like the graded file when ``fmt`` is given, else plain UTF-8 with commas, as LMS imports read."""
    delimiter = fmt.delimiter if fmt else ","
    bom = b"\xef\xbb\xbf" if fmt is not None and fmt.output_encoding == "utf-8-sig" else b""
    write_atomic(path, bom + format_rows(rows, delimiter).encode("utf-8"))
    return path


def graded_csv(table: GradedTable, decisions: dict) -> list[list[str]]:
    """The graded file's rows (header first) with final points and the source, comment and grader's points."""
    by_key = {(a.question_id if table.layout == "wide" else None, a.row): a for a in table.answers}
    p = table.prefix
    keys = [None] if table.layout == "long" else table.question_ids
    header = list(table.header)
    for qid in keys:
        header += [p + (f"{qid}_{c}" if qid else c) for c in ADDED]
    out = [header]
    width = len(table.header)
    for number, row in enumerate(table.rows, start=1):
        cells = row + [""] * (width - len(row))
        extra: list[str] = []
        total = 0.0
        for qid in keys:
            start = table.blocks[qid]
            answer = by_key.get((qid, number))
            if answer is None:
                extra += ["", "", ""]
                continue
            fields, source = answer.final(decisions.get((answer.question_id, number)))
            cells[start:start + len(FIELDS)] = [fields[f] for f in FIELDS]
            total += _points(fields["points"])
            decision = decisions.get((answer.question_id, number))
            extra += [source, decision.comment if decision else "", answer.fields["points"]]
        if table.layout == "wide":
            total_col = len(table.header) - 3
            cells[total_col] = f"{total:g}"
        out.append(cells + extra)
    return out


def student_grades(table: GradedTable, decisions: dict) -> list[dict]:
    """Per student: key, row numbers, and per question the final fields, source and comment, in file order."""
    by_row: dict[int, list[GradedAnswer]] = {}
    for a in table.answers:
        by_row.setdefault(a.row, []).append(a)
    order = {q: i for i, q in enumerate(table.question_ids)}
    out = []
    for key, numbers in table.students():
        answers = sorted((a for n in numbers for a in by_row.get(n, [])), key=lambda a: order.get(a.question_id, 0))
        items = []
        for a in answers:
            fields, source = a.final(decisions.get((a.question_id, a.row)))
            decision = decisions.get((a.question_id, a.row))
            items.append({"answer": a, "fields": fields, "source": source,
                          "comment": decision.comment if decision else ""})
        total = math.fsum(_points(i["fields"]["points"]) for i in items)
        possible = math.fsum(_points(i["fields"]["max_points"]) for i in items)
        out.append({"key": key, "rows": numbers, "items": items, "total": total, "max_total": possible})
    return out


def _summary_text(items: list[dict]) -> str:
    """One line of feedback for an LMS cell: per question its points, feedback and comment."""
    parts = []
    for i in items:
        f = i["fields"]
        text = f"{i['answer'].question_id}: {f['points']}/{f['max_points']}"
        if i["comment"]:
            text += f". {i['comment']}"
        elif f.get("feedback"):
            text += f". {f['feedback']}"
        parts.append(" ".join(text.split()))
    return " | ".join(parts)


def moodle_rows(table: GradedTable, decisions: dict) -> list[list[str]]:
    """A Moodle grade-import CSV: the student's email address (or ID number), the grade and the feedback."""
    email = table.column("email address", "email")
    idnumber = table.column("id number", "idnumber")
    ident, name = ((email, "Email address") if email is not None else (idnumber, "ID number")
                   if idnumber is not None else (table.id_col, "ID number"))
    rows = [[name, "Grade", "Feedback"]]
    for student in student_grades(table, decisions):
        first = table.rows[student["rows"][0] - 1]
        key = _cell(first, ident).strip() if ident is not None else student["key"]
        rows.append([key, f"{student['total']:g}", _summary_text(student["items"])])
    return rows


def canvas_rows(table: GradedTable, decisions: dict, assignment: str) -> list[list[str]]:
    """A Canvas gradebook-import CSV: Student, ID, SIS User ID, Section and the assignment's points."""
    name = table.column("student", "name", "full name")
    surname, given = table.column("surname", "last name"), table.column("first name", "given name")
    canvas_id = table.column("id")
    sis = table.column("sis user id", "id number", "idnumber", "email address", "email")
    section = table.column("section")
    students = student_grades(table, decisions)
    possible = max((s["max_total"] for s in students), default=0.0)
    rows = [["Student", "ID", "SIS User ID", "Section", assignment],
            ["    Points Possible", "", "", "", f"{possible:g}"]]
    for student in students:
        first = table.rows[student["rows"][0] - 1]
        if name is not None:
            full = _cell(first, name)
        elif surname is not None and given is not None:
            full = f"{_cell(first, surname)}, {_cell(first, given)}".strip(", ")
        else:
            full = student["key"]
        rows.append([full, _cell(first, canvas_id), _cell(first, sis) if sis is not None else student["key"],
                     _cell(first, section), f"{student['total']:g}"])
    return rows


_FEEDBACK_CSS = ("body{font:15px/1.5 system-ui,sans-serif;max-width:46em;margin:2em auto;color:#1d2329}"
                 ".q{border-top:1px solid #ccd;padding:.6em 0}.answer{white-space:pre-wrap;background:#f5f6f8;"
                 "padding:.5em .7em;border-radius:4px}.points{font-weight:600}.muted{color:#5b6570}")


def feedback_page(student: dict, prompts: dict[str, str], title: str) -> str:
    """One student's feedback page (every text escaped): each question, the answer, the points and the feedback."""
    e = html.escape
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>"
             f"<style>{_FEEDBACK_CSS}</style></head><body><h1>{e(title)}</h1>",
             f"<p>{e(student['key'])}: <span class='points'>{student['total']:g} of {student['max_total']:g}"
             "</span> points.</p>"]
    for item in student["items"]:
        a, f = item["answer"], item["fields"]
        parts.append(f"<section class='q'><h2>Question {e(a.question_id)}</h2>")
        if prompts.get(a.question_id):
            parts.append(f"<p>{e(prompts[a.question_id])}</p>")
        answer = a.answer if a.answer.strip() else "(no answer)"
        parts.append(f"<p class='muted'>Your answer:</p><div class='answer'>{e(answer)}</div>"
                     f"<p class='points'>{e(f['points'])} / {e(f['max_points'])} points</p>")
        if f.get("feedback"):
            parts.append(f"<p>{e(f['feedback'])}</p>")
        if item["comment"]:
            parts.append(f"<p><strong>Instructor:</strong> {e(item['comment'])}</p>")
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _file_name(n: int, key: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._@-]+", "_", key).strip("._")[:60]
    return f"{n:03d}_{safe or 'student'}.html"


def export(table: GradedTable, fmt: str, out: str | Path, decisions: dict | None = None, *,
           prompts: dict[str, str] | None = None, title: str = "Feedback", assignment: str | None = None) -> Path:
    """Write ``table`` with ``decisions`` to ``out`` in format ``fmt``; returns what was written.

    ``feedback`` writes a folder of pages, one per student; the others write one CSV.
    ``prompts`` (question id -> prompt) go on the feedback pages; ``assignment`` names
    the Canvas column (default: the graded file's name).
    """
    if fmt not in FORMATS:
        raise InputDataError(f"`format` must be one of {', '.join(FORMATS)}. Got {fmt!r}.", field="format")
    decisions = decisions or {}
    out = Path(out)
    if out.resolve() == table.path.resolve():
        raise InputDataError("the export would overwrite the graded file; choose another `output`", field="output",
                             source=str(table.path))
    if fmt == "csv":
        return _write_csv(out, graded_csv(table, decisions), table.format)
    if fmt == "moodle":
        return _write_csv(out, moodle_rows(table, decisions))
    if fmt == "canvas":
        return _write_csv(out, canvas_rows(table, decisions, assignment or table.path.name.split(".")[0]))
    if out.exists() and not out.is_dir():
        raise InputDataError("the feedback export writes a folder, and this is a file; choose another `output`",
                             field="output", source=str(out))
    out.mkdir(parents=True, exist_ok=True)
    for n, student in enumerate(student_grades(table, decisions), start=1):
        write_atomic(out / _file_name(n, student["key"]), feedback_page(student, prompts or {}, title).encode("utf-8"))
    return out
