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
records around it are still read. The files are split into records here (``<PubmedArticle>``,
``PMID-`` and blank lines, ``TY  -`` ... ``ER  -``, ``@``, JSON lines, numbered references),
so a library that gives up (or raises) on one record costs that record only; an exception no
check foresaw is caught at the record and named with the library, with the exception as the
error's ``__cause__`` (``benchmarks/fuzz_readers.py`` counts these). Bytes that are not
UTF-8 cost the record holding them. The only exception that leaves :func:`parse_file`,
:func:`parse_bytes` and :func:`parse_text` is :class:`~assistant.errors.FormatError`, for a
file that cannot be read at all. Records without an abstract are kept as citations.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from assistant.documents.corpus import DESIGN_GROUPS, ReferenceEntry, Topic, evidence_level
from assistant.errors import FormatError
from assistant.types import Document, Section

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
        topic: the reprint as :func:`assistant.documents.corpus.parse_topic_reprint` reads it; its
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


# --------------------------------------------------------------------------- detection

_MEDLINE_TAG = re.compile(r"^[A-Z][A-Z0-9]{1,3} {0,2}- ", re.MULTILINE)
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


# --------------------------------------------------------------------------- field helpers


def _clean(text: Any) -> str:
    """Whitespace-collapsed text."""
    return re.sub(r"\s+", " ", str(text or "")).strip()


# PubMed's inline markup (Bio.Entrez keeps it in the text): italics, bold, sub/superscripts, MathML.
_PUBMED_MARKUP = re.compile(r"</?(?:i|b|u|sup|sub|mml:\w+)(?:\s[^<>]*)?/?>")


def _clean_markup(text: Any) -> str:
    """Whitespace-collapsed text of a PubMed XML element, inline markup removed."""
    return _clean(_PUBMED_MARKUP.sub("", str(text or "")))


def _clean_title(title: Any) -> str:
    """A title without markup, the trailing period PubMed adds or the [brackets] of translations."""
    t = _clean_markup(title)
    if t.startswith("[") and t.rstrip(".").endswith("]"):
        t = t.rstrip(".")[1:-1]
    return t[:-1].rstrip() if t.endswith(".") else t


def _clean_doi(value: Any) -> str | None:
    """A bare DOI (``10.x/...``) from a DOI, ``doi:`` string or doi.org URL; None if absent."""
    m = re.search(r"10\.\d{4,9}/\S+", str(value or ""))
    return m.group(0).rstrip(".,;") if m else None


def _clean_pmid(value: Any) -> str | None:
    text = str(value or "").strip()
    return text if text.isdigit() else None


def _year(value: Any) -> int | None:
    m = re.search(r"\b(1[89]\d\d|20\d\d)\b", str(value or ""))
    return int(m.group(1)) if m else None


def _initials(given: str) -> str:
    """``"Jane A."`` -> ``"JA"``, ``"Jean-Luc"`` -> ``"JL"``."""
    return "".join(p[0].upper() for p in re.split(r"[\s.\-]+", given) if p and p[0].isalpha())


def _author(surname: str, given: str = "") -> str:
    """``"Surname Initials"`` (PubMed style)."""
    initials = _initials(given)
    return f"{surname.strip()} {initials}" if initials else surname.strip()


def _author_from_text(name: str) -> str:
    """``"Doe, Jane A."`` or ``"Jane A. Doe"`` -> ``"Doe JA"``; ``"Doe JA"`` stays."""
    name = _clean(name)
    if "," in name:
        surname, given = name.split(",", 1)
        return _author(surname, given)
    if re.fullmatch(r".+ [A-Z]{1,4}", name):
        return name
    parts = name.split()
    return _author(parts[-1], " ".join(parts[:-1])) if len(parts) > 1 else name


def _mesh_name(term: str) -> str:
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
    terms = {_mesh_name(t).lower() for t in mesh}
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


def _record_error(path: str, line: int | None, label: str, message: str) -> FormatError:
    """An error for one record: ``path:line: <label>: message``."""
    return FormatError(path, line, f"{label}: {message}")


def _label(index: int, detail: str = "") -> str:
    """``record 3`` or ``record 3 (PMID 123)`` for messages."""
    return f"record {index}" + (f" ({detail})" if detail else "")


