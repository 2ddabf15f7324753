"""Read corpus sources into Documents.

Sources:
- an UpToDate-style topic reprint (title, authors, body with bracketed citation markers,
  "(See ...)" cross-references, boilerplate, a numbered reference list);
- a reference-records file (``references.json``: one evidence record per reference);
- a BEIR folder (``corpus.jsonl``).

A corpus folder holds one or more reprints (``*.txt``) and optionally ``references.json``.
Reference n becomes document ``ref-<n>``; the topic text becomes document ``topic``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import FormatError
from assistant.types import TOPIC_DOC_ID, Document, Section, ref_doc_id

REFERENCES_FILE = "references.json"

# Lines and paragraphs of a reprint that are publisher boilerplate, not evidence.
_BOILERPLATE = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^official reprint from uptodate",
        r"^www\.uptodate\.com",
        r"©\s*\d{4}\s*uptodate",
        r"^to continue reading this article",
        r"^subscribers log in here",
        r"^literature review current through",
        r"^this topic last updated",
        r"^the content on the uptodate website is not intended",
        r"^use of uptodate is subject to",
    )
]
_ROLE_LINE = re.compile(r"^(section editors?|deputy editors?|editor-in-chief|contributors?)$", re.I)
_CROSS_REF = re.compile(r"^\(See (.+?)\)\.?$")
_REF_LINE = re.compile(r"^\s*(\d{1,4})\.\s+(\S.*)$")
_CITATION_MARKER = re.compile(r"\[(\d+(?:\s*[-–,]\s*\d+)*)\]")
_TRAILER = re.compile(r"^\s*(Topic \d+ Version|GRAPHICS|Disclosures?:?$)", re.I)
_UPDATED = re.compile(r"This topic last updated:\s*([A-Z][a-z]{2} \d{1,2}, \d{4})")
_REVIEW_CURRENT = re.compile(r"Literature review current through:\s*([A-Z][a-z]{2} \d{4})")

# Ordered from strongest to weakest; used to rank evidence in answers.
EVIDENCE_LEVELS: dict[str, int] = {
    "cochrane review": 1,
    "systematic review and meta-analysis": 1,
    "meta-analysis": 1,
    "systematic review": 1,
    "qualitative systematic review": 1,
    "clinical practice guideline review": 1,
    "randomized controlled trial": 2,
    "prospective cohort study": 3,
    "cohort study": 3,
    "narrative review": 4,
    "other": 4,
    "animal study": 5,
}
DESIGN_GROUPS = {1: "review", 2: "trial", 3: "cohort", 4: "other", 5: "animal"}


def evidence_level(study_type: str | None) -> int:
    """1 (systematic reviews) ... 5 (animal studies); unknown designs rank 4."""
    return EVIDENCE_LEVELS.get((study_type or "other").lower(), 4)


def parse_citation_markers(text: str) -> list[int]:
    """Reference numbers cited in ``text`` by markers like ``[1]``, ``[2,3]``, ``[4-6]``.

    Returns:
        Sorted unique numbers; ranges are expanded (``[4-6]`` -> 4, 5, 6).
    """
    found: set[int] = set()
    for m in _CITATION_MARKER.finditer(text):
        for part in re.split(r"\s*,\s*", m.group(1)):
            bounds = re.split(r"\s*[-–]\s*", part)
            if any(len(b) > 6 for b in bounds):  # no reference list is that long (and int() has limits)
                continue
            if len(bounds) == 2:
                lo, hi = int(bounds[0]), int(bounds[1])
                if lo <= hi and hi - lo < 200:
                    found.update(range(lo, hi + 1))
            else:
                found.add(int(bounds[0]))
    return sorted(found)


@dataclass(frozen=True)
class ReferenceEntry:
    """One entry of a topic's numbered reference list, parsed loosely."""

    n: int
    text: str
    authors: str = ""
    title: str = ""
    journal: str = ""
    year: int | None = None


