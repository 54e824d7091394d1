"""``grader score``: grade one answer and print the result as JSON."""

from __future__ import annotations

import json
import sys

from grader.cli.common import add_model_options, make_grader


def add_parser(sub) -> None:
    p = sub.add_parser("score", help="grade one answer and print the result as JSON")
    p.add_argument("--rubric", required=True, help="rubric YAML file")
    p.add_argument("--question", required=True, help="question id in the rubric")
    p.add_argument("answer", help="the answer text, or '-' to read it from standard input")
    p.add_argument("--no-signals", action="store_true", help="leave the raw combiner signals out of the JSON")
    add_model_options(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from grader.rubric import load_rubric

    rubric = load_rubric(args.rubric)
    rubric.question(args.question)  # fail on a bad id before loading the model
    answer = sys.stdin.read() if args.answer == "-" else args.answer
    result = make_grader(args, rubric).grade(args.question, answer)
    print(json.dumps(result.to_dict(signals=not args.no_signals), indent=2, ensure_ascii=False))
    return 0
