"""The ``grader`` command line: thin wrappers over the library.

Each command lives in its own module with ``add_parser(subparsers)`` and
``run(args) -> int``; heavy imports happen inside ``run`` so ``grader --help``
and light commands start fast. :class:`~grader.errors.GraderError` is turned
into a one-line message here and nowhere else.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from grader import __version__
from grader.cli.flags import flags_of, in_flags
from grader.errors import GraderError

COMMANDS = ("score", "check_rubric", "grade", "import_quiz", "train", "eval", "serve", "review", "export")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every command registered."""
    parser = argparse.ArgumentParser(prog="grader", description="Grade short answers against a rubric.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    parser.add_argument("--version", action="version", version=f"grader {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"grader.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"grader.cli.{name}":
                continue  # command not built in this checkout
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``grader`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[args.command]
    args.flags = {**flags_of(parser), **flags_of(command)}
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.run(args) or 0)
    except GraderError as exc:
        print(f"grader {args.command}: error: {in_flags(str(exc), args.flags)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"grader {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
