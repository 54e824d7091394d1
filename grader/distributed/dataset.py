"""``grade_dataset``: grade a dataset of submissions on Ray and write graded shards beside one another.

The driver reads each input file once (header, rows, digest) and maps the columns
as ``grader grade`` does, then Ray Data reads the rows still to grade and a fixed
pool of actors grades them, each writing its shards into the output folder. The
folder must be one every node can write (a shared file system), and grader must be
installed on every node. When all shards are written the driver checks that they
hold every input row exactly once and adds their summaries into one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from grader.distributed._inputs import InputFile, describe_inputs, find_inputs
from grader.distributed._shards import (MANIFEST, RECORDS, add_record, done_ranges, exactly_once, fill_reviews,
                                       list_shards, read_record, write_file)
from grader import errors
from grader.errors import ConfigError, GraderError, InputDataError
from grader.files.mapping import map_columns
from grader.files.batch import FIELDS
from grader.files.summary import Summary
from grader.rubric import Rubric, load_rubric

DEFAULT_SHARD_ROWS = 5000
INSTALL_HINT = "pip install 'grader[ray]'"
MANIFEST_VERSION = 1
LOCK = ".lock"
_FORMATS = ("parquet", "csv")


@dataclass
class DatasetResult:
    """What :func:`grade_dataset` did; the attributes ``grader grade`` prints are those of ``BatchResult``."""

    output: Path
    files: list[Path]
    shards: int
    rows: int
    error_rows: int
    answers: int
    graded_now: int  # distinct answers the actors graded in this run (each deduplicates within its shard)
    resumed_rows: int  # rows found in complete shards of an earlier run and not graded again
    summary: Summary
    nodes: list[str] = field(default_factory=list)  # Ray nodes whose actors wrote shards in this run
    warnings: list[str] = field(default_factory=list)


def grade_dataset(submissions: str | Path, rubric: Rubric | str | Path, output: str | Path | None = None, *,
                  address: str | None = None, format: str | None = None, model: str | None = None,
                  device: str | None = None, backend: str = "auto", combiner=None,
                  max_answer_chars: int | None = None, layout: str = "auto", id_col: str | None = None,
                  question_col: str | None = None, answer_col: str | None = None, encoding: str | None = None,
                  delimiter: str | None = None, shard_rows: int = DEFAULT_SHARD_ROWS, actors: int | None = None,
                  cpus_per_actor: int = 1, grading_workers: int | str = 0, progress: bool | None = None,
                  log=None) -> DatasetResult:
    """Grade every answer of a long-layout dataset on Ray and write the graded shards into the folder ``output``.

    ``submissions`` is a CSV or Parquet file, a folder of them or a glob; all files share one header.
    ``output`` (default: ``<input>.graded.parquet`` beside the input) is a folder of Parquet shards,
    or of CSV shards when its name ends in ``.csv`` or ``format`` is ``"csv"``. ``address`` is a
    Ray cluster's address (``HOST:PORT``); without one, a local Ray instance is started and stopped.
    ``actors`` is the size of the grading pool (default: one per GPU of the cluster, else one per
    ``cpus_per_actor`` CPUs). A rerun into the same folder skips the rows already in complete shards.
    ``combiner`` is a combiner, the path of its JSON file, or a fine-tuned scorer folder
    (``grader train --finetune``), which each actor loads from that path.
    The other options are those of :func:`grader.files.batch.grade_csv` and the model's.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    rubric = rubric if isinstance(rubric, Rubric) else load_rubric(rubric)
    for name, value, optional in (("shard_rows", shard_rows, False), ("actors", actors, True),
                                  ("cpus_per_actor", cpus_per_actor, False),
                                  ("max_answer_chars", max_answer_chars, True)):
        if not (optional and value is None) and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"`{name}` must be a whole number >= 1. Got {value!r}.", field=name)
    ray = import_ray(local=address is None)
    from grader.encoding.weights import resolve_model
    from grader.engine import get_embedder

    # What an actor would fail on, found here first: an error raised as an actor starts reaches
    # the driver as text only. The model itself is loaded and verified by each actor.
    get_embedder(model, device, backend)
    resolve_model(model)
    from grader.engine.scorer import load_combiner_spec

    # A fine-tuned scorer folder is checked here and loaded by each actor from its path (on a cluster of
    # several machines it must be at the same path on each, like the rubric's files).
    scorer, loaded = load_combiner_spec(combiner)
    scorer_sha = None if scorer is None else scorer.sha256
    for_actors = loaded if scorer is None else str(Path(combiner).resolve())
    combiner = loaded
    given = Path(output).resolve() if output else None
    # A glob may match the shards of an earlier run written under the input folder: they are no input.
    paths = [p for p in find_inputs(submissions) if given is None or given not in p.resolve().parents]
    if not paths:
        raise InputDataError("no input files outside the output folder", field="submissions", source=str(submissions))
    files = describe_inputs(paths, encoding, delimiter)
    first = files[0]
    cmap = map_columns(list(first.header), rubric, layout=layout, id_col=id_col, question_col=question_col,
                       answer_col=answer_col, source=str(first.path))
    if cmap.layout != "long":
        raise ConfigError("the Ray engine grades the long layout (one row per answer, with question and answer "
                          "columns); this file is wide: grade it without `engine` 'ray', or name its columns with "
                          "`question_col` and `answer_col`", field="layout", source=str(first.path))
    total = sum(f.rows for f in files)
    log(f"{len(files)} file{'s' if len(files) > 1 else ''}, {total} rows "
        f"({first.format.describe() if first.format else 'Parquet'})\n{cmap.describe()}")
    out = Path(output) if output else _default_output(Path(str(submissions)), files)
    fmt = format or ("csv" if out.suffix.lower() == ".csv" else "parquet")
    if fmt not in _FORMATS:
        raise ConfigError(f"`format` must be 'parquet' or 'csv'. Got {format!r}.", field="format")
    columns = {"id_col": None if cmap.id_col is None else f"#{cmap.id_col + 1}",
               "question_col": f"#{cmap.question_col + 1}", "answer_col": f"#{cmap.answer_col + 1}"}
    delim = first.format.delimiter if first.format else ","
    manifest = {"version": MANIFEST_VERSION, "format": fmt, "delimiter": delim,
                "inputs": [{"path": str(f.path), "sha256": f.sha256, "rows": f.rows} for f in files],
                "parts": _fingerprint(files, rubric, combiner, columns, fmt, model, backend, max_answer_chars,
                                      scorer_sha)}
    from grader.distributed._actor import Job

    taken = {h.strip().lower() for h in first.header}
    job = Job(rubric=rubric, combiner=for_actors, header=first.header, width=max(f.width for f in files),
              columns=columns, files=tuple(f.name for f in files), output=str(out.absolute()), fmt=fmt,
              delimiter=delim, bom=bool(first.format and first.format.output_encoding == "utf-8-sig"),
              model=model, device=device, backend=backend, max_answer_chars=max_answer_chars,
              grading_workers=grading_workers, cpus=cpus_per_actor,
              id_names=tuple(("grader_" if n in taken else "") + n for n in ("input_file", "input_row")))
    if out.exists() and not out.is_dir():
        raise InputDataError("the output is a file; the Ray engine writes a folder of shards: choose another "
                             "`output`", field="output", source=str(out))
    with _lock(out):
        _claim(out, manifest)
        before = list_shards(out, fmt)
        done = done_ranges(before)
        resumed = sum(s.rows for s in before)
        if resumed:
            log(f"{resumed} of {total} rows are in complete shards already: grading the other {total - resumed}")
        if resumed < total:
            _run(ray, address, job, files, shard_rows, done, actors, cpus_per_actor, progress)
        result = _result(out, fmt, files, rubric, cmap, delim, manifest, before)
    result.warnings += [f"{f.path}: the file has a header but no answer rows" for f in files if f.rows == 0]
    return result


