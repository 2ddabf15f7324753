"""Both feedback stores through one interface (assistant/web/feedback*.py): the SQLite file and
a real PostgreSQL server (tests/web/conftest.py). The same rows, the same CSV, one row per
request_id under concurrent writers and retries, append-only, passwords never shown; the
migration of version 1 SQLite files; the REST route's retries and 503."""

from __future__ import annotations

import csv
import io
import json
import logging
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from postgres_server import PASSWORD, PostgresServer
from test_feedback import CITATION, make_feedback, run_writers

from assistant.web import rest
from assistant.web.feedback import (
    COLUMNS,
    FeedbackBackend,
    FeedbackStore,
    FeedbackUnavailable,
    PostgresFeedbackStore,
    open_feedback_store,
)
from assistant.web.feedback_rows import mask_url, redact, row_key
from assistant.web.service import AssistantService

V1_SCHEMA = """
CREATE TABLE feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, session_id TEXT NOT NULL,
    turn INTEGER NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL, mode TEXT NOT NULL,
    rating INTEGER NOT NULL CHECK (rating IN (-1, 1)), comment TEXT NOT NULL DEFAULT '',
    citations TEXT NOT NULL DEFAULT '[]', filters TEXT NOT NULL DEFAULT '{}'
);
CREATE TRIGGER feedback_no_update BEFORE UPDATE ON feedback BEGIN SELECT RAISE(ABORT, 'feedback is append-only'); END;
CREATE TRIGGER feedback_no_delete BEFORE DELETE ON feedback BEGIN SELECT RAISE(ABORT, 'feedback is append-only'); END;
PRAGMA user_version=1;
"""
V1_INSERT = (
    "INSERT INTO feedback (created_at, session_id, turn, question, answer, mode, rating, comment, citations, filters) "
    "VALUES (?, ?, ?, 'Is yoga good?', 'Yes [1].', 'patient', ?, ?, '[]', '{}')"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FeedbackBackend]:
    """An empty store of each kind, opened the way the app opens it (from LBP_FEEDBACK_DB's value)."""
    target = str(tmp_path / "fb.sqlite3") if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with open_feedback_store(target) as opened:
        assert opened.kind == request.param
        yield opened


def _raw(store: FeedbackBackend, sql: str) -> None:
    """Run a statement on the store's database directly, past the store."""
    if isinstance(store, FeedbackStore):
        with sqlite3.connect(store.path) as conn:
            conn.execute(sql)
        return
    import psycopg

    assert isinstance(store, PostgresFeedbackStore)
    with psycopg.connect(store.url) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def test_rows_are_appended_in_order_with_the_same_columns(store: FeedbackBackend) -> None:
    assert store.rows() == [] and len(store) == 0
    first = store.add(make_feedback(+1))
    second = store.add(make_feedback(-1, comment="  missed the trial  ", request_id="r-2"))
    assert second > first >= 1
    rows = store.rows()
    assert [list(r) for r in rows] == [list(COLUMNS)] * 2
    assert [r["id"] for r in rows] == [first, second] and [r["rating"] for r in rows] == [1, -1]
    assert rows[1]["comment"] == "missed the trial" and rows[1]["request_id"] == "r-2"
    assert json.loads(rows[0]["citations"]) == [CITATION]
    assert rows[0]["filters"] == '{"design_group": ["review"], "species": ["human"]}'
    assert rows[0]["created_at"].endswith("+00:00") and len(rows[0]["created_at"]) == 29
    assert rows[0]["created_at"] <= rows[1]["created_at"]
    assert len(rows[0]["request_id"]) == 36  # a random UUID when none is given
    assert len(store) == 2 and store.exists()


def test_the_same_request_id_is_stored_once_and_answers_the_first_id(store: FeedbackBackend) -> None:
    rating = make_feedback(comment="retried")
    first = store.add(rating)
    assert store.add(rating) == first  # the same object again: a retry
    assert store.add(make_feedback(-1, comment="other text, same key", request_id=rating.request_id)) == first
    assert store.add(make_feedback(comment="retried")) != first  # equal content, a new rating
    assert [(r["id"], r["comment"]) for r in store.rows()][:1] == [(first, "retried")]
    assert len(store) == 2


