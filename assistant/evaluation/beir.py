"""Read and write the BEIR data contract and TREC run files (the corpus itself:
:mod:`assistant.documents.beir_corpus`, re-exported here).

The formats, as every retrieval toolkit speaks them:

- ``corpus.jsonl``: one JSON object a line, ``{"_id", "title", "text", "metadata"?}``.
- ``queries.jsonl``: one JSON object a line, ``{"_id", "text", "metadata"?}``.
- ``qrels/<split>.tsv``: an optional header, then ``query-id<TAB>corpus-id<TAB>score``
  (four-column TREC qrels, ``qid 0 docid rel``, are accepted too).
- TREC runs: ``qid Q0 docid rank score tag``, one hit a line.

In memory, qrels and runs are plain ``{qid: {docid: value}}`` dicts, the format ranx and
BEIR use. Malformed lines raise :class:`assistant.errors.FormatError` naming the file and
line. Writers go through a temporary file and :func:`os.replace`, so a reader never sees a
half-written file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from assistant.documents.beir_corpus import (
    json_line,
    metadata_field,
    numbered_lines,
    read_corpus,
    read_jsonl_records,
    record_id,
    text_field,
    write_corpus,
    write_lines_atomic,
)
from assistant.errors import FormatError

__all__ = [
    "ranked",
    "read_corpus",
    "read_qrels",
    "read_queries",
    "read_queries_with_metadata",
    "read_trec_run",
    "write_corpus",
    "write_qrels",
    "write_queries",
    "write_trec_run",
]

QRELS_HEADER = ("query-id", "corpus-id", "score")


# --------------------------------------------------------------------------- reading


def read_queries_with_metadata(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a BEIR ``queries.jsonl`` keeping each query's metadata.

    Args:
        path: the ``queries.jsonl`` file.

    Returns:
        ``{qid: {"_id": qid, "text": str, "metadata": dict}}`` in file order.

    Raises:
        FormatError: on invalid JSON, a missing ``_id`` or ``text``, or a repeated ``_id``.
    """
    path = Path(path)
    queries: dict[str, dict[str, Any]] = {}
    for lineno, obj in read_jsonl_records(path):
        qid = record_id(path, lineno, obj)
        if qid in queries:
            raise FormatError(path, lineno, f"duplicate query id {qid!r}")
        queries[qid] = {
            "_id": qid,
            "text": text_field(path, lineno, obj, "text", required=True),
            "metadata": metadata_field(path, lineno, obj),
        }
    return queries


def read_queries(path: str | Path) -> dict[str, str]:
    """Read a BEIR ``queries.jsonl`` as ``{qid: text}`` in file order."""
    return {qid: q["text"] for qid, q in read_queries_with_metadata(path).items()}


def _split_columns(line: str) -> list[str]:
    return line.split("\t") if "\t" in line else line.split()


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """Read relevance judgements from a BEIR qrels TSV (or a four-column TREC qrels file).

    A first line whose relevance column is not an integer is taken as a header and skipped.

    Args:
        path: e.g. ``qrels/test.tsv``.

    Returns:
        ``{qid: {docid: relevance}}``; zero and negative judgements are kept, so callers
        can tell judged-irrelevant from unjudged.

    Raises:
        FormatError: on a line with the wrong number of columns, a non-integer relevance
            after the first line, or the same (query, document) pair judged twice.
    """
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    first = True
    for lineno, raw in numbered_lines(path):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        is_first, first = first, False
        cols = [c.strip() for c in _split_columns(line)]
        if len(cols) == 3:
            qid, docid, rel = cols
        elif len(cols) == 4:
            qid, _, docid, rel = cols
        else:
            raise FormatError(path, lineno, f"expected 3 or 4 columns, got {len(cols)}")
        if not _is_int(rel):
            if is_first:
                continue  # header, e.g. "query-id corpus-id score"
            raise FormatError(path, lineno, f"relevance {rel!r} is not an integer")
        if not qid or not docid:
            raise FormatError(path, lineno, "empty query or document id")
        judged = qrels.setdefault(qid, {})
        if docid in judged:
            raise FormatError(path, lineno, f"pair ({qid!r}, {docid!r}) judged twice")
        judged[docid] = int(rel)
    return qrels


