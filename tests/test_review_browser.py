"""The review app for real: `grader review` in its own process, driven by headless Chromium over loopback.

On the example class (examples/moodle_responses.csv graded with rubrics/rnn_lstm.yaml) the
browser opens q5, accepts a cluster, overrides one answer, marks a concept, undoes, regrades
the rest and downloads the Moodle and Canvas exports, which are read back and checked. Every
request to a host other than the app's is aborted and fails the test, and so does any console
error. A second test edits one answer from two browser sessions and sees the second edit
refused; a third kills the server with SIGKILL between actions and finds every saved action
after a restart. The browser is Debian's ``chromium`` driven by the pip ``playwright``
package; without it the tests are skipped on a developer's machine and fail under CI.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from grader.files.batch import grade_csv
from grader.review import ReviewStore, review_path
from tests.browser import CHROMIUM, FLAGS, TIMEOUT_MS, sync_playwright_or_skip

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "moodle_responses.csv"
RUBRIC = ROOT / "rubrics" / "rnn_lstm.yaml"


class ReviewServer:
    """``grader review`` in a child process on a free loopback port."""

    def __init__(self, graded: Path, log: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.graded, self.log = graded, log
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> "ReviewServer":
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        env.pop("GRADER_API_KEYS", None)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "grader", "review", str(self.graded), "--rubric", str(RUBRIC),
                 "--port", str(self.port), "--reviewer", "ann", "--no-browser"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"grader review exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"grader review did not answer within {timeout:g} s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def graded(tmp_path_factory, grader, rubric) -> Path:
    out = tmp_path_factory.mktemp("review") / "class.graded.csv"
    grade_csv(EXAMPLE, rubric, out, grader=grader, log=lambda m: None)
    return out


@pytest.fixture(scope="module")
def server(graded):
    srv = ReviewServer(graded, graded.with_name("server.log")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def chromium():
    sync_playwright = sync_playwright_or_skip()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        yield browser
        browser.close()


def session(chromium, server, reviewer: str):
    """A fresh browser session (its own cookies and storage) signed as ``reviewer``, with what it did wrong:
    requests to other hosts (aborted) and console errors."""
    own = urlsplit(server.url).netloc
    foreign: list[str] = []
    errors: list[str] = []
    context = chromium.new_context(accept_downloads=True)

    def guard(route):
        url = urlsplit(route.request.url)
        if url.scheme in ("data", "blob") or url.netloc == own:
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    context.add_init_script(f"localStorage.setItem('grader.review.reviewer', {reviewer!r});")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return context, page, foreign, errors


def act(page, do) -> str:
    """Run an action that saves and reloads the page; the message the reloaded page shows."""
    with page.expect_navigation():
        do()
    page.wait_for_selector("#message:not([hidden])")
    return page.inner_text("#message")


def read_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(fh))


def test_review_loop_in_the_browser(chromium, server, graded, tmp_path):
    context, page, foreign, errors = session(chromium, server, "ann")
    try:
        page.goto(server.url + "/")
        page.click("nav.questions a[href='/q/q5']")
        assert "fundamental architectural insight" in page.inner_text(".prompt")
        assert page.locator("mark.ev").count() > 10 and page.locator("sup.tag", has_text="C3").count() > 0
        assert "0 of 44 answers reviewed" in page.inner_text("#progress")

        cluster = page.locator(".cluster").filter(has=page.locator(".answer:nth-of-type(2)")).first
        size = int(cluster.get_attribute("data-open").count("row"))
        cluster_rows = [r.get_attribute("id") for r in cluster.locator(".answer").all()]
        assert act(page, lambda: cluster.locator("button[data-act=accept-cluster]").click()) == \
            f"Accepted {size} answer(s)."
        assert all("reviewed" in page.get_attribute(f"#{r}", "class") for r in cluster_rows)

        target = page.locator(".answer:not(.reviewed)").first
        row = target.get_attribute("id")
        student = target.locator(".student").inner_text()
        target.locator("input[name=points]").fill("2.5")
        assert act(page, lambda: target.locator("form[data-act=points] button").click()) == \
            "Gave 2.5 points to 1 answer(s)."
        assert page.inner_text(f"#{row} [data-points]").startswith("2.5 /")
        assert "instructor by ann" in page.inner_text(f"#{row} .source")

        stated = page.locator(f"#{row} button[data-act=concept][data-stated=true]").nth(1)
        assert act(page, stated.click) == "Marked 'multiplicative recurrence' as stated."
        assert page.get_attribute(f"#{row} button[data-act=concept][data-stated=true] >> nth=1", "aria-pressed") \
            == "true"
        page.click(f"#{row} .meta")  # focus the answer, then undo from the keyboard
        assert act(page, lambda: page.keyboard.press("u")).startswith("Undid your concept")
        assert page.get_attribute(f"#{row} button[data-act=concept][data-stated=true] >> nth=1", "aria-pressed") \
            == "false"
        assert page.inner_text(f"#{row} [data-points]").startswith("2.5 /")  # only the mark was undone

        page.keyboard.press("n")  # keyboard path: next answer not reviewed, 3 points
        focused = page.locator(".answer.current").get_attribute("id")
        assert act(page, lambda: page.keyboard.press("3")) == "Gave 3 points to 1 answer(s)."
        assert page.inner_text(f"#{focused} [data-points]").startswith("3 /")

        message = act(page, lambda: page.click("button[data-act=regrade]"))
        reviewed = size + 2
        assert message.startswith(f"Regraded {44 - reviewed} answer(s) with {reviewed} graded example(s)")
        assert f"of {44 - reviewed} answers changed" in page.inner_text("#last-regrade")
        assert f"{reviewed} of 44 answers reviewed" in page.inner_text("#progress")

        with page.expect_download() as moodle_download:
            page.click("a[data-export=moodle]")
        moodle = tmp_path / "moodle.csv"
        moodle_download.value.save_as(moodle)
        with page.expect_download() as canvas_download:
            page.click("a[data-export=canvas]")
        canvas = tmp_path / "canvas.csv"
        canvas_download.value.save_as(canvas)
    finally:
        context.close()
    assert foreign == []
    assert errors == []

    graded_rows = {r["Email address"]: r for r in csv.DictReader(open(graded, encoding="utf-8-sig", newline=""))}
    other = sum(float(graded_rows[student][f"q{i}_points"]) for i in range(1, 5))
    rows = read_csv(moodle)
    assert rows[0] == ["Email address", "Grade", "Feedback"] and len(rows) == 45
    by_email = {r[0]: r for r in rows[1:]}
    assert set(by_email) == set(graded_rows)
    assert float(by_email[student][1]) == pytest.approx(other + 2.5) and "q5: 2.5/5" in by_email[student][2]
    rows = read_csv(canvas)
    assert rows[0] == ["Student", "ID", "SIS User ID", "Section", "Recurrent networks and LSTMs"]
    assert rows[1][0].strip() == "Points Possible" and rows[1][4] == "9" and len(rows) == 46
    by_sis = {r[2]: r for r in rows[2:]}
    assert float(by_sis[student][4]) == pytest.approx(other + 2.5)
    name = graded_rows[student]
    assert by_sis[student][0] == f"{name['Surname']}, {name['First name']}"


def test_a_conflicting_edit_from_a_second_session_is_refused(chromium, server):
    first, page_a, foreign_a, errors_a = session(chromium, server, "carol")
    second, page_b, foreign_b, errors_b = session(chromium, server, "dave")
    try:
        page_a.goto(server.url + "/q/q5")
        page_b.goto(server.url + "/q/q5")
        row = page_b.locator(".answer:not(.reviewed)").first.get_attribute("id")
        page_a.fill(f"#{row} input[name=points]", "1")
        assert act(page_a, lambda: page_a.click(f"#{row} form[data-act=points] button")).startswith("Gave 1 point")
        page_b.fill(f"#{row} input[name=points]", "4")
        page_b.click(f"#{row} form[data-act=points] button")  # B still shows the version before A's edit
        page_b.wait_for_selector("#message.error")
        assert "was changed by carol" in page_b.inner_text("#message")
        assert "nothing was saved" in page_b.inner_text("#message")
        page_b.reload()
        assert page_b.inner_text(f"#{row} [data-points]").startswith("1 /")
        assert "instructor by carol" in page_b.inner_text(f"#{row} .source")
    finally:
        first.close()
        second.close()
    assert foreign_a == foreign_b == []
    assert errors_a == []
    # The refused request is the one error Chromium logs for B: "Failed to load resource: ... 409 (Conflict)".
    assert len(errors_b) == 1 and "409" in errors_b[0]


def test_a_killed_server_loses_no_saved_action(graded, tmp_path):
    copy = tmp_path / "killed.graded.csv"
    copy.write_bytes(graded.read_bytes())
    srv = ReviewServer(copy, tmp_path / "server.log")
    rows = iter(range(1, 45))

    def post(verb, **body):
        r = httpx.post(f"{srv.url}/api/q/q5/{verb}", json={"reviewer": "erin", **body}, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    done = []
    try:
        for batch in (("accept", "points"), ("concept", "comment"), ("points",)):
            srv.start()
            for verb in batch:
                ref = {"row": next(rows), "version": 0}
                if verb == "accept":
                    post(verb, answers=[ref])
                elif verb == "points":
                    post(verb, answers=[ref], points=1.5)
                elif verb == "concept":
                    post(verb, answer=ref, concept="multiplicative recurrence", stated=True)
                else:
                    post(verb, answer=ref, comment="see the cell state")
                done.append((verb, ref["row"]))
            srv.kill()  # SIGKILL right after the last answer: no shutdown, no flush
        srv.start()
        page = httpx.get(srv.url + "/q/q5", timeout=30).text
        assert "3</strong> of 44 answers reviewed" in page
        history = httpx.get(srv.url + "/history", timeout=30).text
        assert history.count("<td>erin</td>") == 8  # points and status of 3 answers, a concept mark, a comment
    finally:
        srv.stop()
    store = ReviewStore(review_path(copy))
    states = store.states("q5")
    assert store.count() == len(done) == 5
    assert states[("q5", 1)].status == "accepted" and states[("q5", 2)].points == 1.5
    assert states[("q5", 3)].concepts == {"multiplicative recurrence": True}
    assert states[("q5", 4)].comment == "see the cell state" and states[("q5", 5)].points == 1.5
    store.close()
