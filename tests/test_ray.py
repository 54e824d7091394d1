"""`grader grade --engine ray`: a real two-node Ray cluster grades as `grader grade` does, loses no row and reruns.

The cluster is two `ray start` nodes (one CPU each, small object stores, no dashboard, no usage
stats) in a network namespace of the test's own that has nothing but a loopback interface, so
Ray can neither bind nor reach any address beyond 127.0.0.1 (on a host with a routable address
Ray binds its servers to that address or to all of them). Making the namespace takes root, as
CI has; elsewhere those tests skip. The Ray processes are ended by their ids at the end: `ray
stop` would end every Ray process on the machine by name, other users' too.
"""

from __future__ import annotations

import csv
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from grader.cli import main
from tests.conftest import ROOT

RUBRIC = ROOT / "rubrics" / "rnn_lstm.yaml"
ANSWERS = ROOT / "examples" / "instructor_grades.csv"
BIN = Path(sys.executable).parent
PORT = 6379  # free in a namespace of our own
ROWS = 20_000
# Brings the namespace's loopback interface up (no `ip` needed), says so, and holds the namespace
# until the test session closes its stdin.
HOLDER = """
import fcntl, socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
flags = struct.unpack("16sh", fcntl.ioctl(s, 0x8913, struct.pack("16sh", b"lo", 0)))[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sh", b"lo", flags | 1))
print("ready", flush=True)
sys.stdin.read()
"""


def make_submissions(path: Path, rows: int, seed: int = 7, extra: bool = True) -> Path:
    """A long file of ``rows`` answers drawn from a few hundred distinct ones: the example class's answers
    to the five questions and variations of its q5 answers, with a question named "Q5", an unknown
    question, an empty answer, a formula, a control character and now and then a row with an extra cell."""
    with open(ANSWERS, encoding="utf-8", newline="") as fh:
        pairs = sorted({(r["question_id"], r["answer"]) for r in csv.DictReader(fh)})
    q5 = [a for q, a in pairs if q == "q5"]
    variants = sorted({lead + a + tail for a in q5 for lead in ("", "I think ", "In short, ")
                       for tail in ("", " That is all.", " (see lecture 4)")})
    pool = ([list(p) for p in pairs] + [["q5", v] for v in variants]
            + [["Q5", q5[0]], ["q9", "no such question"], ["q5", ""], ["q5", "=1+1"], ["q5", "gates\x07 add"]])
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(["student_id", "question_id", "answer"])
        for i in range(rows):
            row = [f"s{i % 4000:05d}", *rng.choice(pool)]
            writer.writerow(row + (["extra cell"] if extra and i % 997 == 5 else []))
    return path


def read_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(fh))


def read_shards(folder: Path) -> tuple[list[str], list[list]]:
    """(header, rows) of every shard in ``folder``, rows in input order, the input row number an int."""
    import pyarrow.parquet as pq

    header, rows = None, []
    for path in sorted(folder.glob("part-*")):
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            header = table.column_names
            columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
            rows += [[c[j] for c in columns] for j in range(table.num_rows)]
        else:
            data = read_csv(path)
            header = data[0]
            rows += [r[:-1] + [int(r[-1])] for r in data[1:]]
    return header, sorted(rows, key=lambda r: (r[-2], r[-1]))


def records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((folder / "_shards").glob("*.json"))]


