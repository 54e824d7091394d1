"""The review database: the instructor's decisions, every action and an audit trail, in SQLite.

``GRADED.review.sqlite`` sits beside the graded file. It runs in WAL mode with full
synchronous commits, so an action is on disk before its request returns: a killed server
loses none, and reopening the file resumes the review. Several servers or browser
sessions may share one database. Each answer carries a version; an action names the
version its reviewer saw, and one that saw an older version is refused with
:class:`ReviewConflict` instead of overwriting the other reviewer's change.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from grader.errors import GraderError, InputDataError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    question_id TEXT NOT NULL, row INTEGER NOT NULL, version INTEGER NOT NULL,
    points REAL, status TEXT, comment TEXT NOT NULL DEFAULT '', concepts TEXT NOT NULL DEFAULT '{}', machine TEXT,
    updated_at TEXT, updated_by TEXT, PRIMARY KEY (question_id, row));
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY, at TEXT NOT NULL, reviewer TEXT NOT NULL, kind TEXT NOT NULL, question_id TEXT,
    detail TEXT NOT NULL DEFAULT '{}', undoes INTEGER REFERENCES actions(id), undone_by INTEGER REFERENCES actions(id));
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY, action_id INTEGER NOT NULL REFERENCES actions(id), question_id TEXT NOT NULL,
    row INTEGER NOT NULL, field TEXT NOT NULL, old TEXT, new TEXT, version INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS audit_action ON audit(action_id);
CREATE INDEX IF NOT EXISTS audit_answer ON audit(question_id, row);
"""
FIELDS = ("points", "status", "comment", "concepts", "machine")
STATUSES = ("accepted", "graded")  # the grader's points confirmed, or the instructor's own


class ReviewConflict(GraderError):
    """An action saw an answer that another reviewer has changed since; nothing was saved."""

    code = "conflict"
    http_status = 409


def review_path(graded: str | Path) -> Path:
    """The review database of a graded file: ``GRADED.review.sqlite`` beside it."""
    graded = Path(graded)
    return graded.with_name(graded.name.removesuffix(".csv") + ".review.sqlite")


@dataclass(frozen=True)
class AnswerState:
    """What the review has decided for one answer so far (version 0: nothing)."""

    question_id: str
    row: int
    version: int = 0
    points: float | None = None
    status: str | None = None
    comment: str = ""
    concepts: dict = field(default_factory=dict)  # concept text -> stated (True) or not (False)
    machine: dict | None = None  # grade columns from the last regrade, replacing the graded file's
    updated_at: str | None = None
    updated_by: str | None = None

    @property
    def reviewed(self) -> bool:
        """Whether an instructor has accepted or set the points."""
        return self.status is not None


@dataclass(frozen=True)
class Change:
    """New values for some fields of one answer, and the version its reviewer saw (None: not checked)."""

    row: int
    seen: int | None
    values: dict


@dataclass
class Action:
    """One recorded action and the rows it changed (``skipped``: rows left alone because they changed)."""

    id: int | None
    at: str
    reviewer: str
    kind: str
    question_id: str | None
    detail: dict = field(default_factory=dict)
    changed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    undone_by: int | None = None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _dump(value) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _state(row: sqlite3.Row) -> AnswerState:
    return AnswerState(row["question_id"], row["row"], row["version"], row["points"], row["status"],
                       row["comment"], json.loads(row["concepts"]), json.loads(row["machine"]) if row["machine"]
                       else None, row["updated_at"], row["updated_by"])


