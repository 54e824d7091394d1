#!/usr/bin/env bash
# Retrain the shipped combiner, grader/models/default.json, on SAF-en and SAF-de pooled, with the default settings.
# Two languages and subjects teach it signal levels that hold beyond one corpus (trained on SAF-en alone it
# graded SAF-de at 0.374 accuracy; see docs/evaluation.md, "The shipped combiner").
# Its metadata records grouped-by-question validation figures, each corpus's sha256 and the model.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m grader train ../shared/data/saf_en/train.csv ../shared/data/saf_de/train.csv \
  -o grader/models/default.json --examples-schedule 0,5,20,all --seed 0 "$@"
