"""Add people's own literature to an existing index, without rebuilding it.

``python -m assistant ingest FILE... [--index DIR]`` reads each file (format detected from
its content, see :mod:`assistant.sources.formats`), merges duplicates, numbers the new references
after the highest number already indexed, and hands the documents to
:meth:`assistant.search.index.Index.add_documents`, which embeds only the new passages and
records the addition in the manifest.

Duplicates: two records are the same work when both have a PMID and the PMIDs are equal;
else when both have a DOI and the DOIs are equal (case-insensitive); else when their
normalized titles (lowercase, letters and digits only) are equal and their years, if both
known, are at most one apart (e-pub versus print). A duplicate of an indexed document adds
its abstract to that document when the document has no ``abstract`` section yet; a
duplicate within the batch is merged into one record (the one with an abstract wins,
blanks are filled from the other).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from assistant.config import Settings
from assistant.errors import FormatError, IndexProblem
from assistant.sources.formats import ParsedFile, Record, TopicRecord, parse_file, record_to_document
from assistant.types import TOPIC_DOC_ID, Document, Section, ref_doc_id

__all__ = [
    "IngestPlan",
    "IngestReport",
    "Merge",
    "add_ingest_parser",
    "cmd_ingest",
    "ingest_files",
    "normalize_doi",
    "normalize_title",
    "plan_ingest",
    "renumber_citations",
    "same_work",
]

_MARKER = re.compile(r"\[(\d{1,6}(?:\s*[-–,]\s*\d{1,6})*)\]")


def normalize_title(title: str | None) -> str:
    """The title key for duplicate detection: lowercase letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", (title or "").lower())


def normalize_doi(doi: str | None) -> str:
    """The DOI key: lowercase, without a ``https://doi.org/`` or ``doi:`` prefix."""
    text = (doi or "").strip().lower()
    return re.sub(r"^(https?://(dx\.)?doi\.org/|doi:\s*)", "", text)


@dataclass(frozen=True)
class _Keys:
    pmid: str
    doi: str
    title: str
    year: int | None


def _keys_of_record(record: Record) -> _Keys:
    return _Keys(record.pmid or "", normalize_doi(record.doi), normalize_title(record.title), record.year)


def _keys_of_metadata(meta: Mapping[str, Any]) -> _Keys:
    year = meta.get("year")
    return _Keys(
        str(meta.get("pmid") or ""),
        normalize_doi(meta.get("doi")),
        normalize_title(meta.get("title")),
        year if isinstance(year, int) else None,
    )


def same_work(a: _Keys, b: _Keys) -> str | None:
    """Which key shows ``a`` and ``b`` are one work (``pmid``, ``doi``, ``title``), or None.

    The first identifier both have decides: two different PMIDs are two works even when
    the titles agree (a review and its update often share a title).
    """
    if a.pmid and b.pmid:
        return "pmid" if a.pmid == b.pmid else None
    if a.doi and b.doi:
        return "doi" if a.doi == b.doi else None
    years_agree = a.year is None or b.year is None or abs(a.year - b.year) <= 1
    return "title" if a.title and a.title == b.title and years_agree else None


@dataclass(frozen=True)
class Merge:
    """A record that did not become a new document.

    Attributes:
        record: ``"<file> (<format>), line L, record i"``.
        doc_id: the document it was merged into.
        key: ``pmid``, ``doi`` or ``title``.
        action: ``abstract added`` (to an indexed document), ``already indexed``, or
            ``merged`` (with another record of this batch).
    """

    record: str
    doc_id: str
    key: str
    action: str

    def __str__(self) -> str:
        return f"{self.record} -> {self.doc_id} ({self.action}, same {self.key})"


@dataclass(eq=False)
class _Entry:
    """A document of the plan: an indexed one or a new one."""

    doc_id: str
    n: int | None
    keys: _Keys
    has_abstract: bool
    record: Record | None = None  # new documents
    metadata: Mapping[str, Any] | None = None  # indexed documents
    extension: Record | None = None  # an abstract to add to an indexed document


@dataclass
class IngestPlan:
    """What an ingest will do: new documents, abstracts added to indexed ones, merges.

    ``documents`` are in the order they will be added; ``sources[doc_id]`` is the file
    (``"<path> (<format>)"``) each came from, so additions are recorded per file.
    """

    documents: list[Document] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    merges: list[Merge] = field(default_factory=list)

    def by_source(self) -> Iterator[tuple[str, list[Document]]]:
        """``(source, documents)`` groups, in the order the sources first appear."""
        groups: dict[str, list[Document]] = {}
        for doc in self.documents:
            groups.setdefault(self.sources[doc.doc_id], []).append(doc)
        yield from groups.items()