def _result(out: Path, fmt: str, files: list[InputFile], rubric: Rubric, cmap, delim: str, manifest: dict,
            before: list) -> DatasetResult:
    """Check that the shards hold every row once, add their records up and mark the folder complete."""
    _tidy(out)
    shards = exactly_once(list_shards(out, fmt), {f.index: f.rows for f in files})
    summary = Summary([q.id for q in rubric.questions])
    answers = graded_now = 0
    encoders, nodes = {}, []
    old = {s.path.name for s in before}
    for shard in shards:
        record = read_record(shard)
        add_record(summary, record["summary"], shard.file)
        answers += record["answers"]
        encoders.setdefault(json.dumps(record["encoder"], sort_keys=True), shard.path.name)
        if shard.path.name not in old:
            graded_now += record["graded_now"]
            if record["node"] not in nodes:
                nodes.append(record["node"])
    if len(encoders) > 1:
        raise InputDataError(f"the shards were graded by different encoders ({', '.join(sorted(encoders))}); "
                             "delete the output folder and run again on nodes of one kind", field="output",
                             source=str(out))
    fill_reviews(summary, shards, [*FIELDS, "error"], cmap.id_col, cmap.answer_col, delim)
    write_file(out / MANIFEST, json.dumps({**manifest, "complete": True}, indent=1).encode("utf-8"))
    return DatasetResult(out, [f.path for f in files], len(shards), summary.rows, summary.error_rows, answers,
                         graded_now, sum(s.rows for s in before), summary, nodes)


