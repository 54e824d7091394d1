"""``grader train``: fit the combiner on answers humans have graded."""

from __future__ import annotations

import json


def parse_counts(text: str, option: str, allow_all: bool = False) -> tuple:
    """'0,5,20' -> (0, 5, 20), and 'all' -> 'all' where ``allow_all``; errors name the option and the value."""
    from grader.errors import ConfigError
    from grader.evaluation.training import ALL

    allowed = "whole numbers >= 0 or 'all'" if allow_all else "whole numbers >= 0"
    values = []
    for v in (v.strip().lower() for v in text.split(",")):
        if not v:
            continue
        if allow_all and v == ALL:
            values.append(ALL)
            continue
        try:
            values.append(int(v))
        except ValueError:
            values = []
            break
    if not values or any(v != ALL and v < 0 for v in values):
        raise ConfigError(f"{option} must list {allowed}, comma-separated such as 0,5,20. Got '{text}'.",
                          field=option)
    return tuple(values)


def read_labeled(paths, args):
    """Rows of a labelled corpus, or of several pooled; a --label-col given (or --target label) must be a
    column of each file."""
    from grader.evaluation.corpus import read_corpora
    from grader.errors import InputDataError

    paths = [paths] if isinstance(paths, (str, bytes)) or not hasattr(paths, "__iter__") else list(paths)
    explicit = args.label_col is not None or args.target == "label"
    args.label_col = args.label_col or "label"
    rows = read_corpora(paths, label_col=args.label_col)
    if explicit:
        for path in paths:
            first = next(r for r in rows if r.source == str(path))
            if args.label_col not in first.extra:
                raise InputDataError(f"no column '{args.label_col}'; the header has {list(first.extra) + ['answer']}",
                                     field=args.label_col, source=str(path))
    return rows


def training_files(paths) -> dict:
    """What a model's metadata records of the corpora it was trained on."""
    from pathlib import Path

    from grader.evaluation.corpus import corpora_fingerprint, corpus_fingerprint

    digests = [corpus_fingerprint(p) for p in paths]
    if len(paths) == 1:
        return {"training_file": Path(paths[0]).name, "fingerprint": digests[0]}
    clash = len({Path(p).name for p in paths}) < len(paths)
    names = [f"{Path(p).parent.name}/{Path(p).name}" if clash else Path(p).name for p in paths]
    return {"training_file": ", ".join(names), "fingerprint": corpora_fingerprint(digests),
            "corpus_fingerprints": dict(zip(names, digests))}


def training_options(args) -> dict:
    """C, class_weight and ignored signals from the command line, checked."""
    from grader.errors import ConfigError
    from grader.evaluation.training import DEFAULT_C, DEFAULT_IGNORED, check_feature_names

    C = DEFAULT_C if args.C is None else args.C
    if C <= 0:
        raise ConfigError(f"--C must be > 0. Got {C}.", field="C")
    if args.ignore_features is None:
        ignore = DEFAULT_IGNORED
    elif args.ignore_features.strip().lower() == "none":
        ignore = ()
    else:
        ignore = check_feature_names([n.strip() for n in args.ignore_features.split(",") if n.strip()])
    return {"C": C, "class_weight": None if args.class_weight == "none" else args.class_weight, "ignore": ignore}


def add_parser(sub) -> None:
    from grader.cli.common import add_finetune_options, add_model_options

    p = sub.add_parser("train", help="fit the combiner on labelled answers and save it as JSON",
                       description="Fit the combiner on a labelled corpus (the ../shared/data CSV format).")
    p.add_argument("corpus", metavar="LABELED.csv", nargs="+",
                   help="graded answers: question_id, answer, label and/or score; several files graded with the "
                        "same labels are pooled (a question id in two files with different texts stays two questions)")
    p.add_argument("-o", "--output", required=True, help="where to write the combiner JSON (e.g. models/NAME.json), "
                   "or with --finetune the scorer folder (e.g. models/NAME/)")
    p.add_argument("--rubric", default=None, help="take questions from this rubric, matched by question_id "
                   "(default: build them from the question and reference_answer columns)")
    p.add_argument("--label-col", default=None, help="column holding the human labels (default: label)")
    p.add_argument("--target", choices=["label", "score"], default=None,
                   help="learn labels or points (score/max_score); default: labels when filled, else scores")
    p.add_argument("--examples-schedule", default="0,5,20,all",
                   help="numbers of graded examples per question simulated during training; 'all': every other "
                        "answer of the question, cross-fitted (default: 0,5,20,all)")
    p.add_argument("--seed", type=int, default=0, help="seed for drawing the simulated examples (default: 0)")
    p.add_argument("--C", type=float, default=None, help="inverse regularisation strength (default: 0.1)")
    p.add_argument("--ignore-features", default=None, metavar="LIST",
                   help="signals the combiner gives zero weight (default: q_overlap,ref_minus_q; 'none' for all)")
    p.add_argument("--class-weight", choices=["none", "balanced"], default="none",
                   help="weight labels by inverse frequency (default: none)")
    p.add_argument("--no-validate", action="store_true", help="skip the grouped-by-question validation figures")
    add_model_options(p, combiner=False)
    add_finetune_options(p, "fine-tune a cross-encoder on the corpus, fit the combiner on its cross-fitted "
                            "signals and write both to the folder --output")
    p.add_argument("--crossfit", choices=["answers", "questions"], default="answers",
                   help="with --finetune: how the combiner's training signals are cross-fitted: by answers within "
                        "each question (for grading new answers to these questions; default) or by whole questions "
                        "(measured: a scorer still lowers agreement on questions it has not seen; see docs/finetune.md)")
    p.set_defaults(run=run)