def _merge_records(a: Record, b: Record) -> Record:
    """One record from two of the same work: the one with an abstract wins, blanks filled."""
    primary, other = (b, a) if b.abstract and not a.abstract else (a, b)
    filled = {f.name: getattr(other, f.name) for f in fields(Record) if not getattr(primary, f.name)}
    return replace(primary, **filled)


class _Planner:
    """Places records one by one against the indexed documents and the batch so far."""

    def __init__(self, existing: Mapping[str, Mapping[str, Any]]) -> None:
        self.entries: list[_Entry] = []
        self.by_key: dict[tuple[str, str], list[_Entry]] = {}
        self.merges: list[Merge] = []
        numbers = [0]
        for doc_id, meta in existing.items():
            n = meta.get("n")
            if isinstance(n, int):
                numbers.append(n)
            elif m := re.fullmatch(r"ref-(\d+)", doc_id):
                numbers.append(int(m.group(1)))
            sections = meta.get("sections") or []
            self._register(_Entry(doc_id, n, _keys_of_metadata(meta), "abstract" in sections, metadata=meta))
        self.next_n = max(numbers) + 1

    def _register(self, entry: _Entry) -> None:
        if entry not in self.entries:
            self.entries.append(entry)
        for kind in ("pmid", "doi", "title"):
            value = getattr(entry.keys, kind)
            if value and entry not in self.by_key.setdefault((kind, value), []):
                self.by_key[(kind, value)].append(entry)

    def _find(self, keys: _Keys) -> tuple[_Entry, str] | None:
        for kind in ("pmid", "doi", "title"):
            for entry in self.by_key.get((kind, getattr(keys, kind)), []) if getattr(keys, kind) else []:
                if how := same_work(keys, entry.keys):
                    return entry, how
        return None

    def place(self, record: Record) -> _Entry:
        """The entry ``record`` ends up in (a new one, or the duplicate it merged into)."""
        keys = _keys_of_record(record)
        found = self._find(keys)
        if found is None:
            entry = _Entry(ref_doc_id(self.next_n), self.next_n, keys, bool(record.abstract), record=record)
            self.next_n += 1
            self._register(entry)
            return entry
        entry, how = found
        label = f"{record.source}, {record.where}"
        if entry.record is not None:  # another record of this batch
            entry.record = _merge_records(entry.record, record)
            action = "merged"
        elif record.abstract and not entry.has_abstract and entry.extension is None:
            entry.extension = record
            action = "abstract added"
        else:
            action = "already indexed"
        if entry.record is not None or entry.extension is record:
            merged = entry.record or record
            entry.keys = _Keys(
                entry.keys.pmid or merged.pmid or "",
                entry.keys.doi or normalize_doi(merged.doi),
                entry.keys.title,
                entry.keys.year or merged.year,
            )
            entry.has_abstract = entry.has_abstract or bool(record.abstract)
            self._register(entry)
        self.merges.append(Merge(label, entry.doc_id, how, action))
        return entry


def renumber_citations(text: str, numbers: Mapping[int, int], drop_unknown: bool = False) -> str:
    """Rewrite ``[n]`` markers (``[1]``, ``[2,3]``, ``[4-6]``) with ``numbers[n]``.

    Ranges are expanded, since renumbered references are rarely consecutive; numbers
    without a mapping are kept as they are, or with ``drop_unknown`` left out (a marker
    left empty goes, with the space before it): a citation of a reference that is not in
    the list must not point at whatever the index numbers that way.
    """

    def rewrite(m: re.Match[str]) -> str:
        out: list[int] = []
        for part in re.split(r"\s*,\s*", m.group(2)):
            bounds = [int(x) for x in re.split(r"\s*[-–]\s*", part)]
            is_range = len(bounds) == 2 and 0 <= bounds[1] - bounds[0] < 200  # a typo must not explode
            span = range(bounds[0], bounds[1] + 1) if is_range else bounds
            out.extend(numbers.get(n, n) for n in span if n in numbers or not drop_unknown)
        if not out:
            return ""
        return m.group(1) + "[" + ",".join(str(n) for n in dict.fromkeys(out)) + "]"

    return re.sub(r"(\s?)" + _MARKER.pattern, rewrite, text)


