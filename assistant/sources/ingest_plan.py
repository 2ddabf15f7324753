"""What an ingest adds: duplicates merged, new references numbered, topic citations renumbered.

:func:`plan_ingest` decides, from the parsed files and the metadata of the indexed
documents, without touching the index, which documents are new, which indexed documents
get an abstract, and which records were duplicates; :mod:`assistant.sources.ingest` then
hands the documents to the index. New references are numbered after the highest number
already indexed, and the ``[n]`` markers of a topic reprint are renumbered to match
(:func:`renumber_citations`).

Duplicates: two records are the same work when both have a PMID and the PMIDs are equal;
else when both have a DOI and the DOIs are equal (case-insensitive); else when their
normalized titles (lowercase, letters and digits only) are equal and their years, if both
known, are at most one apart (e-pub versus print). A duplicate of an indexed document adds
its abstract to that document when the document has no ``abstract`` section yet; a
duplicate within the batch is merged into one record (the one with an abstract wins,
blanks are filled from the other).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from assistant.sources.records import ParsedFile, Record, TopicRecord, record_to_document
from assistant.types import TOPIC_DOC_ID, Document, Section, ref_doc_id

__all__ = [
    "IngestPlan",
    "Merge",
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
    from assistant.documents.reprint import topic_document

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