@dataclass(frozen=True)
class Topic:
    """A parsed topic reprint."""

    title: str
    authors: tuple[str, ...]
    editors: Mapping[str, tuple[str, ...]]
    paragraphs: tuple[str, ...]
    cross_references: tuple[str, ...]
    references: tuple[ReferenceEntry, ...]
    source: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


def parse_citation(n: int, text: str) -> ReferenceEntry:
    """Split ``Authors. Title. Journal Year; vol:pages.`` into its parts (best effort)."""
    # The last year-like token: titles may contain years, and the journal comes before it.
    years = list(re.finditer(r"\s((?:19|20)\d{2})(?=;|\.|\s*$|\s*:)", text))
    if not years:
        return ReferenceEntry(n=n, text=text)
    m = years[-1]
    year = int(m.group(1))
    head = text[: m.start()].strip()
    authors, _, rest = head.partition(". ")
    parts = re.split(r"(?<=[.?!])\s+", rest)
    if len(parts) >= 2:
        title = " ".join(parts[:-1]).rstrip(".")
        journal = parts[-1].rstrip(".")
    else:
        title, journal = rest.rstrip("."), ""
    return ReferenceEntry(n=n, text=text, authors=authors, title=title, journal=journal, year=year)


def _is_boilerplate(line: str) -> bool:
    return any(p.search(line) for p in _BOILERPLATE)


def _chain(numbers: Mapping[int, int], start: int) -> int:
    """How many numbered lines from line ``start`` on continue its number one by one.

    ``numbers`` maps line indices, in increasing order, to the numbers they start with.
    """
    expected = numbers[start]
    for i, n in numbers.items():
        if i >= start and n == expected:
            expected += 1
    return expected - numbers[start]


def _reference_list(
    lines: Sequence[str], source: str | Path, problems: list[FormatError] | None
) -> tuple[int, list[ReferenceEntry]]:
    """``(index of its first line, entries)`` of a reprint's numbered reference list.

    Strict (``problems`` None): the last run of numbered lines that starts at ``1.``, in
    sequence. Lenient: the run that goes on longest (a damaged or stray line elsewhere
    cannot move it), each problem appended to ``problems`` (see :func:`parse_topic_reprint`).
    """

    def problem(line: int, message: str) -> None:
        error = FormatError(source, line, message)
        if problems is None:
            raise error
        problems.append(error)

    numbers = {i: int(m.group(1)) for i, ln in enumerate(lines) if (m := _REF_LINE.match(ln))}
    starts = [i for i, ln in enumerate(lines) if re.match(r"^\s*1\.\s+\S", ln)]
    if problems is not None and numbers:
        chains = {i: _chain(numbers, i) for i in numbers if numbers[i] <= 3 or i in starts}
        best = max(chains, key=lambda i: (chains[i], numbers[i] == 1, i), default=None)
        if best is not None and numbers[best] == 1:
            starts = [best]
        elif best is not None and chains[best] >= 2:  # reference 1 damaged, the list goes on from 2 or 3
            problem(best + 1, f"the reference list starts at {numbers[best]}, not 1")
            starts = [best]
    if not starts:
        numbered = next(iter(numbers), None)
        if numbered is not None:
            raise FormatError(source, numbered + 1, "the reference list does not start at 1")
        raise FormatError(
            source,
            len(lines),
            "no numbered reference list found (lines like '  1. Author. Title. Journal 2003; 81:646.')",
        )
    ref_start = starts[-1]
    later = sorted(j for j in numbers if j > ref_start)

    references: list[ReferenceEntry] = []
    expected = numbers[ref_start] if problems is not None else 1
    skipping = False  # the continuation lines of a reference left out
    for i in range(ref_start, len(lines)):
        line = lines[i]
        if not line.strip():
            continue
        m = _REF_LINE.match(line)
        if m is None:
            if _is_boilerplate(line) or _TRAILER.match(line):
                break
            if skipping:
                continue
            if references:  # a wrapped continuation line
                prev = references[-1]
                references[-1] = parse_citation(prev.n, f"{prev.text} {line.strip()}")
                continue
            problem(i + 1, f"expected a numbered reference, got {line.strip()[:60]!r}")
            continue
        n = int(m.group(1))
        if n == expected:
            references.append(parse_citation(n, m.group(2).strip()))
            expected, skipping = n + 1, False
            continue
        message = f"reference {n} is out of sequence (expected {expected})"
        if problems is None:
            raise FormatError(source, i + 1, message)
        after = next((numbers[j] for j in later if j > i), None)
        if n > expected and after in (None, n + 1):  # a gap: the numbers go on from n (or end)
            missing = f"{expected}" if n == expected + 1 else f"{expected}-{n - 1}"
            problem(i + 1, f"{message}: reference(s) {missing} missing from the list")
            references.append(parse_citation(n, m.group(2).strip()))
            expected, skipping = n + 1, False
            continue
        problem(i + 1, f"{message}: this reference is left out")
        skipping = True
        if after == expected + 1:  # reference `expected` with a damaged number
            expected += 1
    return ref_start, references


