"""The one place where the library's parameter names become the CLI's flags.

Library errors and notes name parameters in backticks (`question_col`), as a
Python caller passed them; the CLI user typed flags (--question-col). The error
itself is never changed: its text is rewritten as it is printed.
"""

from __future__ import annotations

import argparse
import re

_PARAMETER = re.compile(r"`([a-z][a-z0-9_]*)`")
# Library parameters whose flag is not named after them (the flag reads a file into the parameter).
RENAMED = {"train_rows": "--train"}


def flags_of(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each parameter name (an option's ``dest``) of ``parser`` and the flag that sets it."""
    out = dict(RENAMED)
    for action in parser._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if longs and action.dest not in out:
            out[action.dest] = longs[0]
    return out


def in_flags(text: str, flags: dict[str, str]) -> str:
    """``text`` from the library with each `parameter` it names written as the command's flag."""
    return _PARAMETER.sub(lambda m: flags.get(m.group(1), m.group(0)), text)


