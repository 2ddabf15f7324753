"""The ``pubmed-xml`` reader: E-utilities efetch output (``<PubmedArticleSet>``).

Read with :func:`Bio.Entrez.read`. The DOCTYPE is pointed at a DTD that Biopython ships, so
the parser never tries to download one. The whole file is read in one pass; if that fails,
article by article (and the articles that are well-formed in halves), so a bad
``<PubmedArticle>`` or ``<PubmedBookArticle>`` costs that article only.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from assistant.errors import FormatError
from assistant.sources import records as rec
from assistant.sources.records import Record

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
        Exception: anything the parser raises, or :class:`~.records.BadRecord` when the
            number or kinds of the articles read are not ``kinds``.
    """
    parsed = _entrez_read(prolog + body)
    articles = [_pubmed_article(a) for a in parsed.get("PubmedArticle", [])]
    books = [_pubmed_book(b) for b in parsed.get("PubmedBookArticle", [])]
    if len(articles) != kinds.count("PubmedArticle") or len(books) != len(kinds) - len(articles):
        raise rec.BadRecord("the articles read do not match the articles found")
    # Bio.Entrez lists articles before books: put them back in file order.
    next_article, next_book = iter(articles), iter(books)
    return [next(next_article) if kind == "PubmedArticle" else next(next_book) for kind in kinds]


def _text_of(value: Any) -> str:
    return rec.clean_markup(value) if value is not None else ""


def _pubmed_article(article: Mapping[str, Any]) -> Record:
    """A :class:`Record` from one parsed ``PubmedArticle``."""
    citation = article.get("MedlineCitation") or {}
    art = citation.get("Article")
    if not art:
        raise rec.BadRecord("no <MedlineCitation> with an <Article> in this <PubmedArticle>")
    journal = art.get("Journal", {})
    issue = journal.get("JournalIssue", {})
    date = issue.get("PubDate", {})
    parts = []
    for chunk in art.get("Abstract", {}).get("AbstractText", []):
        label = getattr(chunk, "attributes", {}).get("Label")
        parts.append(f"{label}: {rec.clean_markup(chunk)}" if label else rec.clean_markup(chunk))
    authors = []
    for a in art.get("AuthorList", []):
        if a.get("LastName"):
            authors.append(f"{a['LastName']} {a.get('Initials', '')}".strip())
        elif a.get("CollectiveName"):
            authors.append(rec.clean_markup(a["CollectiveName"]))
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
        title=rec.clean_title(art.get("ArticleTitle") or art.get("VernacularTitle")),
        abstract="\n".join(p for p in parts if p),
        authors=tuple(authors),
        journal=_text_of(journal.get("ISOAbbreviation") or journal.get("Title")),
        year=rec.parse_year(date.get("Year") or date.get("MedlineDate")),
        volume=_text_of(issue.get("Volume")),
        issue=_text_of(issue.get("Issue")),
        pages=_text_of(pages),
        pmid=rec.clean_pmid(citation.get("PMID")),
        doi=rec.clean_doi(doi),
        publication_types=tuple(str(t) for t in art.get("PublicationTypeList", [])),
        mesh=tuple(mesh),
    )


def _pubmed_book(article: Mapping[str, Any]) -> Record:
    """A :class:`Record` from a ``PubmedBookArticle`` (books and NCBI Bookshelf chapters)."""
    book = article.get("BookDocument")
    if not book:
        raise rec.BadRecord("no <BookDocument> in this <PubmedBookArticle>")
    parts = [rec.clean_markup(c) for c in book.get("Abstract", {}).get("AbstractText", [])]
    authors = [
        f"{a['LastName']} {a.get('Initials', '')}".strip()
        for lst in book.get("AuthorList", [])
        for a in lst
        if a.get("LastName")
    ]
    info = book.get("Book", {})
    return Record(
        title=rec.clean_title(book.get("ArticleTitle") or info.get("BookTitle")),
        abstract="\n".join(p for p in parts if p),
        authors=tuple(authors),
        journal=_text_of(info.get("BookTitle")),
        year=rec.parse_year(info.get("PubDate", {}).get("Year")),
        pmid=rec.clean_pmid(book.get("PMID")),
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
    if isinstance(exc, rec.BadRecord):
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
    labels = [rec.record_label(i, f"PMID {pmid}" if pmid else "") for i, (_, _, _, pmid) in enumerate(starts, start=1)]
    kinds = [kind for _, _, kind, _ in starts]

    def checked(pairs: Iterable[tuple[int, Record]]) -> list[Record]:
        kept = (rec.checked(r, path, starts[k][1], labels[k], errors) for k, r in pairs)
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
            errors.append(rec.record_error(path, line, labels[k], "the article is not closed (truncated file?)"))
        elif problem := _xml_syntax_error(f"<PubmedArticleSet>{m.group(0)}</PubmedArticleSet>", line):
            errors.append(rec.record_error(path, line, labels[k], f"bad PubMed XML: {problem}"))
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
                errors.append(rec.record_error(path, starts[k][1], labels[k], f"bad PubMed XML: {_xml_problem(exc)}"))
                return
            read(batch[: len(batch) // 2])
            read(batch[len(batch) // 2 :])

    if closed:
        read(closed)
    good = checked(records)
    errors.sort(key=lambda e: e.line if isinstance(e.line, int) else 0)
    return good, errors
