"""The ``bibtex`` reader: BibTeX, read with :mod:`bibtexparser` 2.x (LaTeX decoded, names split).

The whole file is parsed at once; if bibtexparser raises, each ``@`` block is parsed alone,
so a malformed entry costs that entry only.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any

from assistant.errors import FormatError
from assistant.sources import records as rec
from assistant.sources.records import Record


def _bibtex_author(name: Any) -> str:
    """``"Surname Initials"`` from bibtexparser's ``NameParts`` (LaTeX decoded here).

    Names are split before LaTeX is decoded, so that braces still protect corporate
    authors (``{Fictional Study Group}``) from being split into first and last names.
    """
    from pylatexenc.latex2text import LatexNodes2Text

    decode = LatexNodes2Text().latex_to_text
    last = rec.clean(decode(" ".join([*name.von, *name.last])))
    first = rec.clean(decode(" ".join(name.first)))
    return rec.author_name(last, first) if last else first


def _bibtex_record(fields: Mapping[str, Any]) -> Record:
    def get(*keys: str) -> str:
        return next((rec.clean(fields[k].value) for k in keys if k in fields), "")

    authors = fields["author"].value if "author" in fields else []
    eprint_pmid = get("eprint") if get("eprinttype").lower() == "pubmed" else ""
    return Record(
        title=rec.clean_title(get("title")),
        abstract=get("abstract"),
        authors=tuple(_bibtex_author(a) for a in authors),
        journal=get("journal", "journaltitle", "booktitle"),
        year=rec.parse_year(get("year", "date")),
        volume=get("volume"),
        issue=get("number", "issue"),
        pages=re.sub(r"\s*(--|–)\s*", "-", get("pages")),
        pmid=rec.clean_pmid(get("pmid") or eprint_pmid),
        doi=rec.clean_doi(get("doi")),
        publication_types=tuple(t.strip() for t in get("pubtype").split(";") if t.strip()),
        mesh=tuple(rec.mesh_name(t) for t in re.split(r"[;,]", get("mesh", "keywords")) if t.strip()),
    )


_BIB_START = re.compile(r"^[ \t]*@", re.MULTILINE)


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Silence a library's logger: its complaints are reported as record errors instead."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def _bibtex_library(text: str) -> Any:
    import bibtexparser
    from bibtexparser import middlewares as mw

    middleware = [mw.SeparateCoAuthors(), mw.SplitNameParts(), mw.LatexDecodingMiddleware()]
    with _quiet("bibtexparser"):
        return bibtexparser.parse_string(text, append_middleware=middleware)


def _bibtex_entries(library: Any, path: str, offset: int, records: list[Record], errors: list[FormatError]) -> None:
    """The entries and failed blocks of a parsed library; ``offset`` lines precede its text."""
    for block in library.failed_blocks:
        reason = getattr(block.error, "abort_reason", "") or str(block.error)
        key = getattr(block, "key", None) or "".join(re.findall(r"^@\w+\s*[{(]\s*([^,\s]+)", block.raw or "")[:1])
        label = f"entry {key!r}" if key else "entry"
        line = offset + (block.start_line or 0) + 1
        errors.append(rec.record_error(path, line, label, f"bad BibTeX: {rec.clean(reason)[:200] or 'unparsable'}"))
    for entry in library.entries:
        label = f"entry {entry.key!r}"
        line = offset + (entry.start_line or 0) + 1

        build = partial(_entry_record, entry)
        record = rec.read_record(build, path, line, label, errors, entry.raw or "", "bibtexparser")
        if record is not None:
            records.append(record)


def _entry_record(entry: Any) -> Record:
    """The record of one bibtexparser entry (field names lower-cased)."""
    return _bibtex_record({key.lower(): value for key, value in entry.fields_dict.items()})


def _parse_bibtex(text: str, path: str) -> tuple[list[Record], list[FormatError]]:
    """The whole file with bibtexparser; if that raises, each ``@`` block alone."""
    records: list[Record] = []
    errors: list[FormatError] = []
    try:
        library = _bibtex_library(text)
    except Exception:
        library = None
    if library is not None:
        _bibtex_entries(library, path, 0, records, errors)
        return records, errors
    cuts = [m.start() for m in _BIB_START.finditer(text)]
    for k, cut in enumerate(cuts):
        chunk = text[cut : cuts[k + 1] if k + 1 < len(cuts) else len(text)]
        offset = text.count("\n", 0, cut)
        try:
            library = _bibtex_library(chunk)
        except Exception as exc:
            key = "".join(re.findall(r"^[ \t]*@\w+\s*[{(]\s*([^,\s]+)", chunk)[:1])
            errors.append(rec.read_failure(path, offset + 1, f"entry {key!r}" if key else "entry", exc, "bibtexparser"))
            continue
        _bibtex_entries(library, path, offset, records, errors)
    return records, errors
