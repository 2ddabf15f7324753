"""Frozen dataclasses carried through the pipeline: Document -> Passage -> Hit -> Answer.

Dict formats appear only at the edges (BEIR/TREC files, JSON output); inside the package
these types are passed along unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Audience = Literal["clinician", "patient"]
Role = Literal["user", "assistant"]

TOPIC_DOC_ID = "topic"


def ref_doc_id(n: int) -> str:
    """Document id of reference ``n`` of the topic's list (the contract ``ref-<n>``)."""
    return f"ref-{n}"


def passage_id(doc_id: str, k: int) -> str:
    """Passage id ``<doc_id>#<k>`` (k counts from 0 within the document)."""
    return f"{doc_id}#{k}"


def doc_id_of(passage_id_: str) -> str:
    """The document id part of a passage id."""
    return passage_id_.rsplit("#", 1)[0]


@dataclass(frozen=True)
class Section:
    """A run of text inside a document that is chunked on its own.

    Attributes:
        name: what the text is (``body``, ``summary``, ``key_findings``, ``plain_language``...).
        text: the text itself.
        audience: who it is written for; passages inherit it.
    """

    name: str
    text: str
    audience: Audience = "clinician"


@dataclass(frozen=True)
class Document:
    """One retrievable document (``topic``, ``ref-<n>`` or an id from another corpus).

    Attributes:
        doc_id: stable id used in runs, qrels and citations.
        title: document title.
        sections: the texts to chunk, in order.
        metadata: provenance and facets (refs, study_type, species, lbp_phase, year, pmid,
            doi, url, authors, journal, citation, confidence, source_note, keywords ...).
    """

    doc_id: str
    title: str
    sections: tuple[Section, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """All section texts joined by blank lines."""
        return "\n\n".join(s.text for s in self.sections)


@dataclass(frozen=True)
class Passage:
    """A chunk of one document section; line i of ``passages.jsonl`` is FAISS row i.

    Attributes:
        id: ``<doc_id>#<k>``.
        doc_id: the document it belongs to.
        text: the passage text shown to people and quoted in answers.
        metadata: the document's facets plus ``section``, ``audience``, ``refs`` (the
            reference numbers the passage cites or stands for), ``n_tokens`` (embedding
            model tokens of the embedded text) and ``n_tiktoken`` (cl100k tokens of ``text``).
        context: a short header (title, keywords) embedded and BM25-indexed with the
            text but not shown as part of it.
    """

    id: str
    doc_id: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    context: str = ""

    @property
    def refs(self) -> tuple[int, ...]:
        return tuple(self.metadata.get("refs", ()))

    @property
    def audience(self) -> str:
        return str(self.metadata.get("audience", "clinician"))

    @property
    def index_text(self) -> str:
        """The text that is embedded and BM25-indexed."""
        return f"{self.context}\n{self.text}" if self.context else self.text

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "doc_id": self.doc_id,
            "text": self.text,
            "context": self.context,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Passage:
        return cls(
            id=d["id"],
            doc_id=d["doc_id"],
            text=d["text"],
            metadata=dict(d.get("metadata", {})),
            context=d.get("context", ""),
        )


@dataclass(frozen=True)
class Hit:
    """A retrieved passage with its score and where the score came from.

    Attributes:
        passage: the passage.
        score: the final score of the retriever that produced the hit (higher is better).
        rank: 1-based rank in the result list.
        retriever: ``dense``, ``bm25`` or ``hybrid``.
        components: per-retriever raw scores and ranks, e.g. ``{"dense": 0.61, "bm25_rank": 3}``.
    """

    passage: Passage
    score: float
    rank: int
    retriever: str
    components: Mapping[str, float] = field(default_factory=dict)

    @property
    def doc_id(self) -> str:
        return self.passage.doc_id

    @property
    def passage_id(self) -> str:
        return self.passage.id

    @property
    def text(self) -> str:
        return self.passage.text

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self.passage.metadata

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "doc_id": self.doc_id,
            "passage_id": self.passage_id,
            "score": self.score,
            "retriever": self.retriever,
            "components": dict(self.components),
            "text": self.text,
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True)
class Turn:
    """One message of a conversation, as Gradio and OpenAI represent it."""

    role: Role
    content: str


@dataclass(frozen=True)
class Citation:
    """A numbered source of an answer: reference ``n`` and the passage quoted from it.

    ``quotes`` are the answer's sentences taken from ``passage`` (for highlighting).
    """

    n: int
    doc_id: str
    passage_id: str
    title: str
    authors: tuple[str, ...]
    journal: str | None
    year: int | None
    pmid: str | None
    doi: str | None
    url: str | None
    study_type: str | None
    species: str | None
    passage: str
    quotes: tuple[str, ...] = ()
    confidence: str | None = None
    source_note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "doc_id": self.doc_id,
            "passage_id": self.passage_id,
            "title": self.title,
            "authors": list(self.authors),
            "journal": self.journal,
            "year": self.year,
            "pmid": self.pmid,
            "doi": self.doi,
            "url": self.url,
            "study_type": self.study_type,
            "species": self.species,
            "passage": self.passage,
            "quotes": list(self.quotes),
            "confidence": self.confidence,
            "source_note": self.source_note,
        }

    def reference_line(self) -> str:
        """``n. Authors. Title. Journal Year. PMID: x. DOI: y. URL``."""
        authors = ", ".join(self.authors[:3]) + (", et al" if len(self.authors) > 3 else "")
        parts = [f"{self.n}. {authors}." if authors else f"{self.n}.", f"{self.title.rstrip('.')}."]
        if self.journal or self.year:
            parts.append(" ".join(str(x) for x in (self.journal, self.year) if x) + ".")
        if self.pmid:
            parts.append(f"PMID: {self.pmid}.")
        if self.doi:
            parts.append(f"DOI: {self.doi}.")
        if self.url:
            parts.append(self.url)
        return " ".join(parts)


