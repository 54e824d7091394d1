"""The output folder: shards named by the rows they hold, one record per shard, and the run's manifest.

A shard ``part-FFFFF-AAAAAAAAAA-BBBBBBBBBB.parquet`` (or ``.csv``) holds rows A to B of
input file F, and ``_shards/`` holds its record: its counts, the encoder that graded it
and its summary. The record is written before the shard, each through a rename, so a
shard on disk is complete and has its record. Which rows are done is read from the
names alone; names starting with ``_`` or ``.`` are skipped by Parquet and Arrow readers.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from grader.errors import InputDataError
from grader.files.summary import QuestionStats, Summary

RECORDS = "_shards"
MANIFEST = "_grader.json"
_NAME = re.compile(r"^part-(\d{5})-(\d{10})-(\d{10})\.(parquet|csv)$")


@dataclass(frozen=True, order=True)
class Shard:
    """One shard file: rows ``first`` to ``last`` of input file ``file``."""

    file: int
    first: int
    last: int
    path: Path

    @property
    def rows(self) -> int:
        return self.last - self.first + 1

    @property
    def record(self) -> Path:
        """Its record in ``_shards/``."""
        return self.path.parent / RECORDS / (self.path.stem + ".json")


def shard_name(file: int, first: int, last: int, fmt: str) -> str:
    """The file name of the shard of rows ``first`` to ``last`` of input file ``file``."""
    return f"part-{file:05d}-{first:010d}-{last:010d}.{fmt}"


def list_shards(folder: Path, fmt: str) -> list[Shard]:
    """The complete shards of format ``fmt`` in ``folder``, in file and row order."""
    if not folder.is_dir():
        return []
    out = []
    for path in folder.iterdir():
        m = _NAME.match(path.name)
        if m and m.group(4) == fmt:
            out.append(Shard(int(m.group(1)), int(m.group(2)), int(m.group(3)), path))
    return sorted(out)


def done_ranges(shards: list[Shard]) -> dict[int, list[tuple[int, int]]]:
    """Each input file's graded (first, last) row ranges."""
    done: dict[int, list[tuple[int, int]]] = {}
    for s in shards:
        done.setdefault(s.file, []).append((s.first, s.last))
    return done


def exactly_once(shards: list[Shard], rows: dict[int, int]) -> list[Shard]:
    """The shards that hold each row of each file exactly once; ``rows`` maps a file's index to its rows.

    A shard whose rows another shard holds too (a retried task cut differently) is deleted with its
    record. A gap, or two shards that share only part of their rows, is an error: no choice of whole
    shards would hold every row once.
    """
    keep, drop = [], []
    by_file: dict[int, list[Shard]] = {}
    for s in shards:
        by_file.setdefault(s.file, []).append(s)
    for index, total in rows.items():
        end = 0  # last row held so far
        for s in sorted(by_file.pop(index, []), key=lambda s: (s.first, -s.last)):
            if s.last <= end:
                drop.append(s)
                continue
            if s.first != end + 1:
                what = f"rows {end + 1} to {s.first - 1} are in no shard" if s.first > end + 1 else \
                    f"{s.path.name} shares rows {s.first} to {end} with another shard"
                raise InputDataError(f"{what} of input file #{index + 1}; delete the output folder and run again",
                                     field="output", source=str(s.path.parent))
            keep.append(s)
            end = s.last
        if end > total:
            raise InputDataError(f"shards hold rows past the last row ({total}) of input file #{index + 1}; delete "
                                 "the output folder and run again", field="output")
        if end != total:
            raise InputDataError(f"rows {end + 1} to {total} of input file #{index + 1} are in no shard; run the "
                                 "same command again to grade them", field="output")
    if by_file:
        stray = sorted(s.path.name for group in by_file.values() for s in group)
        raise InputDataError(f"shards of input files this run does not have: {', '.join(stray[:3])}",
                             field="output")
    for s in drop:
        s.record.unlink(missing_ok=True)
        s.path.unlink(missing_ok=True)
    return keep