def import_ray(local: bool = False):
    """The ``ray`` module with Ray Data, or :class:`ConfigError` saying how to install it.

    ``local``: a local instance is to be started, so bind it to the loopback address only. Ray
    offers that through the switch that turns off multi-node clusters, which is read once, on import.
    """
    switch = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
    before = os.environ.get(switch)
    if local and "ray" not in sys.modules:
        os.environ[switch] = "0"
    try:
        import ray
        import ray.data  # noqa: F401 - the extra brings Ray Data and pyarrow; a bare ray lacks them
    except ImportError as exc:
        raise ConfigError(f"`engine` 'ray' needs Ray Data, which the core install leaves out ({exc}): "
                          f"{INSTALL_HINT}", field="engine") from None
    finally:
        if before is None:
            os.environ.pop(switch, None)
        else:
            os.environ[switch] = before
    return ray


def _default_output(given: Path, files: list[InputFile]) -> Path:
    base = given if given.is_dir() else files[0].path
    return base.with_name(base.stem + ".graded.parquet")


def _fingerprint(files: list[InputFile], rubric: Rubric, combiner, columns: dict, fmt: str, model, backend,
                 max_answer_chars, scorer_sha256: str | None = None) -> dict:
    """Digests of what a rerun must share with the run that wrote the shards, by part."""
    def digest(obj) -> str:
        return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()

    parts = {"input": digest([[f.path.name, f.sha256] for f in files]),
             "rubric": digest(rubric.model_dump(mode="json")), "combiner": digest(combiner.to_dict()),
             "encoder": digest([model, backend]),
             "options": digest([columns, fmt, max_answer_chars, [f.format.encoding if f.format else None
                                                                 for f in files]])}
    if scorer_sha256 is not None:  # the ONNX file of a fine-tuned scorer grades too
        parts["scorer"] = scorer_sha256
    return parts


_PARTS = {"input": "input files", "rubric": "rubric", "combiner": "combiner", "encoder": "model or backend",
          "scorer": "fine-tuned scorer", "options": "options (columns, format, limits)"}


@contextmanager
def _lock(out: Path):
    """Hold ``OUT/.lock`` while this driver runs, so a second driver on this machine stops at once."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK, "a") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # Windows: no lock
            pass
        except OSError:
            raise InputDataError("another grader run is writing this folder; wait for it or choose another "
                                 "`output`", field="output", source=str(out)) from None
        yield


def _tidy(out: Path) -> None:
    """Remove what writers killed before their rename left behind (``.NAME.PID.tmp``)."""
    for folder in (out, out / RECORDS):
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def _claim(out: Path, manifest: dict) -> None:
    """Make ``out`` this run's folder: new, or one an earlier run of the same job wrote."""
    path = out / MANIFEST
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        differ = [name for key, name in _PARTS.items() if old.get("parts", {}).get(key) != manifest["parts"].get(key)]
        if old.get("format") != manifest["format"]:
            differ.append("shard format")
        if differ:
            raise InputDataError(f"the folder holds shards of a run with other {', '.join(differ)}; choose another "
                                 "`output`, or delete the folder to start over", field="output", source=str(out))
        return
    if out.is_dir() and any(p.name != LOCK for p in out.iterdir()):
        raise InputDataError("the folder exists and holds files of something else; choose another `output`",
                             field="output", source=str(out))
    out.mkdir(parents=True, exist_ok=True)
    write_file(path, json.dumps({**manifest, "complete": False}, indent=1).encode("utf-8"))


