#!/usr/bin/env bash
# Create .venv and install grader with its pinned dependencies. Safe to run again.
# torch is installed first, pinned to the CPU wheel: asking pip for a torch range
# before one is installed would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e '.[dev,ray]'
