"""How an evaluation is shown: a readable table, and a report folder.

``write_report(evaluation, DIR)`` writes ``metrics.json`` (the summary),
``predictions.csv`` (every graded row, every system), ``report.md``, PNG plots
(confusion matrix, reliability diagram, coverage-accuracy curve, predicted
against human score, learning curve) and an ``index.html`` that shows them.
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path

import numpy as np

from grader.evaluation.protocols import SYSTEMS, Evaluation
from grader.evaluation.metrics import coverage_curve, reliability

HEADLINE = (("accuracy", "acc"), ("macro_f1", "macro-F1"), ("weighted_f1", "weighted-F1"),
            ("coverage_at_90", "cov@90"), ("coverage_at_95", "cov@95"))
SCORE_HEADLINE = (("pearson", "Pearson"), ("spearman", "Spearman"), ("rmse", "RMSE"), ("mae", "MAE"), ("qwk", "QWK"))


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _protocol_line(summary: dict) -> str:
    p = summary["protocol"]
    parts = [p["name"]]
    if p.get("folds"):
        parts.append(f"{p['folds']} folds")
    if p.get("examples_per_question") is not None:
        parts.append(f"{p['examples_per_question']} examples/question")
    parts.append(f"seed {p['seed']}")
    return ", ".join(parts)


def _rows(summary: dict) -> list[list[str]]:
    systems = summary["systems"]
    has_score = any("score" in m for m in systems.values())
    header = ["system", "n"] + [h for _, h in HEADLINE] + ([h for _, h in SCORE_HEADLINE] if has_score else [])
    out = [header]
    for name, m in systems.items():
        row = [name, str(m.get("n", 0))] + [_fmt(m.get(k)) for k, _ in HEADLINE]
        if has_score:
            row += [_fmt((m.get("score") or {}).get(k)) for k, _ in SCORE_HEADLINE]
        out.append(row)
    return out


def format_table(summary: dict) -> str:
    """The summary as plain text: headline metrics per system, then the learning curve."""
    lines = [f"{summary.get('corpus') or 'corpus'}: {summary['rows']} rows, {summary['questions']} questions, "
             f"target {summary['target']}; protocol {_protocol_line(summary)}"]
    rows = _rows(summary)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for k, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    for text in summary.get("warnings") or ():
        lines.append(f"warning: {text}")
    for b, m in (summary.get("margin") or {}).items():
        lines.append(f"grader - {b}: accuracy {m['accuracy']:+.3f}, macro-F1 {m['macro_f1']:+.3f}")
    if summary.get("labels_not_seen_in_training"):
        how = ("reached only through the labels mapped below" if summary.get("labels_mapped")
               else "always counted wrong")
        lines.append(f"labels never seen in training ({how}): {summary['labels_not_seen_in_training']}")
    for label, among in (summary.get("labels_mapped") or {}).items():
        lines.append(f"the model's label '{label}', which the corpus does not use, counts as whichever of "
                     f"{', '.join(among)} has the mean grade nearest the answer's points")
    skipped = summary.get("skipped_rows") or []
    if skipped:
        lines.append(f"rows that could not be graded, left out of every metric: {len(skipped)}")
        for r in skipped[:10]:
            lines.append(f"  {r['file']} row {r['row']} (answer {r['answer_id']}, question {r['question_id']}): "
                         f"{r['reason']}")
        if len(skipped) > 10:
            lines.append(f"  ... and {len(skipped) - 10} more (every one is in metrics.json)")
    if summary.get("rows_without_target"):
        lines.append(f"rows without a human {summary['target']} (graded, not compared): {summary['rows_without_target']}")
    if summary.get("systems_note"):
        lines.append(summary["systems_note"])
    if summary.get("learning_curve"):
        lines.append("")
        lines.append("learning curve (accuracy / macro-F1 by graded examples per question):")
        names = [s for s in SYSTEMS if s in summary["learning_curve"][0]]
        lines.append("  N    " + "  ".join(f"{s:>17}" for s in names))
        for point in summary["learning_curve"]:
            cells = [f"{point[s]['accuracy']:.3f} / {point[s]['macro_f1']:.3f}" if point[s].get("n") else "-"
                     for s in names]
            lines.append(f"  {point['examples_per_question']:<4} " + "  ".join(f"{c:>17}" for c in cells))
    if summary.get("concepts"):
        lines.append("")
        lines += concept_lines(summary["concepts"])
    t = summary["timing_s"]
    lines.append(f"time: {t['total']:.1f}s ({t['distinct_texts_encoded']} distinct texts encoded in {t['encode']:.1f}s)")
    return "\n".join(lines)


def _concept_rows(concepts: dict) -> list[list[str]]:
    header = ["item", "P", "R", "F1", "TP", "FP", "FN", "evidence Jaccard"]
    out = [header]

    def row(name, m):
        return [name, _fmt(m["precision"]), _fmt(m["recall"]), _fmt(m["f1"]),
                str(m["tp"]), str(m["fp"]), str(m["fn"]), _fmt(m["evidence_jaccard"])]

    for name, m in concepts["per_concept"].items():
        out.append(row(f"concept: {name}", m))
    out.append(row("concepts (micro)", concepts["micro"]))
    for name, m in concepts["per_misconception"].items():
        out.append(row(f"misconception: {name}", m))
    out.append(row("misconceptions (micro)", concepts["misconceptions"]))
    return out


def concept_lines(concepts: dict) -> list[str]:
    """Concept and misconception agreement as plain-text table lines."""
    rows = _concept_rows(concepts)
    lines = [f"concepts against {concepts.get('file') or 'the annotations'}: {concepts['answers_annotated']} "
             f"answers annotated"]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for k, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    if concepts.get("answers_not_annotated"):
        lines.append(f"graded answers without annotations (not counted): {concepts['answers_not_annotated']}")
    if concepts.get("annotations_without_answer"):
        lines.append(f"annotated answers not graded: {concepts['annotations_without_answer']}")
    return lines


# -- plots ------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_confusion(summary: dict, path: Path) -> None:
    plt = _plt()
    m = summary["systems"]["grader"]
    cm = np.array(m["confusion_matrix"])
    labels = m["labels"]
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 3, 1.0 * len(labels) + 2.5))
    ax.imshow(cm, cmap="Blues")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("grader")
    ax.set_ylabel("human")
    ax.set_title(f"Confusion matrix (accuracy {m['accuracy']:.3f})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_reliability(evaluation: Evaluation, n, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfect calibration")
    for s in SYSTEMS:
        p = evaluation.predictions.get((s, n))
        if p is None or not p.true:
            continue
        correct = np.array(p.true, dtype=object) == np.array(p.pred, dtype=object)
        data = reliability(correct, p.confidence)
        ax.plot(data["confidence"], data["accuracy"], marker="o", label=s)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability diagram")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_coverage(evaluation: Evaluation, n, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for s in SYSTEMS:
        p = evaluation.predictions.get((s, n))
        if p is None or not p.true:
            continue
        correct = np.array(p.true, dtype=object) == np.array(p.pred, dtype=object)
        cov, acc = coverage_curve(correct, p.confidence)
        ax.plot(cov, acc, label=s)
    for target in (0.9, 0.95):
        ax.axhline(target, color="grey", ls=":", lw=1)
    ax.set_xlabel("share auto-graded (least confident answers go to a human)")
    ax.set_ylabel("accuracy on the auto-graded share")
    ax.set_title("Coverage vs accuracy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_scores(evaluation: Evaluation, n, path: Path) -> bool:
    p = evaluation.predictions.get(("grader", n))
    if p is None:
        return False
    true, pred = p.scores()
    if not len(true):
        return False
    plt = _plt()
    rng = np.random.default_rng(0)
    span = float(np.ptp(true)) or 1.0
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(true + rng.uniform(-0.02, 0.02, len(true)) * span, pred, s=8, alpha=0.35)
    levels = np.unique(true)
    ax.plot(levels, [pred[true == v].mean() for v in levels], color="C3", marker="o", label="mean prediction")
    lo, hi = min(true.min(), pred.min()), max(true.max(), pred.max())
    ax.plot([lo, hi], [lo, hi], ls="--", color="grey", label="agreement")
    ax.set_xlabel("human score")
    ax.set_ylabel("grader score")
    ax.set_title("Predicted vs human score")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _plot_learning_curve(summary: dict, path: Path) -> bool:
    curve = summary.get("learning_curve")
    if not curve:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    xs = [c["examples_per_question"] for c in curve]
    for k, s in enumerate(s for s in SYSTEMS if s in curve[0]):
        ax.plot(xs, [c[s]["accuracy"] for c in curve], marker="o", color=f"C{k}", label=f"{s} accuracy")
        ax.plot(xs, [c[s]["macro_f1"] for c in curve], marker="s", ls="--", color=f"C{k}", label=f"{s} macro-F1")
    ax.set_xlabel("hand-graded answers per question (N)")
    ax.set_ylabel("agreement with the human grades")
    ax.set_title("Learning curve")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# -- report folder ----------------------------------------------------------------------------
def _write_predictions(evaluation: Evaluation, path: Path) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["system", "examples_per_question", "fold", "row", "question_id", "answer_id", "human", "predicted",
                    "confidence", "predicted_fraction", "human_score", "max_score", "examples"])
        for (system, n), p in evaluation.predictions.items():
            for i, r in enumerate(p.rows):
                w.writerow([system, "" if n is None else n, p.fold[i], r.row, r.question_id, r.answer_id, p.true[i],
                            p.pred[i], round(p.confidence[i], 4), round(p.pred_fraction[i], 4),
                            "" if r.score is None else r.score, "" if r.max_score is None else r.max_score,
                            p.examples[i]])


def write_report(evaluation: Evaluation, directory: str | Path) -> Path:
    """Write metrics.json, predictions.csv, report.md, the PNG plots and index.html into ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    summary = evaluation.summary
    n = summary["protocol"]["examples_per_question"]
    (out / "metrics.json").write_text(json.dumps(summary, indent=1, default=str) + "\n", encoding="utf-8")
    _write_predictions(evaluation, out / "predictions.csv")
    plots = []
    if summary["systems"]["grader"].get("n"):
        _plot_confusion(summary, out / "confusion_matrix.png")
        _plot_reliability(evaluation, n, out / "reliability.png")
        _plot_coverage(evaluation, n, out / "coverage_accuracy.png")
        plots += [("Confusion matrix (grader)", "confusion_matrix.png"), ("Reliability diagram", "reliability.png"),
                  ("Coverage vs accuracy", "coverage_accuracy.png")]
    if _plot_scores(evaluation, n, out / "predicted_vs_human.png"):
        plots.append(("Predicted vs human score", "predicted_vs_human.png"))
    if _plot_learning_curve(summary, out / "learning_curve.png"):
        plots.append(("Learning curve", "learning_curve.png"))
    table = format_table(summary)
    rows = _rows(summary)
    md = [f"# Agreement with human graders\n", f"Protocol: {_protocol_line(summary)}\n",
          "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    md += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    md += ["", "```", table, "```", ""]
    concept_table = ""
    if summary.get("concepts"):
        crow = _concept_rows(summary["concepts"])
        md += ["## Concepts and misconceptions", "", "| " + " | ".join(crow[0]) + " |", "|" + "---|" * len(crow[0])]
        md += ["| " + " | ".join(r) + " |" for r in crow[1:]] + [""]
        concept_table = "<h2>Concepts and misconceptions</h2><table>" + "".join(
            "<tr>" + "".join(f"<{'th' if k == 0 or i == 0 else 'td'}>{html.escape(c)}</{'th' if k == 0 or i == 0 else 'td'}>"
                             for i, c in enumerate(r)) + "</tr>" for k, r in enumerate(crow)) + "</table>"
    md += [f"## {title}\n\n![{title}]({name})\n" for title, name in plots]
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
    cells = "".join("<tr>" + "".join(f"<{'th' if k == 0 else 'td'}>{html.escape(c)}</{'th' if k == 0 else 'td'}>"
                                     for c in r) + "</tr>" for k, r in enumerate(rows))
    figures = "".join(f'<figure><img src="{name}" alt="{html.escape(title)}"><figcaption>{html.escape(title)}'
                      f"</figcaption></figure>" for title, name in plots)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>grader evaluation</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th{{background:#f3f3f3}}
figure{{display:inline-block;margin:1em;vertical-align:top}}img{{max-width:560px}}pre{{background:#f7f7f7;padding:1em}}</style>
</head><body><h1>Agreement with human graders</h1>
<p>{html.escape(str(summary.get('corpus') or ''))}: protocol {html.escape(_protocol_line(summary))}</p>
<table>{cells}</table>
{concept_table}
{figures}
<h2>Summary</h2><pre>{html.escape(table)}</pre>
<p>Every metric: <a href="metrics.json">metrics.json</a>; every prediction: <a href="predictions.csv">predictions.csv</a>.</p>
</body></html>
"""
    (out / "index.html").write_text(page, encoding="utf-8")
    return out
