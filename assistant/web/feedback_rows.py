"""A rating, the columns every feedback store keeps, and the interface of a store.

:class:`Feedback` is one rating of one answer. :class:`FeedbackBackend` is what the app, the
REST API and the ``feedback`` commands use, whichever database is behind it: the SQLite file
of one machine (:mod:`.feedback_sqlite`) or the PostgreSQL server that several app replicas
share (:mod:`.feedback_postgres`). Both keep the same columns (:data:`COLUMNS`), give rows in
the same form (:meth:`FeedbackBackend.rows`), and never store one rating twice: each row
carries a ``request_id`` that is unique in the table, so a retried request, or a migration
run twice, adds nothing.

Database URLs may carry a password: :func:`mask_url` and :func:`redact` keep it out of every
message this package prints or logs.

Standard library only (the CLI loads it for ``feedback export``).
"""

from __future__ import annotations

import abc
import csv
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO
from urllib.parse import parse_qsl, quote, unquote

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
    "request_id",
)
"""The columns of the ``feedback`` table, in the order of :meth:`FeedbackBackend.rows` and of the CSV."""

COPIED = COLUMNS[1:]
"""What a copy between stores carries: every column but the id, which each store numbers itself."""

LEGACY_KEYS = uuid.UUID("6f1d3f0e-52c1-4c59-9a53-3c0b7d1f5a21")
"""Namespace of the keys derived for rows stored before ``request_id`` existed (:func:`row_key`)."""


def new_request_id() -> str:
    """A fresh idempotency key (a random UUID)."""
    return str(uuid.uuid4())


def now_utc() -> datetime:
    """The time a row is stored: UTC, to the millisecond."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def format_time(moment: datetime) -> str:
    """``2026-05-01T12:00:00.123+00:00``: the ``created_at`` text of every store."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Feedback:
    """One rating of one answer.

    Attributes:
        session_id: the browser session (Gradio's session hash), or the API caller's id.
        turn: 1-based number of the answer within the session.
        question: what the user asked.
        answer: the answer text with its ``[n]`` markers.
        mode: ``clinician`` or ``patient``.
        rating: ``+1`` (thumbs up) or ``-1`` (thumbs down).
        comment: optional free text.
        citations: the answer's citations (``Citation.to_dict()`` form), stored as JSON.
        filters: the filters the answer was retrieved with, stored as JSON.
        request_id: the idempotency key: storing the same key again adds no row. A new
            random one unless given, so each :class:`Feedback` is one rating.
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
    request_id: str = field(default_factory=new_request_id)

    def __post_init__(self) -> None:
        if self.rating not in (-1, 1):
            raise ValueError(f"rating must be +1 or -1, not {self.rating!r}")
        if not self.request_id.strip():
            raise ValueError("request_id must not be empty")

    def to_row(self, created_at: datetime) -> dict[str, Any]:
        """The stored form: every column of :data:`COPIED`, the JSON columns as text."""
        return {
            "created_at": format_time(created_at),
            "session_id": self.session_id,
            "turn": int(self.turn),
            "question": self.question,
            "answer": self.answer,
            "mode": self.mode,
            "rating": int(self.rating),
            "comment": self.comment.strip(),
            "citations": json.dumps(list(self.citations), ensure_ascii=False),
            "filters": json.dumps(dict(self.filters), ensure_ascii=False, sort_keys=True),
            "request_id": self.request_id.strip(),
        }


def row_key(row: Mapping[str, Any]) -> str:
    """A row's ``request_id``; for a row stored before there was one, a key derived from its
    content (the same for the same row of the same file, whichever copy is read)."""
    key = row.get("request_id")
    if key:
        return str(key)
    content = [row.get(c) for c in ("id", "created_at", "session_id", "turn", "question", "answer", "mode")]
    content += [row.get("rating"), row.get("comment")]
    return f"legacy-{uuid.uuid5(LEGACY_KEYS, json.dumps(content, ensure_ascii=False, default=str))}"


class FeedbackUnavailable(RuntimeError):
    """The feedback database cannot be reached or used; the message names it without a password."""


# --------------------------------------------------------------------------- passwords


_SECRET_PARAMS = ("password", "sslpassword")


def _parts(url: str) -> tuple[str, str, str | None, str, str]:
    """(``scheme://``, user, password or None, the rest up to ``?``, the query). The user
    information ends at the last ``@`` before the query, so a password with an unescaped
    ``/`` or ``@`` (which libpq would refuse) is still found whole."""
    head, sep, query = url.partition("?")
    scheme, found, after = head.partition("://")
    if not found:
        return "", "", None, head, query if sep else ""
    userinfo, at, rest = after.rpartition("@")
    if not at:
        return f"{scheme}://", "", None, after, query
    user, colon, password = userinfo.partition(":")
    return f"{scheme}://", user, password if colon else None, rest, query


def url_password(url: str) -> str | None:
    """The password in a database URL (``user:password@`` or ``?password=``), if any."""
    _, _, password, _, query = _parts(url)
    if password:
        return unquote(password)
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in _SECRET_PARAMS and value:
            return value
    return None


def mask_url(url: str) -> str:
    """The URL with its password as ``***``: safe to print and log.

    >>> mask_url("postgresql://lbp:s3cret@db.internal:5432/feedback")
    'postgresql://lbp:***@db.internal:5432/feedback'
    """
    scheme, user, password, rest, query = _parts(url)
    userinfo = "" if not (user or password is not None) else user + (":***" if password is not None else "") + "@"
    if query:
        query = "?" + re.sub(rf"(^|&)({'|'.join(_SECRET_PARAMS)})=[^&]*", r"\1\2=***", query)
    return f"{scheme}{userinfo}{rest}{query}"


def redact(text: str, url: str) -> str:
    """``text`` (an error message, say) with the password of ``url`` and the URL itself masked."""
    password = url_password(url)
    text = text.replace(url, mask_url(url))
    if password:
        for form in {password, quote(password, safe=""), quote(password)}:
            text = text.replace(form, "***")
    return re.sub(r"(password\s*=\s*)('[^']*'|[^\s&;,'\"]+)", r"\1***", text)


# --------------------------------------------------------------------------- the interface


class FeedbackBackend(abc.ABC):
    """An append-only table of :class:`Feedback` rows, one per rating, never one twice.

    Every write is committed before the method returns. A store opens its database on first
    use (creating the table if it is missing), is safe to share between threads, and is
    closed with :meth:`close` (or ``with``).
    """

    kind: str = ""
    """``sqlite`` or ``postgresql``."""

    @abc.abstractmethod
    def add(self, feedback: Feedback) -> int:
        """Store one rating; returns its row id. The same ``request_id`` again stores nothing
        and returns the id of the row stored the first time."""

    @abc.abstractmethod
    def copy_rows(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Store rows of another store (:meth:`rows` form) keeping their time and key (rows
        without a key get :func:`row_key`); returns how many were new."""

    @abc.abstractmethod
    def rows(self) -> list[dict[str, Any]]:
        """All rows, oldest first, as dicts keyed by :data:`COLUMNS` (JSON columns left as text)."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def exists(self) -> bool:
        """Whether the database has a feedback table yet (False: nothing was ever stored)."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the rows go, printable: a file path, or a URL with its password masked."""

    def close(self) -> None:
        """Release connections (a store may be used again afterwards; it reopens)."""
        return None  # a SQLite store holds none between calls

    def __enter__(self) -> FeedbackBackend:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

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

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()!r})"
