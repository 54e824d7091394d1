#!/usr/bin/env bash
# A scored corpus, evaluated as scores: SAF with its labels removed, so only `score`/`max_score`
# remain (as in corpora graded by points), 5 folds, unseen answers and unseen questions.
# Usage: eval/saf_scores.sh [en|de] [extra `grader eval` options, e.g. --finetune]
# Figures in docs/evaluation.md, "Scored corpora". Reports: out/eval/saf_<lang>_scores_<protocol>/index.html
set -euo pipefail
cd "$(dirname "$0")/.."
lang="${1:-en}"
shift || true
py="${PYTHON:-.venv/bin/python}"
corpus="out/eval/saf_${lang}_scores.csv"
mkdir -p out/eval
"$py" - "../shared/data/saf_${lang}/train.csv" "$corpus" <<'PY'
import csv, sys
with open(sys.argv[1], newline="", encoding="utf-8") as src, open(sys.argv[2], "w", newline="", encoding="utf-8") as dst:
    reader = csv.DictReader(src)
    writer = csv.DictWriter(dst, fieldnames=reader.fieldnames)
    writer.writeheader()
    for row in reader:
        writer.writerow({k: ("" if k.startswith("label") else v) for k, v in row.items()})
PY
for protocol in unseen-answers unseen-questions; do
  "$py" -m grader eval "$corpus" --target score --cv "$protocol" --folds 5 --seed 0 \
    --report "out/eval/saf_${lang}_scores_${protocol}" "$@"
done
