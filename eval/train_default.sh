#!/usr/bin/env bash
# Retrain the shipped combiner, grader/models/default.json, on SAF-en with the default settings.
# Its metadata records grouped-by-question validation figures, the corpus sha256 and the model.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m grader train ../shared/data/saf_en/train.csv -o grader/models/default.json \
  --examples-schedule 0,5,20 --seed 0 "$@"
