"""The static report of a graded batch: a read-only view of the review page.

``write_report`` writes ``DIR/index.html``: the summary table, a histogram of the
students' totals, and per question its prompt and concepts, a plot of points and
labels, and its answers, coloured by label with their feedback at a readable width.
Short answers are listed most doubtful first; a choice question shows each distinct
answer once with its count, collapsed unless one of them needs review. The page and
its stylesheet (:data:`PAGE_CSS`, also the review app's) need nothing from the network.

Every text that comes from the submissions or the rubric is escaped, so a student's
answer can never inject markup or script into the page.
"""

from __future__ import annotations

import heapq
import html
import math
from collections import Counter
from pathlib import Path

from grader.files.exports import iter_graded
from grader.files.summary import Summary, write_atomic
from grader.text import normalize

LISTED = 300  # short answers listed per question, the most doubtful first
CHOICES = 60  # distinct answers shown per choice question
LABEL_CLASSES = {"correct": "correct", "partially_correct": "partial", "incorrect": "incorrect"}

PAGE_CSS = """:root{--correct:#1a7f37;--correct-bg:#dafbe1;--partial:#9a6700;--partial-bg:#fff8c5;
--incorrect:#cf222e;--incorrect-bg:#ffebe9;--other:#6e7781;--line:#d0d7de;--muted:#57606a;--accent:#0969da}
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header.top{display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;align-items:center;padding:.55rem 1.5rem;background:#24292f;
color:#fff}
header.top a{color:#fff}header.top .muted{color:#c9d1d9}
main{max-width:80rem;margin:0 auto;padding:1rem 1.5rem 4rem}
h1{font-size:1.5rem;margin:.6rem 0}h2{font-size:1.2rem;margin:1.6rem 0 .5rem}
.muted{color:var(--muted);font-weight:normal}
.prompt{font-size:1.05rem;background:#fff;border-left:4px solid var(--accent);padding:.6rem 1rem;max-width:62rem;
margin:.5rem 0 1rem}
table{border-collapse:collapse;margin:.5rem 0;background:#fff}td,th{border:1px solid var(--line);padding:.25rem .55rem;
text-align:left;vertical-align:top}th{background:#eaeef2}.num{text-align:right;font-variant-numeric:tabular-nums}
.label{display:inline-block;padding:0 .55em;border-radius:1em;font-size:.85em;font-weight:600;white-space:nowrap;
color:var(--other);background:#eaeef2}
.label.correct{color:var(--correct);background:var(--correct-bg)}.label.partial{color:var(--partial);
background:var(--partial-bg)}.label.incorrect{color:var(--incorrect);background:var(--incorrect-bg)}
.chip{display:inline-block;padding:0 .45em;border:1px solid var(--line);border-radius:4px;font-size:.8em;
margin:.1em .15em .1em 0;background:#fff}
.chip.found{border-color:var(--correct);color:var(--correct)}.chip.missing{color:var(--muted)}
.chip.flag{border-color:#bf8700;color:#7d4e00;background:#fff8c5}.chip.mis{border-color:var(--incorrect);
color:var(--incorrect)}
.answer{background:#fff;border:1px solid var(--line);border-left:6px solid var(--other);border-radius:6px;
padding:.55rem .9rem;margin:.5rem 0}
.answer.correct{border-left-color:var(--correct)}.answer.partial{border-left-color:#d4a72c}
.answer.incorrect{border-left-color:var(--incorrect)}
.answer .meta{display:flex;flex-wrap:wrap;gap:.3rem .8rem;align-items:baseline;font-size:.9rem}
.answer .text{white-space:pre-wrap;overflow-wrap:anywhere;max-width:62rem;font-size:1rem;margin:.35rem 0}
.answer .feedback{max-width:62rem;color:#32383f;font-size:.92rem;margin:.3rem 0 0}
.points{font-weight:700;font-variant-numeric:tabular-nums}
ol.concepts{margin:.3rem 0 1rem;padding-left:2.4rem;max-width:62rem}ol.concepts li::marker{font-weight:700}
mark.ev{background:#ddf4ff;border-bottom:2px solid var(--accent);padding:0 1px;color:inherit}
mark.mis{background:#ffebe9;border-bottom:2px solid var(--incorrect)}
sup.tag{font-size:.7em;font-weight:700;color:var(--accent);margin:0 .15em}sup.tag.mis{color:var(--incorrect)}
details.choice{background:#fff;border:1px solid var(--line);border-radius:6px;padding:.4rem .8rem;margin:.5rem 0}
details.choice summary{cursor:pointer}
.hist svg{max-width:42rem;width:100%;height:auto;background:#fff;border:1px solid var(--line);border-radius:6px}
.hist rect{fill:#54aeff}.hist text{font:11px system-ui,sans-serif;fill:#57606a}
img.plot{max-width:min(100%,36rem);border:1px solid var(--line);border-radius:6px;background:#fff}
nav.questions a{margin-right:.8rem}.wide{overflow-x:auto}
ul.options{list-style:none;padding-left:1rem;max-width:62rem}ul.options li{margin:.2rem 0}
"""


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


