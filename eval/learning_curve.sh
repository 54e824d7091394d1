#!/usr/bin/env bash
# SAF-en learning curve: unseen questions, N hand-graded answers per question become examples.
# Figures in docs/evaluation.md, "Agreement with human graders". Report: out/eval/learning_curve/index.html
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m grader eval ../shared/data/saf_en/train.csv --cv unseen-questions --folds 5 --learning-curve 0,5,10,20,50 --report out/eval/learning_curve --seed 0 "$@"
