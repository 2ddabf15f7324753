"""The feedback table in PostgreSQL: one store shared by every app replica.

``LBP_FEEDBACK_DB=postgresql://user:password@host:5432/dbname`` selects it (see
:func:`assistant.web.feedback.open_feedback_store`). Each process keeps a small pool of
connections (psycopg 3 and psycopg_pool, the ``postgres`` extra), opened on first use; the
table, its unique ``request_id`` index and the append-only trigger are created then if they
are missing, under an advisory lock so that replicas starting together do not race.

Columns and rows are those of the SQLite file (:data:`.feedback_rows.COLUMNS`): the id is an
identity column, ``created_at`` a ``timestamptz`` given back as the same ISO text, and the
JSON columns are text, so an export is the same CSV from either store. A rating is one
``INSERT ... ON CONFLICT (request_id) DO NOTHING``, committed before :meth:`add` returns: a
request retried after a lost reply, or by the load balancer on another replica, stores one
row. A server that cannot be reached raises :class:`.feedback_rows.FeedbackUnavailable`,
whose message never carries the password.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from assistant.web.feedback_rows import (
    COLUMNS,
    COPIED,
    Feedback,
    FeedbackBackend,
    FeedbackUnavailable,
    format_time,
    mask_url,
    now_utc,
    redact,
    row_key,
)

POOL_SIZE = 8
"""Connections one process may hold (the REST API answers in a thread pool)."""
TIMEOUT = 10.0
"""Seconds to wait for a connection before a write fails with FeedbackUnavailable."""
INSTALL_HINT = "pip install 'lbp-assistant[postgres]' (psycopg 3 and psycopg_pool)"

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS feedback (
        id          BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
        session_id  TEXT        NOT NULL,
        turn        INTEGER     NOT NULL,
        question    TEXT        NOT NULL,
        answer      TEXT        NOT NULL,
        mode        TEXT        NOT NULL,
        rating      SMALLINT    NOT NULL CHECK (rating IN (-1, 1)),
        comment     TEXT        NOT NULL DEFAULT '',
        citations   TEXT        NOT NULL DEFAULT '[]',
        filters     TEXT        NOT NULL DEFAULT '{}',
        request_id  TEXT        NOT NULL,
        CONSTRAINT feedback_request_id UNIQUE (request_id)
    )
    """,
    """
    CREATE OR REPLACE FUNCTION feedback_append_only() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'feedback is append-only'; END $$
    """,
    """
    CREATE OR REPLACE TRIGGER feedback_no_change BEFORE UPDATE OR DELETE ON feedback
    FOR EACH ROW EXECUTE FUNCTION feedback_append_only()
    """,
)
_SCHEMA_LOCK = 0x1B9F_EEDB  # pg_advisory_xact_lock key: one replica creates the table at a time

_INSERT = (
    f"INSERT INTO feedback ({', '.join(COPIED)}) VALUES ({', '.join(['%s'] * len(COPIED))}) "
    "ON CONFLICT (request_id) DO NOTHING"
)


def _drivers() -> tuple[Any, Any]:
    """(psycopg, psycopg_pool), imported only when a PostgreSQL store is used."""
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        raise FeedbackUnavailable(f"PostgreSQL feedback needs {INSTALL_HINT}: {exc}") from None
    return psycopg, psycopg_pool


