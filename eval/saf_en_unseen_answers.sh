#!/usr/bin/env bash
# SAF-en, unseen answers: 5 folds within each question (training answers become graded examples).
# Figures in docs/evaluation.md, "Agreement with human graders". Report: out/eval/saf_en_unseen_answers/index.html
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m grader eval ../shared/data/saf_en/train.csv --cv unseen-answers --folds 5 --report out/eval/saf_en_unseen_answers --seed 0 "$@"
