"""``python -m assistant feedback migrate`` and ``export`` as people run them (subprocesses):
the SQLite file of each replica into one PostgreSQL table, every row once however often it
runs, counts printed, the password never; ``export`` reads either store."""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from postgres_server import PASSWORD, PostgresServer

from assistant.web.feedback import Feedback, FeedbackStore, PostgresFeedbackStore

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "LBP_FEEDBACK_DB"} | env
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "feedback", *args], cwd=ROOT, env=environ, capture_output=True, text=True
    )
    assert PASSWORD not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done


def _replica_file(path: Path, name: str, n: int) -> Path:
    store = FeedbackStore(path)
    for turn in range(1, n + 1):
        store.add(Feedback(name, turn, f"Question {turn}?", "Answer [1].", "patient", 1 if turn % 2 else -1, "a, b"))
    return path


def _csv(text: str) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k != "id"} for row in csv.DictReader(io.StringIO(text))]


def test_migrate_copies_every_replica_file_once(tmp_path: Path, postgres: PostgresServer) -> None:
    url = postgres.new_database()
    a = _replica_file(tmp_path / "a.sqlite3", "replica-a", 5)
    b = _replica_file(tmp_path / "b.sqlite3", "replica-b", 3)
    with sqlite3.connect(b) as conn:  # a row written by the old code, without a request_id
        conn.execute(
            "INSERT INTO feedback (created_at, session_id, turn, question, answer, mode, rating) "
            "VALUES ('2025-01-01T00:00:00.000+00:00', 'old', 1, 'q', 'a', 'clinician', 1)"
        )

    first = _cli("migrate", "--from", str(a), "--to", url)
    assert first.returncode == 0, first.stderr
    assert f"read 5 rows from {a}; copied 5 to postgresql://lbp:***@127.0.0.1:{postgres.port}/" in first.stdout
    assert "(0 were there already); it now holds 5 rows" in first.stdout
    second = _cli("migrate", "--from", str(b), "--to", url)
    assert "read 4 rows" in second.stdout and "copied 4" in second.stdout and "holds 9 rows" in second.stdout
    for path, n in ((a, 5), (b, 4)):  # again: nothing is copied twice
        again = _cli("migrate", "--from", str(path), LBP_FEEDBACK_DB=url)  # --to defaults to $LBP_FEEDBACK_DB
        assert again.returncode == 0 and "copied 0 to" in again.stdout and f"({n} were there already)" in again.stdout

    with PostgresFeedbackStore(url) as shared:
        rows = shared.rows()
    assert len(rows) == 9 and len({r["request_id"] for r in rows}) == 9
    assert sum(r["request_id"].startswith("legacy-") for r in rows) == 1

    exported = _cli("export", "--db", url)  # both stores export the same rows
    assert exported.returncode == 0
    from_files = _csv(_cli("export", "--db", str(a)).stdout) + _csv(_cli("export", "--db", str(b)).stdout)
    from_files[-1]["request_id"] = rows[-1]["request_id"]  # the key derived for the old row
    assert _csv(exported.stdout) == from_files
    out = tmp_path / "shared.csv"
    written = _cli("export", "--output", str(out), LBP_FEEDBACK_DB=url)
    assert written.returncode == 0 and "wrote 9 feedback rows" in written.stderr


def test_migrate_into_sqlite_merges_files_too(tmp_path: Path) -> None:
    a = _replica_file(tmp_path / "a.sqlite3", "replica-a", 2)
    merged = tmp_path / "merged.sqlite3"
    for _ in range(2):
        done = _cli("migrate", "--from", str(a), "--to", str(merged))
        assert done.returncode == 0
    assert "copied 0" in done.stdout and len(FeedbackStore(merged)) == 2


def test_migrate_failures_name_the_problem_without_the_password(tmp_path: Path, postgres: PostgresServer) -> None:
    a = _replica_file(tmp_path / "a.sqlite3", "replica-a", 1)
    down = postgres.url().replace(f":{postgres.port}/", ":1/")
    unreachable = _cli("migrate", "--from", str(a), "--to", down)
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("error: the feedback database postgresql://lbp:***@127.0.0.1:1/lbp")
    assert "refused" in unreachable.stderr

    missing = _cli("migrate", "--from", str(tmp_path / "none.sqlite3"), "--to", postgres.url())
    assert missing.returncode == 2 and "none.sqlite3: no feedback database" in missing.stderr
    same = _cli("migrate", "--from", str(a), "--to", str(a))
    assert same.returncode == 2 and "the same store" in same.stderr
    other = _cli("migrate", "--from", str(a), "--to", f"mysql://lbp:{PASSWORD}@db/x")
    assert other.returncode == 2 and "mysql://lbp:***@db/x" in other.stderr


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_export_of_an_empty_or_missing_store(kind: str, tmp_path: Path, postgres: PostgresServer) -> None:
    target = str(tmp_path / "none.sqlite3") if kind == "sqlite" else postgres.new_schema()
    done = _cli("export", "--db", target)
    assert done.returncode == 2 and "no feedback database" in done.stderr