class PostgresFeedbackStore(FeedbackBackend):
    """The feedback table in a PostgreSQL database.

    Args:
        url: ``postgresql://user[:password]@host[:port]/dbname[?param=value]``, any libpq URL.
        pool_size: the most connections this process keeps open; 0: a new connection for each
            call and no pool (a one-off command's choice: a failure is reported at once).
        timeout: seconds to wait for a connection.
    """

    kind = "postgresql"

    def __init__(self, url: str, pool_size: int = POOL_SIZE, timeout: float = TIMEOUT) -> None:
        self.url = url
        self.pool_size = pool_size
        self.timeout = timeout
        self._pool: Any = None
        self._ready = False
        self._lock = threading.Lock()

    def _get_pool(self) -> Any:
        with self._lock:
            if self._pool is None:
                _, psycopg_pool = _drivers()
                pool = psycopg_pool.ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=self.pool_size,
                    timeout=self.timeout,
                    open=False,
                    check=psycopg_pool.ConnectionPool.check_connection,  # drop connections of a restarted server
                    name="lbp-feedback",
                    kwargs=self._options(),
                )
                pool.open(wait=False)
                self._pool = pool
            return self._pool

    @contextmanager
    def _connect(self, create: bool = True) -> Iterator[Any]:
        """A connection (pooled unless ``pool_size`` is 0) in a transaction committed on success;
        the table is created first if this process has not seen it yet."""
        psycopg, psycopg_pool = _drivers()
        try:
            with self._open(psycopg) as conn:
                if create and not self._ready:
                    self._create(conn)
                    self._ready = True
                yield conn
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            why = self._why_no_connection(exc) if isinstance(exc, psycopg_pool.PoolTimeout) else str(exc)
            raise FeedbackUnavailable(
                f"the feedback database {self.describe()} cannot be used: {redact(why, self.url)}"
            ) from None

    def _open(self, psycopg: Any) -> Any:
        """A connection, committed and given back (or closed) at the end of its ``with``."""
        if self.pool_size > 0:
            return self._get_pool().connection()
        return psycopg.connect(self.url, **self._options())

    def _options(self) -> dict[str, Any]:
        return {"connect_timeout": max(1, int(self.timeout)), "application_name": "lbp-assistant"}

    def _why_no_connection(self, timeout: Exception) -> str:
        """The pool only says it waited in vain: one direct attempt tells why (refused, a wrong
        password, no such database), or that the server answers and every connection was busy."""
        psycopg, _ = _drivers()
        try:
            psycopg.connect(self.url, **self._options()).close()
        except psycopg.Error as exc:
            return str(exc).strip()
        return f"{timeout} (all {self.pool_size} connections busy)"

    @staticmethod
    def _create(conn: Any) -> None:
        with conn.transaction():
            if conn.execute("SELECT to_regclass('feedback')").fetchone()[0] is not None:
                return
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in _SCHEMA:  # idempotent: a replica that waited for the lock changes nothing
                conn.execute(statement)

    def add(self, feedback: Feedback) -> int:
        row = feedback.to_row(now_utc())
        params = _params(row)
        with self._connect() as conn:
            found = conn.execute(_INSERT + " RETURNING id", params).fetchone()
            if found is None:  # stored before: this is a retry
                found = conn.execute("SELECT id FROM feedback WHERE request_id = %s", (row["request_id"],)).fetchone()
            return int(found[0])

    def copy_rows(self, rows: Iterable[Mapping[str, Any]]) -> int:
        params = [_params({**r, "request_id": row_key(r)}) for r in rows]
        if not params:
            self.rows()  # creates the table, as a copy of rows would
            return 0
        with self._connect() as conn, conn.cursor() as cur:
            cur.executemany(_INSERT, params)
            return int(cur.rowcount)

    def rows(self) -> list[dict[str, Any]]:
        with self._connect() as conn:
            cur = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM feedback ORDER BY id")
            out = [dict(zip(COLUMNS, r, strict=True)) for r in cur.fetchall()]
        for row in out:
            row["created_at"] = format_time(row["created_at"])
        return out

    def __len__(self) -> int:
        with self._connect() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])

    def exists(self) -> bool:
        with self._connect(create=False) as conn:
            return conn.execute("SELECT to_regclass('feedback')").fetchone()[0] is not None

    def describe(self) -> str:
        return mask_url(self.url)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


def _params(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """A row's values in :data:`COPIED` order, its time as a datetime."""
    created = row["created_at"]
    if isinstance(created, str):
        created = datetime.fromisoformat(created)
    return tuple(created if c == "created_at" else row[c] for c in COPIED)
