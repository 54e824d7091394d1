#!/usr/bin/env bash
# Concept detection on annotated questions beyond the q5 dev set (eval/probes/README.md): four the matcher was
# corrected on, then eleven written apart from it (60 more q5 answers against the shipped rubric, nine subjects,
# one of them in German).
# Figures in docs/evaluation.md, "Concepts on other subjects".
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-.venv/bin/python}"
for probe in stack_queue ice udp photosynthesis q5_heldout circuits cell_division price_ceiling hash_table \
    q5_fresh natural_selection tcp_congestion pass_by interest_rates mitose_meiose; do
  rubric="eval/probes/$probe/rubric.yaml"
  case "$probe" in q5_*) rubric=rubrics/rnn_lstm.yaml ;; esac
  echo "== $probe"
  "$py" -m grader eval "eval/probes/$probe/answers.csv" --rubric "$rubric" --concepts "eval/probes/$probe/concepts.csv" "$@"
done