class Namespace:
    """A network namespace with only a loopback interface, held by a small process of ours."""

    def __init__(self):
        unshare = shutil.which("unshare")
        if unshare is None or shutil.which("nsenter") is None:
            pytest.skip("needs unshare and nsenter (util-linux) for a loopback-only network namespace")
        self.holder = subprocess.Popen([unshare, "--net", sys.executable, "-c", HOLDER], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if self.holder.stdout.readline().strip() != "ready":
            error = self.holder.stderr.read()
            self.holder.kill()
            pytest.skip(f"cannot make a network namespace (root is needed): {error.strip()[:200]}")
        self.net = os.readlink(f"/proc/{self.holder.pid}/ns/net")
        # Token authentication with a token of this namespace's own, whatever ~/.ray holds.
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
                    "RAY_AUTH_TOKEN": secrets.token_hex(32), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}

    def command(self, args: list[str]) -> list[str]:
        return ["nsenter", f"--net=/proc/{self.holder.pid}/ns/net", *map(str, args)]

    def run(self, args: list, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(args), env=self.env, capture_output=True, text=True, timeout=timeout)

    def popen(self, args: list) -> subprocess.Popen:
        return subprocess.Popen(self.command(args), env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def pids(self, title: str = "") -> list[int]:
        """Processes in this namespace (other than its holder) whose title starts with ``title``."""
        out = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == self.holder.pid:
                continue
            try:
                if os.readlink(f"/proc/{entry}/ns/net") != self.net:
                    continue
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    name = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            if name.startswith(title):
                out.append(int(entry))
        return out

    def close(self) -> None:
        """End every process in the namespace (all started by this test), then the holder."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.time() + 4
            while self.pids() and time.time() < deadline:
                time.sleep(0.2)
        self.holder.stdin.close()
        self.holder.wait(timeout=10)


def grade_command(src, out, *extra) -> list:
    return [sys.executable, "-m", "grader", "grade", src, "--rubric", RUBRIC, "-o", out, "--engine", "ray", *extra]


@pytest.fixture(scope="module")
def cluster():
    """A head node and a worker node, one CPU each, in a loopback-only namespace; its namespace."""
    pytest.importorskip("ray.data")
    ns = Namespace()
    temp = tempfile.mkdtemp(prefix="grader-ray-")  # short: Ray's socket paths must stay under 108 bytes
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0", "--object-store-memory=100000000",
              "--disable-usage-stats"]
    try:
        head = ns.run([BIN / "ray", "start", "--head", f"--port={PORT}", "--include-dashboard=false",
                       f"--temp-dir={temp}", *common], timeout=120)
        assert head.returncode == 0, head.stderr[-2000:]
        worker = ns.run([BIN / "ray", "start", f"--address=127.0.0.1:{PORT}", *common], timeout=120)
        assert worker.returncode == 0, worker.stderr[-2000:]
        yield ns
    finally:
        ns.close()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def expected(tmp_path_factory):
    """The 20,000-row file and what `grader grade` (the local engine) writes for it, and prints."""
    folder = tmp_path_factory.mktemp("ray")
    src = make_submissions(folder / "answers.csv", ROWS)
    out = folder / "local.csv"
    done = subprocess.run([sys.executable, "-m", "grader", "grade", src, "--rubric", RUBRIC, "-o", out,
                           "--chunk-size", "2000"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]  # a few rows name unknown questions
    return src, read_csv(out), done.stdout


@pytest.fixture(scope="module")
def graded(cluster, expected, tmp_path_factory):
    """The file graded across both nodes into Parquet shards of 2,000 rows, and the run."""
    src = expected[0]
    out = tmp_path_factory.mktemp("ray-out") / "graded.parquet"
    started = time.monotonic()
    run = cluster.run(grade_command(src, out, "--ray-address", f"127.0.0.1:{PORT}", "--chunk-size", "2000"))
    return out, run, time.monotonic() - started


def table_of(stdout: str) -> str:
    """The summary table and the row count line `grader grade` prints."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("question_id"))
    end = next(i for i, line in enumerate(lines) if line.endswith("with errors"))
    return "\n".join(lines[start:end + 1])


def test_a_two_node_cluster_grades_every_row_as_grader_grade_does(graded, expected):
    out, run, seconds = graded
    _, local, local_stdout = expected
    assert run.returncode == 1, run.stderr[-3000:]  # as the local run: the rows with errors say so
    header, rows = read_shards(out)
    assert header == local[0] + ["input_file", "input_row"]
    assert [r[-1] for r in rows] == list(range(1, ROWS + 1))  # every row once, none lost or repeated
    assert [r[:-2] for r in rows] == local[1:]  # cell by cell: points, labels, feedback, errors, all of it
    points, label = local[0].index("points"), local[0].index("label")
    assert {r[label] for r in rows} >= {"correct", "partially_correct", "incorrect"}
    assert sum(float(r[points]) for r in rows if r[points]) == sum(float(r[points]) for r in local[1:] if r[points])
    assert table_of(run.stdout) == table_of(local_stdout)
    assert len({r["node"] for r in records(out)}) == 2, "both nodes grade"
    print(f"two-node run of {ROWS} rows: {seconds:.1f} s")


def test_a_killed_worker_costs_time_not_rows(cluster, expected, tmp_path):
    src, local, _ = expected
    out = tmp_path / "graded.csv"  # a name ending in .csv: CSV shards
    run = cluster.popen(grade_command(src, out, "--ray-address", f"127.0.0.1:{PORT}", "--chunk-size", "1000"))
    killed = {}

    def kill_a_worker_once_a_shard_is_written():
        deadline = time.time() + 240
        while time.time() < deadline and run.poll() is None:
            workers = cluster.pids("ray::MapWorker")
            shards = list(out.glob("part-*.csv"))
            if workers and shards:
                os.kill(workers[0], signal.SIGKILL)
                killed.update(pid=workers[0], shards=len(shards))
                return
            time.sleep(0.1)

    watcher = threading.Thread(target=kill_a_worker_once_a_shard_is_written)
    watcher.start()
    _, stderr = run.communicate(timeout=300)
    watcher.join()
    assert killed, "no worker was killed"
    assert run.returncode == 1, stderr[-3000:]
    assert killed["shards"] < len(list(out.glob("part-*.csv"))), "the worker was killed before the last shard"
    assert killed["pid"] not in cluster.pids()
    _, rows = read_shards(out)
    assert [r[-1] for r in rows] == list(range(1, ROWS + 1))  # every row exactly once
    assert [r[:-2] for r in rows] == local[1:]


def test_a_rerun_skips_complete_shards(cluster, graded, expected):
    out, _, _ = graded
    _, local, _ = expected
    shards = sorted(out.glob("part-*.parquet"))
    dropped = shards[3:5]
    for path in dropped:
        (out / "_shards" / (path.stem + ".json")).unlink()
        path.unlink()
    kept = {p.name: os.stat(p).st_mtime_ns for p in shards if p not in dropped}
    rerun = cluster.run(grade_command(expected[0], out, "--ray-address", f"127.0.0.1:{PORT}", "--chunk-size", "2000"))
    assert rerun.returncode == 1, rerun.stderr[-3000:]
    regraded = sum(int(p.stem.split("-")[3]) - int(p.stem.split("-")[2]) + 1 for p in dropped)
    assert f"{ROWS - regraded} of {ROWS} rows are in complete shards already" in rerun.stderr
    assert {p.name: os.stat(p).st_mtime_ns for p in out.glob("part-*.parquet") if p.name in kept} == kept
    _, rows = read_shards(out)
    assert [r[-1] for r in rows] == list(range(1, ROWS + 1))
    assert [r[:-2] for r in rows] == local[1:]
    # With every shard complete, nothing is graded and no cluster is needed.
    again = cluster.run(grade_command(expected[0], out, "--ray-address", "127.0.0.1:1", "--chunk-size", "2000"))
    assert again.returncode == 1 and f"{ROWS} of {ROWS} rows are in complete shards" in again.stderr
    assert "0 distinct answers graded now" in again.stdout


def test_without_an_address_a_local_instance_grades_a_folder_of_parquet_files(tmp_path):
    """A laptop's run: no cluster, Parquet files in a folder (their cells read as text), shards in CSV."""
    pytest.importorskip("ray.data")
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "exam"
    folder.mkdir()
    expected = {}
    for k, seed in enumerate((1, 2)):
        part = make_submissions(tmp_path / f"part{k}.csv", 300, seed, extra=False)
        data = read_csv(part)
        pq.write_table(pa.table({name: [r[i] for r in data[1:]] for i, name in enumerate(data[0])}),
                       folder / f"part{k}.parquet")
        done = main(["grade", str(part), "--rubric", str(RUBRIC), "-o", str(tmp_path / f"part{k}.out.csv"),
                     "--quiet"])
        assert done == 1
        expected[str(folder / f"part{k}.parquet")] = read_csv(tmp_path / f"part{k}.out.csv")[1:]
    ns = Namespace()
    try:
        run = ns.run(grade_command(folder, tmp_path / "graded.csv", "--chunk-size", "200"), timeout=240)
    finally:
        ns.close()
    assert run.returncode == 1, run.stderr[-3000:]
    _, rows = read_shards(tmp_path / "graded.csv")
    for path, want in expected.items():
        mine = [r for r in rows if r[-2] == path]
        assert [r[-1] for r in mine] == list(range(1, 301))
        assert [r[:-2] for r in mine] == want


def test_engine_ray_without_ray_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    src = make_submissions(tmp_path / "answers.csv", 10)
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError, as where it is not installed
    code = main(["grade", str(src), "--rubric", str(RUBRIC), "--engine", "ray"])
    err = capsys.readouterr().err
    assert code == 2
    assert "pip install 'grader[ray]'" in err and "--engine" in err
    assert not (tmp_path / "answers.graded.parquet").exists()


# -- the parts that need no cluster ------------------------------------------------------------------------


def test_shards_that_repeat_rows_are_dropped_and_a_gap_is_an_error(tmp_path):
    from grader.distributed._shards import Shard, exactly_once, shard_name
    from grader.errors import InputDataError

    def shard(first, last):
        path = tmp_path / shard_name(0, first, last, "csv")
        path.write_text("x")
        return Shard(0, first, last, path)

    whole, part, rest = shard(1, 10), shard(3, 7), shard(11, 20)
    assert exactly_once([part, rest, whole], {0: 20}) == [whole, rest]
    assert not part.path.exists()  # a retried task cut differently wrote it: its rows are in `whole`
    with pytest.raises(InputDataError, match="rows 21 to 30 .* are in no shard"):
        exactly_once([whole, rest], {0: 30})
    with pytest.raises(InputDataError, match="shares rows 9 to 10"):
        exactly_once([whole, shard(9, 20)], {0: 20})


def test_reads_number_rows_as_grader_grade_does_and_leave_out_graded_ones(tmp_path):
    pytest.importorskip("pyarrow")
    from grader.distributed._inputs import describe_inputs
    from grader.distributed._source import read_blocks

    src = tmp_path / "a.csv"
    src.write_text("student,question,answer\r\ns1,q5,one\r\n\r\ns2,q5,\"two\nlines\"\r\ns3,q5,three,extra\r\n"
                   + "".join(f"s{i},q5,answer {i}\r\n" for i in range(4, 40)), encoding="utf-8")
    f = describe_inputs([src])[0]
    assert (f.rows, f.width) == (39, 4)
    blocks = list(read_blocks(f, 200, [(5, 9), (20, 20)]))
    rows = [n for b in blocks for n in b.column("row").to_pylist()]
    assert rows == [n for n in range(1, 40) if not 5 <= n <= 9 and n != 20]  # the blank line is no row
    first = blocks[0].to_pylist()
    assert [c.decode() for c in first[1]["cells"]] == ["s2", "q5", "two\nlines"]
    assert [c.decode() for c in first[2]["cells"]] == ["s3", "q5", "three", "extra"]
    for b in blocks:  # consecutive rows, each block just over the size asked for (but the last of a stretch)
        numbers = b.column("row").to_pylist()
        assert numbers == list(range(numbers[0], numbers[-1] + 1))
        assert b.nbytes > 200 or numbers[-1] in (4, 19, 39)


def test_a_rerun_with_another_rubric_is_refused(tmp_path):
    from grader.distributed.dataset import MANIFEST, _claim
    from grader.errors import InputDataError

    manifest = {"format": "parquet", "parts": {"input": "a", "rubric": "b", "combiner": "c", "encoder": "d",
                                               "options": "e"}}
    _claim(tmp_path / "out", manifest)
    assert json.loads((tmp_path / "out" / MANIFEST).read_text())["complete"] is False
    _claim(tmp_path / "out", manifest)  # the same job: go on
    with pytest.raises(InputDataError, match="other rubric"):
        _claim(tmp_path / "out", {**manifest, "parts": {**manifest["parts"], "rubric": "x"}})
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(InputDataError, match="holds files of something else"):
        _claim(tmp_path / "other", manifest)
