"""The ``beir`` reader: a BEIR ``corpus.jsonl`` (``{"_id", "title", "text", "metadata"?}`` a line).

Each line is one record, read with :mod:`json`; ``text`` is the abstract and ``metadata``
may carry ``pmid``, ``doi``, ``year``, ``journal``, ``authors``, ``publication_types`` and
``mesh``. (The BEIR files of an evaluation are read by :mod:`assistant.evaluation.beir`,
strictly; this reader keeps the good lines of a damaged file.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import partial
from typing import Any

from assistant.errors import FormatError
from assistant.sources import records as rec
from assistant.sources.records import Record


def _strings(value: Any, name: str) -> tuple[str, ...]:
    """A metadata list of strings (a single string is a list of one)."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return tuple(value)
    raise rec.BadRecord(f"'metadata.{name}' must be a string or a list of strings")


def _beir_record(obj: Mapping[str, Any]) -> Record:
    meta = obj.get("metadata") or {}
    return Record(
        title=rec.clean_title(obj.get("title")),
        abstract=rec.clean(obj.get("text")),
        authors=tuple(rec.author_from_text(a) for a in _strings(meta.get("authors"), "authors")),
        journal=rec.clean(meta.get("journal")),
        year=rec.parse_year(meta.get("year")),
        pmid=rec.clean_pmid(meta.get("pmid")),
        doi=rec.clean_doi(meta.get("doi")),
        publication_types=_strings(meta.get("publication_types"), "publication_types"),
        mesh=_strings(meta.get("mesh"), "mesh"),
    )


def _parse_beir(text: str, path: str) -> tuple[list[Record], list[FormatError]]:
    records: list[Record] = []
    errors: list[FormatError] = []
    i = 0
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        i += 1
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            errors.append(rec.record_error(path, line, rec.record_label(i), f"invalid JSON: {exc.msg}"))
            continue
        except RecursionError:  # [[[[... deeper than the interpreter's stack
            errors.append(rec.record_error(path, line, rec.record_label(i), "invalid JSON: nested too deeply"))
            continue
        except ValueError as exc:  # e.g. a number of more than 4,300 digits
            errors.append(rec.record_error(path, line, rec.record_label(i), f"invalid JSON: {exc}"[:200]))
            continue
        if not isinstance(obj, dict):
            errors.append(rec.record_error(path, line, rec.record_label(i), "expected a JSON object"))
            continue
        label = rec.record_label(i, f"_id {obj.get('_id')!r}"[:80])
        if "_id" not in obj:
            errors.append(rec.record_error(path, line, label, "missing '_id'"))
            continue
        if not all(isinstance(obj.get(k) or "", str) for k in ("title", "text")):
            errors.append(rec.record_error(path, line, label, "'title' and 'text' must be strings"))
            continue
        if not isinstance(obj.get("metadata") or {}, dict):
            errors.append(rec.record_error(path, line, label, "'metadata' must be a JSON object"))
            continue
        record = rec.read_record(partial(_beir_record, obj), path, line, label, errors, raw, "the BEIR reader")
        if record is not None:
            records.append(record)
    return records, errors
