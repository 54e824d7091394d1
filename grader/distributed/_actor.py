"""The Ray Data callable class that grades: one per actor, the model loaded and verified once.

Each stretch of consecutive rows of a batch is graded by :func:`grade_csv`, the
function behind ``grader grade``, on a small CSV of the input's header and those
rows, so the cells, grade columns, errors and formula neutralisation are the ones
``grader grade`` writes. The stretch is then written as one shard, its record first.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from grader.distributed._shards import Shard, shard_name, summary_record, write_file
from grader.engine import Grader, get_embedder
from grader.files.batch import FIELDS, grade_csv
from grader.files.csvio import clean, format_rows
from grader.files.mapping import match_question
from grader.rubric import Rubric
from grader.text import normalize

ADDED = len(FIELDS) + 1  # the grade columns of a long file and its error column close every output row


@dataclass(frozen=True)
class Job:
    """What every actor needs to know, sent once when it starts."""

    rubric: Rubric
    combiner: object
    header: tuple[str, ...]  # the input files' header
    width: int  # cells of the widest input row
    columns: dict  # id_col, question_col and answer_col as "#N"
    files: tuple[str, ...]  # input paths by index, written in each shard's input_file column
    output: str
    fmt: str  # "parquet" or "csv"
    delimiter: str = ","
    bom: bool = False
    model: str | None = None
    device: str | None = None
    backend: str = "auto"
    max_answer_chars: int | None = None
    grading_workers: int | str = 0
    cpus: int | None = 1  # cores each actor may use; None beside a GPU
    id_names: tuple[str, str] = ("input_file", "input_row")


class ShardGrader:
    """Grades batches of submission rows and writes each stretch of consecutive rows as one shard."""

    def __init__(self, job: Job):
        import ray

        self.job = job
        self._cores = claim_cores(job.cpus) if job.cpus else None
        embedder = get_embedder(job.model, job.device, job.backend)
        embedder.load()  # checks the weights against their pinned sha256, once for this actor
        grader = Grader(job.rubric, embedder=embedder, combiner=job.combiner, workers=job.grading_workers)
        if job.max_answer_chars is not None:
            grader.max_answer_chars = job.max_answer_chars
        self.grader = RememberingGrader(grader)
        info = embedder.info()
        self.encoder = {"model": info.get("model"), "sha256": info.get("sha256"), "backend": info.get("backend")}
        self.node = ray.get_runtime_context().get_node_id()
        self.tmp = scratch_folder()
        self._questions: dict[str, str | None] = {}
        self.header = self._probe()

    def __call__(self, batch: pa.Table) -> pa.Table:
        files = batch.column("file").to_pylist()
        rows = batch.column("row").to_pylist()
        cells = batch.column("cells").to_pylist()
        notes = batch.column("notes").to_pylist()
        start = 0  # a shard per stretch of consecutive rows of one file
        for k in range(1, len(rows) + 1):
            if k == len(rows) or files[k] != files[start] or rows[k] != rows[k - 1] + 1:
                self._shard(files[start], rows[start:k], cells[start:k], notes[start:k])
                start = k
        return pa.table({"file": batch.column("file"), "row": batch.column("row")})

    def __del__(self):
        if getattr(self, "tmp", None) is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- internals ----------------------------------------------------------------------
    def _grade(self, rows: list[list[str]]):
        """(output header, output rows, result) of :func:`grade_csv` on the header and ``rows``."""
        src, out = self.tmp / "rows.csv", self.tmp / "graded.csv"
        with open(src, "w", encoding="utf-8", errors="surrogateescape", newline="") as fh:
            csv.writer(fh, lineterminator="\r\n").writerows([list(self.job.header), *rows])
        result = grade_csv(src, self.job.rubric, out, grader=self.grader, layout="long", encoding="utf-8",
                           delimiter=",", chunk_size=max(1, len(rows)), progress=False, log=lambda msg: None,
                           **self.job.columns)
        with open(out, encoding="utf-8-sig", newline="") as fh:
            written = list(csv.reader(fh))
        if len(written) != len(rows) + 1:
            raise RuntimeError(f"grade_csv wrote {len(written) - 1} rows for {len(rows)}")
        return written[0], written[1:], result

    def _probe(self) -> list[str]:
        """The output columns for the whole input: those of a file with the header and one row as wide as its widest."""
        header, _, _ = self._grade([[""] * self.job.width])
        return header

    def _shard(self, file: int, numbers: list[int], cells: list[list[bytes]], notes: list[list[str]]) -> None:
        job = self.job
        shard = Shard(file, numbers[0], numbers[-1], Path(job.output) / shard_name(file, numbers[0], numbers[-1],
                                                                                     job.fmt))
        if shard.path.exists():
            return  # written by an attempt of this task that was cut short after it (a killed actor)
        rows = [[c.decode("utf-8", "surrogateescape") for c in row] for row in cells]
        graded = self.grader.graded
        header, written, result = self._grade(rows)
        if header[-ADDED:] != self.header[-ADDED:]:
            raise RuntimeError(f"grade columns {header[-ADDED:]} differ from {self.header[-ADDED:]}")
        # A stretch without the file's widest rows has fewer input-side columns: pad them empty.
        have, want = len(header) - ADDED, len(self.header) - ADDED
        out = []
        summary = result.summary
        for row, row_notes, number, cells_in in zip(written, notes, numbers, rows):
            row = row[:have] + [""] * (want - have) + row[have:]
            if row_notes:  # what reading the original file repaired (the small CSV needed no repair)
                if not row[-1]:  # so the row has an error after all, and counts as one
                    summary.error_rows += 1
                    qid = self._question(cells_in)
                    if qid is not None:
                        summary.questions[qid].errors += 1
                row[-1] = "; ".join([e for e in (row[-1],) if e] + list(row_notes))
            out.append(row + [job.files[file], str(number)])
        record = {"file": file, "first": shard.first, "last": shard.last, "rows": len(out),
                  "error_rows": summary.error_rows, "answers": result.answers,
                  "graded_now": self.grader.graded - graded,
                  "node": self.node, "pid": os.getpid(), "encoder": self.encoder,
                  "summary": summary_record(summary, shard.first - 1)}
        write_file(shard.record, json.dumps(record).encode("utf-8"))
        write_file(shard.path, self._encode(out))

    def _question(self, cells: list[str]) -> str | None:
        """The rubric question a row's question cell names, as ``grader grade`` resolves it (None: none)."""
        index = int(self.job.columns["question_col"][1:]) - 1
        value = clean(cells[index]).strip() if index < len(cells) else ""
        if value not in self._questions:
            ids = {q.id for q in self.job.rubric.questions}
            hit = match_question(value, self.job.rubric) if value and value not in ids else None
            self._questions[value] = value if value in ids else (hit[0] if hit else None)
        return self._questions[value]

    def _encode(self, rows: list[list[str]]) -> bytes:
        """The shard file's bytes: Parquet with text columns and an integer row number, or CSV."""
        names = list(self.header) + list(self.job.id_names)
        if self.job.fmt == "csv":
            text = format_rows([names, *rows], self.job.delimiter)
            return (b"\xef\xbb\xbf" if self.job.bom else b"") + text.encode("utf-8")
        import pyarrow.parquet as pq

        columns = [pa.array([r[i] for r in rows], pa.string()) for i in range(len(names) - 1)]
        columns.append(pa.array([int(r[-1]) for r in rows], pa.int64()))
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_arrays(columns, names=names), buf)
        return buf.getvalue()


