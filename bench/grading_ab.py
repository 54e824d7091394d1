"""CPU time of grading one answer, this tree against an earlier revision, in one process.

    .venv/bin/python bench/grading_ab.py --base 9f635ac [--corpus generated|saf_en|q5] [--answers 2000] [--rounds 20]

Separate runs on a shared machine differ by a quarter, more than most changes to the
grading code, so both versions run in the same process, in alternating rounds, on the
same encodings (computed once by this tree's encoder, ``--backend``). The revision's
``grader`` package is extracted with ``git archive`` and imported as ``grader_base``; it
must have ``grader.scoring.policy.score_answer`` (0d3f701 and later). It first checks that
both versions grade every answer alike, then prints the best and the median thread CPU per
answer of ``score_answer`` on the question ``Grader.prepare`` returns (signals, detectors,
the result) and the ratio of each pair of rounds.

Record the figures on docs/performance.md with the date and this command.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: this tree's bench package
from bench.common import ROOT, in_turn, load_corpus  # noqa: E402

_IMPORT = re.compile(r"\b(from|import) grader\b")


def extract(revision: str, into: Path) -> None:
    """The ``grader`` package of ``revision`` as the package ``grader_base`` under ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "grader"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    (into / "grader").rename(into / "grader_base")
    for path in (into / "grader_base").rglob("*.py"):
        path.write_text(_IMPORT.sub(r"\1 grader_base", path.read_text(encoding="utf-8")), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--corpus", choices=("saf_en", "generated", "q5"), default="generated")
    parser.add_argument("--answers", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--backend", default="int8")
    args = parser.parse_args()
    if subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{args.base}:grader/scoring/policy.py"],
                      capture_output=True).returncode != 0:
        parser.error(f"--base must be a revision with grader/scoring/policy.py (0d3f701 or later). "
                     f"Got '{args.base}'.")
    folder = Path(tempfile.mkdtemp(prefix="grader-ab-"))
    try:
        extract(args.base, folder)
        compare(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def compare(args: argparse.Namespace, folder: Path) -> None:
    """Import both versions, check they agree, and time them in alternating rounds."""
    sys.path.insert(0, str(folder))
    questions, pairs = load_corpus(args.corpus, args.answers)
    combiner = ROOT / "grader" / "models" / "default.json"
    graders, encodings = {}, None
    for name in ("grader_base", "grader"):
        engine = importlib.import_module(f"{name}.engine")
        encoding_type = importlib.import_module(f"{name}.encoding.embedder").Encoding
        score_answer = importlib.import_module(f"{name}.scoring.policy").score_answer
        grader = engine.Grader(None, embedder=engine.get_embedder(None, "cpu", args.backend, None), combiner=combiner)
        for question in questions.values():
            grader.prepare(question)
        if encodings is None:
            encodings = grader.encode_answers(a for _, a in pairs)
        mine = {t: encoding_type(e.vector, e.tokens, e.offsets) for t, e in encodings.items()}
        graders[name] = (grader, score_answer, [(q, a, mine[a]) for q, a in pairs if a in mine])
    results = {name: [score(g.prepare(q), a, e, g.combiner).to_dict() for q, a, e in answered]
               for name, (g, score, answered) in graders.items()}
    same = sum(x == y for x, y in zip(results["grader_base"], results["grader"]))
    print(f"{len(results['grader'])} {args.corpus} answers graded alike by both: {same}")
    spent: dict[str, list[float]] = {name: [] for name in graders}
    for r in range(args.rounds):
        for name in in_turn(("grader_base", "grader"), r):
            grader, score, answered = graders[name]
            started = time.thread_time()
            for q, a, e in answered:
                score(grader.prepare(q), a, e, grader.combiner)
            spent[name].append((time.thread_time() - started) / len(answered) * 1e6)
    for name, label in (("grader_base", args.base), ("grader", "this tree")):
        print(f"{label:>12}: best {min(spent[name]):7.1f} us, median {statistics.median(spent[name]):7.1f} us an answer")
    ratios = [new / old for old, new in zip(spent["grader_base"], spent["grader"])]
    print("this tree / base, round by round: " + " ".join(f"{x:.2f}" for x in ratios)
          + f" (median {statistics.median(ratios):.2f})")


if __name__ == "__main__":
    main()
