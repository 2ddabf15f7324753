"""The ``ris`` reader: RIS, read with :mod:`rispy`.

Records run from each ``TY  -`` line to the first ``ER  -`` after it; each is read alone,
so a malformed one costs that record only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial
from typing import Any

from assistant.errors import FormatError
from assistant.sources import records as rec
from assistant.sources.records import Record


def _one_entry(raw: str) -> Record:
    """The record of one RIS block (exactly one entry, or :class:`BadRecord`)."""
    import rispy

    # Tags rispy does not know are not used here; keeping them trips rispy up (a "UK" tag,
    # its own name for them, then another unknown tag: TypeError).
    entries = rispy.loads(raw + "\n", skip_unknown_tags=True)
    if len(entries) != 1:
        raise rec.BadRecord(f"rispy read {len(entries)} records here instead of one")
    return _ris_record(entries[0])


def _first(entry: Mapping[str, Any], *keys: str) -> str:
    """The first non-empty of ``keys`` (first item of a list), cleaned."""
    for key in keys:
        value = entry.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if value:
            return rec.clean(value)
    return ""


def _pmid_in(*values: Any) -> str | None:
    """A PMID written as ``PMID: 123`` or a PubMed URL in notes or links."""
    pattern = re.compile(r"(?:PMID:?\s*|pubmed\.ncbi\.nlm\.nih\.gov/|/pubmed/)(\d+)")
    for value in values:
        for text in value if isinstance(value, list) else [value]:
            if m := pattern.search(str(text or "")):
                return m.group(1)
    return None


def _ris_record(entry: Mapping[str, Any]) -> Record:
    authors = entry.get("authors") or entry.get("first_authors") or []
    pages = "-".join(x for x in (_first(entry, "start_page"), _first(entry, "end_page")) if x)
    journal_keys = ("alternate_title2", "journal_name", "alternate_title1", "secondary_title")
    return Record(
        title=rec.clean_title(_first(entry, "title", "primary_title", "translated_title")),
        abstract=_first(entry, "abstract", "notes_abstract"),
        authors=tuple(rec.author_from_text(a) for a in authors),
        journal=_first(entry, *journal_keys, "alternate_title3"),
        year=rec.parse_year(_first(entry, "year", "publication_year", "date")),
        volume=_first(entry, "volume"),
        issue=_first(entry, "number"),
        pages=pages,
        pmid=rec.clean_pmid(entry.get("accession_number"))
        or _pmid_in(entry.get("notes"), entry.get("urls"), entry.get("note")),
        doi=rec.clean_doi(entry.get("doi")),
        publication_types=tuple(t.strip() for t in str(entry.get("type_of_work") or "").split(";") if t.strip()),
        mesh=tuple(rec.mesh_name(k) for k in entry.get("keywords", [])),
    )


def _parse_ris(text: str, path: str) -> tuple[list[Record], list[FormatError]]:
    """Records from each ``TY  -`` line to the first ``ER  -`` after it, each read alone by rispy.

    Lines between an ``ER`` and the next ``TY`` belong to no record and are ignored, as
    rispy does (rispy would otherwise add them to the record before).
    """

    records: list[Record] = []
    errors: list[FormatError] = []
    lines = text.splitlines()
    starts = [k for k, x in enumerate(lines) if x.startswith("TY  - ")]
    if not starts:
        return [], [FormatError(path, None, "no 'TY  - ' lines: not a RIS file")]
    for i, start in enumerate(starts, start=1):
        block = lines[start : starts[i] if i < len(starts) else len(lines)]
        title = next((x[6:].strip() for x in block if x[:2] in ("TI", "T1")), "")
        label = rec.record_label(i, repr(title[:60]) if title else "")
        end = next((k for k, x in enumerate(block) if x.startswith("ER  -")), None)
        if end is None:
            errors.append(rec.record_error(path, start + 1, label, "no 'ER  -' line ends this record"))
            continue
        raw = "\n".join(block[: end + 1])
        record = rec.read_record(partial(_one_entry, raw), path, start + 1, label, errors, raw, "rispy")
        if record is not None:
            records.append(record)
    return records, errors