def histogram_svg(totals: list[float], max_total: float) -> str:
    """An inline SVG histogram of the students' totals on the scale 0..``max_total`` (numbers only, no text input)."""
    if not totals:
        return "<p class='muted'>No totals.</p>"
    top = max(max_total, max(totals), 1e-9)
    if top <= 30 and float(top).is_integer():
        bins, width = int(top) + 1, 1.0  # one bar per whole point, 0..max
    else:
        bins, width = 20, top / 20
    counts = Counter(min(bins - 1, max(0, int(t / width + 1e-9))) for t in totals)
    most = max(counts.values())
    w, h, pad = 640, 200, 28
    bar = (w - 2 * pad) / bins
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {w} {h + 2 * pad}' role='img' "
             f"aria-label='histogram of {len(totals)} totals'>"]
    for b in range(bins):
        n = counts.get(b, 0)
        height = (h - pad) * n / most
        x = pad + b * bar
        parts.append(f"<rect x='{x + 1:.1f}' y='{h - height:.1f}' width='{max(bar - 2, 1):.1f}' "
                     f"height='{height:.1f}'><title>{b * width:g}: {n}</title></rect>")
        if n:
            parts.append(f"<text x='{x + bar / 2:.1f}' y='{h - height - 4:.1f}' text-anchor='middle'>{n}</text>")
        if bins <= 31 or b % max(1, bins // 10) == 0:
            parts.append(f"<text x='{x + bar / 2:.1f}' y='{h + 16}' text-anchor='middle'>{b * width:g}</text>")
    parts.append(f"<text x='{w / 2:.0f}' y='{h + 40}' text-anchor='middle'>total points ({len(totals)} students, "
                 f"mean {math.fsum(totals) / len(totals):.2f} of {max_total:g})</text></svg>")
    return "".join(parts)


class _Question:
    """What the report keeps of one question while the graded file streams past."""

    def __init__(self, question):
        self.question = question
        self.count = 0
        self.doubtful: list[tuple] = []  # heap of (-doubt, row, answer): the LISTED most doubtful
        self.choices: dict[str, list] = {}  # normalised answer -> [answer, count, points, label, reviews]

    @property
    def choice(self) -> bool:
        return getattr(self.question, "type", "short_answer") != "short_answer"

    def add(self, answer) -> None:
        self.count += 1
        f = answer.fields
        if self.choice:
            key = normalize(answer.answer)
            entry = self.choices.get(key)
            if entry is None and len(self.choices) < CHOICES:
                entry = self.choices[key] = [answer.answer, 0, f["points"], f["label"], 0]
            if entry is not None:
                entry[1] += 1
                entry[4] += f["needs_review"] == "true"
            return
        try:
            doubt = 1.0 - float(f["confidence"])
        except ValueError:
            doubt = 1.0
        item = (doubt, -answer.row, answer)
        if len(self.doubtful) < LISTED:
            heapq.heappush(self.doubtful, item)
        elif item > self.doubtful[0]:
            heapq.heapreplace(self.doubtful, item)


def _chips(names: str, kind: str) -> str:
    return "".join(f"<span class='chip {kind}'>{html.escape(n)}</span>" for n in names.split("; ") if n)


def _answer_html(a) -> str:
    e, f = html.escape, a.fields
    label = LABEL_CLASSES.get(f["label"], "other")
    return (f"<article class='answer {label}'><div class='meta'><span class='muted'>row {a.row}</span>"
            f"<span>{e(a.student)}</span><span class='label {label}'>{e(f['label'])}</span>"
            f"<span class='points'>{e(f['points'])} / {e(f['max_points'])}</span>"
            f"<span class='muted'>confidence {e(f['confidence'])}</span>{_chips(f['flags'], 'flag')}</div>"
            f"<div class='text'>{e(a.answer) if a.answer.strip() else '<span class=muted>(no answer)</span>'}</div>"
            f"<div>{_chips(f['concepts_found'], 'found')}{_chips(f['concepts_missing'], 'missing')}</div>"
            f"<p class='feedback'>{e(f['feedback'])}</p></article>")


def _question_html(qid: str, q: _Question, image: str | None) -> str:
    e = html.escape
    question = q.question
    kind = getattr(question, "type", "").replace("_", " ")
    points = getattr(question, "max_points", None)
    parts = [f"<section class='question' id='q-{e(qid)}'><h2>Question {e(qid)} <span class='muted'>{e(kind)}"
             + (f" · {points:g} point{'s' if points != 1 else ''}" if points is not None else "") + f" · {q.count} answers</span></h2>"]
    if getattr(question, "prompt", ""):
        parts.append(f"<p class='prompt'>{e(question.prompt)}</p>")
    concepts = getattr(question, "key_phrases", ())
    if concepts:
        parts.append("<ol class='concepts'>" + "".join(f"<li>{e(k.text)} <span class='muted'>({k.points:g})</span>"
                                                       "</li>" for k in concepts) + "</ol>")
    if getattr(question, "options", None):
        key = " <span class='label correct'>key</span>"
        parts.append("<ul class='options'>" + "".join(
            f"<li><strong>{e(o.id)}</strong> {e(o.text)}{key if o.id in question.correct else ''}</li>"
            for o in question.options) + "</ul>")
    if image:
        parts.append(f"<img class='plot' src='{e(image)}' alt='{e('points and labels of ' + qid)}'>")
    if q.choice:
        rows = sorted(q.choices.values(), key=lambda c: -c[1])
        reviews = sum(c[4] for c in rows)
        shown = "; ".join(f"{c[1]} × {c[0][:40] or '(blank)'}" for c in rows[:4])
        parts.append(f"<details class='choice'{' open' if reviews else ''}><summary>{e(shown)}"
                     f"{' · ' + str(reviews) + ' need review' if reviews else ''}</summary><table><tr><th>answer</th>"
                     "<th>answers</th><th>points</th><th>label</th><th>need review</th></tr>")
        for text, count, pts, label, rev in rows:
            cls = LABEL_CLASSES.get(label, "other")
            parts.append(f"<tr><td>{e(text) or '<span class=muted>(blank)</span>'}</td><td class='num'>{count}</td>"
                         f"<td class='num'>{e(pts)}</td><td><span class='label {cls}'>{e(label)}</span></td>"
                         f"<td class='num'>{rev}</td></tr>")
        parts.append("</table></details>")
    else:
        listed = sorted(q.doubtful, reverse=True)
        more = f" (the {len(listed)} most doubtful are listed)" if len(listed) < q.count else ""
        parts.append(f"<p class='muted'>Most doubtful first{e(more)}.</p>")
        parts += [_answer_html(a) for _, _, a in listed]
    parts.append("</section>")
    return "\n".join(parts)


def render(summary: Summary, title: str, images: dict[str, str], source: str = "", questions: dict | None = None,
           totals: list[float] | None = None, max_total: float = 0.0) -> str:
    """The report page as an HTML string (every text escaped)."""
    e = html.escape
    rows = summary.table_rows()
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
             f"content='width=device-width,initial-scale=1'><title>{e(title)}</title><style>{PAGE_CSS}</style></head>"
             f"<body><header class='top'><strong>{e(title)}</strong><span class='muted'>read-only report; "
             "<code>grader review</code> opens the same answers for review</span></header><main>",
             f"<h1>{e(title)}</h1>"]
    if source:
        parts.append(f"<p>Graded file: <code>{e(source)}</code>. {summary.rows} rows, "
                     f"{summary.error_rows} with errors.</p>")
    if rows:
        cols = list(rows[0])
        parts.append("<div class='wide'><table class='summary'><tr>" + "".join(f"<th>{e(c)}</th>" for c in cols)
                     + "</tr>")
        for r in rows:
            parts.append("<tr>" + "".join(f"<td class='num'>{e(str(r[c]))}</td>" for c in cols) + "</tr>")
        parts.append("</table></div>")
    if totals:
        parts.append(f"<section class='hist'><h2>Totals</h2>{histogram_svg(totals, max_total)}</section>")
    questions = questions or {}
    if questions:
        parts.append("<nav class='questions'>" + "".join(f"<a href='#q-{e(q)}'>{e(q)}</a>" for q in questions)
                     + "</nav>")
    for qid in summary.questions:
        if qid in questions:
            parts.append(_question_html(qid, questions[qid], images.get(qid)))
        elif qid in images:
            parts.append(f"<h2>Question {e(qid)}</h2><img class='plot' src='{e(images[qid])}' alt='{e(qid)}'>")
    parts.append("</main></body></html>\n")
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
    by_id = {q.id: q for q in rubric.questions} if rubric is not None else {}
    questions: dict[str, _Question] = {}
    per_student: dict[str, float] = {}
    possible: dict[str, float] = {}
    wide = getattr(getattr(result, "columns", None), "layout", "wide") == "wide"
    for number, row, answers in iter_graded(result.output, rubric):
        for a in answers:
            q = questions.get(a.question_id)
            if q is None:
                q = questions[a.question_id] = _Question(by_id.get(a.question_id))
            q.add(a)
            key = f"row {number}" if wide or not a.student.strip() else a.student.strip()
            per_student[key] = per_student.get(key, 0.0) + float(a.fields["points"] or 0)
            possible[a.question_id] = max(possible.get(a.question_id, 0.0), float(a.fields["max_points"] or 0))
    max_total = math.fsum(possible.values())
    title = f"Grades: {rubric.title or rubric.id}" if rubric is not None else "Grades"
    page = folder / "index.html"
    write_atomic(page, render(summary, title, images, str(result.output), questions, list(per_student.values()),
                              max_total).encode("utf-8"))
    return page