class _BadRecord(Exception):
    """A record that cannot be used; the message says why, in words."""


def _failure(path: str, line: int | None, label: str, exc: Exception, reader: str) -> FormatError:
    """The error for a record whose reading raised ``exc`` (kept as ``__cause__``).

    :class:`_BadRecord` carries its own words; anything else is an exception of the library
    (or of this module) that no check foresaw: it is named, with the library, and the
    record is skipped rather than the file.
    """
    if isinstance(exc, _BadRecord):
        return _record_error(path, line, label, str(exc))
    if isinstance(exc, RecursionError):
        message = f"{reader} cannot read this record: it is nested too deeply"
    else:
        detail = re.sub(r"\s+", " ", str(exc)).strip()[:120]
        message = f"{reader} cannot read this record ({type(exc).__name__}{': ' + detail if detail else ''})"
    error = _record_error(path, line, label, message)
    error.__cause__ = exc
    return error


_SURROGATE = re.compile("[\ud800-\udfff]")


def _not_utf8(record: Record) -> bool:
    """Whether a field holds bytes that were not UTF-8 (lone surrogates, see :func:`decode`)."""
    values = [getattr(record, f.name) for f in fields(Record)]
    strings = [v for v in values if isinstance(v, str)] + [x for v in values if isinstance(v, tuple) for x in v]
    return any(_SURROGATE.search(x) for x in strings)


def _checked(
    record: Record, path: str, line: int | None, label: str, errors: list[FormatError], raw: str = ""
) -> Record | None:
    """``record`` with its location, or None (and an error) when it is not usable.

    A record whose text (``raw``, as in the file, or its fields) holds bytes that were not
    UTF-8 is not usable: whatever a reader made of them would be wrong.
    """
    if _SURROGATE.search(raw) or _not_utf8(record):
        errors.append(_record_error(path, line, label, "the text is not valid UTF-8 (save the file as UTF-8)"))
        return None
    if not record.title:
        detail = f"{label} (PMID {record.pmid})" if record.pmid else label
        what = "no title" + ("" if record.abstract else " and no abstract")
        errors.append(_record_error(path, line, detail, what))
        return None
    return replace(record, where=f"line {line}, {label}" if line is not None else label)


# --------------------------------------------------------------------------- PubMed XML

_DOCTYPE = re.compile(r"<!DOCTYPE\s+(\w+)[^>]*?\"([^\"<>]+\.dtd)\"\s*>", re.DOTALL)
_ARTICLE = re.compile(r"<(PubmedArticle|PubmedBookArticle)>.*?</\1>", re.DOTALL)


def _prolog(header: str) -> str:
    """The XML declaration and DOCTYPE to parse PubMed records with, offline.

    :func:`Bio.Entrez.read` downloads a DTD it does not find locally. The DTD the file's
    DOCTYPE (in ``header``, the text before ``<PubmedArticleSet>``) names is kept when
    Biopython ships it; a newer one, or none at all, becomes the newest shipped
    ``pubmed_*.dtd``, so parsing never touches the network. The rest of the file's header
    is not used: a damaged header cannot make its records unreadable.
    """
    from Bio.Entrez.Parser import DataHandler

    dirs = [Path(d) for d in (DataHandler.local_dtd_dir, DataHandler.global_dtd_dir) if d]
    m = _DOCTYPE.search(header[:5000])
    name = Path(m.group(2)).name if m else ""
    if not (re.fullmatch(r"[\w.\-]+\.dtd", name) and any((d / name).is_file() for d in dirs)):
        name = max(p.name for p in Path(DataHandler.global_dtd_dir).glob("pubmed_*.dtd"))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle//EN" '
        f'"https://dtd.nlm.nih.gov/ncbi/pubmed/out/{name}">\n'
    )


def _xml_bytes(xml: str) -> bytes:
    # Lone surrogates (bytes that were not UTF-8) stay invalid UTF-8, which expat reports.
    return xml.encode("utf-8", errors="surrogatepass")


