"""``grader import-quiz``: turn a plain-text quiz into a rubric YAML file."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("import-quiz", help="turn a plain-text quiz into a rubric YAML file",
                       description="Read numbered questions with type headers, lettered options, 'Answer:' lines, "
                                   "'Model answer:' blocks and explanations, and write a rubric. A missing "
                                   "multiple-choice key is inferred, marked needs_confirmation and warned about.")
    p.add_argument("quiz", metavar="QUIZ.txt", help="the plain-text quiz")
    p.add_argument("-o", "--output", default=None, metavar="RUBRIC.yaml",
                   help="rubric file to write (default: print the YAML to standard output)")
    p.add_argument("--id", dest="rubric_id", default=None, help="rubric id (default: the quiz file name)")
    p.add_argument("--title", default="", help="rubric title (default: from the id)")
    p.add_argument("--language", default="en", help="answer language code (default: en)")
    p.add_argument("--choice-points", type=float, default=1.0,
                   help="points of each multiple-choice and true/false question (default: 1)")
    p.add_argument("--short-answer-points", type=float, default=5.0,
                   help="max_points of each short-answer question (default: 5)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.set_defaults(run=run)


def run(args) -> int:
    from pathlib import Path

    from grader.errors import ConfigError
    from grader.files.quiz_import import import_quiz
    from grader.files.summary import write_atomic

    for name in ("choice_points", "short_answer_points"):
        if getattr(args, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be > 0. Got {getattr(args, name):g}.", field=name)
    if args.output and Path(args.output).exists() and not args.force:
        raise ConfigError(f"{args.output} exists; pass --force to overwrite it", field="output")
    result = import_quiz(args.quiz, rubric_id=args.rubric_id, title=args.title, language=args.language,
                         choice_points=args.choice_points, short_answer_points=args.short_answer_points)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    header = f"# Imported from {Path(args.quiz).name} by `grader import-quiz`; review every needs_confirmation.\n"
    text = header + result.to_yaml()
    if args.output:
        write_atomic(args.output, text.encode("utf-8"))
        n = len(result.data["questions"])
        print(f"wrote {args.output}: {n} questions, {len(result.warnings)} warnings", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
