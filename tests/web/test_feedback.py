"""Tests for assistant/web/feedback.py: the append-only SQLite store, CSV export and its CLI."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from assistant.cli import main
from assistant.web.feedback import COLUMNS, Feedback, FeedbackStore

ROOT = Path(__file__).resolve().parents[2]
CITATION = {"n": 22, "doc_id": "ref-22", "title": "Bed rest or staying active", "passage": "Stay active."}


# make_feedback and run_writers serve test_feedback_backends.py too, which imports them from here.


def make_feedback(rating: int = 1, comment: str = "", turn: int = 1, session: str = "s1", **extra: Any) -> Feedback:
    """A rating of the same question and answer; ``extra`` sets the other fields (``request_id``)."""
    return Feedback(
        session_id=session,
        turn=turn,
        question="Should I rest in bed?",
        answer="Staying active helps more than bed rest [22].",
        mode="patient",
        rating=rating,
        comment=comment,
        citations=[CITATION],
        filters={"species": ["human"], "design_group": ["review"]},
        **extra,
    )


def run_writers(write: Callable[[str], None], writers: int = 8) -> list[BaseException]:
    """Run ``write("s0")`` ... ``write("s<writers - 1>")`` in as many threads at once; what they raised."""
    errors: list[BaseException] = []

    def guarded(session: str) -> None:
        try:
            write(session)
        except BaseException as exc:  # returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(f"s{i}",)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_rows_are_appended_in_order_with_json_columns(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "nested" / "fb.sqlite3")
    assert store.rows() == [] and len(store) == 0
    assert store.add(make_feedback(+1)) == 1
    assert store.add(make_feedback(-1, comment="  missed the trial  ")) == 2
    rows = store.rows()
    assert [r["id"] for r in rows] == [1, 2]
    assert [r["rating"] for r in rows] == [1, -1]
    assert rows[1]["comment"] == "missed the trial"
    assert json.loads(rows[0]["citations"]) == [CITATION]
    assert json.loads(rows[0]["filters"]) == {"species": ["human"], "design_group": ["review"]}
    assert rows[0]["created_at"].endswith("+00:00")
    assert list(rows[0]) == list(COLUMNS)


def test_rows_survive_a_new_store_on_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "fb.sqlite3"
    FeedbackStore(path).add(make_feedback())
    again = FeedbackStore(path)
    again.add(make_feedback(-1, turn=2))
    assert [(r["turn"], r["rating"]) for r in again.rows()] == [(1, 1), (2, -1)]


def test_the_table_refuses_updates_and_deletes(tmp_path: Path) -> None:
    path = tmp_path / "fb.sqlite3"
    FeedbackStore(path).add(make_feedback())
    conn = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE feedback SET rating = -1")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM feedback")
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert len(FeedbackStore(path)) == 1


@pytest.mark.parametrize("rating", [0, 2, -5])
def test_a_rating_must_be_plus_or_minus_one(rating: int) -> None:
    with pytest.raises(ValueError, match="rating"):
        make_feedback(rating)


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb.sqlite3")

    def write(session: str) -> None:
        for turn in range(1, 11):
            store.add(make_feedback(turn=turn, session=session))

    assert not run_writers(write)
    rows = store.rows()
    assert len(rows) == 80
    assert {(r["session_id"], r["turn"]) for r in rows} == {(f"s{i}", t) for i in range(8) for t in range(1, 11)}


def test_writers_with_their_own_store_creating_one_file_lose_nothing(tmp_path: Path) -> None:
    # like app workers in separate processes: each opens (and may create) the database itself
    path = tmp_path / "fb.sqlite3"

    def write(session: str) -> None:
        store = FeedbackStore(path)
        for turn in range(1, 6):
            store.add(make_feedback(turn=turn, session=session))

    assert not run_writers(write)
    assert len(FeedbackStore(path).rows()) == 40


def test_export_csv_round_trips_text_with_commas_quotes_and_newlines(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    tricky = 'Good, but "[22]" was\nthe wrong study'
    store.add(make_feedback(-1, comment=tricky))
    out = tmp_path / "out" / "fb.csv"
    assert store.export_csv(out) == 1
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(COLUMNS)
    assert rows[0]["comment"] == tricky
    assert rows[0]["rating"] == "-1"
    assert json.loads(rows[0]["citations"])[0]["n"] == 22


def test_cli_export_writes_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "fb.sqlite3"
    store = FeedbackStore(db)
    store.add(make_feedback(1))
    store.add(make_feedback(-1, comment="too long"))
    out = tmp_path / "fb.csv"
    assert main(["feedback", "export", "--db", str(db), "--output", str(out)]) == 0
    assert "wrote 2 feedback rows" in capsys.readouterr().err
    assert [r["comment"] for r in csv.DictReader(out.open(encoding="utf-8"))] == ["", "too long"]


def test_cli_export_to_stdout_and_missing_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "fb.sqlite3"
    FeedbackStore(db).add(make_feedback())
    assert main(["feedback", "export", "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ",".join(COLUMNS) and len(lines) == 2
    assert main(["feedback", "export", "--db", str(tmp_path / "none.sqlite3")]) == 2
    assert "no feedback database" in capsys.readouterr().err


def test_cli_export_uses_the_environment_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "env.sqlite3"
    FeedbackStore(db).add(make_feedback())
    monkeypatch.setenv("LBP_FEEDBACK_DB", str(db))
    out = tmp_path / "fb.csv"
    assert main(["feedback", "export", "--output", str(out)]) == 0
    assert len(list(csv.DictReader(out.open(encoding="utf-8")))) == 1


def test_feedback_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, assistant.web.feedback; "
        "heavy = [m for m in ('gradio', 'torch', 'numpy', 'faiss', 'sentence_transformers') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
