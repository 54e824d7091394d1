#!/usr/bin/env bash
# Wall time of `grader eval --cv unseen-questions --folds 5` on ~3,000 (SAF-en + SAF-de) or more answers.
# ROWS_COPIES=2 doubles the corpus (answers get a copy suffix so each is encoded) for a ~6,000-answer run.
# Record the figures on docs/performance.md with the date and this command.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
"${PYTHON:-.venv/bin/python}" - "$tmp/big.csv" "${ROWS_COPIES:-1}" <<'PY'
import csv, sys
out, copies = sys.argv[1], int(sys.argv[2])
rows = []
for name in ("saf_en", "saf_de"):
    with open(f"../shared/data/{name}/train.csv", encoding="utf-8", newline="") as fh:
        rows += list(csv.DictReader(fh))
with open(out, "w", encoding="utf-8", newline="") as fh:
    w = csv.DictWriter(fh, fieldnames=list(rows[0]))
    w.writeheader()
    for c in range(copies):
        for r in rows:
            w.writerow(dict(r, answer=r["answer"] + (f" ({c})" if c else ""), question_id=r["question_id"] + (f"_{c}" if c else "")))
print(f"{len(rows) * copies} rows", file=sys.stderr)
PY
/usr/bin/time -f "wall %e s, max RSS %M KB" "${PYTHON:-.venv/bin/python}" -m grader eval "$tmp/big.csv" \
  --cv unseen-questions --folds 5 "$@"