def _xml_syntax_error(xml: str, first_line: int) -> str | None:
    """What makes ``xml`` not well-formed (line numbers counted from ``first_line``), or None.

    Plain expat without the DTD: much cheaper than :func:`Bio.Entrez.read`, which loads
    the DTD on every call, so broken records are told apart before that.
    """
    from xml.parsers import expat

    parser = expat.ParserCreate()
    try:
        parser.Parse(_xml_bytes(xml), True)
    except expat.ExpatError as exc:
        return f"{expat.ErrorString(exc.code)} at line {exc.lineno + first_line - 1}"
    return None


def _entrez_read(xml: str) -> Any:
    from Bio import Entrez

    return Entrez.read(io.BytesIO(_xml_bytes(xml)))


def _read_articles(prolog: str, body: str, kinds: Sequence[str]) -> list[Record]:
    """The records of ``body`` (a ``<PubmedArticleSet>``), in document order.

    Raises:
        Exception: anything the parser raises, or ``_BadRecord`` when the number or kinds
            of the articles read are not ``kinds``.
    """
    parsed = _entrez_read(prolog + body)
    articles = [_pubmed_article(a) for a in parsed.get("PubmedArticle", [])]
    books = [_pubmed_book(b) for b in parsed.get("PubmedBookArticle", [])]
    if len(articles) != kinds.count("PubmedArticle") or len(books) != len(kinds) - len(articles):
        raise _BadRecord("the articles read do not match the articles found")
    # Bio.Entrez lists articles before books: put them back in file order.
    next_article, next_book = iter(articles), iter(books)
    return [next(next_article) if kind == "PubmedArticle" else next(next_book) for kind in kinds]


def _text_of(value: Any) -> str:
    return _clean_markup(value) if value is not None else ""


def _pubmed_article(article: Mapping[str, Any]) -> Record:
    """A :class:`Record` from one parsed ``PubmedArticle``."""
    citation = article.get("MedlineCitation") or {}
    art = citation.get("Article")
    if not art:
        raise _BadRecord("no <MedlineCitation> with an <Article> in this <PubmedArticle>")
    journal = art.get("Journal", {})
    issue = journal.get("JournalIssue", {})
    date = issue.get("PubDate", {})
    parts = []
    for chunk in art.get("Abstract", {}).get("AbstractText", []):
        label = getattr(chunk, "attributes", {}).get("Label")
        parts.append(f"{label}: {_clean_markup(chunk)}" if label else _clean_markup(chunk))
    authors = []
    for a in art.get("AuthorList", []):
        if a.get("LastName"):
            authors.append(f"{a['LastName']} {a.get('Initials', '')}".strip())
        elif a.get("CollectiveName"):
            authors.append(_clean_markup(a["CollectiveName"]))
    doi = next(
        (str(e) for e in art.get("ELocationID", []) if e.attributes.get("EIdType") == "doi"),
        None,
    )
    for aid in article.get("PubmedData", {}).get("ArticleIdList", []):
        if doi is None and aid.attributes.get("IdType") == "doi":
            doi = str(aid)
    pagination = art.get("Pagination", {})
    pages = pagination.get("MedlinePgn") or "-".join(
        str(pagination[k]) for k in ("StartPage", "EndPage") if pagination.get(k)
    )
    mesh = [str(h["DescriptorName"]) for h in citation.get("MeshHeadingList", []) if h.get("DescriptorName")]
    return Record(
        title=_clean_title(art.get("ArticleTitle") or art.get("VernacularTitle")),
        abstract="\n".join(p for p in parts if p),
        authors=tuple(authors),
        journal=_text_of(journal.get("ISOAbbreviation") or journal.get("Title")),
        year=_year(date.get("Year") or date.get("MedlineDate")),
        volume=_text_of(issue.get("Volume")),
        issue=_text_of(issue.get("Issue")),
        pages=_text_of(pages),
        pmid=_clean_pmid(citation.get("PMID")),
        doi=_clean_doi(doi),
        publication_types=tuple(str(t) for t in art.get("PublicationTypeList", [])),
        mesh=tuple(mesh),
    )


