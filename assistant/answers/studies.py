"""What a gathering yields: the studies considered for an answer, and their quotable findings.

A :class:`Study` is a document with its rank and scores for one question and the sentences it
contributes, each a :class:`Finding` (clinician ``findings``, plain-language ``plain``).
:class:`assistant.answers.synthesis.EvidenceGatherer` makes them; :mod:`assistant.answers.compose`,
:mod:`assistant.answers.clinician` and :mod:`assistant.answers.patient` compose them into answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from assistant.answers.evidence import phase_key


@dataclass(frozen=True)
class Finding:
    """One quotable sentence of a study, scored for a question.

    Attributes:
        row: its row in the index's sentence table.
        text: the sentence, verbatim.
        doc_id / passage_id: where it stands.
        refs: the reference numbers it is cited as.
        score: similarity to the question plus the section, result and treatment bonuses.
        similarity: cosine to the question.
        direction / phases: see :mod:`assistant.answers.evidence`.
        also: (refs, passage_id, text) of near-identical sentences of other studies that
            say the same thing (their studies are cited with this claim).
        on_facet: it names a treatment or outcome the question asks about.
        precedent: the part of ``score`` it owes to stating key facts of similar questions
            (:data:`assistant.answers.precedents.FACT_BONUS`).
    """

    row: int
    text: str
    doc_id: str
    passage_id: str
    refs: tuple[int, ...]
    score: float
    similarity: float
    direction: str
    phases: tuple[str, ...]
    also: tuple[tuple[tuple[int, ...], str, str], ...] = ()
    on_facet: bool = False
    precedent: float = 0.0

    @property
    def all_refs(self) -> tuple[int, ...]:
        return tuple(sorted({*self.refs, *(n for refs, _, _ in self.also for n in refs)}))


@dataclass(eq=False)
class Study:
    """A document considered for the answer, with what it contributes.

    ``findings`` are clinician sentences (they give the direction in both modes);
    ``plain`` its plain-language sentences for patient answers.
    """

    doc_id: str
    meta: Mapping[str, Any]
    rank: int
    relative_score: float
    findings: list[Finding] = field(default_factory=list)
    plain: list[Finding] = field(default_factory=list)
    facets: tuple[str, ...] = ()
    coverage: float = 1.0
    plain_pool: list[Finding] = field(default_factory=list)
    """Every quotable plain sentence of the study for the question, best first, before the
    selection kept :attr:`plain`: the patient answer's last resort for an easier sentence."""
    route: str = ""
    """Why the study was kept: ``named`` (the question names it by first author, "Searle et
    al. (2015)"), ``best`` (top document), ``strong`` (a result sentence close
    to the question), ``cut`` (the calibrated cut), ``treatment`` or ``outcome`` (the best
    study about a treatment or outcome asked about), ``precedent`` (similar questions needed
    it), ``selector`` (the learned selector cites it where the rules had left it out);
    ``related`` is prefixed when it comes
    from the broader question of an evidence gap. Shown by ``--calibrate-evidence``."""

    @property
    def level(self) -> int:
        return int(self.meta.get("evidence_level", 4))

    @property
    def animal(self) -> bool:
        return self.meta.get("design_group") == "animal"

    @property
    def top_similarity(self) -> float:
        """Cosine of the study's best result sentence (either audience) to the question."""
        return max((f.similarity for f in (*self.findings, *self.plain)), default=0.0)

    @property
    def result_similarity(self) -> float:
        """Cosine of the study's best sentence that reports a result (benefit, no difference,
        uncertain, harm): a study is relevant for what it found, not for its background."""
        return max((f.similarity for f in (*self.findings, *self.plain) if f.direction != "finding"), default=0.0)

    @property
    def relevance(self) -> float:
        """Relative fused score plus best result-sentence similarity (orders candidates)."""
        return self.relative_score + self.top_similarity

    @property
    def direction(self) -> str:
        """The direction of the study's main (best) finding, ``finding`` without one."""
        return self.findings[0].direction if self.findings else "finding"

    def phase_of(self, finding: Finding) -> str | None:
        return phase_key(finding.phases, self.meta.get("lbp_phase"))
