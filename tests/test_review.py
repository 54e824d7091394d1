"""The review workspace without a browser: its database, clusters, suggestions, regrade and the app's rules."""

from __future__ import annotations

import csv
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from grader.cli import main
from grader.errors import ConfigError, InputDataError
from grader.files.batch import grade_csv
from grader.review import ReviewConflict, ReviewStore, Workspace, create_review_app, review_path
from grader.review.clusters import cluster, suggest
from grader.review.regrade import with_corrections
from grader.review.store import Change
from grader.review.views import segments
from grader.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "moodle_responses.csv"
RUBRIC = ROOT / "rubrics" / "rnn_lstm.yaml"
KEY = "review-key-3"


@pytest.fixture(scope="module")
def graded_once(tmp_path_factory, grader, rubric) -> Path:
    out = tmp_path_factory.mktemp("graded") / "class.graded.csv"
    grade_csv(EXAMPLE, rubric, out, grader=grader, log=lambda m: None)
    return out


@pytest.fixture
def graded(graded_once, tmp_path) -> Path:
    """A fresh copy of the graded example class, with no review yet."""
    return Path(shutil.copy(graded_once, tmp_path / "class.graded.csv"))


@pytest.fixture
def workspace(graded, rubric, grader):
    ws = Workspace(graded, rubric, grader=grader)
    yield ws
    ws.close()


# -- the database -------------------------------------------------------------------------------------