def _pubmed_book(article: Mapping[str, Any]) -> Record:
    """A :class:`Record` from a ``PubmedBookArticle`` (books and NCBI Bookshelf chapters)."""
    book = article.get("BookDocument")
    if not book:
        raise _BadRecord("no <BookDocument> in this <PubmedBookArticle>")
    parts = [_clean_markup(c) for c in book.get("Abstract", {}).get("AbstractText", [])]
    authors = [
        f"{a['LastName']} {a.get('Initials', '')}".strip()
        for lst in book.get("AuthorList", [])
        for a in lst
        if a.get("LastName")
    ]
    info = book.get("Book", {})
    return Record(
        title=_clean_title(book.get("ArticleTitle") or info.get("BookTitle")),
        abstract="\n".join(p for p in parts if p),
        authors=tuple(authors),
        journal=_text_of(info.get("BookTitle")),
        year=_year(info.get("PubDate", {}).get("Year")),
        pmid=_clean_pmid(book.get("PMID")),
        publication_types=tuple(str(t) for t in book.get("PublicationType", [])),
    )


def _article_starts(text: str) -> list[tuple[int, int, str, str]]:
    """``(offset, line, kind, PMID)`` of each ``<PubmedArticle>``/``<PubmedBookArticle>``."""
    pmid_tag = re.compile(r"<PMID[^>]*>\s*(\d+)\s*</PMID>")
    out = []
    for m in re.finditer(r"<(PubmedArticle|PubmedBookArticle)>", text):
        pmid = pmid_tag.search(text, m.end(), m.end() + 4000)
        line = text.count("\n", 0, m.start()) + 1
        out.append((m.start(), line, m.group(1), pmid.group(1) if pmid else ""))
    return out


def _xml_problem(exc: Exception) -> str:
    """What a Bio.Entrez parser error means, in words that fit a user's file."""
    from Bio.Entrez.Parser import ValidationError

    if isinstance(exc, ValidationError):
        return f"element <{exc.name}> is not defined by the PubMed DTD"
    if isinstance(exc, _BadRecord):
        return str(exc)
    return str(exc) or type(exc).__name__


