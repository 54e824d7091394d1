"""Grading a whole submissions CSV: ``grade_csv(submissions, rubric, output)``.

The file is read and written in chunks, so memory stays bounded on any size.
Every input row and cell comes back in order, with the grade columns added; a
row that cannot be graded carries an ``error`` instead of being dropped.
Identical answers to a question (up to case and spacing) are graded once.
Progress goes to an append-only journal beside the output, so ``resume=True``
continues a killed run without regrading and gives the same bytes as an
uninterrupted run. The output appears only when complete, through a rename.
One run at a time writes an output: it holds ``OUT.lock`` for the whole run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: the lock file is created exclusively instead
    fcntl = None

from grader.files.csvio import (NEVER_CLOSED, CsvFormat, CsvReader, clean, detect_format, format_rows, scan,
                                undecodable)
from grader.errors import InputDataError
from grader.encoding.weights import sha256_of
from grader.files.mapping import ColumnMap, map_columns, match_question
from grader.rubric import Rubric, ShortAnswerQuestion, load_rubric
from grader.files.summary import Summary
from grader.text import normalize

FIELDS = ("points", "max_points", "label", "confidence", "needs_review", "concepts_found", "concepts_missing",
          "feedback", "flags")
BLANK_MARKS = {"-", "–", "—"}  # Moodle writes "-" for a question left unanswered
JOURNAL_VERSION = 2
EXTRA = "extra"


@dataclass
class BatchResult:
    """What :func:`grade_csv` did."""

    output: Path
    format: CsvFormat
    columns: ColumnMap
    rows: int
    error_rows: int
    answers: int
    graded_now: int  # answers the engine graded in this run (after deduplication and resume)
    resumed_rows: int
    summary: Summary
    warnings: list[str] = field(default_factory=list)


def _unique(names: list[str]) -> list[str]:
    """``names`` with each repeat (case and outer spaces aside) renamed ``NAME_2``, ``NAME_3``, ...

    Earlier names keep theirs, and no new name takes one that comes later in the list.
    """
    reserved = {n.strip().lower() for n in names}
    used: set[str] = set()
    out = []
    for i, name in enumerate(names):
        key = name.strip().lower()
        if key in used:  # a blank name becomes column_N first
            stem, k = (name.strip(), 2) if name.strip() else (f"column_{i + 1}", 1)
            while (f"{stem}_{k}" if k > 1 else stem).lower() in used | reserved:
                k += 1
            name = f"{stem}_{k}" if k > 1 else stem
            key = name.lower()
        used.add(key)
        out.append(name)
    return out


def _joined(cells: list[str], delimiter: str) -> str:
    """Cells as one CSV line with the file's delimiter, quoted where needed, so they split back exactly."""
    buf = io.StringIO(newline="")
    csv.writer(buf, delimiter=delimiter, lineterminator="").writerow(cells)
    return buf.getvalue()