def parse_reference_list(text: str, source: str | Path = "<string>") -> tuple[list[ReferenceEntry], list[FormatError]]:
    """The numbered reference list of a reprint alone, read leniently, and its problems.

    For a reprint whose topic cannot be read (no title or body): its references are
    still records of their own.

    Raises:
        FormatError: when there is no numbered reference list.
    """
    problems: list[FormatError] = []
    _, references = _reference_list(text.replace("\x00", "").splitlines(), source, problems)
    return references, problems


def parse_topic_reprint(text: str, source: str | Path = "<string>", problems: list[FormatError] | None = None) -> Topic:
    """Parse an UpToDate-style topic reprint.

    Args:
        text: the reprint as plain text.
        source: file name used in error messages.
        problems: when a list is given, the reader is lenient about single references and
            markers (as ``ingest`` wants it) and appends each such problem here instead of
            raising it: the reference list is the run of numbered lines that goes on
            longest; a reference numbered out of sequence is left out (its number stays
            unused, so :attr:`Topic.references` may have gaps; each entry keeps its
            ``n``); a gap in the numbering is accepted when the numbers after it continue
            from it; a citation of a reference the list does not have is kept; NUL
            characters are dropped.

    Returns:
        The parsed :class:`Topic`.

    Raises:
        FormatError: naming the file and line when the reprint has no title, no body,
            no reference list, references out of sequence, or citations to missing
            references (with ``problems``, only the first three).
    """

    def problem(line: int, message: str) -> None:
        error = FormatError(source, line, message)
        if problems is None:
            raise error
        problems.append(error)

    if not text.strip():
        raise FormatError(source, 1, "empty file: expected a topic reprint")
    if "\x00" in text:
        problem(text[: text.index("\x00")].count("\n") + 1, "binary content: expected a plain-text topic reprint")
        text = text.replace("\x00", "")  # lenient: NUL characters dropped
    lines = text.splitlines()
    ref_start, references = _reference_list(lines, source, problems)

    head = [(i, ln.strip()) for i, ln in enumerate(lines[:ref_start])]
    content = [(i, ln) for i, ln in head if ln and not _is_boilerplate(ln)]
    if not content:
        raise FormatError(source, 1, "no title found before the reference list")
    title_line, title = content[0]

    # Author block: short lines right after the title, up to the first long paragraph.
    authors: list[str] = []
    editors: dict[str, list[str]] = {}
    role: str | None = None
    body_from = len(content)
    for j in range(1, len(content)):
        _, ln = content[j]
        if _ROLE_LINE.match(ln):
            role = ln.lower()
            editors.setdefault(role, [])
            continue
        if len(ln) > 80 or ln.endswith((".", ":")) or _CROSS_REF.match(ln):
            body_from = j
            break
        (editors[role] if role else authors).append(ln)
    paragraphs: list[str] = []
    cross_refs: list[str] = []
    known = {r.n for r in references}
    for idx, ln in content[body_from:]:
        if m := _CROSS_REF.match(ln):
            cross_refs.append(m.group(1).strip().rstrip(".").strip('"“”'))
            continue
        paragraphs.append(ln)
        for n in parse_citation_markers(ln):
            if n not in known:
                problem(idx + 1, f"citation [{n}] has no entry in the reference list (1-{references[-1].n})")
    # A paragraph that only introduces cross-references ("... As examples:") is navigation.
    paragraphs = [p for p in paragraphs if not p.rstrip().endswith(":")]
    if not paragraphs:
        raise FormatError(source, title_line + 1, "no body text found between the title and the reference list")

    meta: dict[str, Any] = {}
    if m2 := _UPDATED.search(text):
        meta["last_updated"] = m2.group(1)
    if m3 := _REVIEW_CURRENT.search(text):
        meta["literature_current_through"] = m3.group(1)
    return Topic(
        title=title,
        authors=tuple(authors),
        editors={k: tuple(v) for k, v in editors.items()},
        paragraphs=tuple(paragraphs),
        cross_references=tuple(cross_refs),
        references=tuple(references),
        source=str(source),
        metadata=meta,
    )