def read_record(shard: Shard) -> dict:
    """The record of a complete shard."""
    try:
        return json.loads(shard.record.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputDataError(f"the record of {shard.path.name} cannot be read ({exc}); delete the shard and run "
                             "again to grade its rows anew", field="output", source=str(shard.record)) from None


def summary_record(summary: Summary, row_offset: int) -> dict:
    """A shard's :class:`Summary` as JSON, its row numbers moved by ``row_offset`` to the input file's.

    Answers to review are kept as row numbers only: :func:`fill_reviews` reads the few the
    merged summary keeps from the shards, so a record stays small however long the answers.
    """
    questions = {}
    for qid, s in summary.questions.items():
        questions[qid] = {
            "max_points": s.max_points, "answers": s.answers, "graded": s.graded, "points_sum": s.points_sum,
            "reviews": s.reviews, "errors": s.errors, "empty": s.empty, "labels": dict(s.labels),
            "points": [[p, n] for p, n in s.points.items()],
            "review_rows": [item["row"] + row_offset for item in s.review_items]}
    return {"rows": summary.rows, "error_rows": summary.error_rows, "questions": questions}


def add_record(summary: Summary, record: dict, file: int) -> None:
    """Add the summary of a shard of input file ``file`` (from :func:`summary_record`); add shards in row order."""
    summary.rows += record["rows"]
    summary.error_rows += record["error_rows"]
    for qid, q in record["questions"].items():
        s = summary.questions.setdefault(qid, QuestionStats(qid))
        if q["graded"]:
            s.max_points = q["max_points"]
        s.answers += q["answers"]
        s.graded += q["graded"]
        s.points_sum += q["points_sum"]
        s.reviews += q["reviews"]
        s.errors += q["errors"]
        s.empty += q["empty"]
        s.labels.update(Counter(q["labels"]))
        s.points.update(Counter({float(p): n for p, n in q["points"]}))
        room = summary.review_limit - len(s.review_items)
        s.review_items.extend({"file": file, "row": row} for row in q["review_rows"][:max(0, room)])


def fill_reviews(summary: Summary, shards: list[Shard], fields: list[str], student: int | None, answer: int,
                 delimiter: str = ",") -> None:
    """Complete the answers to review that :func:`add_record` kept as rows, from the shards that hold them.

    ``fields`` names the grade columns in the order they close each output row (before the input
    file and row columns); ``student`` and ``answer`` are the indexes of those input columns.
    """
    wanted: dict[Shard, set[int]] = {}
    for stats in summary.questions.values():
        for item in stats.review_items:
            shard = next(s for s in shards if s.file == item["file"] and s.first <= item["row"] <= s.last)
            wanted.setdefault(shard, set()).add(item["row"])
    rows: dict[tuple[int, int], list[str]] = {}
    for shard, numbers in wanted.items():
        for row in read_rows(shard, delimiter):
            if int(row[-1]) in numbers:
                rows[shard.file, int(row[-1])] = row
    for stats in summary.questions.values():
        for item in stats.review_items:
            row = rows[item.pop("file"), item["row"]]
            values = dict(zip(fields, row[-2 - len(fields):-2]))
            item.update({"student": row[student] if student is not None else "", "answer": row[answer][:2000],
                         **{k: values.get(k, "") for k in ("points", "max_points", "label", "confidence", "flags",
                                                            "feedback")}})


def read_rows(shard: Shard, delimiter: str = ",") -> list[list[str]]:
    """The data rows of a shard as text cells, its input row number last; ``delimiter``: that of CSV shards."""
    if shard.path.suffix == ".csv":
        import csv

        with open(shard.path, encoding="utf-8-sig", newline="") as fh:
            return list(csv.reader(fh, delimiter=delimiter))[1:]
    import pyarrow.parquet as pq

    table = pq.read_table(shard.path)
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return [[str(c[j]) for c in columns] for j in range(table.num_rows)]


def write_file(path: Path, data: bytes) -> None:
    """Write ``path`` through a temporary file beside it and a rename, so it appears complete or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
