"""``grader check-rubric``: validate rubric files and say what is wrong, or probably wrong."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("check-rubric", help="validate rubric YAML files")
    p.add_argument("files", nargs="+", metavar="FILE", help="rubric YAML file(s)")
    p.set_defaults(run=run)


def run(args) -> int:
    from grader.errors import RubricError
    from grader.rubric import MultipleChoiceQuestion, ShortAnswerQuestion, load_rubric, rubric_warnings
    from grader.scoring.features import ALTERNATIVES_CREDITED, offered_alternatives

    failed = 0
    for path in args.files:
        try:
            rubric = load_rubric(path, warn=False)  # the warnings are printed below, in this command's format
        except RubricError as exc:
            print(f"FAIL {exc}", file=sys.stderr)
            failed += 1
            continue
        kinds = {}
        for q in rubric.questions:
            kinds[q.type] = kinds.get(q.type, 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in kinds.items())
        print(f"ok   {path}: rubric '{rubric.id}', {len(rubric.questions)} questions ({summary}), "
              f"{rubric.max_points:g} points")
        for q in rubric.questions:
            if isinstance(q, MultipleChoiceQuestion) and q.needs_confirmation:
                print(f"     warning: question '{q.id}': answer key {list(q.correct)} was inferred; "
                      "confirm it and remove needs_confirmation")
            words = offered_alternatives(q) if isinstance(q, ShortAnswerQuestion) else None
            if words:
                print(f"     note: question '{q.id}': its model answer offers alternatives (\"{words}\"); an answer "
                      f"is credited with the {ALTERNATIVES_CREDITED} reference sentences it states best")
        for message in rubric_warnings(rubric):
            print(f"     warning: {message}")
    return 2 if failed else 0
