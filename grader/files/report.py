"""An HTML report of a graded batch: the summary table, distribution plots and answers to review.

Every piece of text that comes from the submissions or the rubric is escaped,
so a student's answer can never inject markup or script into the page.
"""

from __future__ import annotations

import html
from pathlib import Path

from grader.files.summary import Summary, write_atomic

_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;
vertical-align:top}th{background:#f3f3f3}.num{text-align:right}.answer{white-space:pre-wrap;max-width:40em}
img{max-width:100%;border:1px solid #eee}"""


def plot_question(stats, path: Path, labels: list[str]) -> None:
    """Write a PNG with the question's points histogram and label distribution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3))
    values = sorted(stats.points)
    width = min((b - a for a, b in zip(values, values[1:])), default=1.0) * 0.8 or 0.8
    ax1.bar([float(v) for v in values], [stats.points[v] for v in values], width=width, color="#4a7ab5")
    ax1.set_xlim(-width, stats.max_points + width)  # the whole scale, so a bunched class shows as bunched
    ax1.set_xlabel("points")
    ax1.set_ylabel("answers")
    ax1.set_title(f"{stats.question_id}: points (max {stats.max_points:g})")
    ax2.bar(labels, [stats.labels.get(label, 0) for label in labels], color="#7ab54a")
    ax2.set_title(f"{stats.question_id}: labels")
    ax2.tick_params(axis="x", labelrotation=15)
    fig.tight_layout()
    fig.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(fig)


def render(summary: Summary, title: str, images: dict[str, str], source: str = "") -> str:
    """The report page as an HTML string (every text escaped)."""
    e = html.escape
    rows = summary.table_rows()
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
             f"<style>{_CSS}</style></head><body>", f"<h1>{e(title)}</h1>"]
    if source:
        parts.append(f"<p>Graded file: <code>{e(source)}</code>. {summary.rows} rows, "
                     f"{summary.error_rows} with errors.</p>")
    if rows:
        cols = list(rows[0])
        parts.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>")
        for r in rows:
            parts.append("<tr>" + "".join(f"<td class='num'>{e(str(r[c]))}</td>" for c in cols) + "</tr>")
        parts.append("</table>")
    for qid, stats in summary.questions.items():
        parts.append(f"<h2>Question {e(qid)}</h2>")
        if qid in images:
            parts.append(f"<img src='{e(images[qid])}' alt='{e('distribution of ' + qid)}'>")
        if not stats.reviews:
            parts.append("<p>No answer needs review.</p>")
            continue
        shown = len(stats.review_items)
        more = f" (the first {shown} are listed)" if shown < stats.reviews else ""
        parts.append(f"<p>{stats.reviews} answers need review{e(more)}.</p><table><tr><th>row</th><th>student</th>"
                     "<th>answer</th><th>points</th><th>label</th><th>confidence</th><th>flags</th>"
                     "<th>feedback</th></tr>")
        for item in stats.review_items:
            parts.append(
                f"<tr><td class='num'>{item['row']}</td><td>{e(item['student'])}</td>"
                f"<td class='answer'>{e(item['answer'])}</td><td class='num'>{e(item['points'])}/"
                f"{e(item['max_points'])}</td><td>{e(item['label'])}</td><td class='num'>{e(item['confidence'])}"
                f"</td><td>{e(item['flags'])}</td><td>{e(item['feedback'])}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(result, folder: str | Path, rubric=None) -> Path:
    """Write ``folder/index.html`` and one PNG per graded question; returns the page's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summary: Summary = result.summary
    labels = summary.labels
    images = {}
    for i, (qid, stats) in enumerate(summary.questions.items()):
        if stats.graded:
            name = f"question_{i + 1}.png"  # file names never come from user text
            plot_question(stats, folder / name, labels)
            images[qid] = name
    title = f"Grades: {rubric.title or rubric.id}" if rubric is not None else "Grades"
    page = folder / "index.html"
    write_atomic(page, render(summary, title, images, str(result.output)).encode("utf-8"))
    return page