class ReviewStore:
    """The review database of one graded file; every method is one transaction and safe across threads.

    ``fingerprint`` identifies the graded file: a database made for another version of it
    is refused, since its rows would point at other answers.
    """

    def __init__(self, path: str | Path, fingerprint: str | None = None, meta: dict[str, str] | None = None):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a commit is on disk before the request returns
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._write() as db:
            for statement in filter(str.strip, SCHEMA.split(";")):
                db.execute(statement)
            known = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if fingerprint and known.get("fingerprint", fingerprint) != fingerprint:
                raise InputDataError(f"this review belongs to another version of {known.get('graded', 'the graded file')}"
                                     "; move it away to start a new review of the file as it is now",
                                     source=str(self.path))
            for key, value in {**(meta or {}), **({"fingerprint": fingerprint} if fingerprint else {})}.items():
                db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self):
        """One write transaction, taken before reading so a check and its write cannot interleave."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- reading ----------------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        """What the database was created with (the graded file's fingerprint and name, the rubric)."""
        with self._lock:
            return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def states(self, question_id: str | None = None) -> dict[tuple[str, int], AnswerState]:
        """The decided state of every answer that has one, keyed by (question id, row)."""
        sql, args = "SELECT * FROM answers", ()
        if question_id is not None:
            sql, args = sql + " WHERE question_id = ?", (question_id,)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return {(r["question_id"], r["row"]): _state(r) for r in rows}

    def history(self, limit: int = 500) -> list[dict]:
        """The audit trail, newest first: who changed which field of which answer from what to what, and when."""
        with self._lock:
            rows = self._db.execute(
                "SELECT a.id AS action, a.at, a.reviewer, a.kind, a.undone_by, u.question_id, u.row, u.field, "
                "u.old, u.new FROM audit u JOIN actions a ON a.id = u.action_id ORDER BY u.id DESC LIMIT ?",
                (limit,)).fetchall()
        return [dict(r) for r in rows]

    def last_action(self, kind: str, question_id: str) -> Action | None:
        """The newest action of ``kind`` on a question."""
        with self._lock:
            row = self._db.execute("SELECT * FROM actions WHERE kind = ? AND question_id = ? ORDER BY id DESC "
                                   "LIMIT 1", (kind, question_id)).fetchone()
        return self._action(row) if row else None

    @staticmethod
    def _action(row: sqlite3.Row) -> Action:
        return Action(row["id"], row["at"], row["reviewer"], row["kind"], row["question_id"],
                      json.loads(row["detail"]), undone_by=row["undone_by"])

    def count(self) -> int:
        """How many actions are recorded (undos included)."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM actions").fetchone()[0]

    # -- writing ----------------------------------------------------------------------------------
    def apply(self, reviewer: str, kind: str, question_id: str, changes: list[Change], detail: dict | None = None,
              skip_stale: bool = False, record_empty: bool = False) -> Action:
        """Record one action that changes some answers of a question, atomically.

        An answer whose version is not the one its change saw is a conflict: the whole
        action is refused with :class:`ReviewConflict`, or with ``skip_stale`` that answer
        is left alone and listed in ``skipped``. An action that changes nothing is not recorded,
        unless ``record_empty`` (a regrade that confirmed every grade is still news); undo passes over it.
        """
        if not reviewer.strip():
            raise InputDataError("`reviewer` must name who reviews. Got an empty name.", field="reviewer")
        with self._write() as db:
            current = self._current(db, question_id, [c.row for c in changes])
            stale = [c for c in changes if c.seen is not None and current[c.row].version != c.seen]
            if stale and not skip_stale:
                raise ReviewConflict(self._conflict_message(question_id, [current[c.row] for c in stale]),
                                     field="version")
            action = Action(None, _now(), reviewer, kind, question_id, dict(detail or {}),
                            skipped=[c.row for c in stale])
            edits = []
            for change in changes:
                if change in stale:
                    continue
                old = current[change.row]
                new = replace(old, **change.values)
                diff = [f for f in FIELDS if getattr(old, f) != getattr(new, f)]
                if diff:
                    edits.append((old, new, diff))
            if not edits and not record_empty:
                return action
            action.id = db.execute("INSERT INTO actions(at, reviewer, kind, question_id, detail) VALUES (?,?,?,?,?)",
                                   (action.at, reviewer, kind, question_id, _dump(action.detail))).lastrowid
            for old, new, diff in edits:
                self._save(db, action, old, new, diff)
            return action

    def undo(self, reviewer: str) -> Action | None:
        """Undo ``reviewer``'s newest action not yet undone; None when there is none.

        Refused with :class:`ReviewConflict` when another action has changed one of its answers since.
        """
        with self._write() as db:
            row = db.execute("SELECT * FROM actions WHERE reviewer = ? AND kind != 'undo' AND undone_by IS NULL "
                             "AND EXISTS (SELECT 1 FROM audit WHERE audit.action_id = actions.id) "
                             "ORDER BY id DESC LIMIT 1", (reviewer,)).fetchone()
            if row is None:
                return None
            target = self._action(row)
            audit = db.execute("SELECT * FROM audit WHERE action_id = ? ORDER BY id", (target.id,)).fetchall()
            before: dict[int, dict] = {}
            versions: dict[int, int] = {}
            for a in audit:
                before.setdefault(a["row"], {})[a["field"]] = json.loads(a["old"]) if a["old"] is not None else None
                versions[a["row"]] = a["version"]
            current = self._current(db, target.question_id, list(before))
            moved = [current[r] for r in before if current[r].version != versions[r]]
            if moved:
                raise ReviewConflict(f"cannot undo your {target.kind} of {target.at}: "
                                     + self._conflict_message(target.question_id, moved), field="version")
            action = Action(None, _now(), reviewer, "undo", target.question_id,
                            {"undoes": target.id, "kind": target.kind})
            action.id = db.execute("INSERT INTO actions(at, reviewer, kind, question_id, detail, undoes) "
                                   "VALUES (?,?,?,?,?,?)", (action.at, reviewer, "undo", target.question_id,
                                                            _dump(action.detail), target.id)).lastrowid
            for r, values in before.items():
                old = current[r]
                new = replace(old, **values)
                self._save(db, action, old, new, [f for f in FIELDS if getattr(old, f) != getattr(new, f)])
            db.execute("UPDATE actions SET undone_by = ? WHERE id = ?", (action.id, target.id))
            action.detail["undone"] = target.detail
            return action

    # -- internals --------------------------------------------------------------------------------
    @staticmethod
    def _current(db, question_id: str, rows: list[int]) -> dict[int, AnswerState]:
        found = {}
        for start in range(0, len(rows), 500):
            part = rows[start:start + 500]
            marks = ",".join("?" * len(part))
            for r in db.execute(f"SELECT * FROM answers WHERE question_id = ? AND row IN ({marks})",
                                (question_id, *part)).fetchall():
                found[r["row"]] = _state(r)
        return {r: found.get(r, AnswerState(question_id, r)) for r in rows}

    @staticmethod
    def _conflict_message(question_id: str, states: list[AnswerState]) -> str:
        first = states[0]
        more = f" and {len(states) - 1} more" if len(states) > 1 else ""
        return (f"question {question_id}, row {first.row}{more} was changed by {first.updated_by or 'another reviewer'}"
                f" at {first.updated_at or 'an earlier time'} since you loaded the page; nothing was saved. "
                "Refresh to see the change, then try again")

    @staticmethod
    def _save(db, action: Action, old: AnswerState, new: AnswerState, diff: list[str]) -> None:
        version = old.version + 1
        db.execute("INSERT INTO answers(question_id, row, version, points, status, comment, concepts, machine, "
                   "updated_at, updated_by) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(question_id, row) DO UPDATE SET "
                   "version=excluded.version, points=excluded.points, status=excluded.status, "
                   "comment=excluded.comment, concepts=excluded.concepts, machine=excluded.machine, "
                   "updated_at=excluded.updated_at, updated_by=excluded.updated_by",
                   (new.question_id, new.row, version, new.points, new.status, new.comment,
                    _dump(new.concepts or {}), _dump(new.machine), action.at,
                    action.reviewer))
        db.executemany("INSERT INTO audit(action_id, question_id, row, field, old, new, version) VALUES (?,?,?,?,?,?,?)",
                       [(action.id, new.question_id, new.row, f, _dump(getattr(old, f)), _dump(getattr(new, f)),
                         version) for f in diff])
        action.changed.append(new.row)