class _Plan:
    """Output columns and how to cut each input row into answers to grade.

    The input's columns come first, then, when some row has more cells than the header, one ``extra``
    column holding those cells as a line of CSV (the file's delimiter, quoted where needed), then the
    grade columns. No two output columns share a name: grade columns whose names the input already
    uses get a ``grader_`` prefix, and any name still repeated gets ``_2``, ``_3``, ...
    """

    def __init__(self, cmap: ColumnMap, rubric: Rubric, width: int):
        self.cmap, self.rubric = cmap, rubric
        self.inputs = len(cmap.header)
        self.extra = width > self.inputs
        header = list(cmap.header) + ([EXTRA] if self.extra else [])
        if cmap.layout == "long":
            added = list(FIELDS)
            self.blocks = {None: len(header)}
        else:
            added, self.blocks = [], {}
            for qid in cmap.questions:
                self.blocks[qid] = len(header) + len(added)
                added += [f"{qid}_{f}" for f in FIELDS]
            added += ["total", "max_total"]
        added.append("error")
        taken = {h.strip().lower() for h in header}
        prefix = "grader_" if any(a.lower() in taken for a in added) else ""
        self.header = _unique(header + [prefix + a for a in added])
        self.renamed = [(i, cmap.header[i], n) for i, n in enumerate(self.header[:self.inputs]) if n != cmap.header[i]]
        self.extra_name = self.header[self.inputs] if self.extra else EXTRA
        self._ids = set(self.ids)
        self._resolved: dict[str, str | None] = {}
        self.error_index = len(self.header) - 1

    def cells(self, row: list[str], delimiter: str) -> list[str]:
        """The input part of an output row: the header's cells, then the extra ones joined in one cell."""
        n = self.inputs
        cells = row[:n] + [""] * (n - len(row))
        if self.extra:
            cells.append(_joined(row[n:], delimiter) if len(row) > n else "")
        return cells

    def units(self, row: list[str], notes: list[str] = ()) -> tuple[list[tuple[str | None, str]], list[str]]:
        """(question id or None when unknown, answer) pairs of a row, and the row's errors.

        ``notes`` are what reading the row repaired (:attr:`CsvReader.notes`); they go in its errors.
        """
        c, errors = self.cmap, []
        if len(row) != len(c.header):
            errors.append(f"the row has {len(row)} cells but the header has {len(c.header)}"
                          + ("; missing cells read as empty" if len(row) < len(c.header) else
                             f"; extra cells kept in the {self.extra_name!r} column"))
        errors.extend(notes)
        for i, cell in enumerate(row):
            if undecodable(cell):
                name = c.header[i] if i < len(c.header) else f"{self.extra_name} (cell {i + 1})"
                errors.append(f"column {name!r} holds bytes that are not valid text; they were replaced by U+FFFD")
        cell = lambda i: clean(row[i]) if i is not None and i < len(row) else ""  # noqa: E731
        if c.layout == "long":
            value = cell(c.question_col).strip()
            if not value:
                errors.append(f"no question id in column {c.header[c.question_col]!r}")
                return [(None, "")], errors
            qid = self.resolve(value)
            if qid is None:
                errors.append(f"unknown question {value!r} in column {c.header[c.question_col]!r}; the rubric has "
                              f"{', '.join(self.ids)}")
                return [(None, "")], errors
            return [(qid, cell(c.answer_col))], errors
        units = []
        for qid, col in c.questions.items():
            text = cell(col)
            units.append((qid, "" if text.strip() in BLANK_MARKS else text))
        return units, errors

    def resolve(self, value: str) -> str | None:
        """The rubric question a long file's question cell names: its id, "Q5", "5" or its prompt."""
        if value in self._ids:
            return value
        if value not in self._resolved:
            if len(self._resolved) > 10_000:
                self._resolved.clear()
            hit = match_question(value, self.rubric)
            self._resolved[value] = hit[0] if hit else None
        return self._resolved[value]

    @property
    def ids(self) -> list[str]:
        return [q.id for q in self.rubric.questions]


def _fields(result) -> list[str]:
    return [f"{result.points:g}", f"{result.max_points:g}", result.label, f"{result.confidence:g}",
            "true" if result.needs_review else "false", "; ".join(result.concepts_found),
            "; ".join(result.concepts_missing), result.feedback, "; ".join(f.code for f in result.flags)]


def _encoder_identity(embedder) -> dict:
    """What of the encoder shapes a grade: model, weights and precision, so a resumed run never mixes two.

    The runtime is left out: fp32 on torch and on ONNX Runtime give the same grades.
    """
    if callable(getattr(embedder, "load", None)):
        embedder.load()  # the backend "auto" resolves to is known once loaded
    info = embedder.info() if callable(getattr(embedder, "info", None)) else {}
    return {"model": info.get("model", getattr(embedder, "name", None)),
            "sha256": info.get("sha256", getattr(embedder, "sha256", None)), "backend": info.get("backend")}


def _combiner_identity(combiner) -> str | None:
    """The sha256 of a combiner's canonical JSON (``to_dict()`` with sorted keys): two combiners that
    could grade one answer differently never share it. None for a grader without a combiner."""
    if combiner is None:
        return None
    data = combiner.to_dict() if callable(getattr(combiner, "to_dict", None)) else repr(combiner)
    return _json_sha256(data)


