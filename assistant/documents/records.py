"""Evidence records: the reference-records file (``references.json``: one record per
reference, validated with file and line), the evidence levels of study designs, and the
document ``ref-<n>`` made from a record, or from a bare citation where no record exists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from assistant.documents.reprint import ReferenceEntry
from assistant.errors import FormatError
from assistant.types import Document, Section, ref_doc_id

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