def topic_document(topic: Topic, doc_id: str = TOPIC_DOC_ID) -> Document:
    """The topic's body text as one document; passages get their refs from markers."""
    return Document(
        doc_id=doc_id,
        title=topic.title,
        sections=tuple(Section("body", p, "clinician") for p in topic.paragraphs),
        metadata={
            "title": topic.title,
            "authors": list(topic.authors),
            "editors": {k: list(v) for k, v in topic.editors.items()},
            "study_type": "topic review",
            "design_group": "topic",
            "evidence_level": 4,
            "species": "human",
            "lbp_phase": None,
            "year": _year_of(topic.metadata.get("last_updated")),
            "cross_references": list(topic.cross_references),
            "source": topic.source,
            "refs_from_markers": True,
            **topic.metadata,
        },
    )


def _year_of(date: str | None) -> int | None:
    m = re.search(r"(\d{4})", date or "")
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------- records

_REQUIRED_RECORD_FIELDS = ("n", "citation", "title", "study_type", "summary", "plain_language")


def _record_line(raw: str, n: Any) -> int | None:
    m = re.search(rf'"n"\s*:\s*{re.escape(str(n))}\s*[,}}]', raw)
    return raw.count("\n", 0, m.start()) + 1 if m else None


def load_reference_records(path: str | Path) -> list[dict[str, Any]]:
    """Read and validate a reference-records file.

    Raises:
        FormatError: with the file and line of a JSON syntax error or of the bad record.
    """
    path = Path(path)
    raw = path.read_text(encoding="utf-8")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise FormatError(path, exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})") from exc
    records = data.get("references") if isinstance(data, dict) else data
    if not isinstance(records, list):
        raise FormatError(path, 1, "expected an object with a 'references' list")
    seen: set[int] = set()
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise FormatError(path, f"record {i + 1}", "each reference must be a JSON object")
        line = _record_line(raw, rec.get("n")) or f"record {i + 1}"
        for key in _REQUIRED_RECORD_FIELDS:
            if rec.get(key) in (None, ""):
                raise FormatError(path, line, f"reference record {rec.get('n', i + 1)} lacks required field {key!r}")
        if not isinstance(rec["n"], int) or rec["n"] < 1:
            raise FormatError(path, line, f"field 'n' must be a positive integer, got {rec['n']!r}")
        if rec["n"] in seen:
            raise FormatError(path, line, f"duplicate reference number {rec['n']}")
        seen.add(rec["n"])
        for key in ("key_findings", "keywords", "interventions", "comparators", "outcomes"):
            if rec.get(key) is not None and not isinstance(rec[key], list):
                raise FormatError(path, line, f"field {key!r} of reference {rec['n']} must be a list")
    return records