def _json_sha256(obj) -> str:
    """sha256 of ``obj`` as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


_PARTS = {"input": "input file", "rubric": "rubric", "encoder": "encoder (model, weights or precision)",
          "combiner": "combiner", "scorer": "fine-tuned scorer (folder or precision)",
          "options": "options (columns, format, chunk size, limits)"}


def _fingerprint(path: Path, rubric: Rubric, plan: _Plan, fmt: CsvFormat, grader, chunk_size: int,
                 cache_size: int) -> tuple[str, dict[str, str]]:
    """(fingerprint, its parts): what a resumed run must share with the interrupted one, hashed by part so
    a refusal can say which part differs."""
    options = {"header": plan.header, "fmt": [fmt.encoding, fmt.delimiter, fmt.fallback],
               "map": [plan.cmap.layout, plan.cmap.id_col, plan.cmap.question_col, plan.cmap.answer_col,
                       plan.cmap.questions], "chunk": chunk_size, "cache": cache_size,
               "max_chars": grader.max_answer_chars, "review": grader.review_threshold, "version": JOURNAL_VERSION}
    parts = {"input": sha256_of(path), "rubric": _json_sha256(rubric.model_dump(mode="json")),
             "encoder": _json_sha256(_encoder_identity(grader.embedder)),
             "combiner": _combiner_identity(grader.combiner), "options": _json_sha256(options)}
    scorer = getattr(grader, "scorer", None)
    if scorer is not None:  # the sha256 of the ONNX file it grades with: its weights and its precision
        parts["scorer"] = scorer.sha256
    return _json_sha256(parts), parts


def _read_journal(path: Path) -> tuple[str | None, dict, int, int]:
    """(fingerprint, its parts, rows done, bytes written) of the last complete journal record."""
    fingerprint, parts, rows, size = None, {}, 0, 0
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break  # the record being written when the run died
            try:
                rec = json.loads(line)
            except ValueError:
                break
            if "fingerprint" in rec:
                fingerprint, parts = rec["fingerprint"], rec.get("parts") or {}
            else:
                rows, size = int(rec["rows"]), int(rec["bytes"])
    return fingerprint, parts, rows, size


@contextmanager
def _output_lock(out: Path):
    """Hold ``OUT.lock`` for the run: no two runs write one output, its ``.part`` or its journal.

    An exclusive ``flock`` where the platform has it (released by the system if the run dies, so a
    stale file never blocks); elsewhere the lock file is created exclusively and a crashed run leaves
    it behind. Either way a second run fails at once; the lock file is removed when the run ends.
    """
    lock = out.with_name(out.name + ".lock")
    busy = (f"another grader run is writing {out} (lock file {lock}); wait for it or choose another `output`")
    fd = None
    try:
        if fcntl is None:
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                raise InputDataError(busy + "; if no run is going on, one that crashed left the lock file: "
                                     "delete it", field="output") from None
        else:
            for _ in range(10):
                fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    fd = None
                    raise InputDataError(busy, field="output") from None
                try:  # the run that held it may have removed the file between our open and our lock
                    if os.path.samestat(os.fstat(fd), os.stat(lock)):
                        break
                except FileNotFoundError:
                    pass
                os.close(fd)
                fd = None
            else:
                raise InputDataError(busy, field="output")
            os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError as exc:
        if fd is not None:
            os.close(fd)
        raise InputDataError(f"cannot create the lock file {lock}: {exc.strerror or exc}", field="output") from None
    try:
        yield lock
    finally:
        try:
            os.unlink(lock)  # before closing, so the next run never locks a file about to go
        except OSError:
            pass
        os.close(fd)


class _Cache:
    """Grades of answers already seen, keyed by (question, normalised answer); cleared when full.

    It changes only at chunk boundaries and only from the written rows, so a
    resumed run rebuilds exactly the state an uninterrupted run had.
    """

    def __init__(self, size: int):
        self.size, self.data = size, {}

    @staticmethod
    def key(qid: str, answer: str, limit: int) -> tuple:
        text = normalize(answer[:limit])
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        return qid, digest, len(answer) > limit

    def end_chunk(self, entries: list[tuple[tuple, list[str]]]) -> None:
        for key, fields in entries:
            self.data.setdefault(key, fields)
        if len(self.data) > self.size:
            self.data.clear()


def grade_csv(submissions: str | Path, rubric: Rubric | str | Path, output: str | Path | None = None, *,
              grader=None, layout: str = "auto", id_col: str | None = None, question_col: str | None = None,
              answer_col: str | None = None, maps: list[str] | None = None, encoding: str | None = None,
              delimiter: str | None = None, chunk_size: int = 500, resume: bool = False,
              progress: bool | None = None, cache_size: int = 20_000, log=None) -> BatchResult:
    """Grade every answer in a submissions CSV and write the graded CSV to ``output``.

    ``output`` defaults to ``<name>.graded.csv`` beside the input. ``grader`` is a
    :class:`~grader.engine.Grader` (default: one with the shared default model).
    ``log`` receives one-line messages (the mapping used, warnings); default: stderr.
    Raises :class:`InputDataError` for a file that cannot be read as a table at all.
    """
    src = Path(submissions)
    rubric = rubric if isinstance(rubric, Rubric) else load_rubric(rubric)
    out = Path(output) if output else src.with_name(src.stem + ".graded.csv")
    if out.resolve() == src.resolve():
        raise InputDataError("the output would overwrite the input; choose another -o", field="output",
                             source=str(src))
    if chunk_size < 1:
        raise InputDataError(f"chunk_size must be >= 1. Got {chunk_size}.", field="chunk_size")
    log = log or (lambda msg: print(msg, file=sys.stderr))
    out.parent.mkdir(parents=True, exist_ok=True)
    with _output_lock(out):
        return _grade(src, rubric, out, grader, dict(layout=layout, id_col=id_col, question_col=question_col,
                                                    answer_col=answer_col, maps=maps), encoding, delimiter,
                      chunk_size, resume, progress, cache_size, log)


def _grade(src: Path, rubric: Rubric, out: Path, grader, columns: dict, encoding, delimiter, chunk_size: int,
           resume: bool, progress, cache_size: int, log) -> BatchResult:
    """:func:`grade_csv` once it holds the output's lock."""
    fmt = detect_format(src, encoding, delimiter)
    info = scan(src, fmt)
    if info.unclosed_quote_line:
        raise InputDataError(f"line {info.unclosed_quote_line}: {NEVER_CLOSED}", source=str(src))
    cmap = map_columns(info.header, rubric, **columns, source=str(src))
    log(f"{src}: {fmt.describe()}, {info.rows} rows\n{cmap.describe()}")
    warnings = [f"{src}: the header: {note}" for note in info.header_notes]
    if info.rows == 0:
        warnings.append(f"{src}: the file has a header but no answer rows")
    if grader is None:
        from grader.engine import Grader

        grader = Grader(rubric)
    plan = _Plan(cmap, rubric, max(info.max_width, len(info.header)))
    warnings += [f"{src}: column {i + 1} {old!r} is {new!r} in the output, so no two columns share a name"
                 for i, old, new in plan.renamed]
    qids = [None] if cmap.layout == "long" else list(cmap.questions)
    summary = Summary(list(plan.ids) if cmap.layout == "long" else qids)
    questions = {q.id: q for q in rubric.questions}
    part, journal = out.with_name(out.name + ".part"), out.with_name(out.name + ".journal")
    fingerprint, parts = _fingerprint(src, rubric, plan, fmt, grader, chunk_size, cache_size)
    cache = _Cache(cache_size)
    done, size = 0, 0
    if resume and journal.exists() and part.exists():
        old, old_parts, done, size = _read_journal(journal)
        if old != fingerprint:
            differ = [name for key, name in _PARTS.items() if old_parts.get(key) != parts.get(key)] if old_parts else []
            what = ", ".join(differ) if differ else "input file, rubric or options"
            raise InputDataError(f"{journal} belongs to a run with another {what}; run without --resume to start "
                                 "over", field="resume", source=str(src))
        if part.stat().st_size < size:
            raise InputDataError(f"{part} is shorter than its journal says; run without --resume to start over",
                                 field="resume", source=str(src))
        log(f"resuming after {done} of {info.rows} rows")
    elif resume:
        log("nothing to resume: starting from the first row")
    if not (resume and done):
        done, size = 0, 0
    resumed_from = done
    if size == 0:
        head = (b"\xef\xbb\xbf" if fmt.output_encoding == "utf-8-sig" else b"")
        head += format_rows([plan.header], fmt.delimiter).encode("utf-8")
        with open(part, "wb") as fh:
            fh.write(head)
            fh.flush()
            os.fsync(fh.fileno())
        with open(journal, "wb") as jf:
            jf.write(json.dumps({"fingerprint": fingerprint, "parts": parts}).encode() + b"\n")
            jf.write(json.dumps({"rows": 0, "bytes": len(head)}).encode() + b"\n")
            jf.flush()
            os.fsync(jf.fileno())
        size = len(head)
    if progress is None:
        progress = sys.stderr.isatty()
    from tqdm import tqdm

    bar = tqdm(total=info.rows, initial=done, unit="row", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    try:
        graded_now, answers = _run(src, fmt, plan, cmap, cache, summary, grader, questions, part, journal, chunk_size,
                                   done, size, bar)
    finally:
        bar.close()
    os.replace(part, out)
    journal.unlink(missing_ok=True)
    return BatchResult(out, fmt, cmap, summary.rows, summary.error_rows, answers, graded_now, resumed_from,
                       summary, warnings)


def _run(src, fmt, plan, cmap, cache, summary, grader, questions, part, journal, chunk_size, done, size, bar):
    """Grade the rows after ``done`` and append them to the part file; returns (graded now, answers)."""
    limit = grader.max_answer_chars
    graded_now = answers = 0
    id_col = cmap.id_col
    with CsvReader(src, fmt) as reader, open(part, "r+b") as fh, open(journal, "ab") as jf:
        fh.truncate(size)
        fh.seek(size)
        while not next(reader):  # the header, after any blank lines
            pass
        row_no = 0
        replay = _replayer(part, fmt, plan, done) if done else None
        for chunk in reader.chunks(chunk_size):
            entries: list[tuple[tuple, list[str]]] = []
            if row_no + len(chunk) <= done:  # written before the interruption: rebuild state, do not regrade
                for (line, row, _), written in zip(chunk, replay):
                    row_no += 1
                    units, _ = plan.units(row)
                    _account(plan, summary, units, written, row_no, row, id_col, limit, entries, cache)
                    answers += sum(q is not None for q, _ in units)
                cache.end_chunk(entries)
                continue
            parsed = [plan.units(row, notes) for _, row, notes in chunk]
            keys = [[cache.key(q, a, limit) if q is not None else None for q, a in units] for units, _ in parsed]
            todo: dict[tuple, tuple[str, str]] = {}
            for (units, _), row_keys in zip(parsed, keys):
                for (qid, answer), key in zip(units, row_keys):
                    if key is not None and key not in cache.data and key not in todo:
                        todo[key] = (qid, answer)
            results = dict(zip(todo, grader.grade_many(list(todo.values())))) if todo else {}
            graded_now += len(todo)
            rows_out = []
            for (line, row, _), (units, errors), row_keys in zip(chunk, parsed, keys):
                row_no += 1
                cells = plan.cells(row, fmt.delimiter)
                added: list[str] = []
                total = max_total = 0.0
                for (qid, answer), key in zip(units, row_keys):
                    if qid is None:
                        added += [""] * len(FIELDS)
                        continue
                    answers += 1
                    fields = cache.data.get(key) or _fields(results[key])
                    added += fields
                    total += float(fields[0])
                    max_total += float(fields[1])
                    if len(answer) > limit and isinstance(questions[qid], ShortAnswerQuestion):
                        errors.append(f"{qid + ': ' if cmap.layout == 'wide' else ''}the answer has {len(answer)} "
                                      f"characters, over the limit of {limit}; it was graded on its first {limit} "
                                      "characters and flagged 'truncated'")
                if cmap.layout == "wide":
                    added += [f"{total:g}", f"{max_total:g}"]
                added.append("; ".join(errors))
                rows_out.append(cells + added)
            data = format_rows(rows_out, fmt.delimiter).encode("utf-8")
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            size += len(data)
            done = row_no
            jf.write(json.dumps({"rows": done, "bytes": size}).encode() + b"\n")
            jf.flush()
            os.fsync(jf.fileno())
            # Summary and cache are fed from the written cells, exactly as a resumed run replays them.
            entries = []
            base = row_no - len(chunk)
            for k, ((line, row, _), written) in enumerate(zip(chunk, _parse_written(data, fmt))):
                _account(plan, summary, parsed[k][0], written, base + k + 1, row, id_col, limit, entries, cache,
                         keys[k])
            cache.end_chunk(entries)
            bar.update(len(chunk))
    return graded_now, answers


def _account(plan: _Plan, summary: Summary, units, written: list[str], row_no: int, row: list[str],
             id_col, limit: int, entries: list, cache, keys=None) -> None:
    """Add one written row to the summary and its grades to the cache entries of the chunk."""
    error = written[plan.error_index] if plan.error_index < len(written) else ""
    summary.add_row(error)
    student = clean(row[id_col]) if id_col is not None and id_col < len(row) else ""
    for k, (qid, answer) in enumerate(units):
        if qid is None:
            continue
        start = plan.blocks[None if plan.cmap.layout == "long" else qid]
        fields = written[start:start + len(FIELDS)]
        entries.append((keys[k] if keys else cache.key(qid, answer, limit), fields))
        summary.add(qid, dict(zip(FIELDS, fields)), error, student, clean(answer), row_no)


def _parse_written(data: bytes, fmt: CsvFormat) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=fmt.delimiter))


def _replayer(part: Path, fmt: CsvFormat, plan: _Plan, rows: int):
    """The first ``rows`` data rows already written to the part file."""
    out = CsvReader(part, CsvFormat("utf-8-sig", fmt.delimiter), check_rows=False)
    next(out)

    def gen():
        try:
            for _ in range(rows):
                yield next(out)
        finally:
            out.close()
    return gen()