def _run(ray, address, job, files, shard_rows, done, actors, cpus_per_actor, progress) -> None:
    """Read the rows still to grade with Ray Data and grade them in a pool of actors."""
    from grader.distributed._actor import ShardGrader
    from grader.distributed._source import SubmissionsDatasource

    started = connect(ray, address)
    context = ray.data.DataContext.get_current()
    saved = context.enable_progress_bars, context.target_max_block_size  # the caller's, given back at the end
    try:
        context.enable_progress_bars = sys.stderr.isatty() if progress is None else bool(progress)
        gpus = int(ray.cluster_resources().get("GPU", 0)) if job.device in (None, "cuda") else 0
        if gpus:
            job = replace(job, device=job.device or "cuda", cpus=None)
            resources, size, batch = {"num_gpus": 1}, actors or gpus, shard_rows
        else:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            resources, size, batch = {"num_cpus": cpus_per_actor}, actors or max(1, cpus // cpus_per_actor), None
        # No more actors than shards to grade: each loads the model, and an idle one only waits.
        rows = sum(f.rows for f in files)
        todo = rows - sum(last - first + 1 for ranges in done.values() for first, last in ranges)
        size = max(1, min(size, -(-todo // shard_rows)))
        # One block a shard: a block goes on alone once past Ray Data's target size, so make that the
        # bytes of shard_rows rows (Arrow adds about 4 bytes a cell to the text) and cut reads there.
        block_bytes = max(4096, int(shard_rows * (sum(f.row_bytes * f.rows for f in files) / max(1, rows) + 16)))
        context.target_max_block_size = block_bytes
        source = SubmissionsDatasource(files, block_bytes, done)
        # Reading is light beside grading; at no CPU it never waits behind the actors for a core.
        ds = ray.data.read_datasource(source, num_cpus=0,
                                      override_num_blocks=sum(source.todo(f) > 0 for f in files))
        ds = ds.map_batches(ShardGrader, fn_constructor_kwargs={"job": job}, batch_size=batch,
                            batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=size), **resources)
        for _ in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            pass
    except GraderError:
        raise
    except Exception as exc:  # Ray wraps what an actor raised; say the library's own error where there is one
        cause = _grader_error(exc)
        if cause is not None:
            raise cause from None
        raise GraderError(f"the Ray run failed ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}); "
                          "the shards written so far are kept: run the same command again to go on") from exc
    finally:
        context.enable_progress_bars, context.target_max_block_size = saved
        if started:
            ray.shutdown()


def connect(ray, address: str | None) -> bool:
    """Connect to the cluster at ``address``, or start a local instance; True when this call started Ray."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report leaves the machine
    options = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(address="local", include_dashboard=False, **options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"cannot connect to the Ray cluster at {address!r}: {exc}" if address else
                          f"cannot start a local Ray instance: {exc}", field="ray_address") from None
    if not logging.getLogger().isEnabledFor(logging.INFO):  # grader -v shows Ray Data's notes too
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    return True


def _grader_error(exc: BaseException) -> GraderError | None:
    """The :class:`GraderError` an actor raised, from the chain of exceptions Ray wrapped it in."""
    seen = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, GraderError) and getattr(e, "message", None) is not None:
            # Ray's wrapper of an error is a subclass of it too: rebuild the library's own class
            kind = next(c for c in type(e).__mro__ if issubclass(c, GraderError) and c.__module__.startswith("grader"))
            return kind(e.message, field=e.field, source=e.source)
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__]
    # An actor that failed as it started is reported with the error's text alone.
    found = re.findall(r"grader\.errors\.(\w+): ([^\n]+)", str(exc))
    kind = getattr(errors, found[-1][0], None) if found else None
    if isinstance(kind, type) and issubclass(kind, GraderError):
        return kind(found[-1][1])
    return None
