"""Labelled corpora in the shared CSV format (see ``../shared/data/README.md``).

Columns are read by name; every one but ``question_id`` and ``answer`` may be
missing or empty. Questions are rebuilt from the ``question`` and
``reference_answer`` columns, keeping every distinct reference answer.
"""

from __future__ import annotations

import csv
import hashlib
import math
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

from grader.errors import InputDataError
from grader.encoding.weights import sha256_of
from grader.rubric import GradedExample, ShortAnswerQuestion

REQUIRED_COLUMNS = ("question_id", "answer")
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass(frozen=True)
class LabeledAnswer:
    """One graded answer of a corpus."""

    row: int  # 1-based data row number (header is row 0)
    question_id: str
    question: str
    reference_answer: str
    answer: str
    score: float | None
    max_score: float | None
    label: str | None
    answer_id: str
    extra: dict = field(default_factory=dict, compare=False, hash=False)
    source: str = field(default="", compare=False)  # the file the row was read from

    @property
    def fraction(self) -> float | None:
        """score / max_score when both are known."""
        if self.score is None or not self.max_score:
            return None
        return min(1.0, max(0.0, self.score / self.max_score))


def _float(value: str, path: Path, row: int, column: str) -> float | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise InputDataError(f"row {row}, column '{column}': not a number: {value[:30]!r}", field=column,
                             source=str(path)) from None
    if not math.isfinite(number):
        raise InputDataError(f"row {row}, column '{column}': not a finite number: {value!r}", field=column,
                             source=str(path))
    return number


def read_corpus(path: str | Path, label_col: str = "label") -> list[LabeledAnswer]:
    """Read a labelled corpus; errors name the file, row and column."""
    path = Path(path)
    try:
        fh = open(path, encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise InputDataError("file not found", source=str(path)) from None
    with fh:
        try:
            reader = csv.DictReader(fh)
            header = reader.fieldnames
            if not header:
                raise InputDataError("the file is empty (no header row)", source=str(path))
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise InputDataError(f"missing required column(s) {missing}; the header has {header}",
                                     field=missing[0], source=str(path))
            rows = []
            for n, raw in enumerate(reader, start=1):
                if None in raw:
                    raise InputDataError(f"row {n} has more fields than the header", source=str(path))
                qid = (raw.get("question_id") or "").strip()
                if not qid:
                    raise InputDataError(f"row {n}: empty question_id", field="question_id", source=str(path))
                label = (raw.get(label_col) or "").strip() or None
                rows.append(LabeledAnswer(
                    row=n, question_id=qid, question=raw.get("question") or "",
                    reference_answer=raw.get("reference_answer") or "", answer=raw.get("answer") or "",
                    score=_float(raw.get("score"), path, n, "score"),
                    max_score=_float(raw.get("max_score"), path, n, "max_score"),
                    label=label, answer_id=(raw.get("answer_id") or raw.get("student_id") or str(n)),
                    extra={k: v for k, v in raw.items() if k not in {"answer"}}, source=str(path),
                ))
        except UnicodeDecodeError as exc:
            raise InputDataError(f"not UTF-8 text: {exc}", source=str(path)) from None
        except csv.Error as exc:
            raise InputDataError(f"malformed CSV at line {reader.line_num}: {exc}", source=str(path)) from None
    if not rows:
        raise InputDataError("the file has a header but no rows", source=str(path))
    if label_col not in header and all(r.score is None for r in rows):
        raise InputDataError(f"no label column '{label_col}' and no scores: nothing to learn from or compare with",
                             field=label_col, source=str(path))
    return rows


def corpus_fingerprint(path: str | Path) -> str:
    """sha256 of a corpus file, recorded in model metadata."""
    return sha256_of(Path(path))


def corpora_fingerprint(digests: list[str]) -> str:
    """The fingerprint of files read together, from their sha256s (:func:`corpus_fingerprint`) in order:
    one file's own, or the sha256 of several."""
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256("\n".join(digests).encode("ascii")).hexdigest()


def read_corpora(paths, label_col: str = "label") -> list[LabeledAnswer]:
    """Rows of several corpora graded alike, pooled (e.g. two languages of one dataset).

    A ``question_id`` in two files is one question when its prompt and reference answers agree (two
    exports of one quiz); otherwise the later file's question is kept apart as ``<file stem>:<id>``.
    The files must grade with one set of labels (a file may use only some of them), or all with scores
    only: a corpus labelled pass/fail pooled with one labelled correct/incorrect would teach the
    combiner four labels for two grades.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputDataError("no corpus given")
    if len(paths) == 1:
        return read_corpus(paths[0], label_col=label_col)
    seen: dict[str, tuple] = {}  # question id -> (prompts, references) of the file that introduced it
    label_sets: dict[Path, set] = {}
    pooled: list[LabeledAnswer] = []
    for path in paths:
        rows = read_corpus(path, label_col=label_col)
        label_sets[path] = {r.label for r in rows if r.label}
        own: dict[str, tuple] = {}
        for r in rows:
            prompts, refs = own.setdefault(r.question_id, (set(), set()))
            prompts.add(r.question.strip())
            refs.add(r.reference_answer.strip())
        renamed = {qid: f"{path.stem}:{qid}" for qid, texts in own.items() if qid in seen and seen[qid] != texts}
        for qid, texts in own.items():
            seen.setdefault(renamed.get(qid, qid), texts)
        pooled.extend(replace(r, question_id=renamed[r.question_id]) if r.question_id in renamed else r
                      for r in rows)
    sets = list(label_sets.values())
    if any(bool(a) != bool(b) or not (a <= b or b <= a) for a in sets for b in sets):
        listed = "; ".join(f"{p.name}: {sorted(s) or 'scores only'}" for p, s in label_sets.items())
        raise InputDataError(f"the corpora grade with different labels ({listed}); pool corpora labelled alike, "
                             f"or learn their scores (--target score)", field=label_col, source=str(paths[0]))
    return pooled


def build_questions(rows: list[LabeledAnswer], examples: dict[str, list[LabeledAnswer]] | None = None,
                    ) -> dict[str, ShortAnswerQuestion]:
    """One short-answer question per question_id, with every distinct reference answer kept.

    ``examples`` maps a question id to graded answers that become the question's examples.
    """
    by_q: dict[str, list[LabeledAnswer]] = defaultdict(list)
    for r in rows:
        by_q[r.question_id].append(r)
    for qid in examples or {}:
        by_q.setdefault(qid, [])
    questions = {}
    for qid, group in by_q.items():
        prompts = Counter(r.question.strip() for r in group if r.question.strip())
        refs = list(dict.fromkeys(r.reference_answer.strip() for r in group if r.reference_answer.strip()))
        max_scores = [r.max_score for r in group if r.max_score]
        max_points = max(max_scores) if max_scores else 1.0
        graded = []
        for ex in (examples or {}).get(qid, []):
            if ex.fraction is not None:
                graded.append(GradedExample(answer=ex.answer, points=ex.fraction * max_points))
            elif ex.label:
                graded.append(GradedExample(answer=ex.answer, label=ex.label))
        questions[qid] = ShortAnswerQuestion(
            id=safe_id(qid), prompt=prompts.most_common(1)[0][0] if prompts else "",
            reference_answers=tuple(refs), max_points=max_points, examples=tuple(graded), language="auto")
    return questions


def safe_id(qid: str) -> str:
    """A rubric-valid id for an arbitrary corpus question id."""
    cleaned = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in qid)
    return cleaned if cleaned[:1].isalnum() else f"q{cleaned}"
