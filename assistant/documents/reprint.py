"""Read an UpToDate-style topic reprint: title, authors and editors, body paragraphs with
bracketed citation markers, "(See ...)" cross-references, boilerplate, and the numbered
reference list, strictly or (for ``ingest``) leniently; and the citation markers ``[n]``
that tie text to references. The topic text becomes one document (:func:`topic_document`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import FormatError
from assistant.types import TOPIC_DOC_ID, Document, Section

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
