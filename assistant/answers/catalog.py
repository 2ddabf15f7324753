"""What each indexed study is about, names and reports, computed once and kept.

:class:`Catalog` answers, per document, the labelled sentences (audience, section, direction,
phases, framing), the treatments its record is about (title, keywords, arms) and those it
mentions anywhere, whether its quotable sections report an outcome (safety, work, cost...),
and how much of a question's distinctive wording it contains; per sentence, the treatments and
outcomes it names; per word, the documents that contain it; per LBP phase, its share of the
human studies. :class:`assistant.answers.synthesis.EvidenceGatherer` asks it while gathering,
and the answerer asks it what a question names that no study covers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from assistant.answers.directives import is_instruction
from assistant.answers.evidence import is_framing, sentence_direction, sentence_phases
from assistant.answers.gaps import QUESTION_WORDS
from assistant.answers.questions import Treatments, Vocabulary, outcome_words, treatments_in
from assistant.search.bm25 import word_tokens

AUXILIARIES = (
    "does do did doing done is are was were be been being has have had can could should would will shall may might "
    "must what which how why when where who whom whose whether my me mine you your yours we us our they them their "
    "its any some also still just very many more most less least"
)
"""Question words that carry no topic and that bm25s's stop-word list keeps, left out of
coverage (:meth:`Catalog.coverage`)."""

# Calibrated on the dev split of datasets/lbp-dev/answers with the constants of
# assistant/answers/synthesis.py: a distinctive word is in at most this share of the documents.
DISTINCTIVE_SHARE = 0.3
QUOTABLE_SECTIONS_EXCLUDED = ("study", "citation")
# Record fields that say what a study is about (for "studies about a treatment").
ABOUT_FIELDS = ("title", "keywords", "interventions", "comparators")


@dataclass(frozen=True)
class _SentenceInfo:
    row: int
    audience: str
    section: str
    direction: str
    phases: tuple[str, ...]
    framing: bool


class Catalog:
    """Per-document and per-sentence labels of an index, each computed on first use.

    Args:
        index: the loaded :class:`~assistant.search.index.Index` (documents, sentences, BM25 terms).
        doc_meta: document id -> metadata.
        treatments: the treatment vocabulary (:mod:`assistant.answers.questions`).
        outcomes: the outcome vocabulary (safety, work, cost...; :mod:`assistant.answers.questions`).
    """

    def __init__(
        self,
        index: Any,
        doc_meta: Mapping[str, Mapping[str, Any]],
        treatments: Treatments,
        outcomes: Vocabulary = (),
    ):
        self.index = index
        self.doc_meta = doc_meta
        self.treatments = treatments
        self.outcomes = outcomes
        self._info: dict[str, list[_SentenceInfo]] = {}
        self._about: dict[str, tuple[str, ...]] | None = None
        self._authors: list[tuple[str, str, int | None]] | None = None
        self._studied: dict[str, list[str]] = {}
        self._mentions: dict[str, set[str]] = {}
        self._reports: dict[str, set[str]] = {}
        self._texts: dict[str, str] | None = None
        self._term_docs: dict[str, set[str]] | None = None
        self._labels: dict[int, frozenset[str]] = {}
        self._asking: set[str] | None = None
        self._phase_shares: dict[str, float] | None = None
        self._designs: dict[tuple[str, ...], list[str]] = {}

    def sentences_of(self, doc_id: str) -> list[_SentenceInfo]:
        """The labelled sentences of a document (computed once per document)."""
        if doc_id not in self._info:
            infos = []
            for r in self.index.sentence_rows(doc_id):
                rec = self.index.sentences[r]
                text = rec["text"]
                infos.append(
                    _SentenceInfo(
                        row=r,
                        audience=str(rec.get("audience", "clinician")),
                        section=str(rec.get("section") or ""),
                        direction=sentence_direction(text),
                        phases=sentence_phases(text),
                        framing=is_framing(text) or is_instruction(text),  # neither is a finding
                    )
                )
            self._info[doc_id] = infos
        return self._info[doc_id]

    def studied_in(self, pattern: re.Pattern[str]) -> list[str]:
        """The human studies whose title, population, condition or keywords match ``pattern``
        (the studies done in a population; computed once per pattern)."""
        cached = self._studied.get(pattern.pattern)
        if cached is not None:
            return cached
        found: list[str] = []
        for doc_id, meta in self.doc_meta.items():
            if meta.get("species") != "human":
                continue
            fields = [meta.get(k) for k in ("title", "population", "condition", "keywords")]
            text = " ".join(" ".join(map(str, f)) if isinstance(f, list) else str(f or "") for f in fields)
            if pattern.search(text):
                found.append(doc_id)
        self._studied[pattern.pattern] = found
        return found

    def authors(self) -> list[tuple[str, str, int | None]]:
        """``(doc id, first author's surname, year)`` of every study with a first author."""
        if self._authors is None:
            self._authors = []
            for doc_id, meta in self.doc_meta.items():
                first = str(meta.get("first_author") or "").split()
                year = meta.get("year")
                if first:
                    self._authors.append((doc_id, first[0], year if isinstance(year, int) else None))
        return self._authors

    def about(self) -> dict[str, tuple[str, ...]]:
        """Document id -> the treatments its record is about (title, keywords, arms), those
        of its title first."""
        if self._about is None:
            about = {}
            for doc_id, meta in self.doc_meta.items():
                fields = []
                for key in ABOUT_FIELDS:
                    value = meta.get(key)
                    fields.extend(value if isinstance(value, list) else [value] if value else [])
                named = treatments_in(" ".join(str(f) for f in fields), self.treatments.all)
                titled = set(treatments_in(str(meta.get("title") or ""), self.treatments.all))
                about[doc_id] = tuple(sorted(named, key=lambda label: label not in titled))
            self._about = about
        return self._about

    def of_designs(self, groups: Sequence[str]) -> list[str]:
        """The documents of the design groups a question asks about (``designs_asked``), in
        index order. Non-randomised evidence ("cohort") takes the human studies of no named
        design too (``study_type`` "other": service evaluations, case series)."""
        key = tuple(sorted(groups))
        if key not in self._designs:
            out = []
            for doc_id, meta in self.doc_meta.items():
                group = meta.get("design_group")
                unnamed = str(meta.get("study_type") or "").lower() == "other" and meta.get("species") == "human"
                if group in groups or ("cohort" in groups and unnamed):
                    out.append(doc_id)
            self._designs[key] = out
        return list(self._designs[key])

    def titled(self, doc_id: str, facet: str) -> bool:
        """Whether the document's title names ``facet`` (the study is specifically about it)."""
        pattern = dict(self.treatments.all).get(facet)
        return bool(pattern and pattern.search(str(self.doc_meta.get(doc_id, {}).get("title") or "")))

    def mentions(self, doc_id: str) -> set[str]:
        """The treatments a document names anywhere (its record or its text)."""
        if doc_id not in self._mentions:
            # The text only: labelling the sentences (sentences_of) is not needed to find names in it.
            text = " ".join(self.index.sentences[r]["text"] for r in self.index.sentence_rows(doc_id))
            self._mentions[doc_id] = set(self.about().get(doc_id, ())) | set(treatments_in(text, self.treatments.all))
        return self._mentions[doc_id]

    def reporting(self, outcome: str) -> set[str]:
        """The documents whose quotable sections name ``outcome`` (safety, work, cost...)."""
        if outcome not in self._reports:
            if self._texts is None:
                texts: dict[str, list[str]] = {}
                for rec in self.index.sentences:
                    if rec.get("section") not in QUOTABLE_SECTIONS_EXCLUDED:
                        texts.setdefault(str(rec["doc_id"]), []).append(rec["text"])
                self._texts = {d: " ".join(t) for d, t in texts.items()}
            pattern = dict(self.outcomes)[outcome]
            # "patients with recurrent back pain" names a population, not the outcome recurrence
            self._reports[outcome] = {d for d, text in self._texts.items() if pattern.search(outcome_words(text))}
        return self._reports[outcome]

    def labels_of(self, row: int) -> frozenset[str]:
        """The treatments and outcomes sentence ``row`` names (computed once per sentence); its
        outcomes as a question's are found (:func:`~assistant.answers.questions.outcome_words`)."""
        labels = self._labels.get(row)
        if labels is None:
            text = self.index.sentences[row]["text"]
            # "patients with recurrent back pain" names a population, not the outcome recurrence
            outcomes = treatments_in(outcome_words(text), self.outcomes)
            labels = frozenset((*treatments_in(text, self.treatments.all), *outcomes))
            self._labels[row] = labels
        return labels

    def term_documents(self) -> dict[str, set[str]]:
        """BM25 token -> the documents that contain it (from the index, computed once)."""
        if self._term_docs is None:
            self._term_docs = self.index.term_documents() if hasattr(self.index, "term_documents") else {}
        return self._term_docs

    def coverage(self, question: str, within: Collection[str] | None = None) -> Callable[[str], float]:
        """doc id -> the share of the question's distinctive words the document contains, each
        word weighted by its inverse document frequency. Distinctive: in at most
        :data:`DISTINCTIVE_SHARE` of the documents ("adherence", "dose", not "exercise"); with
        ``within``, only the words that one of those documents contains count."""
        term_docs = self.term_documents()
        n_docs = max(1, len(self.doc_meta))
        weights = {}
        if self._asking is None:  # words that ask rather than name ("actually", "good", "work"),
            # and the auxiliaries the stop-word list keeps ("does" stems to a rare "doe")
            self._asking = set(word_tokens(" ".join(sorted(QUESTION_WORDS)))) | set(word_tokens(AUXILIARIES))
        best = None if within is None else set(within)
        for token in set(word_tokens(question)) - self._asking:
            docs = term_docs.get(token)
            if docs and len(docs) <= DISTINCTIVE_SHARE * n_docs and (best is None or docs & best):
                weights[token] = float(np.log(n_docs / len(docs)))
        total = sum(weights.values())
        if not total:
            return lambda doc_id: 1.0
        return lambda doc_id: sum(w for t, w in weights.items() if doc_id in term_docs[t]) / total

    def phase_share(self, phase: str) -> float:
        """Share of the human studies whose population is of ``phase``."""
        if self._phase_shares is None:
            human = [m.get("lbp_phase") for m in self.doc_meta.values() if m.get("species") == "human"]
            self._phase_shares = {str(p): human.count(p) / len(human) for p in set(human)} if human else {}
        return self._phase_shares.get(phase, 0.0)
