"""Does the int8 encoder change agreement with human graders? fp32 vs int8 on a labelled corpus.

    .venv/bin/python bench/int8_accuracy.py [../shared/data/saf_en/train.csv]

Protocol: unseen questions (5 folds grouped by question_id); for each backend the
combiner is trained and tested on that backend's signals, and also the fp32-trained
combiner is applied to int8 signals (what a user switching backend gets).
The int8 backend is the ONNX Runtime encoder (grader/encoding/onnx_encoder.py); its file
is built into the cache on first use, so the int8 signal time includes that build once.
Encoder speed and vector agreement alone: bench/int8_encoder.py.

Record the figures on docs/evaluation.md (the int8 against fp32 paragraph) with the date and
this command.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GroupKFold

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: this tree's bench package
from bench.common import SAF_EN  # noqa: E402


def signals(path: Path, backend: str):
    from grader.evaluation.corpus import read_corpus
    from grader.engine import Grader, get_embedder
    from grader.evaluation.training import build_dataset, label_fractions_of

    rows = read_corpus(path)
    grader = Grader.for_signals(get_embedder(None, "cpu", backend), label_fractions_of(rows))
    started = time.perf_counter()
    data = build_dataset(grader, rows, "label")
    return data, time.perf_counter() - started


def main() -> None:
    from grader.evaluation.training import fit_combiner

    path = Path(sys.argv[1]) if len(sys.argv) > 1 else SAF_EN
    fp32, t32 = signals(path, "fp32")
    int8, t8 = signals(path, "int8")
    assert list(fp32.y) == list(int8.y)
    folds = list(GroupKFold(5).split(fp32.X, fp32.y, fp32.groups))
    preds = {k: np.empty(len(fp32.y), dtype=object) for k in ("fp32", "int8", "fp32->int8")}
    for train, test in folds:
        sub = lambda d, idx: type(d)(d.X[idx], d.y[idx], d.fractions[idx], d.groups[idx])  # noqa: E731
        m32 = fit_combiner(sub(fp32, train))
        m8 = fit_combiner(sub(int8, train))
        preds["fp32"][test] = m32.predict(fp32.X[test])
        preds["int8"][test] = m8.predict(int8.X[test])
        preds["fp32->int8"][test] = m32.predict(int8.X[test])
    print(f"corpus: {path} ({len(fp32.y)} answers), unseen questions, 5 folds")
    print(f"signal time: fp32 {t32:.1f} s, int8 {t8:.1f} s")
    print(f"{'backend':<12} {'accuracy':>9} {'macro-F1':>9}")
    for name, p in preds.items():
        print(f"{name:<12} {accuracy_score(fp32.y, p):>9.3f} {f1_score(fp32.y, p, average='macro'):>9.3f}")
    delta = accuracy_score(fp32.y, preds["int8"]) - accuracy_score(fp32.y, preds["fp32"])
    print(f"accuracy change int8 vs fp32: {100 * delta:+.1f} points")


if __name__ == "__main__":
    main()