Direction = Literal["benefit", "no difference", "uncertain", "harm", "finding"]
DIRECTIONS: tuple[str, ...] = ("benefit", "no difference", "uncertain", "harm", "finding")


@dataclass(frozen=True)
class EvidenceRow:
    """One row of an answer's evidence table: a cited study and what it showed.

    Every field but ``result`` and ``direction`` is copied from the study's record;
    ``result`` is a verbatim sentence of passage ``passage_id`` (the study's main result for
    the question) and ``direction`` is computed from it.

    Attributes:
        n: the reference number (``[n]`` in the answer).
        doc_id: ``ref-<n>``.
        study: first author and year (``"Hayden JA 2005"``).
        design: the study type as recorded (``"Cochrane review"``).
        design_group: ``review``, ``trial``, ``cohort``, ``animal`` or ``other``.
        species: ``human``, ``rat``, ``mouse``... or None.
        size: participants, studies or animals (``"61 studies"``, ``"148 participants"``), or "".
        population: who was studied, as recorded ("" when the record does not say).
        phase: the LBP phase of the population (``acute``, ``chronic``, ``mixed``...) or None.
        comparison: ``interventions vs comparators`` ("" when the record names neither).
        result: the main result, quoted.
        passage_id: the passage ``result`` is quoted from.
        direction: ``benefit``, ``no difference``, ``uncertain``, ``harm`` or ``finding``
            (a result that is neither, e.g. a prevalence).
        related: the study does not cover something the question names (see the answer's
            first line); it is shown as related evidence.
    """

    n: int
    doc_id: str
    study: str
    design: str
    design_group: str
    species: str | None
    size: str
    population: str
    phase: str | None
    comparison: str
    result: str
    passage_id: str
    direction: str
    related: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "doc_id": self.doc_id,
            "study": self.study,
            "design": self.design,
            "design_group": self.design_group,
            "species": self.species,
            "size": self.size,
            "population": self.population,
            "phase": self.phase,
            "comparison": self.comparison,
            "result": self.result,
            "passage_id": self.passage_id,
            "direction": self.direction,
            "related": self.related,
        }

    def to_text(self) -> str:
        """The row as a few lines of plain text (the CLI's evidence table)."""
        design = self.design + (f", {self.species}" if self.species and self.species != "human" else "")
        phase = f"{self.phase} LBP" if self.phase and self.phase not in ("not applicable", "mixed") else self.phase
        head = " | ".join(x for x in (f"[{self.n}] {self.study}", design, self.size, phase or "", self.direction) if x)
        lines = [head + (" (related evidence)" if self.related else "")]
        for label, value in (("Population", self.population), ("Comparison", self.comparison)):
            if value:
                lines.append(f"    {label}: {value}")
        lines.append(f'    Result: "{self.result}"')
        return "\n".join(lines)


@dataclass(frozen=True)
class Answer:
    """What :meth:`assistant.Assistant.ask` returns.

    ``to_dict()`` is the contract of ``python -m assistant ask --json``: ``answer``,
    ``citations``, ``abstained``, ``red_flag``, ``mode``, ``query``, ``evidence`` (the
    evidence table: one :class:`EvidenceRow` per cited study) plus ``notices``, ``red_flags``
    and ``sentences`` for people and tools that want the detail.
    """

    answer: str
    citations: tuple[Citation, ...]
    abstained: bool
    red_flag: bool
    mode: str
    query: str
    notices: tuple[str, ...] = ()
    red_flags: tuple[str, ...] = ()
    sentences: tuple[Mapping[str, Any], ...] = ()
    generator: str = "extractive"
    evidence: tuple[EvidenceRow, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "citations": [c.to_dict() for c in self.citations],
            "abstained": self.abstained,
            "red_flag": self.red_flag,
            "mode": self.mode,
            "query": self.query,
            "notices": list(self.notices),
            "red_flags": list(self.red_flags),
            "sentences": [dict(s) for s in self.sentences],
            "generator": self.generator,
            "evidence": [row.to_dict() for row in self.evidence],
        }

    def references_text(self) -> str:
        """The numbered reference list, one line per cited reference, in number order."""
        lines: dict[int, str] = {}
        for c in sorted(self.citations, key=lambda c: c.n):
            lines.setdefault(c.n, c.reference_line())
        return "\n".join(lines.values())

    def to_text(self) -> str:
        """Answer, then the evidence table and the reference list (what the CLI prints)."""
        if not self.citations:
            return self.answer
        table = "\n".join(row.to_text() for row in self.evidence)
        table = f"\n\nEvidence table\n{table}" if table else ""
        return f"{self.answer}{table}\n\nReferences\n{self.references_text()}"
