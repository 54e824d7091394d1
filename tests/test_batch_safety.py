"""Batch files never lose, merge or corrupt a row (issue 22).

Each test builds the ugly file it is about: a stray quote that swallows rows, two runs on one output, a resume
with another combiner, mixed encodings, control characters, a device posing as a CSV, a ragged row with
100,000 cells, and input columns named like the grade columns.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.cli import main
from grader.errors import InputDataError
from grader.files import batch
from grader.files.batch import FIELDS, grade_csv
from grader.files.csvio import SAMPLE_BYTES, detect_format
from tests.test_batch import Failing, rows_of, write

ROOT = Path(__file__).resolve().parent.parent
RUBRIC = ROOT / "rubrics" / "rnn_lstm.yaml"
GOOD = ("The RNN multiplies by the same weight matrix at every step, so gradients vanish; the LSTM cell state is "
        "updated additively through gates, so a forget gate near 1 keeps the gradient.")


def grade(tmp_path, src, grader, rubric, **kw):
    kw.setdefault("log", lambda m: None)
    return grade_csv(src, rubric, kw.pop("output", tmp_path / "out.csv"), grader=grader, **kw)


# -- 1. a quote that swallows rows -------------------------------------------------------------------------------

def _export_without_quote_escaping(path: Path) -> Path:
    """What an LMS that writes answers raw makes of a student who opens a quote and another who types one.

    s3's answer starts with a quote it never closes; 21 rows later s24 writes `the so-called "forget gate"`,
    whose first quote closes s3's. A plain csv reader gives s3 one cell holding 21 rows and carries on.
    """
    lines = ["student_id,question_id,answer"]
    for i in range(1, 31):
        qid = "q3" if i % 5 == 0 else "q5"
        answer = "True" if qid == "q3" else f"The cell state is updated additively so the gradient survives ({i})"
        lines.append(f"s{i},{qid},{answer}")
    lines[3] = 's3,q5,"The LSTM keeps a cell state that the gates update'
    lines[24] = 's24,q5,the so-called "forget gate" keeps the gradient near 1'
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8"))
    return path


def test_a_stray_quote_that_swallows_rows_is_an_error_naming_the_line(tmp_path, grader, rubric):
    src = _export_without_quote_escaping(tmp_path / "export.csv")
    with pytest.raises(InputDataError) as err:
        grade(tmp_path, src, grader, rubric)
    assert err.value.source == str(src)
    assert "line 4:" in err.value.message and "line 5" in err.value.message
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.csv.part").exists()


@pytest.mark.parametrize("text", [
    # one swallowed row, the quote closed at the end of its line
    'student_id,question_id,answer\r\ns1,q3,True\r\ns2,q5,"Gradients vanish\r\ns3,q3,True"\r\ns4,q4,False\r\n',
    # the quote opens in the middle column of a wide file and a later answer closes it
    'email,Response 3,Response 5\r\na@x.edu,True,the cell state\r\nb@x.edu,"True,it is added\r\n'
    'c@x.edu,False,gates\r\nd@x.edu,True,a "gate" multiplies\r\n',
    # semicolon-delimited, the stray quote closed by one typed mid-answer
    'student_id;question_id;answer\r\n101;q5;"additive\r\n102;q3;True\r\n103;q5;the "forget gate"\r\n',
])
def test_any_swallowed_row_is_refused_not_merged(tmp_path, grader, rubric, text):
    src = tmp_path / "in.csv"
    src.write_bytes(text.encode("utf-8"))
    with pytest.raises(InputDataError, match=r"line \d+: .*looks like a row"):
        grade(tmp_path, src, grader, rubric)


def test_answers_over_several_lines_are_still_read_as_one_cell(tmp_path, grader, rubric):
    answer = ("First, the gradient vanishes in the RNN.\r\nSecond, the cell state is updated additively.\r\n"
              "- a list, with commas\r\n12, 13, 14")
    src = write(tmp_path / "in.csv", [["Surname", "First name", "Email", "Response 3", "Response 5"],
                                      ["Müller", "Jürgen", "j@x.de", "True", answer],
                                      ["Dubois", "Léa", "l@x.fr", "False", GOOD]])
    rows = rows_of(grade(tmp_path, src, grader, rubric).output)
    assert [r["Surname"] for r in rows] == ["Müller", "Dubois"] and rows[0]["Response 5"] == answer


def test_the_cli_exits_2_on_a_stray_quote(tmp_path, capsys):
    src = _export_without_quote_escaping(tmp_path / "export.csv")
    assert main(["grade", str(src), "--rubric", str(RUBRIC), "-o", str(tmp_path / "out.csv"), "--quiet"]) == 2
    assert "export.csv: line 4:" in capsys.readouterr().err


# -- 2. one run at a time on an output ---------------------------------------------------------------------------

HOLD = """
import fcntl, sys
fh = open(sys.argv[1], "a+")
fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("locked", flush=True)
sys.stdin.read()
"""
TRY = """
import fcntl, sys
fh = open(sys.argv[1], "a+")
try:
    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print("busy")