def test_concurrent_writers_and_retries_lose_and_duplicate_nothing(store: FeedbackBackend) -> None:
    ids: dict[str, set[int]] = {}
    lock = threading.Lock()

    def write(session: str) -> None:
        for turn in range(1, 9):
            rating = make_feedback(turn=turn, session=session, request_id=f"{session}-{turn}")
            for _ in range(1 + turn % 2):  # odd turns are sent twice
                got = store.add(rating)
                with lock:
                    ids.setdefault(rating.request_id, set()).add(got)

    assert not run_writers(write)
    rows = store.rows()
    assert len(rows) == len(store) == 64
    assert sorted(r["request_id"] for r in rows) == sorted(ids)
    assert all(len(got) == 1 for got in ids.values())  # a retry answers the first id
    assert {r["id"] for r in rows} == {next(iter(got)) for got in ids.values()}


def test_the_table_refuses_updates_and_deletes(store: FeedbackBackend) -> None:
    store.add(make_feedback())
    for statement in ("UPDATE feedback SET rating = -1", "DELETE FROM feedback"):
        with pytest.raises(Exception, match="append-only"):
            _raw(store, statement)
    assert [r["rating"] for r in store.rows()] == [1]


def test_a_bad_rating_never_reaches_the_table(store: FeedbackBackend) -> None:
    with pytest.raises(ValueError, match="rating"):
        make_feedback(0)
    with pytest.raises(ValueError, match="request_id"):
        make_feedback(request_id=" ")
    assert len(store) == 0


def test_copies_between_stores_are_idempotent_and_keep_time_and_text(store: FeedbackBackend, tmp_path: Path) -> None:
    source = FeedbackStore(tmp_path / "replica-a.sqlite3")
    for turn, rating in enumerate((1, -1, 1), start=1):
        source.add(make_feedback(rating, comment=f'turn {turn}, "quoted"\nnext line', turn=turn))
    assert store.copy_rows(source.rows()) == 3
    assert store.copy_rows(source.rows()) == 0
    assert store.copy_rows([]) == 0
    drop_id = [{k: v for k, v in r.items() if k != "id"} for r in store.rows()]
    assert drop_id == [{k: v for k, v in r.items() if k != "id"} for r in source.rows()]
    out_a, out_b = io.StringIO(), io.StringIO()
    assert source.write_csv(out_a) == store.write_csv(out_b) == 3

    def no_ids(text: str) -> list[dict[str, str]]:
        return [{k: v for k, v in r.items() if k != "id"} for r in csv.DictReader(io.StringIO(text))]

    assert no_ids(out_a.getvalue()) == no_ids(out_b.getvalue())  # the same export from either store


def test_a_version_1_file_is_migrated_in_place_and_stays_readable(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_SCHEMA)
        for rating in (1, 1):  # two equal ratings a millisecond apart keep two keys
            conn.execute(V1_INSERT, ("2025-01-02T03:04:05.678+00:00", "old", 1, rating, "kept"))
    store = FeedbackStore(path)
    rows = store.rows()
    assert [(r["comment"], r["request_id"]) for r in rows] == [("kept", None), ("kept", None)]
    assert len({row_key(r) for r in rows}) == 2 and row_key(rows[0]) == row_key(store.rows()[0])
    store.add(make_feedback(request_id="new-1"))
    store.add(make_feedback(request_id="new-1"))
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        conn.execute(V1_INSERT, ("2025-01-03T00:00:00.000+00:00", "older code", 2, -1, ""))  # old code still writes
    assert [r["request_id"] for r in store.rows()] == [None, None, "new-1", None]


