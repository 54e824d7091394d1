"""Docs that cannot rot: every option, setting and rubric field is on its page, and the CLI page is current.

Each command's options must appear (in backticks) on the page that explains that
command, each setting as a row of the table in docs/settings.md with its GRADER_
variable, and each rubric field as a table row of docs/rubrics.md. docs/cli.md is
generated from the parsers by scripts/cli_docs.py. The README stays short, and no
page talks about how the code came to be (work sessions, issue numbers, commits).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import re

import pytest
from pydantic import BaseModel

from tests.conftest import ROOT

# The page that explains each command; a new command needs a row here (or a page of its own).
COMMAND_PAGES = {
    "grader": "docs/cli.md",  # generated: the top-level options are documented by their --help
    "score": "docs/batch-grading.md",
    "check-rubric": "docs/rubrics.md",
    "grade": "docs/batch-grading.md",
    "import-quiz": "docs/rubrics.md",
    "train": "docs/evaluation.md",
    "eval": "docs/evaluation.md",
    "serve": "docs/http-api.md",
}
GENERATED_PAGE = "docs/cli.md"
SETTINGS_PAGE = "docs/settings.md"
RUBRIC_PAGE = "docs/rubrics.md"
README_MAX_LINES = 160
REFRESH = "run .venv/bin/python scripts/cli_docs.py to refresh"


def _commands() -> dict[str, argparse.ArgumentParser]:
    """'grader' and each command name -> its parser."""
    from grader.cli import build_parser

    parser = build_parser()
    commands = {"grader": parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and action.dest == "command":
            commands.update(action.choices)
    return commands


def _long_options(parser: argparse.ArgumentParser) -> list[str]:
    return [o for a in parser._actions for o in a.option_strings if o.startswith("--") and o != "--help"]


def _rubric_models() -> list[type[BaseModel]]:
    """The public pydantic models of the rubric format."""
    import grader.rubric as rubric

    return [cls for name, cls in vars(rubric).items()
            if inspect.isclass(cls) and issubclass(cls, BaseModel) and cls.__module__ == rubric.__name__
            and not name.startswith("_")]


def _documented_items() -> list[tuple[str, str, str]]:
    """(page, kind, name) for every option, setting and rubric field that must be documented."""
    from grader.settings import Settings

    items = []
    for command, parser in _commands().items():
        page = COMMAND_PAGES.get(command, f"docs/{command}.md")
        items += [(page, "option", f"{command} {option}") for option in _long_options(parser)]
    items += [(SETTINGS_PAGE, "setting", name) for name in Settings.model_fields]
    items += [(RUBRIC_PAGE, "rubric field", f"{model.__name__}.{field}")
              for model in _rubric_models() for field in model.model_fields]
    return items


def _read(page: str) -> str:
    path = ROOT / page
    assert path.exists(), f"{page} does not exist: write it, or add the command to COMMAND_PAGES in {__file__}"
    return path.read_text(encoding="utf-8")


def _setting_rows(text: str) -> dict[str, str]:
    """setting name -> the environment variable its table row names."""
    return dict(re.findall(r"^\| `([a-z_0-9]+)` \| `(GRADER_[A-Z_0-9]+)` \|", text, flags=re.M))


@pytest.mark.parametrize(("page", "kind", "name"), _documented_items(),
                         ids=lambda value: str(value).replace(" ", "_"))
def test_everything_is_documented_on_its_page(page, kind, name):
    text = _read(page)
    if kind == "option":
        command, option = name.split(" ")
        prog = "grader" if command == "grader" else f"grader {command}"
        # A topic page names an option in backticks; the generated page holds it as --help prints it.
        before = r"(?<![\w-])" if page == GENERATED_PAGE else "`"
        assert re.search(rf"{before}{re.escape(option)}(?![\w-])", text), (
            f"option {option} of `{prog}` is not in {page}: document it there "
            f"({GENERATED_PAGE}: {REFRESH})")
    elif kind == "setting":
        env = _setting_rows(text).get(name)
        assert env == f"GRADER_{name.upper()}", (
            f"setting `{name}` needs a row `| `{name}` | `GRADER_{name.upper()}` | ...` in {page}'s table")
    else:
        model, field = name.split(".")
        assert re.search(rf"^\| `{re.escape(field)}` \|", text, flags=re.M), (
            f"field `{field}` of {model} has no row in a table of {page}")


def test_the_settings_page_names_only_real_settings():
    from grader.settings import Settings

    stale = sorted(set(_setting_rows(_read(SETTINGS_PAGE))) - set(Settings.model_fields))
    assert not stale, f"{SETTINGS_PAGE} documents settings that do not exist: {stale}"


def test_the_cli_page_is_generated_from_the_current_parsers():
    spec = importlib.util.spec_from_file_location("cli_docs", ROOT / "scripts" / "cli_docs.py")
    cli_docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli_docs)
    assert _read(GENERATED_PAGE) == cli_docs.render(), f"{GENERATED_PAGE} is stale: {REFRESH}"


PAGES = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]
# Words about how the code was made, not about the product. An HTTP, client or test session is fine.
FORBIDDEN = {
    "a work session": re.compile(r"(?<!HTTP )(?<!client )(?<!test )\bsessions?\b", re.I),
    "an issue number": re.compile(r"(?<![\w&/#])#\d+\b"),
    "a commit hash": re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b"),
}


@pytest.mark.parametrize("page", PAGES)
def test_docs_speak_about_the_product(page):
    found = [f"line {n}: {what}: {m.group(0)!r}"
             for n, line in enumerate(_read(page).splitlines(), 1)
             for what, pattern in FORBIDDEN.items() for m in pattern.finditer(line)]
    assert not found, f"{page} talks about how the code was made, not about the product: {found}"


def test_the_readme_is_short():
    lines = len(_read("README.md").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/ (at most {README_MAX_LINES})"


def _anchors(path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    headings = re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES + ["rubrics/README.md"])
def test_local_links_resolve(page):
    base = (ROOT / page).parent
    broken = []
    for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", _read(page)):
        if "://" in target:
            continue
        path = base / target if target else ROOT / page
        if not path.exists() or (anchor and path.suffix == ".md" and anchor not in _anchors(path)):
            broken.append(f"{target}#{anchor}" if anchor else target)
    assert not broken, f"{page} links to files or headings that do not exist: {broken}"
