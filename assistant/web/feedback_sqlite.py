"""The feedback table in an append-only SQLite file: the store of one machine, and the default.

One row per rating the user gives. A rating with a comment is a new row, so the table never
changes a row once written (triggers refuse UPDATE and DELETE); the latest row of a
``(session_id, turn)`` pair is that answer's current rating. A ``request_id`` unique in the
table makes a retried rating a no-op.

The file survives restarts and is safe to write from many threads and processes of one
machine (WAL mode, one connection per operation, committed before a method returns).
Several machines cannot share it: they share PostgreSQL (:mod:`.feedback_postgres`).

Schema versions (``PRAGMA user_version``): 1 had no ``request_id``; opening such a file adds
the column (empty for the old rows) and its unique index, which older code reads and writes
as before.

Standard library only.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from assistant.web.feedback_rows import COLUMNS, COPIED, Feedback, FeedbackBackend, now_utc, row_key

SCHEMA_VERSION = 2

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
    filters     TEXT    NOT NULL DEFAULT '{}',
    request_id  TEXT
);
CREATE TRIGGER IF NOT EXISTS feedback_no_update BEFORE UPDATE ON feedback
BEGIN SELECT RAISE(ABORT, 'feedback is append-only'); END;
CREATE TRIGGER IF NOT EXISTS feedback_no_delete BEFORE DELETE ON feedback
BEGIN SELECT RAISE(ABORT, 'feedback is append-only'); END;
"""

_INSERT = (
    f"INSERT INTO feedback ({', '.join(COPIED)}) VALUES ({', '.join('?' * len(COPIED))}) "
    "ON CONFLICT (request_id) DO NOTHING"
)


class FeedbackStore(FeedbackBackend):
    """The feedback table in a SQLite file.

    Args:
        path: the SQLite file; its folder is created on first write.

    Example:
        >>> store = FeedbackStore(tmp_path / "fb.sqlite3")  # doctest: +SKIP
        >>> store.add(Feedback("s1", 1, "Is yoga helpful?", "Yes [1].", "patient", +1))  # doctest: +SKIP
        1
    """

    kind = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._ready = False
        self._init_lock = threading.Lock()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._init_lock:
                if not self._ready:
                    # on a connection of its own: one that read the schema before another
                    # process added the unique index keeps the old schema when it compiles an
                    # INSERT ... ON CONFLICT (request_id), which then fails to compile
                    init = sqlite3.connect(self.path, timeout=30)
                    try:
                        self._initialize(init)
                    finally:
                        init.close()
                    self._ready = True
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            with conn:  # one transaction, committed on success
                yield conn
        finally:
            conn.close()

    @staticmethod
    def _initialize(conn: sqlite3.Connection) -> None:
        """WAL mode, the schema, and the migration of a version 1 file. Switching the journal
        mode takes an exclusive lock that SQLite does not wait for (the busy timeout does not
        apply), so another process creating the same file can make it fail at once: retry for
        up to 30 s."""
        deadline = time.monotonic() + 30
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
                _migrate(conn)
                return
            except sqlite3.OperationalError as exc:
                if conn.in_transaction:
                    conn.rollback()
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def add(self, feedback: Feedback) -> int:
        row = feedback.to_row(now_utc())
        with self._connect() as conn:
            cur = conn.execute(_INSERT, tuple(row[c] for c in COPIED))
            if cur.rowcount == 1:
                return int(cur.lastrowid or 0)
            found = conn.execute("SELECT id FROM feedback WHERE request_id = ?", (row["request_id"],)).fetchone()
            return int(found[0])

    def copy_rows(self, rows: Iterable[Mapping[str, Any]]) -> int:
        params = [tuple(row_key(r) if c == "request_id" else r[c] for c in COPIED) for r in rows]
        with self._connect() as conn:
            before = conn.total_changes
            conn.executemany(_INSERT, params)
            return conn.total_changes - before

    def rows(self) -> list[dict[str, Any]]:
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

    def exists(self) -> bool:
        return self.path.is_file()

    def describe(self) -> str:
        return str(self.path)


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a file to :data:`SCHEMA_VERSION` in one write transaction (another process may
    be doing the same: the second finds the work done)."""
    if conn.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    columns = {r[1] for r in conn.execute("PRAGMA table_info(feedback)")}
    if "request_id" not in columns:  # version 1: the old rows keep an empty key
        conn.execute("ALTER TABLE feedback ADD COLUMN request_id TEXT")
    conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS feedback_request_id ON feedback (request_id)")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    conn.commit()