def read_trec_run(path: str | Path) -> dict[str, dict[str, float]]:
    """Read a TREC run file (``qid Q0 docid rank score tag``) as ``{qid: {docid: score}}``.

    Raises:
        FormatError: on a line without six columns, a non-numeric score, or a document
            listed twice for the same query.
    """
    path = Path(path)
    run: dict[str, dict[str, float]] = {}
    for lineno, line in numbered_lines(path):
        if not line.strip():
            continue
        cols = line.split()
        if len(cols) != 6:
            raise FormatError(path, lineno, f"expected 6 columns, got {len(cols)}")
        qid, _, docid, _, score, _ = cols
        try:
            value = float(score)
        except ValueError as exc:
            raise FormatError(path, lineno, f"score {score!r} is not a number") from exc
        hits = run.setdefault(qid, {})
        if docid in hits:
            raise FormatError(path, lineno, f"document {docid!r} listed twice for {qid!r}")
        hits[docid] = value
    return run


# --------------------------------------------------------------------------- writing


def write_queries(
    path: str | Path,
    queries: Mapping[str, str] | Mapping[str, Mapping[str, Any]],
) -> Path:
    """Write queries as a BEIR ``queries.jsonl``.

    Args:
        path: the file to write.
        queries: ``{qid: text}`` or ``{qid: {"text": ..., "metadata": {...}}}`` (the shape
            :func:`read_queries_with_metadata` returns).

    Returns:
        The path written.
    """

    def lines() -> Iterator[str]:
        for qid, query in queries.items():
            record: dict[str, Any] = {"_id": str(qid)}
            if isinstance(query, str):
                record["text"] = query
            else:
                record["text"] = query["text"]
                if query.get("metadata"):
                    record["metadata"] = dict(query["metadata"])
            yield json_line(record)

    return write_lines_atomic(path, lines())


def write_qrels(path: str | Path, qrels: Mapping[str, Mapping[str, int]]) -> Path:
    """Write ``{qid: {docid: relevance}}`` as a BEIR qrels TSV with its header line."""

    def lines() -> Iterator[str]:
        yield "\t".join(QRELS_HEADER)
        for qid, judged in qrels.items():
            for docid, rel in judged.items():
                yield f"{qid}\t{docid}\t{int(rel)}"

    return write_lines_atomic(path, lines())


def ranked(hits: Mapping[str, float]) -> list[tuple[str, float]]:
    """``(docid, score)`` pairs by score descending, ties broken by docid ascending."""
    return sorted(hits.items(), key=lambda item: (-item[1], item[0]))


def write_trec_run(path: str | Path, run: Mapping[str, Mapping[str, float]], tag: str) -> Path:
    """Write a run as a TREC run file, ``qid Q0 docid rank score tag`` per hit.

    Queries are written in sorted order; within a query hits are ranked by score descending,
    then by docid for ties, with 1-based ranks. Scores keep full float precision so that
    reading the file back reproduces the ranking.

    Args:
        path: the file to write.
        run: ``{qid: {docid: score}}``.
        tag: the run name (last column); must not contain whitespace.

    Returns:
        The path written.
    """
    if not tag or any(c.isspace() for c in tag):
        raise ValueError(f"run tag must be non-empty without whitespace: {tag!r}")

    def lines() -> Iterator[str]:
        for qid in sorted(run):
            for rank, (docid, score) in enumerate(ranked(run[qid]), start=1):
                yield f"{qid} Q0 {docid} {rank} {float(score)!r} {tag}"

    return write_lines_atomic(path, lines())