else:
    print("free")
"""


def _try_lock(path: Path) -> str:
    return subprocess.run([sys.executable, "-c", TRY, str(path)], capture_output=True, text=True,
                          timeout=60).stdout.strip()


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl")
def test_a_second_run_on_a_locked_output_stops_at_once(tmp_path, grader, rubric):
    src = write(tmp_path / "in.csv", [["id", "question_id", "answer"], ["1", "q3", "True"]])
    out = tmp_path / "out.csv"
    lock = tmp_path / "out.csv.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(InputDataError) as err:
            grade(tmp_path, src, grader, rubric)
        assert str(out) in err.value.message and str(lock) in err.value.message
        assert "another grader run is writing" in err.value.message and err.value.field == "output"
        assert not out.exists() and not (tmp_path / "out.csv.part").exists()
        assert not (tmp_path / "out.csv.journal").exists()
    finally:
        holder.communicate("", timeout=60)
    assert rows_of(grade(tmp_path, src, grader, rubric).output)[0]["points"] == "1"
    assert not lock.exists()


class Probe:
    """A grader that looks, from another process, whether the output is locked while it grades, then fails."""

    def __init__(self, real, lock: Path, fail):
        self.real, self.lock, self.fail, self.seen = real, lock, fail, []
        self.max_answer_chars, self.review_threshold = real.max_answer_chars, real.review_threshold
        self.embedder, self.combiner = real.embedder, real.combiner

    def grade_many(self, items):
        self.seen.append(_try_lock(self.lock))
        if self.fail:
            raise self.fail
        return self.real.grade_many(items)


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl")
@pytest.mark.parametrize("fail", [None, KeyboardInterrupt, RuntimeError("the model broke")],
                         ids=["completed", "interrupted", "crashed"])
def test_the_lock_is_held_for_the_whole_run_and_released_after_it(tmp_path, grader, rubric, fail):
    src = write(tmp_path / "in.csv", [["id", "question_id", "answer"], ["1", "q5", GOOD], ["2", "q3", "True"]])
    probe = Probe(grader, tmp_path / "out.csv.lock", fail)
    if fail:
        with pytest.raises(fail if isinstance(fail, type) else type(fail)):
            grade(tmp_path, src, probe, rubric)
    else:
        grade(tmp_path, src, probe, rubric)
    assert probe.seen == ["busy"]
    assert not (tmp_path / "out.csv.lock").exists()
    assert _try_lock(tmp_path / "out.csv.lock") == "free"


def test_a_run_that_fails_on_its_input_releases_the_lock(tmp_path, grader, rubric):
    src = _export_without_quote_escaping(tmp_path / "export.csv")
    with pytest.raises(InputDataError):
        grade(tmp_path, src, grader, rubric)
    assert not (tmp_path / "out.csv.lock").exists()
    assert grade(tmp_path, write(src, [["id", "question_id", "answer"], ["1", "q3", "True"]]), grader, rubric).rows == 1


def test_without_fcntl_a_lock_file_created_exclusively_does_the_same(tmp_path, grader, rubric, monkeypatch):
    monkeypatch.setattr(batch, "fcntl", None)
    src = write(tmp_path / "in.csv", [["id", "question_id", "answer"], ["1", "q3", "True"]])
    lock = tmp_path / "out.csv.lock"
    lock.write_text("12345\n")
    with pytest.raises(InputDataError, match="another grader run is writing") as err:
        grade(tmp_path, src, grader, rubric)
    assert "delete it" in err.value.message and lock.read_text() == "12345\n"
    lock.unlink()
    assert grade(tmp_path, src, grader, rubric).rows == 1 and not lock.exists()


def test_two_real_processes_on_one_output_never_mix_their_rows(tmp_path, grader, rubric, capsys):
    """`grader grade` runs in a child process; this process starts a second run on the same -o meanwhile."""
    n = 400
    rows = [["student_id", "question_id", "answer"]] + [[f"s{i}", "q5", f"{GOOD} Step {i}."] for i in range(n)]
    src = write(tmp_path / "in.csv", rows)
    out = tmp_path / "out.csv"
    journal = tmp_path / "out.csv.journal"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    child = subprocess.Popen([sys.executable, "-m", "grader", "grade", str(src), "--rubric", str(RUBRIC), "-o",
                              str(out), "--chunk-size", "8", "--quiet"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (journal.exists() and journal.read_bytes().count(b"\n") >= 3):
            assert child.poll() is None, child.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        code = main(["grade", str(src), "--rubric", str(RUBRIC), "-o", str(out), "--quiet"])
        assert child.poll() is None, "the first run ended before the second one started; make the input longer"
    finally:
        _, err = child.communicate(timeout=300)
    assert code == 2
    message = capsys.readouterr().err
    assert "another grader run is writing" in message and "choose another --output" in message
    assert child.returncode == 0, err
    assert [r["student_id"] for r in rows_of(out)] == [f"s{i}" for i in range(n)]
    assert not (tmp_path / "out.csv.lock").exists()


# -- 3. the combiner is part of what a resume must match -----------------------------------------------------

def test_resume_refuses_a_run_graded_with_another_combiner(tmp_path, grader, rubric, embedder):
    from grader.engine import Grader
    from grader.scoring.combiner import LinearCombiner, load_combiner

    data = grader.combiner.to_dict()
    data["coef"][0][0] += 0.5
    other = Grader(rubric, embedder=embedder, combiner=LinearCombiner.from_dict(data))
    same = Grader(rubric, embedder=embedder, combiner=load_combiner())
    rows = [["id", "question_id", "answer"]] + [[str(i), "q5", f"{GOOD} {i}"] for i in range(4)]
    src = write(tmp_path / "in.csv", rows)
    with pytest.raises(KeyboardInterrupt):
        grade(tmp_path, src, Failing(grader), rubric, chunk_size=2)
    with pytest.raises(InputDataError, match="another combiner") as err:
        grade(tmp_path, src, other, rubric, chunk_size=2, resume=True)
    assert err.value.field == "resume"
    assert grade(tmp_path, src, same, rubric, chunk_size=2, resume=True).resumed_rows == 2


def test_the_journal_records_the_combiner_as_the_sha256_of_its_canonical_json(tmp_path, grader, rubric):
    import hashlib

    rows = [["id", "question_id", "answer"]] + [[str(i), "q5", f"{GOOD} {i}"] for i in range(4)]
    src = write(tmp_path / "in.csv", rows)
    with pytest.raises(KeyboardInterrupt):
        grade(tmp_path, src, Failing(grader), rubric, chunk_size=2)
    head = json.loads((tmp_path / "out.csv.journal").read_bytes().splitlines()[0])
    canonical = json.dumps(grader.combiner.to_dict(), sort_keys=True).encode()
    assert head["parts"]["combiner"] == hashlib.sha256(canonical).hexdigest()


# -- 4. rows in another encoding ----------------------------------------------------------------------------------

@pytest.mark.parametrize("utf8_rows", [[1, 4], [0, 1, 2, 3, 5, 6, 7, 8]], ids=["cp1252-majority", "utf8-majority"])
def test_rows_in_the_other_encoding_are_decoded_as_written_and_flagged(tmp_path, grader, rubric, utf8_rows):
    data = b"student_id,question_id,answer\r\n"
    for i in range(9):
        data += f"s{i},q5,café crème — the cell state is additive ({i})\r\n".encode(
            "utf-8" if i in utf8_rows else "cp1252")
    src = tmp_path / "mixed.csv"
    src.write_bytes(data)
    result = grade(tmp_path, src, grader, rubric)
    rows = rows_of(result.output)
    assert [r["answer"] for r in rows] == [f"café crème — the cell state is additive ({i})" for i in range(9)]
    minority = utf8_rows if len(utf8_rows) < 5 else [i for i in range(9) if i not in utf8_rows]
    other = "UTF-8" if len(utf8_rows) < 5 else "cp1252"
    for i, row in enumerate(rows):
        assert (f"read as {other}" in row["error"]) == (i in minority), row["error"]
        assert row["points"] != ""
    assert result.error_rows == len(minority)


# -- 5. control characters ----------------------------------------------------------------------------------------

def test_nul_and_control_characters_are_stripped_and_flagged_wherever_they_are(tmp_path, grader, rubric):
    filler = [[f"s{i}", "q3", "True"] for i in range(SAMPLE_BYTES // 12 + 10)]
    text = io.StringIO(newline="")
    w = csv.writer(text, lineterminator="\r\n")
    w.writerows([["student_id", "question_id", "answer"], ["early", "q5", "the cell\x00 state\x1b[31m is added"]]
                + filler + [["late\x00", "q5", "the\x00\x00 forget\x07 gate\x7f"], ["tabbed", "q5", "a\tb\r\nc"]])
    src = tmp_path / "in.csv"
    src.write_bytes(text.getvalue().encode("utf-8"))
    assert text.getvalue().index("late") > SAMPLE_BYTES
    result = grade(tmp_path, src, grader, rubric)
    data = result.output.read_text(encoding="utf-8")
    assert not [c for c in data if ord(c) < 32 and c not in "\t\r\n" or c == "\x7f"]
    rows = {r["student_id"]: r for r in rows_of(result.output)}
    assert rows["early"]["answer"] == "the cell state[31m is added"
    assert rows["late"]["answer"] == "the forget gate"
    assert rows["tabbed"]["answer"] == "a\tb\r\nc" and rows["tabbed"]["error"] == ""
    for sid in ("early", "late"):
        assert "control character" in rows[sid]["error"]
    assert result.error_rows == 2


# -- 6. only regular files ----------------------------------------------------------------------------------------

@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "directory"])
def test_a_device_pipe_or_directory_is_refused_at_once(tmp_path, grader, rubric, kind):
    src = tmp_path / "answers.csv"
    if kind == "dev-zero":
        src.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(src)
    else:
        src.mkdir()
    for call in (lambda: detect_format(src), lambda: grade(tmp_path, src, grader, rubric)):
        with pytest.raises(InputDataError, match="not a regular file") as err:
            call()
        assert err.value.source == str(src)


# -- 7. output size ------------------------------------------------------------------------------------------------

def test_a_ragged_row_of_100000_cells_adds_one_column_not_100000(tmp_path, grader, rubric):
    rows = [["student_id", "question_id", "answer"]] + [[f"s{i}", "q3", "True"] for i in range(1000)]
    rows[500] = rows[500] + [f"x{k}" if k % 1000 == 0 else "" for k in range(100_000)]
    src = write(tmp_path / "wide.csv", rows)
    result = grade(tmp_path, src, grader, rubric)
    assert result.output.stat().st_size < 2 * src.stat().st_size
    out = rows_of(result.output)
    assert list(out[0]) == ["student_id", "question_id", "answer", "extra", *FIELDS, "error"]
    assert next(csv.reader([out[499]["extra"]])) == rows[500][3:]
    assert "100003 cells" in out[499]["error"] and out[499]["points"] == "1"
    assert all(r["extra"] == "" for k, r in enumerate(out) if k != 499)


# -- 8. column names ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["long", "wide"])
def test_output_column_names_are_unique_and_every_cell_comes_back(tmp_path, grader, rubric, layout):
    if layout == "long":
        header = ["student_id", "question_id", "answer", "points", "grader_points", "Error", "extra", "grader_error",
                  "grader_flags", "flags"]
        data = [["s1", "q3", "True", "7", "8", "e", "x", "ge", "gf", "f"],
                ["s2", "q5", GOOD, "1", "2", "", "", "", "", "", "surplus"]]
        blocks = [""]
    else:
        header = ["student_id", "Response 3", "Response 5", "q3_points", "grader_q3_points", "total", "total_2",
                  "grader_total", "note", "note"]
        data = [["s1", "True", GOOD, "a", "b", "c", "d", "e", "n1", "n2"], ["s2", "False", "x", "", "", "", "", "",
                                                                               "", "", "surplus"]]
        blocks = ["q3_", "q5_"]
    src = write(tmp_path / "in.csv", [header] + data)
    result = grade(tmp_path, src, grader, rubric, layout=layout)
    with open(result.output, encoding="utf-8", newline="") as fh:
        names = next(csv.reader(fh))
    assert len(names) == len({n.strip().lower() for n in names})
    out = rows_of(result.output)
    assert len(out) == 2
    input_names, graded = names[:len(header)], names[len(header) + 1:]
    assert names[len(header)].startswith("extra")
    for row, given in zip(out, data):
        assert [row[n] for n in input_names] == given[:len(header)]
        assert row[names[len(header)]] == ",".join(given[len(header):])
    width = len(FIELDS)
    for k in range(len(blocks)):
        block = graded[k * width:(k + 1) * width]
        assert all(f in b for b, f in zip(block, FIELDS)), block
        assert out[0][block[0]] != "" and out[0][block[1]] != ""
    assert "error" in graded[-1] and out[1][graded[-1]] and "surplus" not in out[1][graded[-1]]