def test_open_feedback_store_chooses_by_the_target(tmp_path: Path) -> None:
    assert isinstance(open_feedback_store(tmp_path / "a.sqlite3"), FeedbackStore)
    for url in ("postgresql://u@h/db", "postgres://u@h:5/db"):
        assert isinstance(open_feedback_store(url), PostgresFeedbackStore)
    with pytest.raises(ValueError, match=r"mysql://u:\*\*\*@h/db: feedback goes to") as err:
        open_feedback_store("mysql://u:hunter2@h/db")
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://lbp:s3cret@db:5432/fb", "postgresql://lbp:***@db:5432/fb"),
        ("postgresql://lbp@db/fb", "postgresql://lbp@db/fb"),
        ("postgresql://lbp:p%40ss@db/fb?sslmode=require", "postgresql://lbp:***@db/fb?sslmode=require"),
        ("postgresql://db/fb?user=lbp&password=s3cret", "postgresql://db/fb?user=lbp&password=***"),
        ("postgresql://lbp:s3cret/with@signs@db/fb", "postgresql://lbp:***@db/fb"),  # unescaped: found whole
        ("postgresql:///fb?host=/run/pg&password=s3cret", "postgresql:///fb?host=/run/pg&password=***"),
    ],
)
def test_mask_url_hides_the_password(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    assert redact(f"cannot use {url}; password=s3cret", url) == f"cannot use {shown}; password=***"


def test_redact_hides_the_password_in_any_form() -> None:
    url = "postgresql://lbp:p%40ss%2Fword@db/fb"
    message = f"{url} failed for p@ss/word (p%40ss%2Fword), conninfo password='p@ss/word' host=db"
    assert redact(message, url) == "postgresql://lbp:***@db/fb failed for *** (***), conninfo password=*** host=db"


def test_an_unreachable_server_raises_feedback_unavailable_without_the_password(
    postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres.url().replace(f":{postgres.port}/", ":1/")  # nothing listens on port 1
    store = PostgresFeedbackStore(url, timeout=1)
    with caplog.at_level(logging.DEBUG), pytest.raises(FeedbackUnavailable) as err:
        store.add(make_feedback())
    store.close()
    assert "127.0.0.1:1" in str(err.value) and "lbp:***@" in str(err.value)
    assert PASSWORD not in str(err.value) and PASSWORD not in caplog.text


def test_a_wrong_password_is_named_but_not_shown(postgres: PostgresServer) -> None:
    url = postgres.url().replace("pg-S3cret", "wrong-Secret")
    with PostgresFeedbackStore(url, timeout=1) as store, pytest.raises(FeedbackUnavailable) as err:
        store.add(make_feedback())
    assert "password authentication failed" in str(err.value)
    assert "wrong-Secret" not in str(err.value) and "S3cret" not in str(err.value)


# --------------------------------------------------------------------------- the REST route


def _client(feedback: FeedbackBackend) -> TestClient:
    """The API in process; ratings need no assistant, so none is loaded."""
    service = AssistantService(settings=object(), loader=lambda s, log: None, quick_start=False)  # type: ignore[arg-type]
    return TestClient(rest.create_api(service, feedback=feedback))


def test_rest_feedback_retries_with_a_request_id_store_one_row(store: FeedbackBackend) -> None:
    body = {"question": "Is walking good?", "answer": "Yes [1].", "rating": 1, "citations": [1]}
    key = "7b0f64e2-4c0b-4f52-9e3c-2f7d6c1f2a10"
    with _client(store) as client:
        first = client.post("/api/v1/feedback", json={**body, "request_id": key})
        again = client.post("/api/v1/feedback", json={**body, "request_id": key})
        other = client.post("/api/v1/feedback", json=body)
        bad = client.post("/api/v1/feedback", json={**body, "request_id": "not-a-uuid"})
    assert first.status_code == again.status_code == other.status_code == 201
    assert first.json() == again.json() == {"id": first.json()["id"], "request_id": key}
    assert other.json()["id"] != first.json()["id"] and len(other.json()["request_id"]) == 36
    assert bad.status_code == 400 and "request_id" in bad.json()["detail"][0]
    assert sorted(r["request_id"] for r in store.rows()) == sorted([key, other.json()["request_id"]])


def test_rest_feedback_answers_503_when_the_database_is_down(
    postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = PostgresFeedbackStore(postgres.url().replace(f":{postgres.port}/", ":1/"), timeout=1)
    body = {"question": "Is walking good?", "answer": "Yes [1].", "rating": -1}
    with caplog.at_level(logging.INFO), _client(store) as client:
        r = client.post("/api/v1/feedback", json=body)
    store.close()
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert r.json()["error"] == "feedback_unavailable" and "same request_id" in r.json()["detail"]
    assert "127.0.0.1" not in r.text  # the client learns nothing of the database
    assert "lbp:***@127.0.0.1:1" in caplog.text and PASSWORD not in caplog.text


def test_the_driver_is_imported_only_when_postgresql_is_used() -> None:
    code = (
        "import sys, assistant.web.feedback as f; "
        "f.open_feedback_store('postgresql://u@h/db'); f.open_feedback_store('x.sqlite3'); "
        "print('psycopg' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