class RememberingGrader:
    """A :class:`Grader` that remembers its grades across calls, as ``grader grade`` does across chunks.

    ``grade_csv`` grades each distinct answer of a call once; an actor calls it once a shard, and
    the answers that recur across a class (a letter, "true", a common phrasing) would be graded
    again in every shard. Keys are those the engine deduplicates by; the oldest half is dropped
    when ``size`` is reached.
    """

    def __init__(self, grader: Grader, size: int = 50_000):
        self._grader, self._size = grader, size
        self._grades: dict[tuple, object] = {}
        self._graded = 0  # answers this grader graded, not remembered

    @property
    def graded(self) -> int:
        """Answers graded so far, those remembered not counted."""
        return self._graded

    def __getattr__(self, name):
        return getattr(self._grader, name)

    def __setattr__(self, name, value):
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._grader, name, value)

    def grade_many(self, items):
        """Grade (question_id, answer) pairs, grading only those not graded before."""
        items = list(items)
        limit = self._grader.max_answer_chars
        keys = [(qid, normalize((answer or "")[:limit]), len(answer or "") > limit) for qid, answer in items]
        todo = {}
        for key, item in zip(keys, items):
            if key not in self._grades and key not in todo:
                todo[key] = item
        if todo:
            if len(self._grades) + len(todo) > self._size:
                for old in list(self._grades)[: len(self._grades) // 2]:
                    del self._grades[old]
            self._grades.update(zip(todo, self._grader.grade_many(list(todo.values()))))
            self._graded += len(todo)
        return [self._grades[key] for key in keys]


def scratch_folder() -> Path:
    """A new folder for this process's small CSVs; those of actors that died (killed, say) are removed."""
    base = Path(tempfile.gettempdir())
    for old in base.glob("grader-shards-*"):
        pid = old.name.rsplit("-", 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    folder = base / f"grader-shards-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def claim_cores(count: int):
    """Pin this process to ``count`` cores no other grading actor on the machine holds, and hold them.

    The encoder runs one thread per core it may use; unpinned, each of N actors on an N-core
    node would start N threads. A group of cores is held through an exclusive lock on a file,
    which the system releases when the process ends, so a restarted actor finds it free.
    Returns the held lock (keep it open), or None where nothing was pinned.
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    import fcntl

    cores = sorted(os.sched_getaffinity(0))
    if count >= len(cores):
        return None
    folder = Path(tempfile.gettempdir()) / "grader-ray-cores"
    folder.mkdir(exist_ok=True)
    for k in range(len(cores) // count):
        group = cores[k * count:(k + 1) * count]
        fh = open(folder / f"cores-{'-'.join(map(str, group))}.lock", "a")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        os.sched_setaffinity(0, group)
        return fh
    return None
