"""Read reference files people already have into :class:`Record` and :class:`Document`.

Formats, told apart by content rather than file name (:func:`detect_format`):

- ``pubmed-xml``: E-utilities efetch output (``<PubmedArticleSet>``), read with
  :func:`Bio.Entrez.read`. The DOCTYPE is pointed at a DTD that Biopython ships, so the
  parser never tries to download one.
- ``medline``: MEDLINE / PubMed ``.nbib`` text, read with :mod:`Bio.Medline`.
- ``ris``: RIS, read with :mod:`rispy`.
- ``bibtex``: BibTeX, read with :mod:`bibtexparser` 2.x (LaTeX decoded, names split).
- ``beir``: a BEIR ``corpus.jsonl`` (``{"_id", "title", "text", "metadata"?}`` a line).
- ``reprint``: an UpToDate-style topic reprint, text followed by a numbered reference list.

Every parser works record by record: a malformed record becomes a
:class:`~assistant.errors.FormatError` naming the file, the line and the record, and the
records around it are still read. The readers split the files into records (``<PubmedArticle>``,
``PMID-`` and blank lines, ``TY  -`` ... ``ER  -``, ``@``, JSON lines, numbered references),
so a library that gives up (or raises) on one record costs that record only; an exception no
check foresaw is caught at the record and named with the library, with the exception as the
error's ``__cause__`` (``benchmarks/fuzz_readers.py`` counts these). Bytes that are not
UTF-8 cost the record holding them. The only exception that leaves :func:`parse_file`,
:func:`parse_bytes` and :func:`parse_text` is :class:`~assistant.errors.FormatError`, for a
file that cannot be read at all. Records without an abstract are kept as citations.

The readers live one module per format (:mod:`.pubmed_xml`, :mod:`.medline`, :mod:`.ris`,
:mod:`.bibtex`, :mod:`.beir_jsonl`, :mod:`.reprint`), on the records and helpers they share
(:mod:`.records`). This module tells the formats apart and hands a file to its reader; it
also names :class:`Record`, :class:`TopicRecord`, :class:`ParsedFile` and the record
functions of :mod:`.records`, so ``from assistant.sources.formats import ...`` keeps working.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from assistant.errors import FormatError
from assistant.sources.beir_jsonl import _parse_beir
from assistant.sources.bibtex import _parse_bibtex
from assistant.sources.medline import _MEDLINE_TAG, _parse_medline
from assistant.sources.pubmed_xml import _parse_pubmed_xml
from assistant.sources.records import (
    ParsedFile,
    Record,
    TopicRecord,
    format_citation,
    record_to_document,
    species_from_mesh,
    study_type_from,
)
from assistant.sources.reprint import _parse_reprint
from assistant.sources.ris import _parse_ris

__all__ = [
    "FORMATS",
    "ParsedFile",
    "Record",
    "TopicRecord",
    "decode",
    "detect_format",
    "format_citation",
    "parse_bytes",
    "parse_file",
    "parse_text",
    "record_to_document",
    "species_from_mesh",
    "study_type_from",
]

FORMATS = ("pubmed-xml", "medline", "ris", "bibtex", "beir", "reprint")


# --------------------------------------------------------------------------- detection

_REPRINT_MARKERS = re.compile(r"uptodate|literature review current through|this topic last updated", re.IGNORECASE)
_REF_LINE = re.compile(r"^\s*(\d+)\.\s+(\S.*)$")
# What each format's records start with; detection counts them (see detect_format).
_RECORD_SIGNS = {
    "pubmed-xml": re.compile(r"<Pubmed(?:Book)?Article(?:Set)?[\s>]"),
    "beir": re.compile(r"^\{(?:\s*\"|.*\}[ \t\r]*$)", re.MULTILINE),
    "bibtex": re.compile(r"^[ \t]*@[ \t]*[A-Za-z]+[ \t]*[{(]", re.MULTILINE),
    "ris": re.compile(r"^TY  - ", re.MULTILINE),
    "medline": re.compile(r"^PMID- ", re.MULTILINE),
}
# Ties go to the first (the order the formats were told apart before they were counted).
_PRIORITY = ("pubmed-xml", "beir", "bibtex", "ris", "medline", "reprint")


def detect_format(text: str, path: str | Path = "<text>") -> str:
    """Tell which of :data:`FORMATS` ``text`` is written in, from its content.

    Each format's record starts are counted (``<PubmedArticle>``, JSON lines, ``@type{``,
    ``TY  - ``, ``PMID- ``, the numbered references of a reprint) and the format with the
    most wins, so one damaged or stray record cannot make a file of another format
    unreadable.

    Raises:
        FormatError: when the text matches none of them.
    """
    head = text.lstrip("\ufeff \t\r\n")
    scores = {fmt: len(sign.findall(text)) for fmt, sign in _RECORD_SIGNS.items()}
    if not scores["medline"] and not scores["ris"] and _MEDLINE_TAG.match(head) and re.search(r"^TI  - ", head, re.M):
        scores["medline"] = 1  # MEDLINE records without PMIDs
    if _REPRINT_MARKERS.search(text):
        scores["reprint"] = sum(1 for x in text.splitlines() if _REF_LINE.match(x))
    best = max(_PRIORITY, key=lambda fmt: scores.get(fmt, 0))
    if scores.get(best, 0):
        return best
    if head.startswith("<"):
        raise FormatError(path, 1, "XML, but not a PubMed <PubmedArticleSet> (efetch output)")
    raise FormatError(
        path,
        None,
        "cannot tell the format; expected PubMed XML, MEDLINE/.nbib, RIS, BibTeX, "
        "BEIR corpus.jsonl or an UpToDate-style topic reprint",
    )


def decode(data: bytes) -> str:
    """The text of a file's bytes: UTF-8 without its byte-order mark.

    Bytes that are not UTF-8 become lone surrogates (``surrogateescape``) instead of
    failing the whole file; the records that hold them are reported and skipped.
    """
    return data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")


def parse_file(path: str | Path, fmt: str | None = None) -> ParsedFile:
    """Read ``path`` (UTF-8) and parse it, detecting the format unless ``fmt`` is given.

    Raises:
        FormatError: if the file cannot be read or its format cannot be told. Errors in
            single records do not raise; they are listed in ``ParsedFile.errors``.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FormatError(path, None, f"cannot read the file: {exc}") from exc
    return parse_bytes(data, path, fmt)


