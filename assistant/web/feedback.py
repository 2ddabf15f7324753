"""Thumbs up/down and comments on answers, kept in an append-only SQLite file.

One row per rating the user gives. A rating with a comment is a new row, so the table never
changes a row once written (triggers refuse UPDATE and DELETE); the latest row of a
``(session_id, turn)`` pair is that answer's current rating.

The file survives restarts and is safe to write from many threads (WAL mode, one
connection per operation). ``python -m assistant feedback export`` writes it as CSV.

This module imports only the standard library: the CLI loads it for the export command.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from assistant.config import PROJECT_ROOT

DEFAULT_FEEDBACK_DB = PROJECT_ROOT / "feedback" / "feedback.sqlite3"
SCHEMA_VERSION = 1
COLUMNS = (
    "id",
    "created_at",
    "session_id",
    "turn",
    "question",
    "answer",
    "mode",
    "rating",
    "comment",
    "citations",
    "filters",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at  TEXT    NOT NULL,
    session_id  TEXT    NOT NULL,
    turn        INTEGER NOT NULL,
    question    TEXT    NOT NULL,
    answer      TEXT    NOT NULL,
    mode        TEXT    NOT NULL,
    rating      INTEGER NOT NULL CHECK (rating IN (-1, 1)),
    comment     TEXT    NOT NULL DEFAULT '',
    citations   TEXT    NOT NULL DEFAULT '[]',
    filters     TEXT    NOT NULL DEFAULT '{}'
);
CREATE TRIGGER IF NOT EXISTS feedback_no_update BEFORE UPDATE ON feedback
BEGIN SELECT RAISE(ABORT, 'feedback is append-only'); END;
CREATE TRIGGER IF NOT EXISTS feedback_no_delete BEFORE DELETE ON feedback
BEGIN SELECT RAISE(ABORT, 'feedback is append-only'); END;
"""


def default_feedback_path() -> Path:
    """``$LBP_FEEDBACK_DB`` or ``feedback/feedback.sqlite3`` in the project folder."""
    env = os.environ.get("LBP_FEEDBACK_DB")
    return Path(env) if env else DEFAULT_FEEDBACK_DB


@dataclass(frozen=True)
class Feedback:
    """One rating of one answer.

    Attributes:
        session_id: the browser session (Gradio's session hash).
        turn: 1-based number of the answer within the session.
        question: what the user asked.
        answer: the answer text with its ``[n]`` markers.
        mode: ``clinician`` or ``patient``.
        rating: ``+1`` (thumbs up) or ``-1`` (thumbs down).
        comment: optional free text.
        citations: the answer's citations (``Citation.to_dict()`` form), stored as JSON.
        filters: the filters the answer was retrieved with, stored as JSON.
    """

    session_id: str
    turn: int
    question: str
    answer: str
    mode: str
    rating: int
    comment: str = ""
    citations: Sequence[Mapping[str, Any]] = ()
    filters: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rating not in (-1, 1):
            raise ValueError(f"rating must be +1 or -1, not {self.rating!r}")


class FeedbackStore:
    """An append-only SQLite table of :class:`Feedback` rows.

    Args:
        path: the SQLite file; its folder is created on first write.

    Example:
        >>> store = FeedbackStore(tmp_path / "fb.sqlite3")  # doctest: +SKIP
        >>> store.add(Feedback("s1", 1, "Is yoga helpful?", "Yes [1].", "patient", +1))  # doctest: +SKIP
        1
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._ready = False
        self._init_lock = threading.Lock()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            if not self._ready:
                with self._init_lock:
                    if not self._ready:
                        self._initialize(conn)
                        self._ready = True
            with conn:  # one transaction, committed on success
                yield conn
        finally:
            conn.close()

    @staticmethod
    def _initialize(conn: sqlite3.Connection) -> None:
        """WAL mode and the schema. Switching the journal mode takes an exclusive lock that
        SQLite does not wait for (the busy timeout does not apply), so another process
        creating the same file can make it fail at once: retry for up to 30 s."""
        deadline = time.monotonic() + 30
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def add(self, feedback: Feedback) -> int:
        """Append one row; returns its id."""
        row = (
            datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            feedback.session_id,
            int(feedback.turn),
            feedback.question,
            feedback.answer,
            feedback.mode,
            int(feedback.rating),
            feedback.comment.strip(),
            json.dumps(list(feedback.citations), ensure_ascii=False),
            json.dumps(dict(feedback.filters), ensure_ascii=False, sort_keys=True),
        )
        with self._connect() as conn:
            cur = conn.execute(
                f"INSERT INTO feedback ({', '.join(COLUMNS[1:])}) VALUES ({', '.join('?' * len(row))})",
                row,
            )
            return int(cur.lastrowid or 0)

    def rows(self) -> list[dict[str, Any]]:
        """All rows, oldest first, as dicts keyed by :data:`COLUMNS` (JSON columns left as text)."""
        if not self.path.exists():
            return []
        with self._connect() as conn:
            cur = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM feedback ORDER BY id")
            return [dict(zip(COLUMNS, r, strict=True)) for r in cur.fetchall()]

    def __len__(self) -> int:
        if not self.path.exists():
            return 0
        with self._connect() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])

    def write_csv(self, out: TextIO) -> int:
        """Write every row as CSV (header first) to an open text stream; returns the row count."""
        rows = self.rows()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return len(rows)

    def export_csv(self, path: str | Path) -> int:
        """Write every row to a CSV file (UTF-8); returns the row count."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", encoding="utf-8", newline="") as fh:
            return self.write_csv(fh)


# --------------------------------------------------------------------------- CLI


def add_feedback_parser(sub: Any) -> None:
    """``python -m assistant feedback export [--db PATH] [--output FILE.csv]``."""
    p = sub.add_parser("feedback", help="export the ratings and comments people gave in the web app")
    actions = p.add_subparsers(dest="feedback_command", metavar="ACTION", required=True)
    e = actions.add_parser("export", help="write the feedback table as CSV")
    e.add_argument("--db", type=Path, help="SQLite file (default: feedback/feedback.sqlite3 or $LBP_FEEDBACK_DB)")
    e.add_argument("--output", type=Path, help="CSV file to write (default: standard output)")


def cmd_feedback(args: Any) -> int:
    """Run ``feedback export``."""
    path = args.db or default_feedback_path()
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no feedback database (none given yet, or another --db)")
    store = FeedbackStore(path)
    if args.output is None:
        store.write_csv(sys.stdout)
        return 0
    n = store.export_csv(args.output)
    print(f"wrote {n} feedback rows to {args.output}", file=sys.stderr)
    return 0
