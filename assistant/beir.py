"""Read and write the BEIR data contract and TREC run files.

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

import json
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

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
_UNDECODED = re.compile("[\udc80-\udcff]")


# --------------------------------------------------------------------------- reading


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` of each line of a UTF-8 file (a leading BOM dropped).

    Raises:
        FormatError: on a line that is not UTF-8 (rather than a bare UnicodeDecodeError).
    """
    # surrogateescape: a byte that is not UTF-8 becomes a lone surrogate, found per line
    with path.open(encoding="utf-8", errors="surrogateescape") as f:
        for lineno, line in enumerate(f, start=1):
            if bad := _UNDECODED.search(line):
                raise FormatError(path, lineno, f"not UTF-8 text (character {bad.start() + 1} of the line)")
            yield lineno, line.removeprefix("\ufeff") if lineno == 1 else line


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON-lines file."""
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FormatError(path, lineno, f"invalid JSON: {exc.msg}") from exc
        except (ValueError, RecursionError) as exc:  # a 5,000-digit number, [[[[... nested too deeply
            raise FormatError(path, lineno, f"invalid JSON: {type(exc).__name__}: {exc}"[:200]) from exc
        if not isinstance(obj, dict):
            raise FormatError(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


def _record_id(path: Path, lineno: int, obj: Mapping[str, Any]) -> str:
    """The ``_id`` of a record as a string (BEIR files sometimes store integer ids)."""
    raw = obj.get("_id")
    if isinstance(raw, bool) or not isinstance(raw, (str, int)) or str(raw) == "":
        raise FormatError(path, lineno, "missing or empty '_id'")
    return str(raw)


def _field(path: Path, lineno: int, obj: Mapping[str, Any], key: str, required: bool) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise FormatError(path, lineno, f"missing '{key}'")
        return ""
    if not isinstance(value, str):
        raise FormatError(path, lineno, f"'{key}' must be a string, got {type(value).__name__}")
    return value


def _metadata(path: Path, lineno: int, obj: Mapping[str, Any]) -> dict[str, Any]:
    value = obj.get("metadata")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FormatError(path, lineno, "'metadata' must be a JSON object")
    return value


def read_corpus(path: str | Path) -> Iterator[dict[str, Any]]:
    """Stream the documents of a BEIR ``corpus.jsonl``.

    Args:
        path: the ``corpus.jsonl`` file.

    Yields:
        ``{"_id": str, "title": str, "text": str, "metadata": dict}`` per document; a
        missing title becomes ``""`` and missing metadata ``{}``.

    Raises:
        FormatError: on invalid JSON, a missing ``_id`` or ``text``, a non-string title or
            text, or a repeated ``_id``.
    """
    path = Path(path)
    seen: set[str] = set()
    for lineno, obj in _read_jsonl(path):
        doc_id = _record_id(path, lineno, obj)
        if doc_id in seen:
            raise FormatError(path, lineno, f"duplicate document id {doc_id!r}")
        seen.add(doc_id)
        yield {
            "_id": doc_id,
            "title": _field(path, lineno, obj, "title", required=False),
            "text": _field(path, lineno, obj, "text", required=True),
            "metadata": _metadata(path, lineno, obj),
        }


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
    for lineno, obj in _read_jsonl(path):
        qid = _record_id(path, lineno, obj)
        if qid in queries:
            raise FormatError(path, lineno, f"duplicate query id {qid!r}")
        queries[qid] = {
            "_id": qid,
            "text": _field(path, lineno, obj, "text", required=True),
            "metadata": _metadata(path, lineno, obj),
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
    for lineno, raw in _lines(path):
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
    for lineno, line in _lines(path):
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


def _atomic_write_lines(path: str | Path, lines: Iterable[str]) -> Path:
    """Write ``lines`` (each without its newline) to ``path`` via a temp file + os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique sibling opened with "x" (not mkstemp) so the file gets the usual umask
    # permissions rather than 0600.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("x", encoding="utf-8", newline="\n") as f:
            for line in lines:
                f.write(line)
                f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _json_line(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False)


def write_corpus(path: str | Path, docs: Iterable[Mapping[str, Any]]) -> Path:
    """Write documents ``{"_id", "title"?, "text", "metadata"?}`` as a BEIR ``corpus.jsonl``.

    Empty metadata is omitted. Returns the path written.
    """

    def lines() -> Iterator[str]:
        for doc in docs:
            record: dict[str, Any] = {
                "_id": str(doc["_id"]),
                "title": doc.get("title") or "",
                "text": doc["text"],
            }
            if doc.get("metadata"):
                record["metadata"] = dict(doc["metadata"])
            yield _json_line(record)

    return _atomic_write_lines(path, lines())


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
            yield _json_line(record)

    return _atomic_write_lines(path, lines())


def write_qrels(path: str | Path, qrels: Mapping[str, Mapping[str, int]]) -> Path:
    """Write ``{qid: {docid: relevance}}`` as a BEIR qrels TSV with its header line."""

    def lines() -> Iterator[str]:
        yield "\t".join(QRELS_HEADER)
        for qid, judged in qrels.items():
            for docid, rel in judged.items():
                yield f"{qid}\t{docid}\t{int(rel)}"

    return _atomic_write_lines(path, lines())


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

    return _atomic_write_lines(path, lines())
