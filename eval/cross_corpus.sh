#!/usr/bin/env bash
# Agreement beyond the training corpus, as the shipped combiner meets it on a new course:
#  1. a combiner trained on one SAF corpus grades the other as is (other language, other subject);
#  2. SAF-en and SAF-de pooled (as grader/models/default.json is trained), 5 folds of unseen questions,
#     with each corpus's figures apart.
# Figures in docs/evaluation.md, "The shipped combiner". Reports: out/eval/cross_*/index.html
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-.venv/bin/python}"
data=../shared/data
mkdir -p out/eval
for pair in "en de" "de en"; do
  set -- $pair
  "$py" -m grader train "$data/saf_$1/train.csv" -o "out/eval/cross_$1.json" --examples-schedule 0,5,20,all --seed 0 \
    --no-validate > /dev/null
  echo "trained on SAF-$1, grading SAF-$2:"
  "$py" -m grader eval "$data/saf_$2/train.csv" --combiner "out/eval/cross_$1.json" --seed 0 \
    --report "out/eval/cross_$1_to_$2" | grep -E "^ *(grader|system)"
done
"$py" - "$data/saf_en/train.csv" "$data/saf_de/train.csv" out/eval/saf_pooled.csv <<'PY'
import csv, sys
*sources, target = sys.argv[1:]
with open(target, "w", newline="", encoding="utf-8") as dst:
    writer = None
    for path in sources:
        with open(path, newline="", encoding="utf-8") as src:
            reader = csv.DictReader(src)
            writer = writer or csv.DictWriter(dst, fieldnames=reader.fieldnames)
            if dst.tell() == 0:
                writer.writeheader()
            writer.writerows(reader)
PY
"$py" -m grader eval out/eval/saf_pooled.csv --cv unseen-questions --folds 5 --seed 0 \
  --report out/eval/cross_pooled_unseen_questions > /dev/null
echo "SAF-en and SAF-de pooled, unseen questions, 5 folds:"
"$py" - out/eval/saf_pooled.csv out/eval/cross_pooled_unseen_questions/predictions.csv <<'PY'
import csv, sys
import numpy as np
from sklearn.metrics import accuracy_score, f1_score
with open(sys.argv[1], newline="", encoding="utf-8") as fh:
    dataset = {n: r["dataset"] for n, r in enumerate(csv.DictReader(fh), start=1)}
with open(sys.argv[2], newline="", encoding="utf-8") as fh:
    rows = [r for r in csv.DictReader(fh) if r["system"] == "grader"]
for name in sorted({dataset[int(r["row"])] for r in rows}):
    part = [r for r in rows if dataset[int(r["row"])] == name]
    human, predicted = [r["human"] for r in part], [r["predicted"] for r in part]
    frac = np.array([float(r["predicted_fraction"]) for r in part])
    score = np.array([float(r["human_score"]) / float(r["max_score"]) for r in part])
    print(f"  {name}: {len(part)} answers, accuracy {accuracy_score(human, predicted):.3f}, macro-F1 "
          f"{f1_score(human, predicted, average='macro'):.3f}, Pearson r {np.corrcoef(frac, score)[0, 1]:.3f}, "
          f"RMSE {np.sqrt(np.mean((frac - score) ** 2)):.3f}")
PY
