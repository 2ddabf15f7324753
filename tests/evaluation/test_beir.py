"""Tests for assistant/evaluation/beir.py: the BEIR and TREC file formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.errors import FormatError
from assistant.evaluation.beir import (
    read_corpus,
    read_qrels,
    read_queries,
    read_queries_with_metadata,
    read_trec_run,
    write_corpus,
    write_qrels,
    write_queries,
    write_trec_run,
)

TINY = Path(__file__).parents[1] / "fixtures" / "tiny-beir"


def test_reads_the_tiny_fixture() -> None:
    docs = list(read_corpus(TINY / "corpus.jsonl"))
    assert [d["_id"] for d in docs][:3] == ["motor-control", "pilates", "walking"]
    assert len(docs) == 8
    assert docs[0]["title"] == "Motor control exercise for chronic low back pain"
    assert docs[0]["metadata"] == {}
    queries = read_queries(TINY / "queries.jsonl")
    assert queries["q2"] == "is walking good for my bad back?"
    with_meta = read_queries_with_metadata(TINY / "queries.jsonl")
    assert with_meta["q2"]["metadata"] == {"phrasing": "patient", "split": "test"}
    assert read_qrels(TINY / "qrels" / "test.tsv") == {
        "q1": {"motor-control": 1},
        "q2": {"walking": 1},
        "q3": {"acute": 2, "walking": 1},
        "q4": {"q4": 1},
    }


def test_corpus_and_queries_round_trip(tmp_path: Path) -> None:
    docs = [
        {"_id": "ref-1", "title": "Exercise therapy for chronic LBP", "text": "Cochrane review, 249 trials.",
         "metadata": {"year": 2021, "study_type": "Cochrane review"}},
        {"_id": "ref-2", "text": "Yoga versus stretching: 228 adults, 12 weeks."},
    ]  # fmt: skip
    write_corpus(tmp_path / "corpus.jsonl", docs)
    back = list(read_corpus(tmp_path / "corpus.jsonl"))
    assert back[0] == {**docs[0]}
    assert back[1] == {"_id": "ref-2", "title": "", "text": docs[1]["text"], "metadata": {}}
    # Empty metadata is not written at all.
    assert "metadata" not in json.loads((tmp_path / "corpus.jsonl").read_text().splitlines()[1])

    write_queries(tmp_path / "q.jsonl", {"a": {"text": "Is yoga safe?", "metadata": {"phrasing": "patient"}}})
    assert read_queries_with_metadata(tmp_path / "q.jsonl") == {
        "a": {"_id": "a", "text": "Is yoga safe?", "metadata": {"phrasing": "patient"}}
    }
    write_queries(tmp_path / "q2.jsonl", {"b": "walking for back pain"})
    assert read_queries(tmp_path / "q2.jsonl") == {"b": "walking for back pain"}


def test_integer_ids_are_read_as_strings(tmp_path: Path) -> None:
    (tmp_path / "c.jsonl").write_text('{"_id": 4021, "title": "t", "text": "x"}\n')
    assert next(read_corpus(tmp_path / "c.jsonl"))["_id"] == "4021"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"_id": "b", "text": "y"', "invalid JSON"),
        ('["b", "y"]', "expected a JSON object"),
        ('{"title": "no id", "text": "y"}', "missing or empty '_id'"),
        ('{"_id": "b", "title": "no text"}', "missing 'text'"),
        ('{"_id": "b", "text": 3}', "'text' must be a string"),
        ('{"_id": "a", "text": "again"}', "duplicate document id 'a'"),
        ('{"_id": "b", "text": "y", "metadata": [1]}', "'metadata' must be a JSON object"),
    ],
)
def test_malformed_corpus_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "a", "text": "x"}\n\n' + line + "\n")
    with pytest.raises(FormatError) as info:
        list(read_corpus(path))
    assert str(info.value).startswith(f"{path}:3: ")
    assert message in str(info.value)
    assert info.value.line == 3


def test_qrels_header_is_optional(tmp_path: Path) -> None:
    (tmp_path / "with.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq2\td1\t2\n")
    (tmp_path / "without.tsv").write_text("q1\td1\t1\nq1\td2\t0\nq2\td1\t2\n")
    expected = {"q1": {"d1": 1, "d2": 0}, "q2": {"d1": 2}}
    assert read_qrels(tmp_path / "with.tsv") == expected
    assert read_qrels(tmp_path / "without.tsv") == expected


def test_trec_qrels_with_four_columns(tmp_path: Path) -> None:
    (tmp_path / "qrels.txt").write_text("301 0 FBIS3-10082 1\n301 0 FBIS3-10169 0\n")
    assert read_qrels(tmp_path / "qrels.txt") == {"301": {"FBIS3-10082": 1, "FBIS3-10169": 0}}


def test_qrels_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("q1\td1\t1\nq1\td2\tyes\n")
    with pytest.raises(FormatError, match=r"bad.tsv:2: relevance 'yes' is not an integer"):
        read_qrels(bad)
    bad.write_text("q1\td1\t1\nq1\td1\t1\n")
    with pytest.raises(FormatError, match=r":2: pair \('q1', 'd1'\) judged twice"):
        read_qrels(bad)
    bad.write_text("q1\td1\n")
    with pytest.raises(FormatError, match=r":1: expected 3 or 4 columns, got 2"):
        read_qrels(bad)


def test_qrels_round_trip_writes_the_beir_header(tmp_path: Path) -> None:
    qrels = {"q1": {"topic": 1, "ref-12": 2}, "q2": {"ref-3": 1}}
    write_qrels(tmp_path / "qrels" / "dev.tsv", qrels)
    text = (tmp_path / "qrels" / "dev.tsv").read_text()
    assert text.splitlines()[0] == "query-id\tcorpus-id\tscore"
    assert read_qrels(tmp_path / "qrels" / "dev.tsv") == qrels


def test_trec_run_ranks_by_score_then_doc_id(tmp_path: Path) -> None:
    run = {"q2": {"ref-9": 0.5}, "q1": {"b": 0.25, "a": 0.25, "c": 0.75, "d": 0.1}}
    path = write_trec_run(tmp_path / "runs" / "bm25.trec", run, "bm25")
    assert path.read_text().splitlines() == [
        "q1 Q0 c 1 0.75 bm25",
        "q1 Q0 a 2 0.25 bm25",  # tie with b: doc id order
        "q1 Q0 b 3 0.25 bm25",
        "q1 Q0 d 4 0.1 bm25",
        "q2 Q0 ref-9 1 0.5 bm25",
    ]
    assert read_trec_run(path) == run


def test_trec_run_keeps_full_precision(tmp_path: Path) -> None:
    # Two scores that a 6-decimal format would make equal (and so reorder by doc id).
    run = {"q": {"a": 0.1234561, "b": 0.1234564}}
    write_trec_run(tmp_path / "r.trec", run, "dense")
    assert read_trec_run(tmp_path / "r.trec") == run
    assert [line.split()[2] for line in (tmp_path / "r.trec").read_text().splitlines()] == ["b", "a"]


def test_trec_run_rejects_tags_with_spaces(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="whitespace"):
        write_trec_run(tmp_path / "r.trec", {"q": {"d": 1.0}}, "my run")


def test_read_trec_run_errors(tmp_path: Path) -> None:
    path = tmp_path / "r.trec"
    path.write_text("q1 Q0 d1 1 0.5 tag\nq1 Q0 d2 2 high tag\n")
    with pytest.raises(FormatError, match=r"r.trec:2: score 'high' is not a number"):
        read_trec_run(path)
    path.write_text("q1 Q0 d1 1 0.5\n")
    with pytest.raises(FormatError, match=r":1: expected 6 columns, got 5"):
        read_trec_run(path)


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "corpus.jsonl"
    write_corpus(target, [{"_id": "a", "text": "first version"}])

    def failing_docs():  # type: ignore[no-untyped-def]
        yield {"_id": "b", "text": "half written"}
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_corpus(target, failing_docs())
    # The old file is intact and the partial temporary file is gone.
    assert [d["_id"] for d in read_corpus(target)] == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]
