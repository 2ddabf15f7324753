"""Thumbs up/down and comments on answers: the store the app writes to, and its commands.

``LBP_FEEDBACK_DB`` chooses the store (:func:`open_feedback_store`):

- a file path, or nothing (``feedback/feedback.sqlite3``): an append-only SQLite file
  (:mod:`.feedback_sqlite`), for one machine;
- ``postgresql://user:password@host:5432/dbname``: a PostgreSQL table
  (:mod:`.feedback_postgres`) that several app replicas behind a load balancer share.

Both keep the same rows (:mod:`.feedback_rows`: :class:`Feedback`, :data:`COLUMNS`, the
:class:`FeedbackBackend` interface), and store a rating once however often it is sent
(its ``request_id`` is unique).

Commands (``python -m assistant feedback ...``):

- ``export [--db PATH|URL] [--output FILE.csv]``: the table as CSV;
- ``migrate --from PATH|URL --to PATH|URL``: copy every row not yet there (the old SQLite
  file of each replica into PostgreSQL, say); running it again copies nothing twice.

Passwords in URLs are printed as ``***``. This module imports only the standard library.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from assistant.config import PROJECT_ROOT
from assistant.web.feedback_postgres import PostgresFeedbackStore
from assistant.web.feedback_rows import (
    COLUMNS,
    Feedback,
    FeedbackBackend,
    FeedbackUnavailable,
    mask_url,
)
from assistant.web.feedback_sqlite import SCHEMA_VERSION, FeedbackStore

__all__ = [
    "COLUMNS",
    "DEFAULT_FEEDBACK_DB",
    "SCHEMA_VERSION",
    "Feedback",
    "FeedbackBackend",
    "FeedbackStore",
    "FeedbackUnavailable",
    "PostgresFeedbackStore",
    "add_feedback_parser",
    "cmd_feedback",
    "feedback_target",
    "is_postgres_url",
    "open_feedback_store",
]

DEFAULT_FEEDBACK_DB = PROJECT_ROOT / "feedback" / "feedback.sqlite3"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def feedback_target(environ: Any = os.environ) -> str:
    """``$LBP_FEEDBACK_DB`` (a path or a URL) or ``feedback/feedback.sqlite3`` in the project folder."""
    return environ.get("LBP_FEEDBACK_DB") or str(DEFAULT_FEEDBACK_DB)


def is_postgres_url(target: str | Path) -> bool:
    return str(target).startswith(POSTGRES_SCHEMES)


def open_feedback_store(target: str | Path | None = None, pooled: bool = True) -> FeedbackBackend:
    """The store at ``target`` (default :func:`feedback_target`): PostgreSQL for a
    ``postgresql://`` URL, else a SQLite file. Nothing is opened until the first use.

    ``pooled=False`` opens a PostgreSQL connection per call instead of keeping a pool (for
    one-off commands).

    Raises:
        ValueError: a URL of another database (``mysql://...``).
    """
    text = str(target if target is not None else feedback_target())
    if is_postgres_url(text):
        return PostgresFeedbackStore(text) if pooled else PostgresFeedbackStore(text, pool_size=0)
    scheme, sep, _ = text.partition("://")
    if sep and scheme.replace("+", "").isalnum():
        raise ValueError(
            f"{mask_url(text)}: feedback goes to a SQLite file path or a postgresql:// URL, not {scheme}://"
        )
    return FeedbackStore(text)


def migrate(source: FeedbackBackend, target: FeedbackBackend) -> tuple[int, int]:
    """Copy every row of ``source`` that ``target`` lacks; returns (rows read, rows copied)."""
    rows = source.rows()
    return len(rows), target.copy_rows(rows)


# --------------------------------------------------------------------------- CLI


def add_feedback_parser(sub: Any) -> None:
    """``python -m assistant feedback export|migrate ...``."""
    p = sub.add_parser("feedback", help="export the ratings and comments people gave in the web app")
    actions = p.add_subparsers(dest="feedback_command", metavar="ACTION", required=True)
    where = "a SQLite file or a postgresql:// URL"
    e = actions.add_parser("export", help="write the feedback table as CSV")
    e.add_argument("--db", help=f"{where} (default: $LBP_FEEDBACK_DB or feedback/feedback.sqlite3)")
    e.add_argument("--output", type=Path, help="CSV file to write (default: standard output)")
    m = actions.add_parser(
        "migrate", help="copy the rows of one feedback store into another (each row once, however often it is run)"
    )
    m.add_argument("--from", dest="source", required=True, metavar="DB", help=f"where the rows are: {where}")
    m.add_argument("--to", dest="target", metavar="DB", help=f"where they go: {where} (default: $LBP_FEEDBACK_DB)")


def cmd_feedback(args: Any) -> int:
    """Run ``feedback export`` or ``feedback migrate``."""
    try:
        if args.feedback_command == "migrate":
            return _migrate(args)
        return _export(args)
    except FeedbackUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _existing(target: str) -> FeedbackBackend:
    store = open_feedback_store(target, pooled=False)
    if not store.exists():
        store.close()
        raise FileNotFoundError(f"{store.describe()}: no feedback database (none given yet, or another --db)")
    return store


def _export(args: Any) -> int:
    with _existing(args.db or feedback_target()) as store:
        if args.output is None:
            store.write_csv(sys.stdout)
            return 0
        n = store.export_csv(args.output)
    print(f"wrote {n} feedback rows to {args.output}", file=sys.stderr)
    return 0


def _migrate(args: Any) -> int:
    target_text = args.target or feedback_target()
    if str(Path(args.source).resolve()) == str(Path(target_text).resolve()) or args.source == target_text:
        raise ValueError("--from and --to name the same store")
    with _existing(args.source) as source, open_feedback_store(target_text, pooled=False) as target:
        read, copied = migrate(source, target)
        total = len(target)
        print(
            f"read {read} rows from {source.describe()}; copied {copied} to {target.describe()} "
            f"({read - copied} were there already); it now holds {total} rows"
        )
    return 0