def _topic_document(item: TopicRecord, numbers: Mapping[int, int], existing_ids: set[str], source: str) -> Document:
    from assistant.documents.corpus import topic_document

    paragraphs = tuple(renumber_citations(p, numbers, drop_unknown=True) for p in item.topic.paragraphs)
    topic = replace(item.topic, paragraphs=paragraphs)
    slug = re.sub(r"[^a-z0-9]+", "-", topic.title.lower()).strip("-")[:60] or "untitled"
    doc_id = TOPIC_DOC_ID if TOPIC_DOC_ID not in existing_ids else f"topic-{slug}"
    k = 2
    while doc_id in existing_ids:
        doc_id, k = f"topic-{slug}-{k}", k + 1
    doc = topic_document(topic, doc_id)
    return replace(doc, metadata={**doc.metadata, "source": source})


def _extension_document(entry: _Entry, record: Record) -> Document:
    """The abstract of ``record`` as new passages of the indexed document ``entry``."""
    meta = {k: v for k, v in (entry.metadata or {}).items() if k != "sections"}
    title = str(meta.get("title") or record.title)
    meta.update(
        {
            "pmid": meta.get("pmid") or record.pmid,
            "doi": meta.get("doi") or record.doi,
            "has_abstract": True,
            "confidence": "high",
            "source_note": f"Abstract as published; ingested from {record.source}.",
            "abstract_source": record.source,
        }
    )
    return Document(entry.doc_id, title, (Section("abstract", f"{title}\n\n{record.abstract}", "clinician"),), meta)


def plan_ingest(parsed: Sequence[ParsedFile], existing: Mapping[str, Mapping[str, Any]]) -> IngestPlan:
    """Decide, without touching the index, what ingesting ``parsed`` adds.

    Args:
        parsed: the files, in the order given.
        existing: ``doc_id -> metadata`` of the indexed documents (with ``sections``, the
            names of their sections), as :meth:`Index.documents_metadata` returns it.

    Returns:
        New documents numbered after the highest indexed reference, abstracts to add to
        indexed documents, and the merges.
    """
    planner = _Planner(existing)
    topics: list[tuple[TopicRecord, dict[int, int], str]] = []
    existing_topics = {
        normalize_title(m.get("title")): d for d, m in existing.items() if d == TOPIC_DOC_ID or d.startswith("topic-")
    }
    for pf in parsed:
        for record in pf.records:
            planner.place(record)
        for item in pf.topics:
            source = f"{pf.path} ({pf.format})"
            numbers = {i: planner.place(ref).n or i for i, ref in item.numbered()}
            title_key = normalize_title(item.topic.title)
            if title_key in existing_topics:
                planner.merges.append(Merge(source, existing_topics[title_key], "title", "already indexed"))
                continue
            existing_topics[title_key] = "(this batch)"
            topics.append((item, numbers, source))
    plan = IngestPlan(merges=planner.merges)
    ids = set(existing)
    for item, numbers, source in topics:
        doc = _topic_document(item, numbers, ids, source)
        ids.add(doc.doc_id)
        plan.documents.append(doc)
        plan.sources[doc.doc_id] = source
    for entry in planner.entries:
        if entry.record is not None and entry.n is not None:
            plan.documents.append(record_to_document(entry.record, entry.n))
            plan.sources[entry.doc_id] = entry.record.source
        elif entry.extension is not None:
            plan.documents.append(_extension_document(entry, entry.extension))
            plan.sources[entry.doc_id] = entry.extension.source
    return plan


# --------------------------------------------------------------------------- running it


