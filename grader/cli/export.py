"""``grader export``: a reviewed graded CSV as final grades, LMS imports or feedback for students."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export final grades for Moodle, Canvas, a CSV or per-student feedback",
                       description="Export GRADED (a CSV written by `grader grade`) with the decisions of its review "
                                   "(GRADED.review.sqlite, when there is one): the instructor's points where given, "
                                   "the grader's elsewhere. Feedback pages never show the model answer.")
    p.add_argument("graded", metavar="GRADED.csv", help="graded CSV written by `grader grade`")
    p.add_argument("--format", required=True, choices=["moodle", "canvas", "csv", "feedback"],
                   help="moodle: grade import (email, grade, feedback); canvas: gradebook import; csv: the graded "
                        "file with final points, source and comment; feedback: a folder of one HTML page per student")
    p.add_argument("-o", "--output", default=None, metavar="OUT",
                   help="file (folder for feedback) to write (default: beside GRADED, e.g. GRADED.moodle.csv)")
    p.add_argument("--rubric", default=None,
                   help="rubric for the questions' prompts (default: the one the review was started with)")
    p.add_argument("--assignment", default=None,
                   help="Canvas assignment column name, e.g. 'Quiz 3 (12345)' (default: the rubric's title)")
    p.set_defaults(run=run)


def run(args) -> int:
    from grader.review.workspace import export_reviewed
    from grader.rubric import load_rubric

    rubric = load_rubric(args.rubric) if args.rubric else None
    out = export_reviewed(args.graded, args.format, args.output, rubric=rubric, assignment=args.assignment)
    print(f"wrote {out}", file=sys.stderr)
    return 0
