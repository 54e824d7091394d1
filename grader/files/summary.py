"""Per-question summary of a graded batch: mean points, label distribution, review and error counts."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

LABEL_ORDER = ("correct", "partially_correct", "incorrect")
REVIEW_LIMIT = 200  # answers needing review kept per question for the report


@dataclass
class QuestionStats:
    """Running totals for one question."""

    question_id: str
    max_points: float = 0.0
    answers: int = 0
    graded: int = 0
    points_sum: float = 0.0
    reviews: int = 0
    errors: int = 0
    empty: int = 0
    labels: Counter = field(default_factory=Counter)
    points: Counter = field(default_factory=Counter)
    review_items: list = field(default_factory=list)

    @property
    def mean_points(self) -> float | None:
        """Mean points over graded answers, or None when none was graded."""
        return self.points_sum / self.graded if self.graded else None


class Summary:
    """Accumulates graded answers and renders the per-question table.

    ``add`` takes the values as they appear in the graded CSV, so a resumed run
    can rebuild the same summary from the rows already written.
    """

    def __init__(self, question_ids: list[str], review_limit: int = REVIEW_LIMIT):
        self.questions = {qid: QuestionStats(qid) for qid in question_ids}
        self.review_limit = review_limit
        self.rows = 0
        self.error_rows = 0

    def add_row(self, error: str) -> None:
        """Count one input row and whether it carries an error."""
        self.rows += 1
        if error:
            self.error_rows += 1

    def add(self, question_id: str, fields: dict[str, str], error: str = "", student: str = "",
            answer: str = "", row: int = 0) -> None:
        """Count one answer; ``fields`` holds the output columns (points, label, ...) as strings."""
        stats = self.questions.get(question_id)
        if stats is None:
            return  # an unknown question id: counted as a row error only
        stats.answers += 1
        if error:
            stats.errors += 1
        if not fields.get("points"):
            return
        points = float(fields["points"])
        stats.max_points = float(fields["max_points"])
        stats.graded += 1
        stats.points_sum += points
        stats.points[points] += 1
        stats.labels[fields["label"]] += 1
        if "empty" in fields.get("flags", "").split("; "):
            stats.empty += 1
        if fields.get("needs_review") == "true":
            stats.reviews += 1
            if len(stats.review_items) < self.review_limit:
                stats.review_items.append({
                    "row": row, "student": student, "answer": answer[:2000], "points": fields["points"],
                    "max_points": fields["max_points"], "label": fields["label"],
                    "confidence": fields["confidence"], "flags": fields.get("flags", ""),
                    "feedback": fields.get("feedback", "")})

    @property
    def labels(self) -> list[str]:
        """Every label seen, in the usual order first."""
        seen = {label for s in self.questions.values() for label in s.labels}
        return [label for label in LABEL_ORDER if label in seen] + sorted(seen - set(LABEL_ORDER))

    def table_rows(self) -> list[dict]:
        """One dict per question (and a final 'all' row), as written by :meth:`write_csv`."""
        out = []
        labels = self.labels
        for s in self.questions.values():
            mean = s.mean_points
            row = {"question_id": s.question_id, "answers": s.answers, "graded": s.graded,
                   "mean_points": "" if mean is None else f"{mean:.2f}",
                   "max_points": f"{s.max_points:g}" if s.graded else "",
                   "mean_percent": "" if mean is None or not s.max_points else f"{100 * mean / s.max_points:.0f}"}
            row.update({label: s.labels.get(label, 0) for label in labels})
            row.update({"empty": s.empty, "needs_review": s.reviews, "errors": s.errors})
            out.append(row)
        return out

    def format_table(self) -> str:
        """The summary as an aligned text table, followed by the row and error counts."""
        rows = self.table_rows()
        if not rows:
            return "no questions"
        cols = list(rows[0])
        cells = [cols] + [[str(r[c]) for c in cols] for r in rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
        lines = ["  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths)))
                 for row in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"{self.rows} rows, {self.error_rows} with errors")
        return "\n".join(lines)

    def write_csv(self, path: str | Path) -> None:
        """Write the per-question table as CSV, atomically."""
        rows = self.table_rows()
        buf = io.StringIO(newline="")
        if rows:
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\r\n")
            writer.writeheader()
            writer.writerows(rows)
        write_atomic(path, buf.getvalue().encode("utf-8"))


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write bytes to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