@dataclass
class IngestReport:
    """What an ingest did (or, with ``dry_run``, would do)."""

    files: list[tuple[str, str, int]] = field(default_factory=list)  # (path, format, good records)
    added: list[str] = field(default_factory=list)
    extended: list[str] = field(default_factory=list)
    merges: list[Merge] = field(default_factory=list)
    errors: list[FormatError] = field(default_factory=list)
    passages: int = 0
    dry_run: bool = False
    titles: dict[str, str] = field(default_factory=dict)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ingest_files(
    paths: Iterable[str | Path], settings: Settings, dry_run: bool = False, log: Any = _log
) -> IngestReport:
    """Parse ``paths``, merge duplicates and add the new documents to the index.

    A file that cannot be read, or a record that cannot be parsed, is reported in
    ``errors``; the other records are still added. The index is written atomically per
    file, so nothing already indexed is lost if a later step fails.

    Raises:
        IndexProblem: no usable index at ``settings.index_dir``, or one built with another
            embedding model than ``settings.model``.
    """
    from assistant.search.index import Index

    report = IngestReport(dry_run=dry_run)
    parsed: list[ParsedFile] = []
    for path in paths:
        try:
            pf = parse_file(path)
        except FormatError as exc:
            report.errors.append(exc)
            continue
        except Exception as exc:  # a reader bug must cost this file, not the others (or a traceback)
            report.errors.append(FormatError(path, None, f"cannot read the file ({type(exc).__name__}: {exc})"))
            continue
        parsed.append(pf)
        report.errors.extend(pf.errors)
        report.files.append((pf.path, pf.format, len(pf.records) + sum(len(t.references) for t in pf.topics)))
    index = Index.load(settings.index_dir)
    if index.manifest.get("model") != settings.model:
        raise IndexProblem(
            f"the index at {settings.index_dir} was built with model {index.manifest.get('model')!r}, "
            f"not {settings.model!r}: ingest with the same model (LBP_MODEL) or rebuild the index"
        )
    existing = index.documents_metadata()
    plan = plan_ingest(parsed, existing)
    report.merges = plan.merges
    report.titles = {d.doc_id: d.title for d in plan.documents}
    for source, documents in plan.by_source():
        if dry_run:
            report.added += [d.doc_id for d in documents if d.doc_id not in existing]
            report.extended += [d.doc_id for d in documents if d.doc_id in existing]
            continue
        added = index.add_documents(documents, source, settings, log=log)
        report.added += added.added
        report.extended += added.extended
        report.passages += added.passages
    return report


def format_report(report: IngestReport) -> str:
    """The report as the command prints it."""
    titles = report.titles
    verb = "would add" if report.dry_run else "added"
    lines = [f"{path}: {fmt}, {count} records read" for path, fmt, count in report.files]
    lines += [f"{verb} {d}: {titles.get(d, '')}".rstrip(": ") for d in report.added]
    lines += [f"{verb} an abstract to {d}: {titles.get(d, '')}".rstrip(": ") for d in report.extended]
    if report.merges:
        lines.append(f"duplicates merged: {len(report.merges)}")
        lines += [f"  {m}" for m in report.merges]
    if report.errors:
        lines.append(f"records skipped: {len(report.errors)}")
        lines += [f"  {e}" for e in report.errors]
    if not report.dry_run:
        lines.append(
            f"{len(report.added)} documents added, {len(report.extended)} extended, {report.passages} new passages."
        )
    return "\n".join(lines)


def add_ingest_parser(sub: Any) -> None:
    """Register ``ingest`` on an argparse subparsers object."""
    p = sub.add_parser(
        "ingest",
        help="add references (PubMed XML, MEDLINE/.nbib, RIS, BibTeX, BEIR, topic reprints) to the index",
        description="Add references to an existing index without rebuilding it. The format of each file "
        "is detected from its content. Duplicates (same PMID, else DOI, else title) are merged; new "
        "references are numbered after the highest indexed one. Bad records are reported and skipped.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="files to ingest")
    p.add_argument("--index", type=Path, help="index folder (default: index/ or $LBP_INDEX)")
    p.add_argument("--dry-run", action="store_true", help="report what would be added; change nothing")


def _print(text: str, file: Any = None) -> None:
    """Print ``text`` even where it cannot be encoded (undecodable bytes, a narrow console)."""
    stream = file or sys.stdout
    encoding = getattr(stream, "encoding", None) or "utf-8"
    print(text.encode(encoding, "backslashreplace").decode(encoding), file=stream)


def cmd_ingest(args: argparse.Namespace) -> int:
    """Run ``ingest``: 0 when every record was added, 1 when some were skipped (and reported),
    2 when nothing could be read or there is no usable index. Never a traceback.
    """
    settings = Settings.from_env(index_dir=args.index)
    try:
        report = ingest_files(args.files, settings, dry_run=args.dry_run)
    except (FormatError, IndexProblem, OSError) as exc:
        _print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # each file is written atomically: what was added stays
        _print(f"error: ingest stopped ({type(exc).__name__}: {exc}); the index keeps what was added", file=sys.stderr)
        return 2
    _print(format_report(report))
    records_read = sum(count for _, _, count in report.files)
    if report.errors and not records_read:
        return 2
    return 1 if report.errors else 0
