"""The wheel holds what grader needs at run time, and nothing of the repository besides.

The wheel is built from a copy of the sources (so no stale ``build/`` folder leaks into
it), installed into a fresh virtual environment, and run from a folder outside the
repository. The fresh environment borrows this one's installed dependencies through a
``.pth`` path line, which puts that folder on ``sys.path`` without running the ``.pth``
files inside it: the editable install of grader stays off, so only the wheel's copy of
grader can answer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import grader
from tests.conftest import ROOT, RUBRIC

SOURCES = ("grader", "pyproject.toml", "README.md", "LICENSE")
ANSWER = "The LSTM's cell state is updated additively through gates."
DIST_INFO = f"grader-{grader.__version__}.dist-info"


def _run(args, cwd, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of the working tree's grader, built offline with the installed setuptools."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy2(path, src / name)
    r = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
              "--disable-pip-version-check", "-q", "-w", tmp / "dist", src], cwd=tmp)
    assert r.returncode == 0, r.stderr
    (built,) = (tmp / "dist").glob("grader-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory, embedder) -> Path:
    """A fresh venv with the wheel installed and this environment's dependencies importable; returns its bin/.

    ``embedder`` makes sure the shared model cache holds the built encoder, so the
    installed grader loads it instead of building it again.
    """
    tmp = tmp_path_factory.mktemp("venv")
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=tmp).stdout.strip())
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site / "borrowed_dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    r = _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
              "--disable-pip-version-check", "-q", wheel], cwd=tmp)
    assert r.returncode == 0, r.stderr
    return env_dir / "bin"


@pytest.fixture
def outside(tmp_path) -> tuple[Path, dict]:
    """A working folder outside the repository holding a copy of the example rubric, and a clean environment."""
    (tmp_path / "rnn_lstm.yaml").write_text(RUBRIC.read_text(encoding="utf-8"), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return tmp_path, env


def test_the_wheel_holds_the_runtime_files_and_nothing_of_the_repository(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {"grader/models/default.json", "grader/py.typed", "grader/api/docs.py", "grader/cli/__init__.py",
            f"{DIST_INFO}/licenses/LICENSE", f"{DIST_INFO}/entry_points.txt"} <= set(names)
    package = {p.relative_to(ROOT).as_posix() for p in (ROOT / "grader").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert package - set(names) == set(), "files of grader/ missing from the wheel"
    assert [n for n in names if not n.startswith(("grader/", f"{DIST_INFO}/"))] == []
    assert [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/test" in n or "conftest" in n] == []


def test_the_wheel_metadata_names_the_version_licence_and_docs_assets(wheel):
    with zipfile.ZipFile(wheel) as zf:
        meta = Parser().parsestr(zf.read(f"{DIST_INFO}/METADATA").decode())
        entry_points = zf.read(f"{DIST_INFO}/entry_points.txt").decode()
    assert meta["Version"] == grader.__version__
    assert meta["License-Expression"] == "MIT"
    assert "fastapi-offline==1.7.7" in meta.get_all("Requires-Dist")  # the Swagger UI and ReDoc files
    assert "grader = grader.cli:main" in entry_points


def test_the_installed_wheel_prints_its_version_and_scores_from_outside_the_repository(installed, outside):
    work, env = outside
    r = _run([installed / "grader", "--version"], cwd=work, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"grader {grader.__version__}"

    r = _run([installed / "grader", "score", "--rubric", work / "rnn_lstm.yaml", "--question", "q5", ANSWER],
             cwd=work, env=env)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert 0 < result["points"] <= result["max_points"] == 5


def test_the_installed_wheel_is_the_grader_that_runs_and_serves_its_docs(installed, outside):
    work, env = outside
    script = """
import json, grader
from pathlib import Path
from fastapi.testclient import TestClient
from grader.api import create_app
from grader.scoring.combiner import DEFAULT_COMBINER
from grader.settings import Settings
app = create_app(Settings(api_keys="packaging-key-1", rubrics_dir=Path.cwd()), loader=lambda: None)
client = TestClient(app)
paths = ["/docs", "/redoc", "/static/docs/swagger-ui-bundle.js", "/static/docs/swagger-ui.css",
         "/static/docs/redoc.standalone.js"]
print(json.dumps({"file": grader.__file__, "combiner": DEFAULT_COMBINER.is_file(),
                  "status": [client.get(p).status_code for p in paths]}))
"""
    r = _run([installed / "python", "-c", script], cwd=work, env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert Path(out["file"]).is_relative_to(installed.parent), out["file"]  # not the editable checkout
    assert out["combiner"] is True
    assert out["status"] == [200] * 5
