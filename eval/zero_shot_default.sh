#!/usr/bin/env bash
# Zero-shot: the shipped grader/models/default.json (trained on SAF-en) grades SAF-de as is.
# Figures in docs/evaluation.md, "Agreement with human graders". Report: out/eval/zero_shot_default/index.html
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m grader eval ../shared/data/saf_de/train.csv --combiner grader/models/default.json --report out/eval/zero_shot_default --seed 0 "$@"
