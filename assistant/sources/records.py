"""The records every reader makes, and what they share.

:class:`Record` (one bibliographic record), :class:`TopicRecord` (a topic reprint and its
reference list) and :class:`ParsedFile` (what one file yielded); the contract's
``study_type`` and ``species`` (:func:`study_type_from`, :func:`species_from_mesh`); the
citation (:func:`format_citation`) and the :class:`~assistant.types.Document` of a record
(:func:`record_to_document`).

The readers (:mod:`.pubmed_xml`, :mod:`.medline`, :mod:`.ris`, :mod:`.bibtex`,
:mod:`.beir_jsonl`, :mod:`.reprint`) import this module (``from assistant.sources import
records as rec``); it imports none of them. Their toolkit:

- field values: :func:`clean` (whitespace), :func:`clean_markup` (PubMed inline markup),
  :func:`clean_title`, :func:`clean_doi`, :func:`clean_pmid`, :func:`parse_year`,
  :func:`author_name` (surname and given names), :func:`author_from_text` (one name as
  written) and :func:`mesh_name`;
- the safety net, one error per bad record and never one for the file:
  :func:`record_label` names a record, :func:`record_error` is the error naming it (file,
  line, label), :class:`BadRecord` is what a reader raises for a record it cannot use,
  :func:`read_failure` turns the exception a record's reading raised into its error, and
  :func:`checked` keeps a record only if it is usable (a title, text that was UTF-8, see
  :func:`text_not_utf8` and :func:`record_not_utf8`); :func:`read_record` does all three
  for one record of a reader.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from assistant.documents.records import DESIGN_GROUPS, evidence_level
from assistant.documents.reprint import Topic
from assistant.errors import FormatError
from assistant.types import Document, Section

__all__ = [
    "BadRecord",
    "ParsedFile",
    "Record",
    "TopicRecord",
    "author_from_text",
    "author_name",
    "checked",
    "clean",
    "clean_doi",
    "clean_markup",
    "clean_pmid",
    "clean_title",
    "format_citation",
    "mesh_name",
    "parse_year",
    "read_failure",
    "read_record",
    "record_error",
    "record_label",
    "record_not_utf8",
    "record_to_document",
    "species_from_mesh",
    "study_type_from",
    "text_not_utf8",
]

PUBMED_URL = "https://pubmed.ncbi.nlm.nih.gov/{pmid}/"
DOI_URL = "https://doi.org/{doi}"


@dataclass(frozen=True)
class Record:
    """One bibliographic record as read from a file, before it gets a reference number.

    Attributes:
        title: article title (no trailing period).
        abstract: abstract text, ``""`` when the source has none.
        authors: ``"Surname Initials"`` strings in order.
        journal, year, volume, issue, pages: where it was published.
        pmid, doi: identifiers (DOI without ``https://doi.org/``), None when absent.
        publication_types: PubMed publication types (e.g. ``Randomized Controlled Trial``).
        mesh: MeSH descriptor names, without qualifiers or ``*``.
        source: ``"<path> (<format>)"``.
        where: line and record number in the file, for messages.
        citation: the citation as printed in the source, if it had one.
    """

    title: str
    abstract: str = ""
    authors: tuple[str, ...] = ()
    journal: str = ""
    year: int | None = None
    volume: str = ""
    issue: str = ""
    pages: str = ""
    pmid: str | None = None
    doi: str | None = None
    publication_types: tuple[str, ...] = ()
    mesh: tuple[str, ...] = ()
    source: str = ""
    where: str = ""
    citation: str = ""


@dataclass(frozen=True)
class TopicRecord:
    """A topic reprint: the parsed topic and its reference list as records.

    Attributes:
        topic: the reprint as :func:`assistant.documents.reprint.parse_topic_reprint` reads it; its
            ``[n]`` markers refer to the reference numbered ``n``.
        references: the numbered reference list, in order, as citation-only records.
        numbers: the number of each reference in the list; empty means 1, 2, 3 ...
            (a damaged reference left out leaves a gap).
    """

    topic: Topic
    references: tuple[Record, ...]
    numbers: tuple[int, ...] = ()

    def numbered(self) -> list[tuple[int, Record]]:
        """``(n, record)`` for each reference of the list."""
        numbers = self.numbers or range(1, len(self.references) + 1)
        return list(zip(numbers, self.references, strict=True))


@dataclass(frozen=True)
class ParsedFile:
    """What one file yielded: good records, topics, and one error per bad record."""

    path: str
    format: str
    records: tuple[Record, ...] = ()
    topics: tuple[TopicRecord, ...] = ()
    errors: tuple[FormatError, ...] = field(default_factory=tuple)


# --------------------------------------------------------------------------- field helpers


def clean(text: Any) -> str:
    """``text`` as a string with each run of whitespace made one space, stripped (``""`` for None)."""
    return re.sub(r"\s+", " ", str(text or "")).strip()


# PubMed's inline markup (Bio.Entrez keeps it in the text): italics, bold, sub/superscripts, MathML.
_PUBMED_MARKUP = re.compile(r"</?(?:i|b|u|sup|sub|mml:\w+)(?:\s[^<>]*)?/?>")


def clean_markup(text: Any) -> str:
    """Whitespace-collapsed text of a PubMed XML element, inline markup removed."""
    return clean(_PUBMED_MARKUP.sub("", str(text or "")))


def clean_title(title: Any) -> str:
    """A title without markup, the trailing period PubMed adds or the [brackets] of translations."""
    t = clean_markup(title)
    if t.startswith("[") and t.rstrip(".").endswith("]"):
        t = t.rstrip(".")[1:-1]
    return t[:-1].rstrip() if t.endswith(".") else t


def clean_doi(value: Any) -> str | None:
    """A bare DOI (``10.x/...``) from a DOI, ``doi:`` string or doi.org URL; None if absent."""
    m = re.search(r"10\.\d{4,9}/\S+", str(value or ""))
    return m.group(0).rstrip(".,;") if m else None


def clean_pmid(value: Any) -> str | None:
    """A PMID (digits only) from ``value``; None if absent or not a number."""
    text = str(value or "").strip()
    return text if text.isdigit() else None


def parse_year(value: Any) -> int | None:
    """The first year (1800-2099) in a date string such as ``2021 Mar``; None if there is none."""
    m = re.search(r"\b(1[89]\d\d|20\d\d)\b", str(value or ""))
    return int(m.group(1)) if m else None


def _initials(given: str) -> str:
    """``"Jane A."`` -> ``"JA"``, ``"Jean-Luc"`` -> ``"JL"``."""
    return "".join(p[0].upper() for p in re.split(r"[\s.\-]+", given) if p and p[0].isalpha())


def author_name(surname: str, given: str = "") -> str:
    """``"Surname Initials"`` (PubMed style) from a surname and given names."""
    initials = _initials(given)
    return f"{surname.strip()} {initials}" if initials else surname.strip()


def author_from_text(name: str) -> str:
    """``"Doe, Jane A."`` or ``"Jane A. Doe"`` -> ``"Doe JA"``; ``"Doe JA"`` stays."""
    name = clean(name)
    if "," in name:
        surname, given = name.split(",", 1)
        return author_name(surname, given)
    if re.fullmatch(r".+ [A-Z]{1,4}", name):
        return name
    parts = name.split()
    return author_name(parts[-1], " ".join(parts[:-1])) if len(parts) > 1 else name


def mesh_name(term: str) -> str:
    """A MeSH descriptor without its ``/qualifier`` and major-topic ``*``."""
    return str(term).split("/")[0].lstrip("*").strip()


def study_type_from(publication_types: Iterable[str]) -> str | None:
    """The contract's ``study_type`` from PubMed publication types.

    ``systematic review and meta-analysis`` if both, else ``meta-analysis``,
    ``systematic review``, ``randomized controlled trial``, ``review``; ``other`` when
    types are given but none of these; None when there are no types.
    """
    types = {t.strip().lower() for t in publication_types if t.strip()}
    if not types:
        return None
    if "systematic review" in types and "meta-analysis" in types:
        return "systematic review and meta-analysis"
    for name in ("meta-analysis", "systematic review", "randomized controlled trial", "review"):
        if name in types:
            return name
    return "other"


def species_from_mesh(mesh: Iterable[str]) -> str | None:
    """``human`` if MeSH has Humans, ``animal`` if only Animals, else None."""
    terms = {mesh_name(t).lower() for t in mesh}
    if "humans" in terms:
        return "human"
    return "animal" if "animals" in terms else None


# --------------------------------------------------------------------------- citations


def format_citation(record: Record) -> str:
    """A Vancouver/UpToDate-style citation: ``Doe JA, Roe R. Title. J Abbr 2021; 3:1.``

    Up to four authors are listed, else the first three and ``et al``.
    """
    authors = list(record.authors)
    names = ", ".join(authors if len(authors) <= 4 else [*authors[:3], "et al"])
    title = record.title if record.title[-1:] in "?!." else f"{record.title}."
    where = " ".join(x for x in (record.journal, str(record.year or "")) if x)
    volume = f"{record.volume}({record.issue})" if record.issue else record.volume
    if record.pages:
        volume = f"{volume}:{record.pages}"
    tail = f"{where}; {volume}." if volume and where else (f"{where}." if where else "")
    return " ".join(x for x in (f"{names}." if names else "", title, tail) if x)


# --------------------------------------------------------------------------- documents


def record_to_document(record: Record, n: int, doc_id: str | None = None) -> Document:
    """The :class:`Document` for ``record`` as reference ``n`` (doc id ``ref-<n>``).

    A record with an abstract gets one ``abstract`` section (title, blank line, abstract);
    one without gets a ``citation`` section holding its citation.
    """
    citation = record.citation or format_citation(record)
    url = PUBMED_URL.format(pmid=record.pmid) if record.pmid else DOI_URL.format(doi=record.doi) if record.doi else None
    study_type = study_type_from(record.publication_types)
    level = evidence_level(study_type)
    metadata = {
        "n": n,
        "refs": [n],
        "title": record.title,
        "authors": list(record.authors),
        "journal": record.journal or None,
        "year": record.year,
        "pmid": record.pmid,
        "doi": record.doi,
        "url": url,
        "study_type": study_type,
        "evidence_level": level,
        "design_group": DESIGN_GROUPS[level],
        "species": species_from_mesh(record.mesh),
        "lbp_phase": None,
        "citation": citation,
        "source": record.source,
        "has_abstract": bool(record.abstract),
        "confidence": "high" if record.abstract else "low",
        "source_note": (
            f"Abstract as published; ingested from {record.source}."
            if record.abstract
            else f"Citation only (no abstract); ingested from {record.source}."
        ),
    }
    section = (
        Section("abstract", f"{record.title}\n\n{record.abstract}", "clinician")
        if record.abstract
        else Section("citation", citation, "clinician")
    )
    return Document(doc_id or f"ref-{n}", record.title, (section,), metadata)


# --------------------------------------------------------------------------- record errors


def record_error(path: str, line: int | None, label: str, message: str) -> FormatError:
    """An error for one record: ``path:line: <label>: message``."""
    return FormatError(path, line, f"{label}: {message}")


def record_label(index: int, detail: str = "") -> str:
    """A record's name in messages: ``record 3`` or ``record 3 (PMID 123)``."""
    return f"record {index}" + (f" ({detail})" if detail else "")


class BadRecord(Exception):
    """Raised by a reader for a record that cannot be used; the message says why, in words."""


def read_failure(path: str, line: int | None, label: str, exc: Exception, reader: str) -> FormatError:
    """The error for a record whose reading raised ``exc`` (kept as ``__cause__``).

    :class:`BadRecord` carries its own words; anything else is an exception of the library
    (or of the reader) that no check foresaw: it is named, with the library, and the
    record is skipped rather than the file.
    """
    if isinstance(exc, BadRecord):
        return record_error(path, line, label, str(exc))
    if isinstance(exc, RecursionError):
        message = f"{reader} cannot read this record: it is nested too deeply"
    else:
        detail = re.sub(r"\s+", " ", str(exc)).strip()[:120]
        message = f"{reader} cannot read this record ({type(exc).__name__}{': ' + detail if detail else ''})"
    error = record_error(path, line, label, message)
    error.__cause__ = exc
    return error


_SURROGATE = re.compile("[\ud800-\udfff]")


def text_not_utf8(*texts: str) -> bool:
    """Whether any of ``texts`` holds bytes that were not UTF-8 (lone surrogates, see :func:`assistant.sources.formats.decode`)."""
    return any(_SURROGATE.search(x) for x in texts)


def record_not_utf8(record: Record) -> bool:
    """Whether a field of ``record`` holds bytes that were not UTF-8 (see :func:`text_not_utf8`)."""
    values = [getattr(record, f.name) for f in fields(Record)]
    strings = [v for v in values if isinstance(v, str)] + [x for v in values if isinstance(v, tuple) for x in v]
    return text_not_utf8(*strings)


def read_record(
    build: Callable[[], Record],
    path: str,
    line: int | None,
    label: str,
    errors: list[FormatError],
    raw: str,
    reader: str,
) -> Record | None:
    """One record of a file: ``build()`` it, name a failure (:func:`read_failure`), keep it
    only if it is usable (:func:`checked`); None, with the error in ``errors``, otherwise."""
    try:
        record = build()
    except Exception as exc:
        errors.append(read_failure(path, line, label, exc, reader))
        return None
    return checked(record, path, line, label, errors, raw)


def checked(
    record: Record, path: str, line: int | None, label: str, errors: list[FormatError], raw: str = ""
) -> Record | None:
    """``record`` with its location, or None (and an error) when it is not usable.

    A record whose text (``raw``, as in the file, or its fields) holds bytes that were not
    UTF-8 is not usable: whatever a reader made of them would be wrong.
    """
    if text_not_utf8(raw) or record_not_utf8(record):
        errors.append(record_error(path, line, label, "the text is not valid UTF-8 (save the file as UTF-8)"))
        return None
    if not record.title:
        detail = f"{label} (PMID {record.pmid})" if record.pmid else label
        what = "no title" + ("" if record.abstract else " and no abstract")
        errors.append(record_error(path, line, detail, what))
        return None
    return replace(record, where=f"line {line}, {label}" if line is not None else label)
