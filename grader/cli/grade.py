"""``grader grade``: grade a submissions CSV and write the graded CSV, a summary and a report."""

from __future__ import annotations

import sys

from grader.cli.common import add_model_options, make_grader
from grader.cli.flags import in_flags


def add_parser(sub) -> None:
    p = sub.add_parser("grade", help="grade a CSV of submissions (long or wide layout)",
                       description="Grade every answer in SUBMISSIONS and write the graded CSV. "
                                   "Exits 1 when any row has an error.")
    p.add_argument("submissions", metavar="SUBMISSIONS.csv", help="submissions CSV (long or wide layout)")
    p.add_argument("--rubric", required=True, help="rubric YAML file")
    p.add_argument("-o", "--output", default=None, help="graded CSV to write (default: SUBMISSIONS.graded.csv)")
    cols = p.add_argument_group("columns (default: detected from the header; the mapping used is printed)")
    cols.add_argument("--layout", choices=["auto", "long", "wide"], default="auto",
                      help="long: one row per answer; wide: one column per question (default: auto)")
    cols.add_argument("--id-col", default=None, help="student id column (a header, or #N for the N-th column)")
    cols.add_argument("--question-col", default=None, help="question id column of a long file")
    cols.add_argument("--answer-col", default=None, help="answer column of a long file")
    cols.add_argument("--map", dest="maps", action="append", default=[], metavar="HEADER=QUESTION_ID",
                      help="grade column HEADER (or #N) as question QUESTION_ID in a wide file; repeatable")
    fmt = p.add_argument_group("file format (default: detected)")
    fmt.add_argument("--encoding", default=None, help="input encoding, e.g. utf-8, utf-16, cp1252")
    fmt.add_argument("--delimiter", default=None, help="input delimiter: ',', ';' or 'tab'")
    run_ = p.add_argument_group("run")
    run_.add_argument("--resume", action="store_true",
                      help="continue an interrupted run from its journal instead of starting over")
    run_.add_argument("--chunk-size", type=int, default=500, help="rows read, graded and written at a time "
                                                                  "(default: 500)")
    run_.add_argument("--max-answer-chars", type=int, default=None,
                      help="answers longer than this are graded on their start and flagged (default: 20000)")
    run_.add_argument("--engine", choices=["local", "ray"], default="local",
                      help="local: grade here; ray: grade long-layout CSV or Parquet (a file, a folder or a glob) on "
                           "a Ray cluster into -o, a folder of Parquet shards (CSV shards when it ends in .csv), "
                           "--chunk-size rows a shard; a rerun skips complete shards (pip install 'grader[ray]')")
    run_.add_argument("--ray-address", default=None, metavar="HOST:PORT",
                      help="with --engine ray: the Ray cluster to grade on (default: start a local Ray instance)")
    out = p.add_argument_group("summary")
    out.add_argument("--summary", default=None, metavar="FILE.csv", help="also write the per-question summary as CSV")
    out.add_argument("--report", default=None, metavar="DIR",
                     help="write an HTML report (distribution plots, answers needing review) to DIR/index.html")
    out.add_argument("--quiet", action="store_true", help="print neither the mapping nor the summary table")
    out.add_argument("--review", action="store_true",
                     help="when grading ends, serve the review app on the graded CSV (as `grader review` does)")
    add_model_options(p, workers=True)
    p.set_defaults(run=run)


def run(args) -> int:
    from grader.files.batch import grade_csv
    from grader.errors import ConfigError
    from grader.rubric import load_rubric

    rubric = load_rubric(args.rubric)
    if args.max_answer_chars is not None and args.max_answer_chars < 1:
        raise ConfigError(f"--max-answer-chars must be >= 1. Got {args.max_answer_chars}.", field="max_answer_chars")
    log = (lambda msg: None) if args.quiet else (lambda msg: print(in_flags(msg, getattr(args, "flags", {})), file=sys.stderr))
    if args.engine == "ray" or args.ray_address:
        return _report(args, rubric, _on_ray(args, rubric, log), None)
    grader = make_grader(args, rubric)
    if args.max_answer_chars is not None:
        grader.max_answer_chars = args.max_answer_chars
    try:
        result = grade_csv(args.submissions, rubric, args.output, grader=grader, layout=args.layout,
                           id_col=args.id_col, question_col=args.question_col, answer_col=args.answer_col,
                           maps=args.maps, encoding=args.encoding, delimiter=args.delimiter,
                           chunk_size=args.chunk_size, resume=args.resume, log=log)
    except KeyboardInterrupt:
        print("grader grade: interrupted; the rows graded so far are kept: run the same command with --resume "
              "to continue", file=sys.stderr)
        raise
    return _report(args, rubric, result, grader)


def _on_ray(args, rubric, log):
    """``--engine ray``: the same grading on a Ray cluster (:mod:`grader.distributed`), into a folder of shards."""
    from grader.distributed import grade_dataset
    from grader.errors import ConfigError

    if args.engine != "ray":
        raise ConfigError("`ray_address` needs `engine` 'ray'", field="ray_address")
    for given, name in ((args.maps, "maps"), (args.review, "review"), (args.report, "report")):
        if given:  # maps: wide files; review and report read one graded CSV
            raise ConfigError(f"`{name}` does not go with `engine` 'ray', which grades long files into a folder of "
                              "shards", field=name)
    return grade_dataset(args.submissions, rubric, args.output, address=args.ray_address, model=args.model,
                         device=args.device, backend=args.backend, combiner=args.combiner,
                         max_answer_chars=args.max_answer_chars, layout=args.layout, id_col=args.id_col,
                         question_col=args.question_col, answer_col=args.answer_col, encoding=args.encoding,
                         delimiter=args.delimiter, shard_rows=args.chunk_size,
                         grading_workers=0 if args.workers == "auto" else args.workers, log=log)


def _report(args, rubric, result, grader) -> int:
    """Print and write what a run did (warnings, summary, report), serve the review app if asked; the exit code."""
    for warning in result.warnings:
        print(f"warning: {in_flags(str(warning), getattr(args, 'flags', {}))}", file=sys.stderr)
    if args.summary:
        result.summary.write_csv(args.summary)
    if args.report:
        from grader.files.report import write_report

        write_report(result, args.report, rubric)
    if not args.quiet:
        print(result.summary.format_table())
        print(f"{result.answers} answers in {result.rows} rows; {result.graded_now} distinct answers graded now"
              + (f" (resumed after row {result.resumed_rows})" if result.resumed_rows else ""))
        print(f"wrote {result.output}" + (f", {args.summary}" if args.summary else "")
              + (f", {args.report}/index.html" if args.report else ""))
    if args.review:
        from grader.cli.review import serve

        serve(result.output, rubric, grader)
    if result.error_rows:
        print(f"grader grade: {result.error_rows} row(s) have errors; see the 'error' column of {result.output}",
              file=sys.stderr)
        return 1
    return 0