def _parse_pubmed_xml(text: str, path: str) -> tuple[list[Record], list[FormatError]]:
    """The whole file in one pass; if that fails, article by article so good ones survive.

    Article by article: an article that is not closed or not well-formed XML is reported
    at once; the others are read in one pass again and, if that fails (an element the DTD
    does not define, say), in halves, down to the article at fault: a few passes for a
    large file with one bad article, not one per article.
    """
    errors: list[FormatError] = []
    starts = _article_starts(text)
    if not starts:
        return [], [FormatError(path, None, "no <PubmedArticle> records found")]
    set_at = text.find("<PubmedArticleSet")
    prolog = _prolog(text[: set_at if 0 <= set_at < starts[0][0] else starts[0][0]])
    labels = [_label(i, f"PMID {pmid}" if pmid else "") for i, (_, _, _, pmid) in enumerate(starts, start=1)]
    kinds = [kind for _, _, kind, _ in starts]

    def checked(pairs: Iterable[tuple[int, Record]]) -> list[Record]:
        kept = (_checked(r, path, starts[k][1], labels[k], errors) for k, r in pairs)
        return [r for r in kept if r is not None]

    if 0 <= set_at < starts[0][0]:
        body = text[set_at:]
        if _xml_syntax_error(body, 1) is None:
            try:
                return checked(enumerate(_read_articles(prolog, body, kinds))), errors
            except Exception:  # read them one by one below
                pass
    closed: list[tuple[int, str]] = []  # (article index, its XML)
    for k, (start, line, _, _) in enumerate(starts):
        m = _ARTICLE.match(text, start)
        end = starts[k + 1][0] if k + 1 < len(starts) else len(text)
        if m is None or m.end() > end:
            errors.append(_record_error(path, line, labels[k], "the article is not closed (truncated file?)"))
        elif problem := _xml_syntax_error(f"<PubmedArticleSet>{m.group(0)}</PubmedArticleSet>", line):
            errors.append(_record_error(path, line, labels[k], f"bad PubMed XML: {problem}"))
        else:
            closed.append((k, m.group(0)))
    records: list[tuple[int, Record]] = []

    def read(batch: Sequence[tuple[int, str]]) -> None:
        """The articles of ``batch`` in one pass; if that fails, each half alone (down to one)."""
        body = "<PubmedArticleSet>" + "\n".join(xml for _, xml in batch) + "</PubmedArticleSet>"
        try:
            records.extend(
                zip([k for k, _ in batch], _read_articles(prolog, body, [kinds[k] for k, _ in batch]), strict=True)
            )
        except Exception as exc:
            if len(batch) == 1:
                k = batch[0][0]
                errors.append(_record_error(path, starts[k][1], labels[k], f"bad PubMed XML: {_xml_problem(exc)}"))
                return
            read(batch[: len(batch) // 2])
            read(batch[len(batch) // 2 :])

    if closed:
        read(closed)
    good = checked(records)
    errors.sort(key=lambda e: e.line if isinstance(e.line, int) else 0)
    return good, errors


# --------------------------------------------------------------------------- MEDLINE


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
        title=_clean_title(m.get("TI") or m.get("BTI")),
        abstract=_clean(m.get("AB")),
        authors=tuple([*m.get("AU", []), *m.get("CN", [])]),
        journal=_clean(m.get("TA") or m.get("JT")),
        year=_year(m.get("DP")),
        volume=_clean(m.get("VI")),
        issue=_clean(m.get("IP")),
        pages=_clean(m.get("PG")),
        pmid=_clean_pmid(m.get("PMID")),
        doi=_clean_doi(next((x for x in ids if x.endswith("[doi]")), None)),
        publication_types=tuple(m.get("PT", [])),
        mesh=tuple(_mesh_name(t) for t in m.get("MH", [])),
    )


def _parse_medline(text: str, path: str) -> tuple[list[Record], list[FormatError]]:
    """Records split at blank lines and ``PMID-`` lines, each read alone by Bio.Medline."""
    records: list[Record] = []
    errors: list[FormatError] = []
    blocks = _blocks(text.splitlines(), lambda x: x.startswith("PMID-"))
    for i, (line, block) in enumerate(blocks, start=1):
        pmid = next((x[6:].strip() for x in block if x.startswith("PMID-")), "")
        label = _label(i, f"PMID {pmid}" if pmid.isdigit() else "")
        bad = next(
            (k for k, x in enumerate(block) if not (_MEDLINE_TAG.match(x) or x.startswith("      "))),
            None,
        )
        if bad is not None:
            msg = f"not a MEDLINE line ('TAG - value' or a 6-space continuation): {block[bad][:60]!r}"
            errors.append(_record_error(path, line + bad, label, msg))
            continue
        if block[0].startswith("      "):
            msg = "a continuation line with no tag before it (a blank line inside a record?)"
            errors.append(_record_error(path, line, label, msg))
            continue
        try:
            record = _medline_record(block)
        except Exception as exc:
            errors.append(_failure(path, line, label, exc, "Bio.Medline"))
            continue
        if (checked := _checked(record, path, line, label, errors, "\n".join(block))) is not None:
            records.append(checked)
    return records, errors


# --------------------------------------------------------------------------- RIS


def _first(entry: Mapping[str, Any], *keys: str) -> str:
    """The first non-empty of ``keys`` (first item of a list), cleaned."""
    for key in keys:
        value = entry.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if value:
            return _clean(value)
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
        title=_clean_title(_first(entry, "title", "primary_title", "translated_title")),
        abstract=_first(entry, "abstract", "notes_abstract"),
        authors=tuple(_author_from_text(a) for a in authors),
        journal=_first(entry, *journal_keys, "alternate_title3"),
        year=_year(_first(entry, "year", "publication_year", "date")),
        volume=_first(entry, "volume"),
        issue=_first(entry, "number"),
        pages=pages,
        pmid=_clean_pmid(entry.get("accession_number"))
        or _pmid_in(entry.get("notes"), entry.get("urls"), entry.get("note")),
        doi=_clean_doi(entry.get("doi")),
        publication_types=tuple(t.strip() for t in str(entry.get("type_of_work") or "").split(";") if t.strip()),
        mesh=tuple(_mesh_name(k) for k in entry.get("keywords", [])),
    )


def _parse_ris(text: str, path: str) -> tuple[list[Record], list[FormatError]]:
    """Records from each ``TY  -`` line to the first ``ER  -`` after it, each read alone by rispy.

    Lines between an ``ER`` and the next ``TY`` belong to no record and are ignored, as
    rispy does (rispy would otherwise add them to the record before).
    """
    import rispy

    records: list[Record] = []
    errors: list[FormatError] = []
    lines = text.splitlines()
    starts = [k for k, x in enumerate(lines) if x.startswith("TY  - ")]
    if not starts:
        return [], [FormatError(path, None, "no 'TY  - ' lines: not a RIS file")]
    for i, start in enumerate(starts, start=1):
        block = lines[start : starts[i] if i < len(starts) else len(lines)]
        title = next((x[6:].strip() for x in block if x[:2] in ("TI", "T1")), "")
        label = _label(i, repr(title[:60]) if title else "")
        end = next((k for k, x in enumerate(block) if x.startswith("ER  -")), None)
        if end is None:
            errors.append(_record_error(path, start + 1, label, "no 'ER  -' line ends this record"))
            continue
        try:
            # Tags rispy does not know are not used here; keeping them trips rispy up (a
            # "UK" tag, its own name for them, then another unknown tag: TypeError).
            entries = rispy.loads("\n".join(block[: end + 1]) + "\n", skip_unknown_tags=True)
            if len(entries) != 1:
                raise _BadRecord(f"rispy read {len(entries)} records here instead of one")
            record = _ris_record(entries[0])
        except Exception as exc:
            errors.append(_failure(path, start + 1, label, exc, "rispy"))
            continue
        if (checked := _checked(record, path, start + 1, label, errors, "\n".join(block[: end + 1]))) is not None:
            records.append(checked)
    return records, errors


# --------------------------------------------------------------------------- BibTeX


def _bibtex_author(name: Any) -> str:
    """``"Surname Initials"`` from bibtexparser's ``NameParts`` (LaTeX decoded here).

    Names are split before LaTeX is decoded, so that braces still protect corporate
    authors (``{Fictional Study Group}``) from being split into first and last names.
    """
    from pylatexenc.latex2text import LatexNodes2Text

    decode = LatexNodes2Text().latex_to_text
    last = _clean(decode(" ".join([*name.von, *name.last])))
    first = _clean(decode(" ".join(name.first)))
    return _author(last, first) if last else first


def _bibtex_record(fields: Mapping[str, Any]) -> Record:
    def get(*keys: str) -> str:
        return next((_clean(fields[k].value) for k in keys if k in fields), "")

    authors = fields["author"].value if "author" in fields else []
    eprint_pmid = get("eprint") if get("eprinttype").lower() == "pubmed" else ""
    return Record(
        title=_clean_title(get("title")),
        abstract=get("abstract"),
        authors=tuple(_bibtex_author(a) for a in authors),
        journal=get("journal", "journaltitle", "booktitle"),
        year=_year(get("year", "date")),
        volume=get("volume"),
        issue=get("number", "issue"),
        pages=re.sub(r"\s*(--|–)\s*", "-", get("pages")),
        pmid=_clean_pmid(get("pmid") or eprint_pmid),
        doi=_clean_doi(get("doi")),
        publication_types=tuple(t.strip() for t in get("pubtype").split(";") if t.strip()),
        mesh=tuple(_mesh_name(t) for t in re.split(r"[;,]", get("mesh", "keywords")) if t.strip()),
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
        errors.append(_record_error(path, line, label, f"bad BibTeX: {_clean(reason)[:200] or 'unparsable'}"))
    for entry in library.entries:
        label = f"entry {entry.key!r}"
        line = offset + (entry.start_line or 0) + 1
        try:
            fields = {key.lower(): value for key, value in entry.fields_dict.items()}
            record = _bibtex_record(fields)
        except Exception as exc:
            errors.append(_failure(path, line, label, exc, "bibtexparser"))
            continue
        if (checked := _checked(record, path, line, label, errors, entry.raw or "")) is not None:
            records.append(checked)


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
            errors.append(_failure(path, offset + 1, f"entry {key!r}" if key else "entry", exc, "bibtexparser"))
            continue
        _bibtex_entries(library, path, offset, records, errors)
    return records, errors


# --------------------------------------------------------------------------- BEIR


def _strings(value: Any, name: str) -> tuple[str, ...]:
    """A metadata list of strings (a single string is a list of one)."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return tuple(value)
    raise _BadRecord(f"'metadata.{name}' must be a string or a list of strings")


def _beir_record(obj: Mapping[str, Any]) -> Record:
    meta = obj.get("metadata") or {}
    return Record(
        title=_clean_title(obj.get("title")),
        abstract=_clean(obj.get("text")),
        authors=tuple(_author_from_text(a) for a in _strings(meta.get("authors"), "authors")),
        journal=_clean(meta.get("journal")),
        year=_year(meta.get("year")),
        pmid=_clean_pmid(meta.get("pmid")),
        doi=_clean_doi(meta.get("doi")),
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
            errors.append(_record_error(path, line, _label(i), f"invalid JSON: {exc.msg}"))
            continue
        except RecursionError:  # [[[[... deeper than the interpreter's stack
            errors.append(_record_error(path, line, _label(i), "invalid JSON: nested too deeply"))
            continue
        except ValueError as exc:  # e.g. a number of more than 4,300 digits
            errors.append(_record_error(path, line, _label(i), f"invalid JSON: {exc}"[:200]))
            continue
        if not isinstance(obj, dict):
            errors.append(_record_error(path, line, _label(i), "expected a JSON object"))
            continue
        label = _label(i, f"_id {obj.get('_id')!r}"[:80])
        if "_id" not in obj:
            errors.append(_record_error(path, line, label, "missing '_id'"))
            continue
        if not all(isinstance(obj.get(k) or "", str) for k in ("title", "text")):
            errors.append(_record_error(path, line, label, "'title' and 'text' must be strings"))
            continue
        if not isinstance(obj.get("metadata") or {}, dict):
            errors.append(_record_error(path, line, label, "'metadata' must be a JSON object"))
            continue
        try:
            record = _beir_record(obj)
        except Exception as exc:
            errors.append(_failure(path, line, label, exc, "the BEIR reader"))
            continue
        if (checked := _checked(record, path, line, label, errors, raw)) is not None:
            records.append(checked)
    return records, errors


# --------------------------------------------------------------------------- topic reprints


def _reference_record(c: ReferenceEntry) -> Record:
    return Record(
        title=_clean_title(c.title or c.text),
        authors=tuple(a.strip() for a in c.authors.split(",") if a.strip() not in ("", "et al")),
        journal=c.journal,
        year=c.year,
        citation=c.text,
        where=f"reference {c.n}",
    )


def _parse_reprint(text: str, path: str) -> tuple[list[TopicRecord | Record], list[FormatError]]:
    """A topic reprint, read by :func:`assistant.documents.corpus.parse_topic_reprint` (leniently).

    The topic and each reference of its list are records: a damaged reference is left out
    (and reported) and the others kept; a topic that cannot be read (no title, no body,
    text that is not UTF-8) is reported and its references are still read, as plain
    records. A reprint without a numbered reference list is one error.
    """
    from assistant.documents.corpus import parse_reference_list, parse_topic_reprint

    problems: list[FormatError] = []
    topic: Topic | None = None
    try:
        topic = parse_topic_reprint(text, source=path, problems=problems)
        entries = list(topic.references)
    except FormatError as exc:
        problems.append(exc)
        try:
            entries = parse_reference_list(text, path)[0]
        except FormatError:
            entries = []
    except Exception as exc:
        return [], [*problems, _failure(path, None, "topic", exc, "the topic reprint reader")]
    errors = list(problems)
    references: list[Record] = []
    numbers: list[int] = []
    for c in entries:
        record = _reference_record(c)
        if _SURROGATE.search(c.text) or _not_utf8(record):
            errors.append(_record_error(path, None, f"reference {c.n}", "the text is not valid UTF-8"))
            continue
        references.append(record)
        numbers.append(c.n)
    if topic is None:
        return list(references), errors
    editors = [x for role, names in topic.editors.items() for x in (role, *names)]
    texts = [topic.title, *topic.authors, *editors, *topic.paragraphs, *topic.cross_references]
    if any(_SURROGATE.search(x) for x in texts):
        errors.append(_record_error(path, None, "the topic", "its text is not valid UTF-8 (save the file as UTF-8)"))
        return list(references), errors
    return [TopicRecord(topic, tuple(references), tuple(numbers))], errors
