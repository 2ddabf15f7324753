"""The ``medline`` reader: MEDLINE / PubMed ``.nbib`` text, read with :mod:`Bio.Medline`.

The file is split into records at blank lines and ``PMID-`` lines; each record is read
alone, so a malformed one costs that record only.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from functools import partial

from assistant.errors import FormatError
from assistant.sources import records as rec
from assistant.sources.records import Record

# A MEDLINE line starts with its tag (detection, in :mod:`.formats`, uses it too).
_MEDLINE_TAG = re.compile(r"^[A-Z][A-Z0-9]{1,3} {0,2}- ", re.MULTILINE)


def _blocks(lines: Sequence[str], is_start: Callable[[str], bool]) -> list[tuple[int, list[str]]]:
    """Split ``lines`` into ``(first_line_number, lines)`` blocks at blank lines and starts."""
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            current = None
            continue
        if current is None or is_start(line):
            current = []
            blocks.append((number, current))
        current.append(line)
    return blocks


def _medline_record(block: Sequence[str]) -> Record:
    from Bio import Medline

    m = Medline.read(io.StringIO("\n".join(block) + "\n"))
    ids = [*str(m.get("LID", "")).split("\n"), *m.get("AID", [])]
    return Record(
        title=rec.clean_title(m.get("TI") or m.get("BTI")),
        abstract=rec.clean(m.get("AB")),
        authors=tuple([*m.get("AU", []), *m.get("CN", [])]),
        journal=rec.clean(m.get("TA") or m.get("JT")),
        year=rec.parse_year(m.get("DP")),
        volume=rec.clean(m.get("VI")),
        issue=rec.clean(m.get("IP")),
        pages=rec.clean(m.get("PG")),
        pmid=rec.clean_pmid(m.get("PMID")),
        doi=rec.clean_doi(next((x for x in ids if x.endswith("[doi]")), None)),
        publication_types=tuple(m.get("PT", [])),
        mesh=tuple(rec.mesh_name(t) for t in m.get("MH", [])),
    )


def _parse_medline(text: str, path: str) -> tuple[list[Record], list[FormatError]]:
    """Records split at blank lines and ``PMID-`` lines, each read alone by Bio.Medline."""
    records: list[Record] = []
    errors: list[FormatError] = []
    blocks = _blocks(text.splitlines(), lambda x: x.startswith("PMID-"))
    for i, (line, block) in enumerate(blocks, start=1):
        pmid = next((x[6:].strip() for x in block if x.startswith("PMID-")), "")
        label = rec.record_label(i, f"PMID {pmid}" if pmid.isdigit() else "")
        bad = next(
            (k for k, x in enumerate(block) if not (_MEDLINE_TAG.match(x) or x.startswith("      "))),
            None,
        )
        if bad is not None:
            msg = f"not a MEDLINE line ('TAG - value' or a 6-space continuation): {block[bad][:60]!r}"
            errors.append(rec.record_error(path, line + bad, label, msg))
            continue
        if block[0].startswith("      "):
            msg = "a continuation line with no tag before it (a blank line inside a record?)"
            errors.append(rec.record_error(path, line, label, msg))
            continue
        raw = "\n".join(block)
        record = rec.read_record(partial(_medline_record, block), path, line, label, errors, raw, "Bio.Medline")
        if record is not None:
            records.append(record)
    return records, errors
