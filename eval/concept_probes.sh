#!/usr/bin/env bash
# Concept detection on four questions outside the example quiz (eval/probes/README.md).
# Figures in docs/evaluation.md, "Concepts on other subjects".
set -euo pipefail
cd "$(dirname "$0")/.."
for probe in stack_queue ice udp photosynthesis; do
  "${PYTHON:-.venv/bin/python}" -m grader eval "eval/probes/$probe/answers.csv" --rubric "eval/probes/$probe/rubric.yaml" \
    --concepts "eval/probes/$probe/concepts.csv" "$@"
done