def parse_bytes(data: bytes, path: str | Path = "<bytes>", fmt: str | None = None) -> ParsedFile:
    """Parse a file's bytes (what :func:`parse_file` does once it has read them).

    Raises:
        FormatError: if the format cannot be told; nothing else.
    """
    text = decode(data)
    return parse_text(text, fmt or detect_format(text, path), path)


def parse_text(text: str, fmt: str, path: str | Path = "<text>") -> ParsedFile:
    """Parse ``text`` written in ``fmt`` (one of :data:`FORMATS`).

    A record that cannot be read, whatever the reason (the format, the library reading it,
    text that is not UTF-8), becomes one :class:`FormatError` in ``ParsedFile.errors``
    naming the file, the line and the record; the records around it are still read.

    Raises:
        FormatError: only for an unknown ``fmt``.
    """
    parsers: dict[str, Callable[[str, str], tuple[list[Any], list[FormatError]]]] = {
        "pubmed-xml": _parse_pubmed_xml,
        "medline": _parse_medline,
        "ris": _parse_ris,
        "bibtex": _parse_bibtex,
        "beir": _parse_beir,
        "reprint": _parse_reprint,
    }
    if fmt not in parsers:
        raise FormatError(path, None, f"unknown format {fmt!r}; expected one of {FORMATS}")
    items, errors = parsers[fmt](text.lstrip("\ufeff"), str(path))
    source = f"{path} ({fmt})"
    records = tuple(replace(r, source=source) for r in items if isinstance(r, Record))
    topics = tuple(
        replace(t, references=tuple(replace(r, source=source) for r in t.references))
        for t in items
        if isinstance(t, TopicRecord)
    )
    return ParsedFile(str(path), fmt, records, topics, tuple(errors))
