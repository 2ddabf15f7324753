"""Grounded, cited answers that synthesize the evidence: the :class:`Answerer`.

The default answerer is extractive and deterministic. It checks a question for red flags
(:mod:`assistant.answers.safety`) and for scope, abstaining with a reason when the indexed
evidence does not cover it (:mod:`assistant.answers.scope`); rewrites a follow-up into a
standalone question (:mod:`assistant.answers.conversation`); notes what the question names
that no indexed study covers (:mod:`assistant.answers.gaps`). For each part of the question
(a multi-part question is split, :func:`assistant.answers.questions.split_question`) it
gathers every study that bears on it (:class:`assistant.answers.synthesis.EvidenceGatherer`:
hybrid ranking, a calibrated relevance cut, at most eight studies, human evidence before
animal evidence), then composes the clinician answer (:mod:`assistant.answers.clinician`:
bottom line, quoted results grouped by what they report, notes on the strength of the
evidence) or the patient answer (:mod:`assistant.answers.patient`: plain-language summaries,
at most about 150 words at US grade 8 or below, no doses, a reminder), and cites it: one
:class:`~assistant.types.Citation` per quoted reference and passage, and an evidence table with
one row per cited study (:class:`assistant.types.EvidenceRow`).

Nothing is paraphrased: every evidence sentence equals its source sentence once citation
markers and whitespace are ignored (:func:`traceable_share`); what is composed (bottom line,
counts, headings, notes) is computed from the record fields and reads as such.

An optional LLM (any OpenAI-compatible endpoint, see :mod:`assistant.answers.llm`) can write the
answer instead; its output is validated and replaced by the extractive answer when it
cites a source it was not given or leaves a sentence uncited.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.answers.clinician import ClinicianComposer
from assistant.answers.compose import Draft, evidence_rows, related_documents, strip_markers
from assistant.answers.conversation import (
    SHORT_MESSAGE_WORDS,
    content_words,
    normalize_history,
    standalone_query,
    with_topic,
)
from assistant.answers.gaps import Gap, find_gaps, gap_line, population_gaps, related_question, word_at
from assistant.answers.patient import GLOSSARY_FILE, PatientComposer
from assistant.answers.precedents import Precedents, Votes, load_precedents
from assistant.answers.questions import (
    OUTCOMES_FILE,
    POPULATIONS_FILE,
    TREATMENTS_FILE,
    about_animals,
    asks_comparison,
    compared_subject,
    designs_asked,
    load_evidence_aspects,
    load_outcomes,
    load_populations,
    load_treatments,
    names_topic,
    split_question,
    treatments_in,
)
from assistant.answers.scope import THRESHOLDS, Coverage, assess_coverage, collapse_repeats, detect_intent
from assistant.answers.selector import Selector, load_selector
from assistant.answers.studies import Study
from assistant.answers.synthesis import EvidenceGatherer, FollowUp, merge_studies
from assistant.config import Settings
from assistant.documents.chunking import split_sentences
from assistant.errors import FormatError
from assistant.search.bm25 import bm25_tokenize, word_tokens
from assistant.search.expansion import spelled_out
from assistant.search.fusion import aggregate_max, top_k
from assistant.search.retrieval import Filters, Retriever, filter_key
from assistant.types import Answer, Citation, Hit, Turn

MODES = ("clinician", "patient")
MAX_QUESTION_CHARS = 2000

EMPTY_QUESTION = "Please type a question about exercise and low back pain, for example: Is walking good for back pain?"
TRUNCATED_NOTICE = "Your message was long, so only its first {n:,} characters were used."
ABSTAIN_CLINICIAN = "The indexed evidence does not cover this question, so no answer is given."
ABSTAIN_PATIENT = "Sorry, I can't answer that from the studies I have."
SUGGEST_CLINICIAN = (
    "It answers questions on exercise-based therapy for low back pain, such as McKenzie, Pilates, yoga, "
    "stabilization or walking, bed rest versus staying active, preventing recurrences, and animal studies of mechanisms."
)
SUGGEST_PATIENT = (
    "I can tell you what research says about exercise for back pain, like walking, yoga or staying active."
)
OOS_REASON = {
    "dosing": "Medicines and doses are outside what this assistant covers.",
    "medication": "Medicines are outside what this assistant covers.",
    "surgery": "Surgery is outside what this assistant covers.",
    "procedure": "Injections and other procedures are outside what this assistant covers.",
    "imaging": "Scans and tests are outside what this assistant covers.",
    "instructions": "This assistant only answers questions about the evidence and follows no other instructions.",
}
OOS_REASON_PATIENT = {
    "dosing": "I can't help with medicines or how much of them to take.",
    "medication": "I can't help with medicines.",
    "surgery": "I can't help with questions about surgery.",
    "procedure": "I can't help with shots or other procedures.",
    "imaging": "I can't help with scans or tests.",
    "instructions": "I only answer questions on exercise and back pain.",
}
"""The same reasons in plain words (patient answers stay at grade 8 or below, abstentions too)."""
RED_FLAG_SCOPE_CLINICIAN = "The exercise evidence indexed here concerns nonspecific low back pain; it does not apply until serious causes are excluded."
RED_FLAG_SCOPE_PATIENT = "Exercise advice is for common back pain. Get checked first."
MAX_JUDGED_SENTENCES = 4
EVIDENCE_HITS = 40  # passages searched for the evidence of a question (or part)


TOPICAL_DOCS = 5
"""A later part of a question keeps the studies among the best documents of the whole question
(calibrated on the dev split of the broad questions), and those of :data:`TOPICAL_ROUTES`."""
TOPICAL_ROUTES = ("treatment", "named")
"""Routes by which a study of a later part may come in without being among the best documents
of the whole question: it is about a treatment the part names, or the part names it by its first
author ("what did Steffens et al. 2014 find?"). (An outcome alone is not enough:
"how long does the protective effect last?" after a question on recurrences is not asking
about every study that followed people up.)"""
FOLLOW_UP_DOCS = 5
"""A follow-up's own best documents (by a search on its words alone) that join the candidates:
the question as searched carries the previous question's topic, whose words outnumber its own
("what do the animal studies suggest about mechanisms then?" after a question on strength
gains in chronic LBP found no animal study)."""


class Answerer:
    """Turns a question (and history) into an :class:`~assistant.types.Answer`."""

    def __init__(self, retriever: Retriever, settings: Settings, llm_config: Any = None) -> None:
        self.retriever = retriever
        self.index = retriever.index
        self.settings = settings
        if llm_config is None:
            from assistant.answers.llm import LLMConfig

            llm_config = LLMConfig.from_env()
        self.llm_config = llm_config
        self._doc_meta = self.index.documents_metadata()
        self._vocab: set[str] = set(getattr(self.index.bm25, "vocab_dict", {}) or {})
        self._thresholds = THRESHOLDS[self.index.encoder_path is not None]
        self.treatments = load_treatments(self._corpus_file(TREATMENTS_FILE))
        self.populations = load_populations(self._corpus_file(POPULATIONS_FILE))
        evidence_aspects = load_evidence_aspects(self._corpus_file(OUTCOMES_FILE))
        self.gatherer = EvidenceGatherer(
            self.index,
            self.retriever.encoder.encode_query,
            self._doc_meta,
            self.retriever.expand,
            self.treatments,
            load_outcomes(self._corpus_file(OUTCOMES_FILE)),
            [label for label, _ in evidence_aspects],
        )
        self.clinician = ClinicianComposer(
            self.gatherer.facets, self.retriever.expand, self.treatments.all, self._doc_meta, evidence_aspects
        )
        self.patient = PatientComposer(
            self.index, self.retriever.expand, self._doc_meta, self._corpus_file(GLOSSARY_FILE)
        )
        self._precedents: Precedents | None = None
        self._precedents_loaded = False
        self._precedents_lock = threading.Lock()

    # ------------------------------------------------------------------ helpers

    @property
    def precedents(self) -> Precedents | None:
        """The bank of labelled questions (:mod:`assistant.answers.precedents`), loaded on
        first use; None when :attr:`~assistant.config.Settings.precedents` is off or the bank
        names no indexed study. The learned selector (:mod:`assistant.answers.selector`,
        :attr:`~assistant.config.Settings.selector`) is loaded with it, into the gatherer."""
        if not self._precedents_loaded:
            with self._precedents_lock:
                if not self._precedents_loaded:
                    self._precedents = self._load_precedents()
                    self.gatherer.selector = self._load_selector() if self._precedents is not None else None
                    self._precedents_loaded = True
        return self._precedents

    def doc_of_ref(self) -> dict[int, str]:
        """Reference number -> document id, for the documents that have a number."""
        return {int(m["n"]): d for d, m in self._doc_meta.items() if isinstance(m.get("n"), int)}

    def _load_selector(self) -> Selector | None:
        """The learned selector of :attr:`~assistant.config.Settings.selector`; a file trained
        for other features (an older version) is set aside with a warning, and the rules and
        votes answer alone until ``python -m assistant train-selector`` trains it again."""
        path = self.settings.selector_path
        if path is None:
            return None
        try:
            return load_selector(path)
        except FormatError as exc:
            logging.getLogger(__name__).warning("learned selector not used: %s", exc)
            return None

    def _load_precedents(self) -> Precedents | None:
        path = self.settings.precedents_path
        if path is None:
            return None
        if not path.is_file():
            raise FileNotFoundError(f"precedents file {path} does not exist (LBP_PRECEDENTS=off turns them off)")
        from assistant.encoders.adaptation import cache_dir

        def standalone(text: str, history: Sequence[str]) -> str:
            turns = [Turn("user", h) for h in history]
            query = standalone_query(text, turns, self._encode, self._needs_context, self._thresholds.substitution)
            return self.gatherer.expand(query)

        manifest = self.index.manifest
        # the vectors depend on the index, the query encoder and the expansion of questions
        key = "|".join(
            [
                *(str(manifest.get(k)) for k in ("created_at", "corpus_hash", "model")),
                type(getattr(self.retriever.encoder, "encoder", self.retriever.encoder)).__name__,
                str(self.settings.query_expansion),
            ]
        )
        return load_precedents(
            path,
            standalone,
            self.retriever.encoder.encode,
            self.doc_of_ref(),
            cache_dir(self.settings.adapt_cache).parent / "precedents",
            key,
            lambda doc_id: [(row, self.index.sentences[row]["text"]) for row in self.index.sentence_rows(doc_id)],
        )

    def votes(self, query: str, by_message: bool = False) -> Votes | None:
        """The precedents' votes for the standalone ``query`` (None without a bank);
        ``by_message``: for a message's own words, against the bank's questions as written
        (see :meth:`assistant.answers.precedents.Precedents.votes`)."""
        bank = self.precedents
        if bank is None:
            return None
        return bank.votes(self.gatherer.encode(self.gatherer.expand(query)), by_message=by_message)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.vstack([self.retriever.encoder.encode_query(t) for t in texts])

    def _meta(self, doc_id: str) -> Mapping[str, Any]:
        return self._doc_meta.get(doc_id, {})

    def _corpus_file(self, name: str) -> str:
        return str(Path(self.settings.corpus_dir) / name)

    def _needs_context(self, message: str) -> bool:
        """True when a message in a conversation names no topic of its own (no condition,
        population, treatment or animal model: "Does the effect last once training stops?"),
        or is short and retrieves nothing close on its own."""
        if not names_topic(message, self.treatments):
            return True
        if len(content_words(message)) > SHORT_MESSAGE_WORDS:
            return False
        top = self.retriever.dense_scores(message, 1)
        return not top or top[0][1] < self._thresholds.follow_up

    def coverage(self, query: str, hits: Sequence[Hit], asked: str | None = None) -> Coverage:
        """Decide from retrieval evidence whether the corpus covers ``query`` (see
        :mod:`assistant.answers.scope`); ``asked``: the words out-of-scope intents are judged
        on, when not ``query``."""
        # Judged on the question (own words or expanded, by model kind; no feedback), over the whole index.
        # A long question that tells a story before it asks is also judged sentence by sentence.
        dense_top = 0.0
        sentences = [s for s in split_sentences(query) if len(s.split()) >= 3]
        for text in [query, *(sentences[:MAX_JUDGED_SENTENCES] if len(sentences) > 1 else [])]:
            judged = self.retriever.expand(text) if self._thresholds.expanded else text
            raw = self.retriever.dense_scores(collapse_repeats(judged), 1)
            dense_top = max(dense_top, raw[0][1] if raw else 0.0)
            if dense_top >= self._thresholds.with_unknown_terms:
                break  # clear already: no sentence can change the decision
        bm25_top = max((h.components.get("bm25", 0.0) for h in hits), default=0.0)
        dense_best = max(hits, key=lambda h: h.components.get("dense", -1.0)).doc_id if hits else None
        bm25_ranked = sorted((h for h in hits if h.components.get("bm25")), key=lambda h: -h.components["bm25"])
        agreement = dense_best in {h.doc_id for h in bm25_ranked[:3]}
        tokens = bm25_tokenize([spelled_out(query, self.retriever.abbreviations)], return_ids=False)[0]
        return assess_coverage(query, dense_top, bm25_top, agreement, tokens, self._vocab, self._thresholds, asked)

    def gaps(self, question: str) -> list[Gap]:
        """What ``question`` names that the indexed evidence does not cover (see
        :mod:`assistant.answers.gaps`): words no document contains, and treatments that only animal
        studies (or no study) mention."""
        low = question.lower()
        lay = [m.span() for pattern, _ in self.retriever.vocabulary.patterns for m in pattern.finditer(low)]
        known = self.retriever.abbreviations.pattern  # "LTPA" is leisure-time physical activity, not a gap
        lay += [m.span() for m in known.finditer(question)] if known is not None else []
        gaps = find_gaps(question, word_tokens, self.gatherer.catalog.term_documents(), lay)
        animals = about_animals(question)
        for label, pattern in self.treatments.all:
            m = pattern.search(question)
            if not m:
                continue
            docs = [d for d in self._doc_meta if label in self.gatherer.catalog.mentions(d)]
            phrase = word_at(question, m.start(), m.end())
            if not docs:
                gaps.append(Gap(phrase, "absent", True))
            elif not animals and all(self._meta(d).get("design_group") == "animal" for d in docs):
                gaps.append(Gap(phrase, "animal", True))
        patterns = dict(self.populations)
        studied = self.gatherer.catalog.studied_in
        for gap in population_gaps(question, self.populations, lambda label: bool(studied(patterns[label]))):
            words = gap.phrase.lower()
            if all(words not in g.phrase.lower() and g.phrase.lower() not in words for g in gaps):
                gaps.append(gap)  # not a population the word check already found ("pregnancy")
        return gaps

    # ------------------------------------------------------------------ main entry

    def ask(
        self,
        question: str,
        history: Sequence[Mapping[str, Any]] | None = None,
        mode: str = "clinician",
        filters: Filters | None = None,
    ) -> Answer:
        """Answer ``question``; see the module docstring.

        Raises:
            ValueError: unsupported mode or malformed history (the message says which).
        """
        if mode not in MODES:
            raise ValueError(f"unsupported mode {mode!r}: use 'clinician' or 'patient'")
        if not isinstance(question, str):
            raise ValueError(f"question must be text, got {type(question).__name__}")
        turns = normalize_history(history)
        notices: list[str] = []
        text = " ".join(question.split())
        if not text:
            return Answer(EMPTY_QUESTION, (), True, False, mode, "", ("empty question",))
        if len(text) > MAX_QUESTION_CHARS:
            cut = text[:MAX_QUESTION_CHARS].rsplit(" ", 1)[0] or text[:MAX_QUESTION_CHARS]
            text = cut
            notices.append(TRUNCATED_NOTICE.format(n=MAX_QUESTION_CHARS))

        from assistant.answers.safety import detect_red_flags, urgent_message

        flags = detect_red_flags(text)
        if flags:
            urgent = urgent_message(flags, mode)
            scope = RED_FLAG_SCOPE_PATIENT if mode == "patient" else RED_FLAG_SCOPE_CLINICIAN
            body = "\n\n".join([urgent, scope])
            return Answer(body, (), False, True, mode, text, tuple(notices), tuple(f.flag for f in flags))

        query = standalone_query(text, turns, self._encode, self._needs_context, self._thresholds.substitution)
        hits = self.retriever.search(query, k=EVIDENCE_HITS, method="hybrid", filters=filters)
        original = filters
        # A follow-up is out of scope for what it asks itself, not for words of an earlier question
        # that was in scope ("... from the surgery?" then "And how often?"); after an out-of-scope
        # question ("Should I get an epidural?" then "Is it safe?") the question as searched decides.
        last = next((t.content for t in reversed(turns) if t.role == "user"), "")
        asked = text if query != text and detect_intent(last) is None else None
        cov = self.coverage(query, hits, asked)
        if not cov.in_scope or not hits:
            return self._abstain(mode, query, notices, cov.intent, no_match=not hits and bool(filters))

        subject = self.subject(text, query) if turns else ()
        follow_up = self.follow_up(text, filters) if turns and query != text else None
        votes = self.votes(query)
        gaps = self.gaps(query)
        parts = split_question(query)
        if len(parts) == 1:  # a design named ("what do the meta-analyses show?"): the studies of that design
            filters, hits = self._designed(query, query, hits, original)
        # the best documents of the whole question: a later part's studies come from them
        topical = {d for d, _ in top_k(aggregate_max((h.doc_id, h.score) for h in hits), TOPICAL_DOCS)}
        gathered: list[tuple[str, list[Study]]] = []
        used: set[int] = set()
        # The part that names the topic ("How certain is the evidence? For Pilates, yoga and
        # walking in chronic LBP, ..."): the other parts are asked about it.
        anchor = next((p for p in parts if names_topic(p, self.treatments)), parts[0])
        for part in parts:
            if len(parts) == 1:
                part_query, part_hits = query, hits
            else:
                part_query = part if part == anchor else with_topic(part.rstrip("?"), anchor, part)
                part_hits = self.retriever.search(part_query, k=EVIDENCE_HITS, method="hybrid", filters=original)
                # the design a part names restricts that part ("..., and do the cohort data agree?")
                filters, part_hits = self._designed(part, part_query, part_hits, original)
            allowed = self.retriever.documents(filters)
            studies = self.gatherer.gather(
                part_query, part_hits, used, mode == "patient", allowed, subject, votes, follow_up
            )
            if not studies and filters is not original:
                # no study of the design asked about bears on it: the evidence of every design
                filters = original
                part_hits = self.retriever.search(part_query, k=EVIDENCE_HITS, method="hybrid", filters=filters)
                allowed = self.retriever.documents(filters)
                studies = self.gatherer.gather(
                    part_query, part_hits, used, mode == "patient", allowed, subject, votes, follow_up
                )
            if part != anchor and filters is original:  # another part: only studies that bear on the whole
                # question (a part that names a design has its own: the studies of that design on the topic)
                studies = [s for s in studies if s.doc_id in topical or s.route in TOPICAL_ROUTES]
            if gaps:  # the evidence on the question without what it does not cover, as related
                broader = related_question(part_query, gaps)
                if broader.strip(" ?") and broader != part_query:
                    more = self.retriever.search(broader, k=EVIDENCE_HITS, method="hybrid", filters=filters)
                    animal_gap = any(g.kind == "animal" for g in gaps)
                    related_studies = self.gatherer.gather(
                        broader,
                        more,
                        used,
                        mode == "patient",
                        allowed,
                        votes=votes,
                        follow_up=follow_up,
                    )
                    studies = merge_studies(studies, related_studies, animal_first=animal_gap)
            used |= {f.row for s in studies for f in (*s.findings, *s.plain)}
            if studies:
                gathered.append((part, studies))
        if not gathered:
            return self._abstain(mode, query, notices)
        if self.llm_config is not None:
            generated = self._generate(query, gathered, hits, mode, turns, notices, gaps)
            if generated is not None:
                return generated
        if mode == "patient":
            return self._answer(query, self.patient.compose(query, gathered, gaps), mode, notices)
        return self._answer(query, self.clinician.compose(gathered, gaps), mode, notices)

    def follow_up(self, message: str, filters: Filters | None) -> FollowUp:
        """A message's own words when the question as searched adds the conversation's topic (see
        :class:`~assistant.answers.synthesis.FollowUp`): its best documents by its own search,
        and the votes of the bank's questions written like it."""
        hits = self.retriever.search(message, k=EVIDENCE_HITS, method="hybrid", filters=filters)
        best = top_k(aggregate_max((h.doc_id, h.score) for h in hits), FOLLOW_UP_DOCS)
        return FollowUp(message, self.votes(message, by_message=True), tuple(d for d, _ in best))

    def subject(self, message: str, query: str) -> tuple[str, ...]:
        """The treatments a follow-up compares others with: "How does it compare with
        strengthening?" after a question on McKenzie therapy compares McKenzie (named by the
        conversation, not by the message) with strengthening. None when the message compares
        nothing, names no treatment, or names its own subject before what it compares it with
        ("And what about aerobic work, compared with strengthening?")."""
        named = treatments_in(message, self.treatments.all)
        if not named or not asks_comparison(message):
            return ()
        if compared_subject(message, self.treatments):  # "And aerobic work, compared with strengthening?"
            return ()
        return tuple(t for t in treatments_in(query, self.treatments.all) if t not in named)

    def _designed(
        self, words: str, query: str, hits: list[Hit], filters: Filters | None
    ) -> tuple[Filters | None, list[Hit]]:
        """The filters and hits of ``query`` when ``words`` name a study design (see
        :meth:`evidence_filters`); ``filters`` and ``hits`` unchanged when they name none, or
        when no study of that design matches."""
        designed = self.evidence_filters(words, filters)
        if designed is filters:
            return filters, hits
        design_hits = self.retriever.search(query, k=EVIDENCE_HITS, method="hybrid", filters=designed)
        return (designed, design_hits) if design_hits else (filters, hits)

    def evidence_filters(self, query: str, filters: Filters | None) -> Filters | None:
        """``filters`` and, when the question names a study design ("according to the
        meta-analyses", "what do randomised trials show", "non-randomised studies") and the
        filters choose no documents already, the documents of that design."""
        designs = designs_asked(query)
        if not designs or (filters and any(filter_key(k) == "doc_id" for k in filters)):
            return filters
        docs = self.gatherer.catalog.of_designs(designs)
        return {**(filters or {}), "doc_id": docs} if docs else filters

    def _abstain(
        self, mode: str, query: str, notices: Sequence[str], intent: str | None = None, no_match: bool = False
    ) -> Answer:
        """Two sentences: why there is no answer, and what can be answered."""
        if no_match:
            first = "No indexed passage matches the selected filters."
        elif intent in OOS_REASON:
            first = (OOS_REASON_PATIENT if mode == "patient" else OOS_REASON)[intent]
        else:
            first = ABSTAIN_PATIENT if mode == "patient" else ABSTAIN_CLINICIAN
        suggestion = SUGGEST_PATIENT if mode == "patient" else SUGGEST_CLINICIAN
        return Answer(f"{first} {suggestion}", (), True, False, mode, query, tuple(notices))

    # ------------------------------------------------------------------ citations

    def _answer(self, query: str, draft: Draft, mode: str, notices: Sequence[str]) -> Answer:
        """The composed ``draft`` as an answer: its citations, and its evidence table of the
        studies it quotes."""
        studies, related = draft.studies, draft.related
        quoted = [(s["source"], s["refs"], s["passage_id"]) for s in draft.sentences]
        cited_docs = {pid.rsplit("#", 1)[0] for s in draft.sentences for pid in [s["passage_id"]]}
        cited_docs |= {a["passage_id"].rsplit("#", 1)[0] for s in draft.sentences for a in s["also"]}
        for s in draft.sentences:
            quoted.extend((a["source"], a["refs"], a["passage_id"]) for a in s["also"])
        shown = [s for s in studies if s.doc_id in cited_docs]
        rows = evidence_rows(shown, self._doc_meta, mode == "patient", related)
        return Answer(
            answer=draft.text,
            citations=self._citations(quoted),
            abstained=False,
            red_flag=False,
            mode=mode,
            query=query,
            notices=tuple(notices),
            sentences=tuple(draft.sentences),
            evidence=rows,
        )

    def _citations(self, quoted: Sequence[tuple[str, Sequence[int], str]]) -> tuple[Citation, ...]:
        """One citation per (reference, passage) from (source sentence, refs, passage id) triples."""
        quotes: dict[tuple[int, str], list[str]] = {}
        for text, refs, pid in quoted:
            for n in refs:
                quotes.setdefault((n, pid), []).append(text)
        out = []
        for (n, pid), qs in sorted(quotes.items()):
            ref_meta = self._meta(f"ref-{n}") or {}
            passage = self.index.passage(pid)
            out.append(
                Citation(
                    n=n,
                    doc_id=f"ref-{n}" if ref_meta else passage.doc_id,
                    passage_id=pid,
                    title=str(ref_meta.get("title") or passage.metadata.get("title") or ""),
                    authors=tuple(ref_meta.get("authors") or ()),
                    journal=ref_meta.get("journal"),
                    year=ref_meta.get("year"),
                    pmid=ref_meta.get("pmid"),
                    doi=ref_meta.get("doi"),
                    url=ref_meta.get("url"),
                    study_type=ref_meta.get("study_type"),
                    species=ref_meta.get("species"),
                    passage=passage.text,
                    quotes=tuple(dict.fromkeys(qs)),
                    confidence=ref_meta.get("confidence"),
                    source_note=ref_meta.get("source_note"),
                )
            )
        return tuple(out)

    # ------------------------------------------------------------------ optional LLM

    def _generate(
        self,
        query: str,
        gathered: Sequence[tuple[str, list[Study]]],
        hits: Sequence[Hit],
        mode: str,
        turns: Sequence[Turn],
        notices: list[str],
        gaps: Sequence[Gap],
    ) -> Answer | None:
        from assistant.answers.llm import LLMError, generate

        patient = mode == "patient"
        studies = [s for _, part in gathered for s in part]
        sources: list[tuple[int, str, str]] = []
        seen: set[str] = set()
        for study in studies:
            for item in study.plain if patient else study.findings:
                if item.passage_id not in seen and item.refs:
                    seen.add(item.passage_id)
                    sources.append((item.refs[0], item.passage_id, self.index.passage(item.passage_id).text))
        for h in hits[:8]:
            refs = h.passage.refs
            if h.passage_id not in seen and refs and h.passage.audience == ("patient" if patient else "clinician"):
                seen.add(h.passage_id)
                sources.append((refs[0], h.passage_id, h.text))
        history = [{"role": t.role, "content": t.content} for t in turns]
        try:
            result = generate(query, sources, mode, self.llm_config, history=history)
        except LLMError as exc:
            notices.append(f"The language model could not be used ({exc}); showing the extractive answer.")
            return None
        if result is None:
            notices.append("No source could be given to the language model; showing the extractive answer.")
            return None
        if result.problems:
            more = len(result.problems) - 3
            why = "; ".join(result.problems[:3]) + (f"; and {more} more" if more > 0 else "")
            notices.append(
                f"The language model's answer was rejected because it failed validation ({why}); "
                "showing the extractive answer."
            )
            return None
        used = set(result.used_refs)
        first_source: dict[int, tuple[str, str]] = {}
        for n, pid, text in sources:
            if n in used:
                first_source.setdefault(n, (pid, text))
        cited = [s for s in studies if set(s.meta.get("refs") or ()) & used]
        text = f"{gap_line(gaps, patient)}\n\n{result.text}" if gaps else result.text
        return Answer(
            answer=text,
            citations=self._citations([(text, (n,), pid) for n, (pid, text) in first_source.items()]),
            abstained=False,
            red_flag=False,
            mode=mode,
            query=query,
            notices=tuple(notices),
            generator=f"llm:{self.llm_config.model}",
            evidence=evidence_rows(cited, self._doc_meta, patient, related_documents(studies, gaps)),
        )


def traceable_share(answer: Answer, passages: Mapping[str, str]) -> float:
    """Share of the answer's evidence sentences found verbatim (markers and whitespace
    aside) in the passage they cite.

    Args:
        answer: an extractive answer (its ``sentences`` list the evidence sentences).
        passages: passage id -> passage text.
    """
    if not answer.sentences:
        return 1.0
    ok = 0
    for s in answer.sentences:
        text = strip_markers(str(s["text"]))
        ok += text in strip_markers(passages.get(str(s["passage_id"]), ""))
    return ok / len(answer.sentences)
