#!/usr/bin/env bash
# Concept detection on annotated questions beyond the q5 dev set (eval/probes/README.md): four the matcher was
# corrected on, then seventeen written apart from it in five rounds (120 more q5 answers against the shipped
# rubric, thirteen subjects, one of them in German).
# Figures in docs/evaluation.md, "Concepts on other subjects".
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-.venv/bin/python}"
for probe in stack_queue ice udp photosynthesis q5_heldout circuits cell_division price_ceiling hash_table \
    q5_fresh natural_selection tcp_congestion pass_by interest_rates mitose_meiose enzyme_inhibition \
    dns_resolution q5_round4 q5_round5 antibiotics respiration; do
  rubric="eval/probes/$probe/rubric.yaml"
  case "$probe" in q5_*) rubric=rubrics/rnn_lstm.yaml ;; esac
  echo "== $probe"
  "$py" -m grader eval "eval/probes/$probe/answers.csv" --rubric "$rubric" --concepts "eval/probes/$probe/concepts.csv" "$@"
done
