"""The BEIR ``corpus.jsonl`` format: documents in, documents out.

One JSON object a line, ``{"_id", "title", "text", "metadata"?}``. :func:`read_corpus` names
the file and line of a malformed record (:class:`assistant.errors.FormatError`);
:func:`write_corpus` goes through a temporary file and :func:`os.replace`, so a reader never
sees a half-written file. Queries, qrels and TREC runs, which only evaluation needs, are in
:mod:`assistant.evaluation.beir` (which shares the line helpers below).
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

_UNDECODED = re.compile("[\udc80-\udcff]")


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
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


def read_jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON-lines file."""
    for lineno, line in numbered_lines(path):
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


def record_id(path: Path, lineno: int, obj: Mapping[str, Any]) -> str:
    """The ``_id`` of a record as a string (BEIR files sometimes store integer ids)."""
    raw = obj.get("_id")
    if isinstance(raw, bool) or not isinstance(raw, (str, int)) or str(raw) == "":
        raise FormatError(path, lineno, "missing or empty '_id'")
    return str(raw)


def text_field(path: Path, lineno: int, obj: Mapping[str, Any], key: str, required: bool) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise FormatError(path, lineno, f"missing '{key}'")
        return ""
    if not isinstance(value, str):
        raise FormatError(path, lineno, f"'{key}' must be a string, got {type(value).__name__}")
    return value


def metadata_field(path: Path, lineno: int, obj: Mapping[str, Any]) -> dict[str, Any]:
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
    for lineno, obj in read_jsonl_records(path):
        doc_id = record_id(path, lineno, obj)
        if doc_id in seen:
            raise FormatError(path, lineno, f"duplicate document id {doc_id!r}")
        seen.add(doc_id)
        yield {
            "_id": doc_id,
            "title": text_field(path, lineno, obj, "title", required=False),
            "text": text_field(path, lineno, obj, "text", required=True),
            "metadata": metadata_field(path, lineno, obj),
        }


def write_lines_atomic(path: str | Path, lines: Iterable[str]) -> Path:
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


def json_line(obj: Mapping[str, Any]) -> str:
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
            yield json_line(record)

    return write_lines_atomic(path, lines())
