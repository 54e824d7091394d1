"""What a question's graded examples cost: fitting their model once, and applying it to each answer.

For every question of a corpus in the shared format, N of its answers become graded examples
(:class:`grader.scoring.exemplars.ExampleModel`) and the rest are graded by the model. Prints,
per N, the median time a question's preparation takes longer with the examples than without
(computing the examples' signals and fitting their model), the median time to apply the model
to an answer, the model's memory, and the median time an answer's tokens take to align with the
examples' (ex_tok_*: the whole signal vector with the examples' token vectors, less without them).
Every text is encoded before the clock starts (grading shares the encodings with every other signal).

    .venv/bin/python bench/examples_model.py                      # ../shared/data/saf_en/train.csv
    .venv/bin/python bench/examples_model.py CORPUS --examples 10,40,100

Record the figures on docs/performance.md with the date and this command.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from grader.encoding.blas_threads import limit_blas_threads
from grader.encoding.registry import get_embedder
from grader.evaluation.corpus import build_questions, read_corpus
from grader.evaluation.training import CachingEmbedder, label_fractions_of, with_examples
from grader.scoring.features import EXAMPLE_SIGNAL_AT, answer_signals, prepare_question

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "saf_en" / "train.csv"


def _prepare_ms(question, embedder, fractions):
    """(milliseconds, prepared question) of one uncached preparation."""
    start = time.perf_counter()
    prepared = prepare_question(question, embedder, "auto", fractions)
    return 1000 * (time.perf_counter() - start), prepared


def _aligning_ms(prepared, answers: list[str], embedder) -> float:
    """Milliseconds per answer that aligning its tokens with the examples' adds to its signals."""
    encodings = embedder.encode_tokens(answers)
    bank, times = prepared.example_tokens, []
    for tokens in (bank, None):
        prepared.example_tokens = tokens
        start = time.perf_counter()
        for answer, enc in zip(answers, encodings):
            answer_signals(prepared, answer, enc)
        times.append(1000 * (time.perf_counter() - start) / len(answers))
    prepared.example_tokens = bank
    return times[0] - times[1]


def run(corpus: Path, counts: list[int], seed: int = 0) -> list[dict]:
    limit_blas_threads()  # as a grader does: the products are small, and more threads only spin
    rows = [r for r in read_corpus(corpus) if r.answer.strip() and (r.fraction is not None or r.label)]
    questions = build_questions(rows)
    fractions = label_fractions_of(rows)
    embedder = CachingEmbedder(get_embedder())
    embedder.warm([r.answer for r in rows] + [t for q in questions.values() for t in (q.prompt, *q.reference_answers)])
    by_q: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_q.setdefault(r.question_id, []).append(i)
    # Each answer's own signals against its question (what the examples' model reads beside the wording).
    own = {}
    for qid, idx in by_q.items():
        prepared = prepare_question(questions[qid], embedder, "auto", fractions)
        for i, enc in zip(idx, embedder.encode_tokens([rows[i].answer for i in idx])):
            own[i] = answer_signals(prepared, rows[i].answer, enc).features[EXAMPLE_SIGNAL_AT]
    rng = np.random.default_rng(seed)
    out = []
    for n in counts:
        fits, per_answer, sizes, aligning = [], [], [], []
        for qid, idx in by_q.items():
            if len(idx) <= n:
                continue
            order = rng.permutation(idx)
            ex, rest = order[:n], order[n:]
            question = questions[qid]
            graded = with_examples(question, [rows[i] for i in ex], label_target=rows[ex[0]].fraction is None)
            _prepare_ms(graded, embedder, fractions)  # first call: the clause encoder and caches warm up
            with_ms, prepared = _prepare_ms(graded, embedder, fractions)
            fits.append(with_ms - _prepare_ms(question, embedder, fractions)[0])
            model = prepared.example_model
            vectors = embedder.encode([rows[i].answer for i in rest])
            start = time.perf_counter()
            for i, vec in zip(rest, vectors):
                model.predict(rows[i].answer, vec, signals=own[i])
            per_answer.append((time.perf_counter() - start) / len(rest))
            sizes.append(model.nbytes())
            aligning.append(_aligning_ms(prepared, [rows[i].answer for i in rest], embedder))
        out.append({"examples": n, "questions": len(fits), "prepare_ms": float(np.median(fits)),
                    "per_answer_ms": 1000 * float(np.median(per_answer)), "model_kb": float(np.median(sizes)) / 1024,
                    "aligning_ms": float(np.median(aligning))})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    p.add_argument("--examples", default="5,20,60", help="graded examples per question (default: 5,20,60)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print("examples  questions  prepare +ms (median)  ms per answer (median)  model KB (median)  aligning ms (median)")
    for r in run(args.corpus, [int(v) for v in args.examples.split(",")], args.seed):
        print(f"{r['examples']:>8}  {r['questions']:>9}  {r['prepare_ms']:>20.1f}  {r['per_answer_ms']:>22.3f}  "
              f"{r['model_kb']:>17.0f}  {r['aligning_ms']:>20.3f}")


if __name__ == "__main__":
    main()
