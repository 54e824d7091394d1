"""``grader eval``: how well the grader agrees with human graders, next to two baselines."""

from __future__ import annotations

import json
import sys


def add_parser(sub) -> None:
    from grader.cli.common import add_finetune_options, add_model_options

    p = sub.add_parser("eval", help="compare the grader with human labels or scores",
                       description="Grade every row of a labelled corpus and compare with the human grades. "
                       "Without --cv or --train the combiner (default grader/models/default.json) is used as is.")
    p.add_argument("corpus", metavar="LABELED.csv", help="graded answers in the ../shared/data CSV format")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--label-col", default=None, help="column holding the human labels (default: label)")
    target.add_argument("--target", choices=["label", "score"], default=None,
                        help="compare labels or points (default: labels when filled, else scores)")
    protocol = p.add_mutually_exclusive_group()
    protocol.add_argument("--train", metavar="TRAIN.csv", default=None,
                          help="train a combiner and the baselines on this file, test on LABELED.csv")
    protocol.add_argument("--cv", choices=["unseen-answers", "unseen-questions"], default=None,
                          help="cross-validate: hold out answers within each question, or whole questions")
    p.add_argument("--folds", type=int, default=5, help="folds for --cv (default: 5)")
    p.add_argument("--examples-per-question", type=int, default=None, metavar="N",
                   help="N hand-graded answers per question become its examples; the rest are scored")
    p.add_argument("--learning-curve", default=None, metavar="LIST",
                   help="repeat --examples-per-question at each N, e.g. 0,5,10,20,50")
    p.add_argument("--rubric", default=None, help="take questions from this rubric, matched by question_id")
    p.add_argument("--examples-schedule", default="0,5,20,all",
                   help="graded examples per question simulated when training each fold; 'all': every other "
                        "answer of the question, cross-fitted (default: 0,5,20,all)")
    p.add_argument("--C", type=float, default=None, help="inverse regularisation strength when training (default: 0.1)")
    p.add_argument("--ignore-features", default=None, metavar="LIST",
                   help="signals the combiner gives zero weight (default: q_overlap,ref_minus_q; 'none' for all)")
    p.add_argument("--class-weight", choices=["none", "balanced"], default="none",
                   help="label weighting when training (default: none)")
    p.add_argument("--concepts", default=None, metavar="CONCEPTS.csv",
                   help="hand annotations per key phrase and misconception (answer_id,item,kind,status,evidence): "
                   "adds concept precision/recall/F1, misconception precision/recall and evidence overlap")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="write report.md, metrics.json, predictions.csv, PNG plots and index.html to DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object with every metric")
    p.add_argument("--seed", type=int, default=0, help="seed for folds and example draws (default: 0)")
    add_model_options(p)
    add_finetune_options(p, "with --cv or --train: fine-tune a cross-encoder in each fold on the fold's training "
                            "rows only and stack its signals under the combiner")
    p.set_defaults(run=run)


def run(args) -> int:
    from grader.cli.common import finetune_config
    from grader.cli.train import parse_counts, read_labeled, training_options
    from grader.encoding.registry import get_embedder
    from grader.evaluation.concepts import read_concepts
    from grader.evaluation.corpus import corpus_fingerprint
    from grader.errors import ConfigError
    from grader.evaluation.report import format_table, write_report
    from grader.evaluation.protocols import evaluate
    from grader.rubric import load_rubric

    if args.cv is None and args.folds != 5:
        raise ConfigError("--folds only applies with --cv", field="folds")
    if args.combiner and (args.cv or args.train):
        raise ConfigError("--combiner evaluates a trained model as is; drop --cv/--train, which train fresh ones",
                          field="combiner")
    if args.examples_per_question is not None and args.examples_per_question < 0:
        raise ConfigError(f"--examples-per-question must be >= 0. Got {args.examples_per_question}.",
                          field="examples_per_question")
    config = finetune_config(args)
    if config is not None and not (args.cv or args.train):
        raise ConfigError("--finetune trains a scorer per fold: add --cv or --train (to grade with a trained scorer "
                          "folder, pass it as --combiner)", field="finetune")
    curve = parse_counts(args.learning_curve, "--learning-curve") if args.learning_curve else ()
    schedule = parse_counts(args.examples_schedule, "--examples-schedule", allow_all=True)
    rubric = load_rubric(args.rubric) if args.rubric else None
    concepts = read_concepts(args.concepts) if args.concepts else None
    rows = read_labeled(args.corpus, args)
    train_rows = read_labeled(args.train, args) if args.train else None
    result = evaluate(
        rows, target=args.target, train_rows=train_rows, combiner=args.combiner, cv=args.cv, folds=args.folds,
        examples_per_question=args.examples_per_question, learning_curve=curve, seed=args.seed, rubric=rubric,
        embedder=get_embedder(args.model, args.device, args.backend), example_counts=schedule,
        label_col=args.label_col, concepts=concepts, concepts_source=args.concepts,
        corpus_sha256=corpus_fingerprint(args.corpus), train_sha256=corpus_fingerprint(args.train) if args.train else None,
        finetune=config, **training_options(args))
    result.summary["corpus"] = args.corpus
    result.summary["train_file"] = args.train
    result.summary["combiner"] = args.combiner
    if args.report:
        write_report(result, args.report)
    if args.json:
        json.dump(result.summary, sys.stdout, indent=1, default=str)
        print()
    else:
        print(format_table(result.summary))
        if args.report:
            print(f"\nreport: {args.report}/index.html")
    return 0
