#!/usr/bin/env bash
# SAF-de, unseen answers: 5 folds within each question.
# Figures in docs/evaluation.md, "Agreement with human graders". Report: out/eval/saf_de_unseen_answers/index.html
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m grader eval ../shared/data/saf_de/train.csv --cv unseen-answers --folds 5 --report out/eval/saf_de_unseen_answers --seed 0 "$@"
