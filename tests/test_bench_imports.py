"""The bench scripts use grader's public names and ``bench.common``, and each still starts.

Every ``bench/*.py`` is read with ``ast``: importing another bench script, a private module
or name of ``grader`` (``_name``), or reaching a private attribute (``x._name``) fails here,
so a bench script keeps measuring what users can call. A script's own module-level helpers
(``_helper()``, called by bare name) and dunders are fine. Every script compiles, and each
with a command line runs ``--help`` in a fresh interpreter (a few seconds in all).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p for p in (ROOT / "bench").glob("*.py") if p.name != "__init__.py")
# ``from bench.x import`` anywhere in the text: code a script hands a fresh interpreter as a string too.
_BENCH_IMPORT = re.compile(r"\b(?:from|import)\s+bench\.(\w+)")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _module_problems(module: str, line: int) -> list[str]:
    parts = module.split(".")
    if parts[0] == "bench" and len(parts) > 1 and parts[1] != "common":
        return [f"line {line}: imports another bench script, {module}"]
    if parts[0] == "grader" and any(_private(p) for p in parts):
        return [f"line {line}: imports grader's private module {module}"]
    return []


def problems(source: str) -> list[str]:
    """What in one bench script's ``source`` reaches past grader's public names or into another script."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out += _module_problems(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                out.append(f"line {node.lineno}: relative import; a script run as a file imports bench.common")
                continue
            module = node.module or ""
            out += _module_problems(module, node.lineno)
            names = [alias.name for alias in node.names]
            if module == "bench":
                out += [f"line {node.lineno}: imports another bench script, bench.{n}" for n in names if n != "common"]
            if module.split(".")[0] == "grader":
                out += [f"line {node.lineno}: imports private name {n} from {module}" for n in names if _private(n)]
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            out.append(f"line {node.lineno}: reaches the private attribute .{node.attr}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in {"getattr", "setattr", "hasattr", "delattr"} and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
              and _private(node.args[1].value)):
            out.append(f"line {node.lineno}: reaches the private attribute {node.args[1].value!r} by name")
    for match in _BENCH_IMPORT.finditer(source):
        if match.group(1) != "common":
            line = source.count("\n", 0, match.start()) + 1
            out.append(f"line {line}: imports another bench script, bench.{match.group(1)}")
    return sorted(set(out))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bench_script_uses_public_names_and_bench_common_only(script):
    assert problems(script.read_text(encoding="utf-8")) == []


def test_the_check_catches_siblings_private_names_and_private_attributes():
    planted = '''
import sys
import bench.load
from bench.throughput import load_corpus
from bench import gpu, common
from bench.common import ROOT
from grader.engine.workers import _start_worker, auto_workers
import grader.encoding._hidden
from . import sibling
WORKER = "from bench.load import make_answers"


def _helper():
    return __doc__


def main(grader, embedder):
    _helper()
    getattr(grader, "_pool")
    return grader._pool.workers, embedder._max_len, embedder.__class__, grader.grading_processes
'''
    assert problems(planted) == sorted([
        "line 3: imports another bench script, bench.load",
        "line 4: imports another bench script, bench.throughput",
        "line 5: imports another bench script, bench.gpu",
        "line 7: imports private name _start_worker from grader.engine.workers",
        "line 8: imports grader's private module grader.encoding._hidden",
        "line 9: relative import; a script run as a file imports bench.common",
        "line 10: imports another bench script, bench.load",
        "line 19: reaches the private attribute '_pool' by name",
        "line 20: reaches the private attribute ._pool",
        "line 20: reaches the private attribute ._max_len",
    ])


@pytest.mark.parametrize("script", [p for p in SCRIPTS if p.name != "common.py"], ids=lambda p: p.name)
def test_bench_script_starts(script):
    source = script.read_text(encoding="utf-8")
    compile(source, str(script), "exec")
    if "argparse" not in source:
        return  # no command line to start without running the measurement
    proc = subprocess.run([sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage:")