def run(args) -> int:
    from pathlib import Path

    from grader.encoding.registry import get_embedder
    from grader.errors import ConfigError
    from grader.rubric import load_rubric
    from grader.evaluation.training import train_from_rows

    from grader.cli.common import finetune_config

    schedule = parse_counts(args.examples_schedule, "--examples-schedule", allow_all=True)
    options = training_options(args)
    out = Path(args.output)
    config = finetune_config(args)
    if config is not None:
        return _run_finetune(args, config, schedule, options, out)
    if out.suffix.lower() != ".json":
        raise ConfigError(f"--output must be a .json file. Got '{out}'.", field="output")
    rubric = load_rubric(args.rubric) if args.rubric else None
    rows = read_labeled(args.corpus, args)
    files = training_files(args.corpus)
    embedder = get_embedder(args.model, args.device, args.backend)
    combiner, meta = train_from_rows(
        rows, target=args.target, embedder=embedder, rubric=rubric, example_counts=schedule, seed=args.seed,
        **options, validate=not args.no_validate, fingerprint=files.pop("fingerprint"), label_col=args.label_col)
    meta.update(files)
    if rubric is not None:
        meta["rubric"] = rubric.id
    combiner.save(out, meta)
    summary = {"output": str(out), "target": meta["target"], "labels": meta["labels"],
               "training_rows": meta["training_rows"], "training_questions": meta["training_questions"]}
    validation = meta.get("validation") or {}
    for key, fig in validation.items():
        if key.startswith("examples_"):
            summary[f"validation_{key}"] = {k: round(fig[k], 4) for k in ("accuracy", "macro_f1")}
    print(json.dumps(summary, indent=2))
    return 0


def _run_finetune(args, config, schedule, options, out) -> int:
    """``grader train --finetune``: the scorer folder with its stacked combiner."""
    from grader.encoding.registry import get_embedder
    from grader.errors import ConfigError
    from grader.evaluation.stacking import train_scorer
    from grader.rubric import load_rubric

    if out.suffix.lower() == ".json" or (out.exists() and not out.is_dir()):
        raise ConfigError(f"with --finetune, --output must be a folder (e.g. models/NAME/). Got '{out}'.",
                          field="output")
    rubric = load_rubric(args.rubric) if args.rubric else None
    rows = read_labeled(args.corpus, args)
    files = training_files(args.corpus)
    embedder = get_embedder(args.model, args.device, args.backend)
    meta = train_scorer(rows, out, config, target=args.target, embedder=embedder, rubric=rubric,
                        example_counts=schedule, seed=args.seed, **options, validate=not args.no_validate,
                        fingerprint=files.pop("fingerprint"), label_col=args.label_col, crossfit_by=args.crossfit,
                        extra_metadata={**files, "rubric": rubric.id if rubric is not None else None})
    summary = {"output": str(out), "base_model": meta["base_model"], "labels": meta["labels"],
               "epochs": meta["epochs"], "max_length": meta["max_length"], "seed": meta["seed"],
               "finetune_seconds": meta["finetune_seconds"], "total_seconds": meta["total_seconds"]}
    for key, fig in (meta.get("combiner_validation") or {}).items():
        if key.startswith("examples_"):
            summary[f"validation_{key}"] = {k: round(fig[k], 4) for k in ("accuracy", "macro_f1")}
    print(json.dumps(summary, indent=2))
    return 0