def test_the_database_sits_beside_the_graded_file_in_wal_mode(tmp_path):
    store = ReviewStore(review_path(tmp_path / "x.graded.csv"), "abc")
    assert store.path == tmp_path / "x.graded.review.sqlite"
    store.close()
    with sqlite3.connect(tmp_path / "x.graded.review.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_stale_version_is_refused_and_nothing_is_saved(tmp_path):
    store = ReviewStore(tmp_path / "r.sqlite")
    store.apply("ann", "points", "q5", [Change(1, 0, {"points": 3.0, "status": "graded"})])
    with pytest.raises(ReviewConflict, match="row 1 was changed by ann") as err:
        store.apply("bob", "points", "q5", [Change(1, 0, {"points": 1.0, "status": "graded"}),
                                            Change(2, 0, {"points": 1.0, "status": "graded"})])
    assert err.value.http_status == 409
    states = store.states("q5")
    assert states[("q5", 1)].points == 3.0 and ("q5", 2) not in states  # the whole action was refused
    skipped = store.apply("bob", "regrade", "q5", [Change(1, 0, {"machine": {"points": "1"}}),
                                                    Change(2, 0, {"machine": {"points": "1"}})], skip_stale=True)
    assert skipped.skipped == [1] and skipped.changed == [2]


def test_undo_restores_the_old_values_and_refuses_when_someone_changed_them_since(tmp_path):
    store = ReviewStore(tmp_path / "r.sqlite")
    store.apply("ann", "comment", "q5", [Change(4, 0, {"comment": "good"})])
    store.apply("ann", "concept", "q5", [Change(4, 1, {"concepts": {"c": True}})])
    undone = store.undo("ann")
    assert undone.kind == "undo" and store.states()[("q5", 4)].concepts == {}
    assert store.states()[("q5", 4)].comment == "good"
    store.apply("bob", "points", "q5", [Change(4, 3, {"points": 2.0, "status": "graded"})])
    with pytest.raises(ReviewConflict, match="cannot undo your comment"):
        store.undo("ann")
    assert store.undo("carol") is None
    fields = [(h["reviewer"], h["kind"], h["field"]) for h in store.history()]
    assert sorted(fields[:2]) == [("bob", "points", "points"), ("bob", "points", "status")]
    assert ("ann", "undo", "concepts") in fields


def test_an_action_that_changes_nothing_is_not_recorded(tmp_path):
    store = ReviewStore(tmp_path / "r.sqlite")
    store.apply("ann", "comment", "q5", [Change(1, 0, {"comment": "x"})])
    assert store.apply("ann", "comment", "q5", [Change(1, 1, {"comment": "x"})]).id is None
    assert store.count() == 1


def test_a_review_of_another_version_of_the_file_is_refused(tmp_path):
    ReviewStore(tmp_path / "r.sqlite", "v1", {"graded": "a.csv"}).close()
    with pytest.raises(InputDataError, match="another version of a.csv"):
        ReviewStore(tmp_path / "r.sqlite", "v2")


# -- clusters, suggestions, highlights ------------------------------------------------------------------

@pytest.mark.parametrize("n, dim", [(1, 4), (5, 8), (40, 16), (3500, 8)])
def test_identical_vectors_always_share_a_cluster(n, dim):
    rng = np.random.default_rng(n)
    base = rng.normal(size=(n, dim))
    vectors = np.concatenate([base, base[: n // 2 + 1]])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = cluster(vectors.astype(np.float32))
    assert len(labels) == len(vectors) and labels[0] == 0
    assert all(labels[n + i] == labels[i] for i in range(n // 2 + 1))


@pytest.mark.parametrize("k", [1, 3, 10])
def test_suggestions_are_distinct_and_skip_what_is_graded(k):
    rng = np.random.default_rng(k)
    vectors = rng.normal(size=(30, 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    done = np.zeros(30, bool)
    done[:5] = True
    picks = suggest(vectors, np.ones(30), rng.random(30), k, done)
    rows = [i for i, _ in picks]
    assert len(rows) == k == len(set(rows)) and not set(rows) & set(range(5))
    assert {why for _, why in picks} <= {"representative", "doubtful"}


@pytest.mark.parametrize("spans", [[], [(0, 5, "C1")], [(0, 5, "C1"), (3, 9, "C2")], [(2, 4, "M1"), (0, 12, "C3")],
                                   [(5, 3, "C1"), (0, 99, "C2")]])
def test_segments_rebuild_the_text_and_tag_each_span_once(spans):
    text = "abcdefghijkl"
    parts = segments(text, spans)
    assert "".join(p.text for p in parts) == text
    valid = [t for s, e, t in spans if 0 <= s < e <= len(text)]
    assert sorted(t for p in parts for t in p.ends) == sorted(valid)


def test_corrections_become_examples_and_concept_phrasings(rubric):
    q5 = rubric.question("q5")
    corrected = with_corrections(q5, [("An answer.", 3.0), ("an  ANSWER.", 1.0), ("Too many", 9.0)],
                                 {q5.key_phrases[1].text: ["the state is squashed again and again", "x"]})
    assert [(e.answer, e.points) for e in corrected.examples[-2:]] == [("An answer.", 3.0), ("Too many", 5.0)]
    assert corrected.key_phrases[1].alternatives[-2:] == ("the state is squashed again and again", "x")
    assert corrected.key_phrases[0] == q5.key_phrases[0]


# -- the workspace --------------------------------------------------------------------------------------

def test_a_question_page_sorts_clusters_by_doubt_and_highlights_evidence(workspace):
    view = workspace.view("q5")
    assert view.total == 44 and view.reviewed == 0 and view.short
    doubts = [c.doubt for c in view.clusters]
    assert doubts == sorted(doubts)
    assert all([a.confidence for a in c.answers] == sorted(a.confidence for a in c.answers) for c in view.clusters)
    blank = [c for c in view.clusters if not c.rep.text.strip()]
    assert len(blank) == 1 and blank[0].size == 2  # identical (blank) answers share one cluster
    tagged = {t for c in view.clusters for a in c.answers for s in a.segments for t in s.ends}
    assert {"C1", "C3", "M1"} <= tagged
    assert 3 <= len(view.suggestions) <= 10
    choice = workspace.view("q1")
    assert sum(c.size for c in choice.clusters) == 44 and len(choice.clusters) <= 5 and not choice.suggestions


def test_a_concept_found_on_weak_evidence_is_shown_for_checking(workspace):
    view = workspace.view("q5")
    marks = [(a, m) for c in view.clusters for a in c.answers for m in a.concepts]
    unsure = [(a, m) for a, m in marks if m.uncertain]
    assert unsure and all(m.found and "uncertain" in a.machine["flags"] for a, m in unsure)
    assert any(m.found and not m.uncertain for _, m in marks)
    page = client_for(workspace).get("/q/q5").text
    assert page.count("found on weak evidence: please check") == len(unsure)


def test_actions_regrade_and_export_follow_the_instructors_decisions(workspace, tmp_path):
    view = workspace.view("q5")
    top = max(view.clusters, key=lambda c: c.size)
    accepted = workspace.accept("ann", "q5", {a.row: a.version for a in top.answers})
    assert sorted(accepted.changed) == sorted(a.row for a in top.answers)
    low = [a for c in view.clusters for a in c.answers if not a.reviewed and a.row not in accepted.changed]
    for a in low[:6]:
        workspace.set_points("ann", "q5", {a.row: 0}, 0.5)
    with pytest.raises(InputDataError, match="`points` must be between 0 and 5"):
        workspace.set_points("ann", "q5", {low[7].row: 0}, 7)
    with pytest.raises(InputDataError, match="`concept` must be one of"):
        workspace.mark_concept("ann", "q5", low[7].row, 0, "attention", True)
    workspace.mark_concept("ann", "q5", low[7].row, 0, "multiplicative recurrence", True)
    regrade = workspace.regrade("ann", "q5")
    assert regrade.detail["examples"] == len(top.answers) + 6 and regrade.detail["phrasings"] == 1
    assert regrade.detail["regraded"] == 44 - len(top.answers) - 6
    assert set(regrade.changed) <= {a.row for a in low[6:]}
    assert workspace.view("q5").reviewed == len(top.answers) + 6
    with pytest.raises(InputDataError, match="choice question"):
        workspace.regrade("ann", "q1")
    final = workspace.export("csv", tmp_path / "final.csv")
    with open(final, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 44
    assert sorted(r["q5_source"] for r in rows).count("instructor") == 6
    assert {r["q5_source"] for r in rows} <= {"instructor", "accepted", "regrade", "grader"}


def test_a_regrade_that_changes_nothing_is_the_last_regrade_and_undo_passes_over_it(workspace):
    row = workspace.view("q5").clusters[0].answers[0].row
    workspace.set_points("ann", "q5", {row: 0}, 4.0)
    first = workspace.regrade("ann", "q5")
    again = workspace.regrade("ann", "q5")  # nothing new to learn from: every grade stays
    assert again.id is not None and again.id > first.id and again.changed == [] and again.detail["changes"] == []
    assert again.detail["regraded"] == first.detail["regraded"] and again.detail["examples"] == 1
    assert workspace.view("q5").last_regrade.id == again.id
    undone = workspace.undo("ann")  # the newest action that changed something: the first regrade, or the points
    assert undone is not None and undone.detail["undoes"] == (first.id if first.changed else first.id - 1)


def test_reopening_the_file_resumes_the_review(graded, rubric, grader):
    ws = Workspace(graded, rubric, grader=grader)
    row = ws.view("q5").clusters[0].answers[0].row
    ws.set_points("ann", "q5", {row: 0}, 2.0)
    ws.close()
    again = Workspace(graded, rubric, grader=grader)
    answer = next(a for c in again.view("q5").clusters for a in c.answers if a.row == row)
    assert answer.final_points == "2" and answer.source == "instructor" and again.view("q5").reviewed == 1
    again.close()


# -- the app --------------------------------------------------------------------------------------------

def client_for(workspace, keys: str = "", host: str = "127.0.0.1") -> TestClient:
    settings = Settings(api_keys=keys, open=not keys, host=host)
    return TestClient(create_review_app(workspace, settings, reviewer="ann"), base_url="http://127.0.0.1")


def test_pages_and_assets_come_from_the_package_and_name_no_other_host(workspace):
    client = client_for(workspace)
    for path in ("/", "/q/q5", "/q/q1", "/history", "/static/page.css", "/static/review.css", "/static/review.js"):
        r = client.get(path)
        assert r.status_code == 200, path
        text = r.text.replace("xmlns='http://www.w3.org/2000/svg'", "")  # a namespace name, never fetched
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, path
    assert client.get("/q/q9").status_code == 404


def test_open_mode_answers_loopback_hosts_only_and_actions_must_be_json(workspace):
    client = client_for(workspace)
    assert client.get("/", headers={"Host": "evil.example:8001"}).status_code == 401
    r = client.post("/api/q/q5/comment", content="reviewer=x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]


def test_a_conflict_is_a_409_with_the_error_body(workspace):
    client = client_for(workspace)
    row = workspace.view("q5").clusters[0].answers[0].row
    body = {"reviewer": "ann", "answers": [{"row": row, "version": 0}], "points": 1}
    assert client.post("/api/q/q5/points", json=body).status_code == 200
    r = client.post("/api/q/q5/points", json={**body, "reviewer": "bob", "points": 4})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "conflict" and "changed by ann" in r.json()["error"]["message"]
    r = client.post("/api/q/q5/points", json={**body, "points": 11})
    assert r.status_code == 422 and r.json()["error"]["field"] == "points"


def test_with_keys_the_browser_logs_in_and_requests_without_a_key_are_refused(workspace):
    client = client_for(workspace, keys=KEY, host="0.0.0.0")
    r = client.get("/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert client.get("/q/q5").status_code == 401
    assert client.get("/q/q5", headers={"X-API-Key": KEY}).status_code == 200
    assert client.post("/login", content="key=wrong", headers={"Content-Type": "application/x-www-form-urlencoded"}
                       ).status_code == 401
    r = client.post("/login", content=f"key={KEY}", headers={"Content-Type": "application/x-www-form-urlencoded"},
                    follow_redirects=False)
    assert r.status_code == 303 and "httponly" in r.headers["set-cookie"].lower()
    assert client.get("/q/q5").status_code == 200  # the cookie now carries the key
    assert client.get("/export/moodle").status_code == 200


def test_the_cli_refuses_to_serve_without_keys_off_loopback(graded, monkeypatch, capsys):
    monkeypatch.delenv("GRADER_API_KEYS", raising=False)
    assert main(["review", str(graded), "--rubric", str(RUBRIC), "--host", "0.0.0.0", "--no-browser"]) == 2
    assert "no API keys" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        Settings(host="0.0.0.0", open=True).check_security()


def test_grade_with_review_serves_the_graded_file(tmp_path, monkeypatch):
    served = []
    monkeypatch.setattr("grader.cli.review.serve", lambda graded, rubric, grader: served.append((graded, rubric.id)))
    src = shutil.copy(EXAMPLE, tmp_path / "class.csv")
    assert main(["grade", str(src), "--rubric", str(RUBRIC), "--quiet", "--review"]) == 0
    assert served == [(tmp_path / "class.graded.csv", "rnn_lstm")]


def test_a_long_file_is_reviewed_and_exported_by_student_id(tmp_path, rubric, grader):
    src = tmp_path / "long.csv"
    with open(src, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([["student_id", "question_id", "answer"],
                                  ["s1", "q5", "The cell state is updated additively."], ["s1", "Q3", "True"],
                                  ["s2", "5", "RNNs multiply by the same weight matrix."], ["s2", "q3", "False"]])
    graded = grade_csv(src, rubric, tmp_path / "long.graded.csv", grader=grader, log=lambda m: None).output
    ws = Workspace(graded, rubric, grader=grader)
    view = ws.view("q5")
    assert view.total == 2 and {a.student for c in view.clusters for a in c.answers} == {"s1", "s2"}
    row = next(a.row for c in view.clusters for a in c.answers if a.student == "s2")
    ws.set_points("ann", "q5", {row: 0}, 4.5)
    with open(ws.export("moodle", tmp_path / "m.csv"), encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    ws.close()
    assert rows[0] == ["ID number", "Grade", "Feedback"] and [r[0] for r in rows[1:]] == ["s1", "s2"]
    assert float(rows[2][1]) == 4.5 + (1.0 if "q3: 1/1" in rows[2][2] else 0.0)


def test_the_app_downloads_feedback_as_a_zip_of_one_page_per_student(workspace):
    import io
    import zipfile

    r = client_for(workspace).get("/export/feedback")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert 'filename="class.graded.feedback.zip"' in r.headers["content-disposition"]
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert len(names) == 44 and all(n.startswith("class.graded.feedback/") and n.endswith(".html") for n in names)


def test_a_rubric_that_does_not_match_the_file_is_refused(graded, grader):
    from grader.rubric import parse_rubric

    other = parse_rubric({"id": "other", "questions": [{"id": "z1", "type": "true_false", "correct": True}]})
    with pytest.raises(InputDataError, match="none of the file's questions .* is in rubric 'other'"):
        Workspace(graded, other, grader=grader)