def _authors_of(citation: str) -> list[str]:
    head = citation.split(". ", 1)[0]
    return [a.strip() for a in head.split(",") if a.strip()]


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else text + "."


def _study_line(rec: Mapping[str, Any]) -> str:
    """A one-paragraph design summary built only from the record's own fields."""
    species = rec.get("species")
    design = rec["study_type"] + (f" ({species})" if species and species != "human" else "")
    parts = [f"Study design: {design}."]
    if rec.get("population"):
        parts.append(f"Population: {_sentence(rec['population'])}")
    if rec.get("sample_size"):
        level = evidence_level(rec.get("study_type"))
        unit = "Studies included" if level == 1 else "Animals" if level == 5 else "Participants"
        parts.append(f"{unit}: {rec['sample_size']}.")
    if rec.get("interventions"):
        parts.append(f"Interventions: {'; '.join(rec['interventions'])}.")
    if rec.get("comparators"):
        parts.append(f"Comparators: {'; '.join(rec['comparators'])}.")
    if rec.get("outcomes"):
        parts.append(f"Outcomes: {'; '.join(rec['outcomes'])}.")
    if rec.get("follow_up"):
        parts.append(f"Follow-up: {_sentence(str(rec['follow_up']))}")
    return " ".join(parts)


def reference_document(rec: Mapping[str, Any], source: str = "") -> Document:
    """One evidence record -> document ``ref-<n>`` with clinician and patient sections."""
    n = int(rec["n"])
    findings = " ".join(_sentence(f) for f in rec.get("key_findings") or [])
    sections = [
        Section("summary", rec["summary"].strip(), "clinician"),
        Section("key_findings", findings, "clinician"),
        Section("conclusion", _sentence(rec.get("conclusion") or ""), "clinician"),
        Section("study", _study_line(rec), "clinician"),
        Section("plain_language", rec["plain_language"].strip(), "patient"),
    ]
    level = evidence_level(rec.get("study_type"))
    pmid = rec.get("pmid")
    metadata = {
        "n": n,
        "refs": [n],
        "title": rec["title"],
        "citation": rec["citation"],
        "authors": _authors_of(rec["citation"]),
        "first_author": rec.get("first_author"),
        "journal": rec.get("journal"),
        "year": rec.get("year"),
        "pmid": pmid,
        "doi": rec.get("doi"),
        "pmcid": rec.get("pmcid"),
        "url": rec.get("url") or (f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/" if pmid else None),
        "study_type": rec.get("study_type"),
        "evidence_level": level,
        "design_group": DESIGN_GROUPS[level],
        "species": rec.get("species"),
        "condition": rec.get("condition"),
        "lbp_phase": rec.get("lbp_phase"),
        "sample_size": rec.get("sample_size"),
        "population": rec.get("population"),
        "interventions": list(rec.get("interventions") or []),
        "comparators": list(rec.get("comparators") or []),
        "outcomes": list(rec.get("outcomes") or []),
        "follow_up": rec.get("follow_up"),
        "keywords": list(rec.get("keywords") or []),
        "confidence": rec.get("confidence"),
        "source_note": rec.get("source_note"),
        "source": source,
        "has_abstract": rec.get("confidence") != "low",
    }
    return Document(
        doc_id=ref_doc_id(n),
        title=rec["title"],
        sections=tuple(s for s in sections if s.text.strip(". ")),
        metadata=metadata,
    )


def citation_document(c: ReferenceEntry, source: str = "") -> Document:
    """A reference known only by its citation (no evidence record)."""
    return Document(
        doc_id=ref_doc_id(c.n),
        title=c.title or c.text,
        sections=(Section("citation", c.text, "clinician"),),
        metadata={
            "n": c.n,
            "refs": [c.n],
            "title": c.title or c.text,
            "citation": c.text,
            "authors": [a.strip() for a in c.authors.split(",") if a.strip()],
            "journal": c.journal,
            "year": c.year,
            "pmid": None,
            "doi": None,
            "url": None,
            "study_type": None,
            "evidence_level": 4,
            "design_group": "other",
            "species": None,
            "lbp_phase": None,
            "confidence": "low",
            "source_note": "Citation only; no evidence record.",
            "source": source,
            "has_abstract": False,
        },
    )


# --------------------------------------------------------------------------- folders


def is_beir_folder(path: Path) -> bool:
    return (path / "corpus.jsonl").is_file() or path.name == "corpus.jsonl"


def load_beir_documents(path: str | Path) -> list[Document]:
    """A BEIR ``corpus.jsonl`` (or its folder) -> one single-section document per line."""
    from assistant.documents.beir_corpus import read_corpus

    path = Path(path)
    file = path if path.is_file() else path / "corpus.jsonl"
    docs = []
    for row in read_corpus(file):
        title = str(row.get("title") or "")
        meta = {"title": title, **dict(row.get("metadata") or {})}
        docs.append(
            Document(doc_id=str(row["_id"]), title=title, sections=(Section("body", str(row["text"])),), metadata=meta)
        )
    return docs


def load_corpus(path: str | Path) -> list[Document]:
    """Every document of a corpus folder (reprints + records) or a BEIR folder.

    Args:
        path: a corpus folder, a BEIR folder or ``corpus.jsonl``, or one reprint file.

    Returns:
        Documents in a stable order: ``topic`` first, then ``ref-1`` ... ``ref-N``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"corpus not found: {path}")
    if is_beir_folder(path):
        return load_beir_documents(path)
    files = [path] if path.is_file() else sorted(p for p in path.glob("*.txt"))
    if not files:
        raise FormatError(path, None, "no topic reprint (*.txt) or corpus.jsonl found in this folder")
    documents: list[Document] = []
    citations: dict[int, ReferenceEntry] = {}
    for i, f in enumerate(files):
        topic = parse_topic_reprint(f.read_text(encoding="utf-8"), source=f)
        doc_id = TOPIC_DOC_ID if i == 0 else f"topic-{_slug(topic.title)}"
        documents.append(topic_document(topic, doc_id))
        if i == 0:
            citations = {c.n: c for c in topic.references}
    records_path = (path if path.is_dir() else path.parent) / REFERENCES_FILE
    records = {r["n"]: r for r in load_reference_records(records_path)} if records_path.is_file() else {}
    for n in sorted(set(citations) | set(records)):
        if n in records:
            documents.append(reference_document(records[n], source=str(records_path)))
        else:
            documents.append(citation_document(citations[n], source=str(files[0])))
    return documents


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "untitled"


def corpus_files(path: str | Path) -> list[Path]:
    """The files whose content defines the corpus (for hashing)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if (path / "corpus.jsonl").is_file():
        return [path / "corpus.jsonl"]
    return sorted([*path.glob("*.txt"), *path.glob(REFERENCES_FILE)])


def documents_hash(documents: Iterable[Document]) -> str:
    """Content hash of documents (ids, titles, section texts, metadata)."""
    h = hashlib.sha256()
    for d in documents:
        payload = {
            "id": d.doc_id,
            "title": d.title,
            "sections": [[s.name, s.audience, s.text] for s in d.sections],
            "metadata": d.metadata,
        }
        h.update(json.dumps(payload, sort_keys=True, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()


def export_beir(documents: Sequence[Document], out_dir: str | Path) -> Path:
    """Write documents as a BEIR ``corpus.jsonl`` (``_id``, ``title``, ``text``, ``metadata``)."""
    from assistant.documents.beir_corpus import write_corpus

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "_id": d.doc_id,
            "title": d.title,
            "text": d.text,
            "metadata": {k: v for k, v in d.metadata.items() if k in _EXPORT_KEYS},
        }
        for d in documents
    ]
    target = out / "corpus.jsonl"
    write_corpus(target, rows)
    return target


_EXPORT_KEYS = ("n", "pmid", "doi", "year", "study_type", "species", "lbp_phase", "journal", "url")
