#!/usr/bin/env bash
# SAF-en, unseen questions: 5 folds grouped by question_id; grader vs cosine and lexical baselines.
# Figures in docs/evaluation.md, "Agreement with human graders". Report: out/eval/saf_en_unseen_questions/index.html
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m grader eval ../shared/data/saf_en/train.csv --cv unseen-questions --folds 5 --report out/eval/saf_en_unseen_questions --seed 0 "$@"
