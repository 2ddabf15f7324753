"""Grounded, cited answers that synthesize the evidence.

The default answerer is extractive and deterministic. For each part of the question (a
multi-part question is split, :func:`assistant.answers.synthesis.split_question`) it gathers every
study that bears on it (:class:`assistant.answers.synthesis.EvidenceGatherer`: hybrid ranking, a
calibrated relevance cut, at most eight studies, human evidence before animal evidence) and
composes (:mod:`assistant.answers.compose`):

1. a first line saying what the question names that no indexed study covers
   (:mod:`assistant.answers.gaps`), the evidence then being labelled as related;
2. a computed bottom line: how many studies of which designs, which direction they point
   in, per LBP phase, and how consistent they are, each count with its citations;
3. the studies' result sentences, quoted verbatim with ``[n]``, grouped by what they report
   (benefit, no difference, mixed or uncertain, harms) or, for a question that compares
   treatments, by treatment; strongest designs first; animal studies in their own labelled
   paragraph;
4. notes on the strength of the evidence; and, beside the text, an evidence table with
   one row per cited study (:class:`assistant.types.EvidenceRow`).

Patient mode gathers the same way and quotes the studies' plain-language summaries, at
most about 150 words at US grade 8 or below, with no doses and a reminder. Nothing is
paraphrased: every evidence sentence equals its source sentence once citation markers and
whitespace are ignored; what is composed (bottom line, counts, headings, notes) is computed
from the record fields and reads as such.

An optional LLM (any OpenAI-compatible endpoint, see :mod:`assistant.answers.llm`) can write the
answer instead; its output is validated and replaced by the extractive answer when it
cites a source it was not given or leaves a sentence uncited.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from assistant.answers.compose import bottom_line, cite_refs, evidence_rows, group_findings
from assistant.answers.conversation import normalize_history, standalone_query, with_topic
from assistant.answers.gaps import Gap, find_gaps, gap_line, related_question, word_at
from assistant.answers.questions import (
    OUTCOMES_FILE,
    TREATMENTS_FILE,
    about_animals,
    asked_phases,
    asks_comparison,
    load_outcomes,
    load_treatments,
    split_question,
)
from assistant.answers.scope import THRESHOLDS, Coverage, assess_coverage, collapse_repeats
from assistant.answers.synthesis import EvidenceGatherer, Finding, Study, merge_studies
from assistant.config import Settings
from assistant.documents.chunking import split_sentences
from assistant.search.index import bm25_tokenize, word_tokens
from assistant.search.retrieval import Filters, Retriever
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
PATIENT_LEAD = "Here is what studies found."
PATIENT_REMINDER = "This is general information. It is not medical advice. Talk with your doctor or physical therapist about your own back."
RED_FLAG_SCOPE_CLINICIAN = "The exercise evidence indexed here concerns nonspecific low back pain; it does not apply until serious causes are excluded."
RED_FLAG_SCOPE_PATIENT = "Exercise advice is for common back pain. Get checked first."
ANIMAL_HEADING_CLINICIAN = "Animal studies (mechanisms; not evidence of benefit in people):"
ANIMAL_HEADING_PATIENT = "Studies in animals (not people):"
NOTES_HEADING_CLINICIAN = "Strength of evidence:"
GLOSSARY_HEADING = "Words to know:"

MAX_PATIENT_GRADE = 8.0
HARD_SENTENCE_PENALTY = 0.03  # per grade point over MAX_PATIENT_GRADE, when picking a plain sentence
MAX_JUDGED_SENTENCES = 4
PATIENT_MAX_WORDS = 150
RELATED_NOTE = "Related evidence follows."
RELATED_HEADING = "related evidence"
PART_HEADING = "Part {k} of {n}: {text}"
_MARKER = re.compile(r"\s*\[\d+(?:\s*[-–,]\s*\d+)*\]")


def strip_markers(text: str) -> str:
    """``text`` without ``[n]`` markers and with whitespace folded (for traceability checks)."""
    return " ".join(_MARKER.sub("", text).split())


@lru_cache(maxsize=4)
def load_glossary(path: str) -> dict[str, str]:
    """``{term: plain explanation}`` from a JSON file (empty when the file is missing)."""
    p = Path(path)
    if not p.is_file():
        return {}
    data = json.loads(p.read_text(encoding="utf-8"))
    if isinstance(data, dict) and "terms" in data and isinstance(data["terms"], dict):
        data = data["terms"]
    return {str(k): str(v) for k, v in data.items()}


def readability_grade(text: str) -> float:
    """Flesch-Kincaid grade of ``text`` without citation markers (textstat)."""
    import textstat

    return float(textstat.flesch_kincaid_grade(strip_markers(text)))


def word_count(text: str) -> int:
    """Words of ``text`` without citation markers."""
    return len(strip_markers(text).split())


class _Draft:
    """The paragraphs and quoted sentences of an answer being composed."""

    def __init__(self) -> None:
        self.paragraphs: list[str] = []
        self.sentences: list[dict[str, Any]] = []

    def quote(self, finding: Finding) -> str:
        """The finding as shown (its ``[n]`` markers added unless it carries its own), recorded."""
        refs = finding.all_refs
        shown = finding.text if _MARKER.search(finding.text) and not finding.also else cite_refs(finding.text, refs)
        self.sentences.append(
            {
                "text": shown,
                "refs": list(refs),
                "passage_id": finding.passage_id,
                "source": finding.text,
                "also": [{"refs": list(r), "passage_id": pid, "source": t} for r, pid, t in finding.also],
            }
        )
        return shown


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
        self.gatherer = EvidenceGatherer(
            self.index,
            self.retriever.encoder.encode_query,
            self._doc_meta,
            self.retriever.expand,
            self.treatments,
            load_outcomes(self._corpus_file(OUTCOMES_FILE)),
        )

    # ------------------------------------------------------------------ helpers

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.vstack([self.retriever.encoder.encode_query(t) for t in texts])

    def _meta(self, doc_id: str) -> Mapping[str, Any]:
        return self._doc_meta.get(doc_id, {})

    def _corpus_file(self, name: str) -> str:
        return str(Path(self.settings.corpus_dir) / name)

    def _needs_context(self, message: str) -> bool:
        """True when a short message retrieves nothing close on its own."""
        top = self.retriever.dense_scores(message, 1)
        return not top or top[0][1] < self._thresholds.follow_up

    def coverage(self, query: str, hits: Sequence[Hit]) -> Coverage:
        """Decide from retrieval evidence whether the corpus covers ``query`` (see :mod:`assistant.answers.scope`)."""
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
        tokens = bm25_tokenize([query], return_ids=False)[0]
        return assess_coverage(query, dense_top, bm25_top, agreement, tokens, self._vocab, self._thresholds)

    def gaps(self, question: str) -> list[Gap]:
        """What ``question`` names that the indexed evidence does not cover (see
        :mod:`assistant.answers.gaps`): words no document contains, and treatments that only animal
        studies (or no study) mention."""
        low = question.lower()
        lay = [m.span() for pattern, _ in self.retriever.vocabulary.patterns for m in pattern.finditer(low)]
        gaps = find_gaps(question, word_tokens, self.gatherer.term_documents(), lay)
        animals = about_animals(question)
        for label, pattern in self.treatments.all:
            m = pattern.search(question)
            if not m:
                continue
            docs = [d for d in self._doc_meta if label in self.gatherer.mentions(d)]
            phrase = word_at(question, m.start(), m.end())
            if not docs:
                gaps.append(Gap(phrase, "absent", True))
            elif not animals and all(self._meta(d).get("design_group") == "animal" for d in docs):
                gaps.append(Gap(phrase, "animal", True))
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
        hits = self.retriever.search(query, k=40, method="hybrid", filters=filters)
        cov = self.coverage(query, hits)
        if not cov.in_scope or not hits:
            return self._abstain(mode, query, notices, cov.intent, no_match=not hits and bool(filters))

        gaps = self.gaps(query)
        parts = split_question(query)
        gathered: list[tuple[str, list[Study]]] = []
        used: set[int] = set()
        for part in parts:
            if len(parts) == 1:
                part_query, part_hits = query, hits
            else:
                part_query = part if part == parts[0] else with_topic(part.rstrip("?"), parts[0], part)
                part_hits = self.retriever.search(part_query, k=40, method="hybrid", filters=filters)
            studies = self.gatherer.gather(part_query, part_hits, used, patient=mode == "patient")
            if gaps:  # the evidence on the question without what it does not cover, as related
                broader = related_question(part_query, gaps)
                if broader.strip(" ?") and broader != part_query:
                    more = self.retriever.search(broader, k=40, method="hybrid", filters=filters)
                    animal_gap = any(g.kind == "animal" for g in gaps)
                    related_studies = self.gatherer.gather(broader, more, used, mode == "patient")
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
            return self._compose_patient(query, gathered, notices, gaps)
        return self._compose_clinician(query, gathered, notices, gaps)

    def _abstain(
        self, mode: str, query: str, notices: Sequence[str], intent: str | None = None, no_match: bool = False
    ) -> Answer:
        """Two sentences: why there is no answer, and what can be answered."""
        if no_match:
            first = "No indexed passage matches the selected filters."
        elif intent in OOS_REASON:
            first = OOS_REASON[intent]
        else:
            first = ABSTAIN_PATIENT if mode == "patient" else ABSTAIN_CLINICIAN
        suggestion = SUGGEST_PATIENT if mode == "patient" else SUGGEST_CLINICIAN
        return Answer(f"{first} {suggestion}", (), True, False, mode, query, tuple(notices))

    # ------------------------------------------------------------------ composition

    def _related(self, studies: Sequence[Study], gaps: Sequence[Gap]) -> set[str]:
        """Documents shown as related evidence: all of them when a named term is absent from
        the corpus, the human ones when only animal studies cover it."""
        if any(g.kind == "absent" for g in gaps):
            return {s.doc_id for s in studies}
        if any(g.kind == "animal" for g in gaps):
            return {s.doc_id for s in studies if not s.animal}
        return set()

    def _compose_clinician(
        self, query: str, gathered: Sequence[tuple[str, list[Study]]], notices: Sequence[str], gaps: Sequence[Gap]
    ) -> Answer:
        draft = _Draft()
        if gaps:
            draft.paragraphs.append(f"{gap_line(gaps)} {RELATED_NOTE}")
        all_studies = [s for _, studies in gathered for s in studies]
        related = self._related(all_studies, gaps)
        for k, (part, studies) in enumerate(gathered, 1):
            if len(gathered) > 1:
                draft.paragraphs.append(PART_HEADING.format(k=k, n=len(gathered), text=part))
            human = [s for s in studies if not s.animal]
            is_related = bool(human) and all(s.doc_id in related for s in human)
            line = bottom_line(studies, related=is_related, asked=asked_phases(self.retriever.expand(part)))
            if line:
                draft.paragraphs.append(line)
            pairs = [(s, f) for s in human for f in s.findings]
            suffix = f" ({RELATED_HEADING})" if is_related else ""
            if len(human) >= 2:
                facets, _ = self.gatherer.facets(part)
                compared = facets if asks_comparison(self.retriever.expand(part)) else ()
                for heading, items in group_findings(pairs, self.treatments.all, compared):
                    lines = [draft.quote(f) for _, f in items]
                    draft.paragraphs.append(f"{heading}{suffix}:\n" + "\n".join(lines))
            elif pairs:
                shown = " ".join(draft.quote(f) for _, f in sorted(pairs, key=lambda p: -p[1].score))
                draft.paragraphs.append(f"Related evidence: {shown}" if is_related else shown)
            animal = [(s, f) for s in studies if s.animal for f in s.findings]
            if animal:
                shown = " ".join(draft.quote(f) for _, f in sorted(animal, key=lambda p: (p[0].rank, -p[1].score)))
                draft.paragraphs.append(f"{ANIMAL_HEADING_CLINICIAN} {shown}")
        cited = {pid.rsplit("#", 1)[0] for sentence in draft.sentences for pid in [sentence["passage_id"]]}
        notes = self._notes([s for s in all_studies if s.doc_id in cited], "clinician", len(all_studies) >= 2)
        if notes:
            draft.paragraphs.append(f"{NOTES_HEADING_CLINICIAN} {' '.join(notes)}")
        return self._answer(query, draft, "clinician", notices, all_studies, related)

    def _compose_patient(
        self, query: str, gathered: Sequence[tuple[str, list[Study]]], notices: Sequence[str], gaps: Sequence[Gap]
    ) -> Answer:
        first: dict[str, Study] = {}
        for _, part in gathered:  # a study gathered for two parts keeps its first, fuller gathering
            for study in part:
                first.setdefault(study.doc_id, study)
        studies = list(first.values())
        related = self._related(studies, gaps)
        # One plain sentence per study (most relevant study first; of its sentences the best
        # once those over grade 8 are marked down), then second sentences, within the word
        # budget; the glossary only where words are left; then, while the answer reads over
        # grade 8, its hardest sentence gives way to an easier one of the same study, or goes.
        order = sorted(studies, key=lambda s: (s.animal, -s.relevance))
        if any(g.kind == "animal" for g in gaps):  # the animal evidence the first line points to
            animal = [s for s in order if s.animal]
            order = [*order[:1], *animal[:1], *(s for s in order[1:] if s not in animal[:1])]
        options = {s.doc_id: sorted(s.plain, key=lambda f: -self._plain_score(f)) for s in order}
        queue = [(s, options[s.doc_id][0]) for s in order if options[s.doc_id]]
        queue += [(s, f) for s in order for f in options[s.doc_id][1:2]]
        chosen: list[tuple[Study, Finding]] = []
        for item in queue:
            trial = self._patient_draft(query, [*chosen, item], notices, gaps, related, glossary=False)
            if chosen and word_count(trial.answer) > PATIENT_MAX_WORDS:
                continue
            chosen.append(item)
        answer = self._fit_patient(query, chosen, notices, gaps, related, options)
        return answer

    def _plain_score(self, finding: Finding) -> float:
        grade = float(self.index.sentences[finding.row].get("grade", 0.0))
        return finding.score - HARD_SENTENCE_PENALTY * max(0.0, grade - MAX_PATIENT_GRADE)

    def _fit_patient(
        self,
        query: str,
        chosen: list[tuple[Study, Finding]],
        notices: Sequence[str],
        gaps: Sequence[Gap],
        related: set[str],
        options: Mapping[str, Sequence[Finding]],
    ) -> Answer:
        """The patient answer of ``chosen`` brought to grade 8 or below and the word budget."""

        def draft(items: list[tuple[Study, Finding]]) -> Answer:
            # The glossary explains the words the answer uses: it keeps its place by letting
            # the last sentence go, as long as two studies are left.
            answer = self._patient_draft(query, items, notices, gaps, related)
            while word_count(answer.answer) > PATIENT_MAX_WORDS and len(items) > 2:
                items.pop()
                answer = self._patient_draft(query, items, notices, gaps, related)
            if word_count(answer.answer) > PATIENT_MAX_WORDS:
                answer = self._patient_draft(query, items, notices, gaps, related, glossary=False)
            return answer

        def grade_of(f: Finding) -> float:
            return float(self.index.sentences[f.row].get("grade", 0.0))

        answer = draft(chosen)
        while readability_grade(answer.answer) > MAX_PATIENT_GRADE and chosen:
            study, hardest = max(chosen, key=lambda p: grade_of(p[1]))
            used = {f.row for _, f in chosen}
            easier = [f for f in options.get(study.doc_id, ()) if f.row not in used and grade_of(f) < grade_of(hardest)]
            i = chosen.index((study, hardest))
            if easier:
                chosen[i] = (study, min(easier, key=grade_of))
            elif len(chosen) > 1:
                del chosen[i]
            else:
                break
            answer = draft(chosen)
        return answer

    def _patient_draft(
        self,
        query: str,
        chosen: Sequence[tuple[Study, Finding]],
        notices: Sequence[str],
        gaps: Sequence[Gap],
        related: set[str],
        glossary: bool = True,
    ) -> Answer:
        draft = _Draft()
        studies = list({s.doc_id: s for s, _ in chosen}.values())
        human = [(s, f) for s, f in chosen if not s.animal]
        animal = [(s, f) for s, f in chosen if s.animal]
        if gaps:
            draft.paragraphs.append(gap_line(gaps, patient=True))
        if human:
            is_related = all(s.doc_id in related for s, _ in human)
            line = bottom_line(
                studies, patient=True, related=is_related, asked=asked_phases(self.retriever.expand(query))
            )
            ordered = sorted(human, key=lambda p: (p[0].level, -p[0].relevance, p[1].row))
            shown = " ".join(draft.quote(f) for _, f in ordered)
            draft.paragraphs.append(" ".join(x for x in (PATIENT_LEAD, line, shown) if x))
        if animal:
            draft.paragraphs.append(f"{ANIMAL_HEADING_PATIENT} {' '.join(draft.quote(f) for _, f in animal)}")
        notes = self._notes(studies, "patient", len(studies) >= 2)
        if notes:
            draft.paragraphs.append(" ".join(notes))
        words = self._glossary_lines(" ".join(draft.paragraphs)) if glossary else []
        if words:
            draft.paragraphs.append(GLOSSARY_HEADING + "\n" + "\n".join(words))
        draft.paragraphs.append(PATIENT_REMINDER)
        for s in studies:  # the table shows what the answer quotes
            s_quoted = [f for q, f in chosen if q is s]
            s.plain = s_quoted + [f for f in s.plain if f not in s_quoted]
        return self._answer(query, draft, "patient", notices, studies, related)

    def _answer(
        self,
        query: str,
        draft: _Draft,
        mode: str,
        notices: Sequence[str],
        studies: Sequence[Study],
        related: set[str],
    ) -> Answer:
        quoted = [(s["source"], s["refs"], s["passage_id"]) for s in draft.sentences]
        cited_docs = {pid.rsplit("#", 1)[0] for s in draft.sentences for pid in [s["passage_id"]]}
        cited_docs |= {a["passage_id"].rsplit("#", 1)[0] for s in draft.sentences for a in s["also"]}
        for s in draft.sentences:
            quoted.extend((a["source"], a["refs"], a["passage_id"]) for a in s["also"])
        shown = [s for s in studies if s.doc_id in cited_docs]
        rows = evidence_rows(shown, self._doc_meta, mode == "patient", related)
        return Answer(
            answer="\n\n".join(draft.paragraphs),
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

    def _notes(self, studies: Sequence[Study], mode: str, has_bottom_line: bool) -> list[str]:
        """Plain statements about the size, agreement and kind of the evidence used."""
        refs = sorted({n for s in studies for n in s.meta.get("refs") or ()})
        metas = {n: self._meta(f"ref-{n}") for n in refs}
        human = [n for n in refs if metas[n] and metas[n].get("design_group") not in ("animal",)]
        animal = [n for n in refs if metas[n] and metas[n].get("design_group") == "animal"]
        notes: list[str] = []
        patient = mode == "patient"
        if animal and not human:
            notes.append(
                "These results come from studies in animals, not people."
                if patient
                else "All of the evidence found here comes from animal studies; benefit in people is not shown by it."
            )
        trials = [n for n in human if metas[n].get("design_group") in ("trial", "cohort")]
        reviews = [n for n in human if metas[n].get("design_group") == "review"]
        if trials and not reviews:
            sizes: list[int] = [
                int(metas[n]["sample_size"]) for n in trials if isinstance(metas[n].get("sample_size"), int)
            ]
            if len(trials) == 1:
                size = f" of {sizes[0]} people" if sizes else ""
                notes.append(
                    f"This comes from one study{size}, so it is not certain."
                    if patient
                    else f"The evidence is small: a single study{size.replace('people', 'participants')} [{trials[0]}]."
                )
            elif len(sizes) == len(trials) and max(sizes) < 100:
                notes.append(
                    "These studies were small, so the results are not certain."
                    if patient
                    else f"The evidence is small: {len(trials)} studies, each with fewer than 100 participants."
                )
        directions = {f.direction for s in studies if not s.animal for f in s.findings}
        if not has_bottom_line and {"benefit", "no difference"} <= directions:
            notes.append(
                "The studies do not all agree."
                if patient
                else "The findings are mixed: some comparisons favour the intervention and others show little or no difference."
            )
        if not patient:
            for n in refs:
                meta = metas[n]
                if meta and meta.get("confidence") not in (None, "high") and meta.get("source_note"):
                    notes.append(f"Reference {n}: {meta['source_note'].rstrip('.')}.")
                condition = str(meta.get("condition") or "") if meta else ""
                if meta and condition and "back" not in condition.lower() and meta.get("design_group") != "animal":
                    notes.append(f"Reference {n} studied {condition}, not low back pain specifically.")
        return notes

    def _glossary_lines(self, text: str) -> list[str]:
        glossary = load_glossary(self._corpus_file("glossary.json"))
        lines = []
        low = text.lower()
        for term, meaning in glossary.items():
            # The substring test is a cheap exact pre-filter: the regex can only match a substring.
            if term.lower() in low and re.search(rf"\b{re.escape(term.lower())}\b", low):
                lines.append(f"{term[:1].upper()}{term[1:]}: {meaning}")
            if len(lines) >= 4:
                break
        return lines

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
            evidence=evidence_rows(cited, self._doc_meta, patient, self._related(studies, gaps)),
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
