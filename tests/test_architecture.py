"""The package layout draws the architecture, and the imports keep to it.

Data flows one way: rubric + answer -> encoding -> scoring -> engine -> (files | api),
with evaluation beside them and the CLI on top. Every import in ``grader/`` is read
with ``ast`` (those inside functions too), so a cycle, an import against the flow or
another package's private name fails here before it confuses a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "grader"
CORE = {"errors", "settings", "text", "rubric", "result"}  # plain data and helpers every layer may use
# What each part of grader may import besides the core modules.
ALLOWED = {
    "core": set(),
    "encoding": set(),
    "finetune": {"encoding"},  # the fine-tuned cross-encoder: trained on rows, graded on ONNX Runtime
    "scoring": {"encoding"},
    "engine": {"encoding", "scoring", "finetune"},
    "files": {"encoding", "scoring", "engine"},
    "evaluation": {"encoding", "scoring", "engine", "files", "finetune"},
    "api": {"encoding", "scoring", "engine", "files"},
    "review": {"encoding", "scoring", "engine", "files", "api"},  # api: its key check, error bodies, body limit
    "distributed": {"encoding", "scoring", "engine", "files"},
    "cli": {"encoding", "scoring", "engine", "files", "evaluation", "api", "review", "distributed", "finetune"},
}


class Tree:
    """The modules of a package folder and the grader imports of each, read with ``ast``."""

    def __init__(self, package: Path):
        self.root = package.parent
        self.modules = {self._name(p): p for p in sorted(package.rglob("*.py"))}
        self.graph = {m: sorted({t for t, _, _ in self.imports(m) if t != m}) for m in self.modules}

    def _name(self, path: Path) -> str:
        parts = list(path.relative_to(self.root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        return ".".join(parts)

    def _target(self, name: str) -> str:
        """The module a dotted name lands in (``grader.x.y`` if that is a module, else ``grader.x``)."""
        while name not in self.modules and "." in name:
            name = name.rsplit(".", 1)[0]
        return name

    def imports(self, module: str) -> list[tuple[str, str, int]]:
        """(imported module, imported name or '', line) for every grader import in ``module``."""
        path = self.modules[module]
        tree = ast.parse(path.read_text(), filename=str(path))
        out = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                out += [(self._target(a.name), "", node.lineno) for a in node.names if a.name.split(".")[0] == "grader"]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import: resolve against this module's package
                    anchor = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                if base.split(".")[0] != "grader":
                    continue
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    out.append((full, "", node.lineno) if full in self.modules
                               else (self._target(base), alias.name, node.lineno))
        return out

    def cycles(self) -> list[list[str]]:
        """Groups of modules that import each other in a loop (Tarjan's strongly connected components)."""
        index, low, on_stack, stack, cycles = {}, {}, set(), [], []

        def visit(v):
            index[v] = low[v] = len(index)
            stack.append(v)
            on_stack.add(v)
            for w in self.graph[v]:
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))

        for module in self.graph:
            if module not in index:
                visit(module)
        return cycles

    def against_the_flow(self, module: str) -> list[tuple[str, int]]:
        """Imports of ``module`` into a part it may not use."""
        part = _part(module)
        allowed = ALLOWED[part] | {"core", part, "top"}
        return [(t, line) for t, _, line in self.imports(module) if _part(t) not in allowed]

    def private_imports(self, module: str) -> list[tuple[str, str, int]]:
        """Imports of another part's private modules or names (``_name``) by ``module``."""
        wrong = []
        for target, name, line in self.imports(module):
            private_module = any(p.startswith("_") and not p.startswith("__") for p in target.split("."))
            private_name = name.startswith("_") and not name.startswith("__")
            if _part(target) != _part(module) and (private_module or private_name):
                wrong.append((target, name, line))
        return wrong

    def reached_from(self, part: str) -> set[str]:
        """Every module that the modules of ``part`` import, directly or not."""
        reached, todo = set(), [m for m in self.modules if _part(m) == part]
        while todo:
            for t in self.graph[todo.pop()]:
                if t not in reached:
                    reached.add(t)
                    todo.append(t)
        return reached


def _part(module: str) -> str:
    """The layer a module belongs to: its subpackage, or 'core' for grader's top-level modules."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in CORE or parts[1] == "__main__":
        return "core" if len(parts) > 1 and parts[1] in CORE else "top"
    return parts[1]


TREE = Tree(PACKAGE)


def test_the_layout_has_the_expected_parts():
    assert {_part(m) for m in TREE.modules} >= set(ALLOWED)
    flat = [m for m in TREE.modules if _part(m) == "top" and m not in {"grader", "grader.__main__"}]
    assert flat == [], f"modules outside the subpackages: {flat}"


def test_no_import_cycles():
    assert TREE.cycles() == []


@pytest.mark.parametrize("module", sorted(m for m in TREE.modules if _part(m) != "top"))
def test_imports_follow_the_flow(module):
    assert TREE.against_the_flow(module) == []


@pytest.mark.parametrize("module", sorted(TREE.modules))
def test_no_private_names_across_packages(module):
    assert TREE.private_imports(module) == []


def test_scoring_never_reaches_evaluation_api_cli_or_files():
    assert sorted(m for m in TREE.reached_from("scoring") if _part(m) in {"evaluation", "api", "cli", "files"}) == []


def test_the_checks_catch_a_planted_cycle_a_private_import_and_a_backward_import(tmp_path):
    package = tmp_path / "grader"
    for name, code in {"__init__.py": "", "errors.py": "",
                       "scoring/__init__.py": "", "scoring/x.py": "from grader.encoding.y import _hidden\n",
                       "encoding/__init__.py": "", "encoding/y.py": "def f():\n    import grader.scoring.x\n"}.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(code)
    tree = Tree(package)
    assert tree.cycles() == [["grader.encoding.y", "grader.scoring.x"]]
    assert tree.private_imports("grader.scoring.x") == [("grader.encoding.y", "_hidden", 1)]
    assert tree.against_the_flow("grader.encoding.y") == [("grader.scoring.x", 2)]
    assert "grader.encoding.y" in tree.reached_from("scoring")
