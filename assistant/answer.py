"""Grounded, cited answers composed from retrieved sentences.

The default answerer is extractive and deterministic: it takes sentences of the retrieved
passages, chosen for relevance to the question and for diversity, orders them so the
strongest evidence comes first (systematic reviews, then trials, then cohorts, then animal
studies, which are kept apart and labelled), and marks each with ``[n]``, the number of the
reference it came from in the topic's list. Nothing is paraphrased: every evidence sentence
equals its source sentence once citation markers and whitespace are ignored.

An optional LLM (any OpenAI-compatible endpoint, see :mod:`assistant.llm`) can write the
answer instead; its output is validated and replaced by the extractive answer when it
cites a source it was not given or leaves a sentence uncited.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import Settings
from assistant.conversation import normalize_history, standalone_query
from assistant.corpus import parse_citation_markers
from assistant.fusion import aggregate_max, top_k
from assistant.index import bm25_tokenize
from assistant.retrieval import Filters, Retriever
from assistant.scope import THRESHOLDS, Coverage, assess_coverage, collapse_repeats
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
STUDY_HEADING = "Study details:"
NOTES_HEADING_CLINICIAN = "Strength of evidence:"
GLOSSARY_HEADING = "Words to know:"
MAX_STUDY_DETAILS = 3

# Sentence selection (tuned on the dev split of datasets/lbp-dev/answers).
MAX_CANDIDATE_DOCS = 6
DOC_SCORE_SHARE = 0.75
DOC_WEIGHT = 0.5
MIN_SENTENCE_SIMILARITY = 0.30
MIN_TOP_DOC_SIMILARITY = 0.10
SENTENCE_MARGIN = 0.12
FINDING_BONUS = 0.08
MAX_PATIENT_GRADE = 8.0
SECTION_BONUS = {"key_findings": 0.05, "conclusion": 0.05, "plain_language": 0.0, "summary": 0.0, "body": 0.0}

_NEGATIVE = re.compile(
    r"\b(no (significant |clear |meaningful )?(difference|benefit|effect|advantage)|did not|does not|not (better|superior|more effective)|"
    r"little or no|similar|no better|not significant|failed to)\b",
    re.IGNORECASE,
)
_POSITIVE = re.compile(
    r"\b(improv\w*|reduc\w*|better|benefit\w*|effective|superior|lower|less pain|relie\w*)\b", re.IGNORECASE
)
# Sentences that report a result rather than describe a study's design.
_FINDING = re.compile(
    r"\b(help\w*|improv\w*|reduc\w*|less|more|better|worse|fewer|lower\w*|eas\w*|work(ed|s)?|no (clear )?difference|"
    r"similar|same|effective|benefit\w*|protect\w*|risk|SMD|RR|CI|found|showed|suggest\w*)\b",
    re.IGNORECASE,
)
# Sentences that frame a study rather than report what it found.
_FRAMING = re.compile(
    r"^(this|the|in this|these|our) (cochrane |systematic |narrative |qualitative )?(review|study|trial|meta-analysis|"
    r"article|paper|analysis|authors?)\b.{0,40}\b(set out|looked|asked|aimed|examined|evaluated|assessed|compared|"
    r"investigated|describe[sd]?|searched|included|pooled|followed)\b|\b(is one of the most common|has long been debated|"
    r"is often recommended|are a very popular)\b",
    re.IGNORECASE,
)
FRAMING_PENALTY = 0.08
_DOSE_TEXT = re.compile(r"\b\d+\s?(mg|mcg|milligrams?)\b", re.IGNORECASE)
_MARKER = re.compile(r"\s*\[\d+(?:\s*[-–,]\s*\d+)*\]")


def strip_markers(text: str) -> str:
    """``text`` without ``[n]`` markers and with whitespace folded (for traceability checks)."""
    return " ".join(_MARKER.sub("", text).split())


def cite(sentence: str, refs: Sequence[int]) -> str:
    """Append ``[n]`` (or ``[n,m]``) before the sentence's final punctuation."""
    if not refs:
        return sentence
    marker = "[" + ",".join(str(n) for n in sorted(set(refs))) + "]"
    m = re.search(r"([.!?]+[\"”')\]]*)$", sentence)
    if m:
        return f"{sentence[: m.start()]} {marker}{m.group(1)}"
    return f"{sentence} {marker}"


@dataclass
class _Chosen:
    row: int
    text: str
    doc_id: str
    passage_id: str
    refs: tuple[int, ...]
    score: float
    level: int
    metadata: Mapping[str, Any] = field(default_factory=dict)


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


class Answerer:
    """Turns a question (and history) into an :class:`~assistant.types.Answer`."""

    def __init__(self, retriever: Retriever, settings: Settings, llm_config: Any = None) -> None:
        self.retriever = retriever
        self.index = retriever.index
        self.settings = settings
        if llm_config is None:
            from assistant.llm import LLMConfig

            llm_config = LLMConfig.from_env()
        self.llm_config = llm_config
        self._doc_meta = self.index.documents_metadata()
        self._vocab: set[str] = set(getattr(self.index.bm25, "vocab_dict", {}) or {})
        self._thresholds = THRESHOLDS[self.index.encoder_path is not None]

    # ------------------------------------------------------------------ helpers

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.vstack([self.retriever.encoder.encode_query(t) for t in texts])

    def _meta(self, doc_id: str) -> Mapping[str, Any]:
        return self._doc_meta.get(doc_id, {})

    def _needs_context(self, message: str) -> bool:
        """True when a short message retrieves nothing close on its own."""
        top = self.retriever.dense_scores(message, 1)
        return not top or top[0][1] < self._thresholds.follow_up

    def coverage(self, query: str, hits: Sequence[Hit]) -> Coverage:
        """Decide from retrieval evidence whether the corpus covers ``query`` (see :mod:`assistant.scope`)."""
        # Judged on the question (own words or expanded, by model kind; no feedback), over the whole index.
        judged = self.retriever.expand(query) if self._thresholds.expanded else query
        raw = self.retriever.dense_scores(collapse_repeats(judged), 1)
        dense_top = raw[0][1] if raw else 0.0
        bm25_top = max((h.components.get("bm25", 0.0) for h in hits), default=0.0)
        dense_best = max(hits, key=lambda h: h.components.get("dense", -1.0)).doc_id if hits else None
        bm25_ranked = sorted((h for h in hits if h.components.get("bm25")), key=lambda h: -h.components["bm25"])
        agreement = dense_best in {h.doc_id for h in bm25_ranked[:3]}
        tokens = bm25_tokenize([query], return_ids=False)[0]
        return assess_coverage(query, dense_top, bm25_top, agreement, tokens, self._vocab, self._thresholds)

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

        from assistant.safety import detect_red_flags, urgent_message

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

        chosen = self._choose_sentences(query, hits, mode)
        if mode == "patient":
            chosen = self._fit_grade(chosen)
        if not chosen:
            return self._abstain(mode, query, notices)
        if self.llm_config is not None:
            generated = self._generate(query, chosen, hits, mode, turns, notices)
            if generated is not None:
                return generated
        return self._compose(query, chosen, mode, notices)

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

    # ------------------------------------------------------------------ selection

    def _candidate_docs(self, hits: Sequence[Hit]) -> dict[str, float]:
        """Documents worth quoting: the top documents of the hybrid ranking whose score is
        within ``DOC_SCORE_SHARE`` of the best. Returns doc id -> score relative to the best."""
        ranked = top_k(aggregate_max((h.doc_id, h.score) for h in hits), MAX_CANDIDATE_DOCS)
        if not ranked or ranked[0][1] <= 0:
            return {d: 1.0 for d, _ in ranked[:1]}
        best = ranked[0][1]
        return {d: s / best for d, s in ranked if s >= DOC_SCORE_SHARE * best}

    def _choose_sentences(self, query: str, hits: Sequence[Hit], mode: str) -> list[_Chosen]:
        """Pick the answer's sentences from the candidate documents.

        Every sentence is scored by its similarity to the question, a bonus for reporting a
        result and its document's retrieval score. Clinician mode takes the best sentences
        (at most two per document); patient mode takes the plain-language summary of the
        best document whole, in its own order, plus the best sentence of the next ones.
        """
        docs = self._candidate_docs(hits)
        if not docs:
            return []
        top_doc = next(iter(docs))
        q = self.retriever.encoder.encode_query(query)
        audience = "patient" if mode == "patient" else "clinician"
        rows: list[int] = []
        for doc_id in docs:
            doc_rows = [r for r in self.index.sentence_rows(doc_id) if self.index.sentences[r]["audience"] == audience]
            if mode == "clinician":
                doc_rows = [r for r in doc_rows if self.index.sentences[r].get("section") != "study"]
            if not doc_rows and mode == "patient" and doc_id == top_doc:  # no plain-language text
                doc_rows = [
                    r for r in self.index.sentence_rows(doc_id) if self.index.sentences[r].get("section") != "study"
                ]
            rows.extend(doc_rows)
        if not rows:
            return []
        if self.index.sentence_embeddings is not None:
            vectors = np.asarray(self.index.sentence_embeddings[rows])
        else:  # an index built without sentence vectors (e.g. a benchmark corpus)
            vectors = self._encode([self.index.sentences[r]["text"] for r in rows])
        sims = vectors @ q
        scored: list[tuple[float, int, int]] = []
        for i, r in enumerate(rows):
            rec = self.index.sentences[r]
            on_top = rec["doc_id"] == top_doc
            if sims[i] < (MIN_TOP_DOC_SIMILARITY if on_top else MIN_SENTENCE_SIMILARITY):
                continue
            if mode == "patient" and _DOSE_TEXT.search(rec["text"]):
                continue
            score = float(sims[i]) + SECTION_BONUS.get(str(rec.get("section")), 0.0)
            score += FINDING_BONUS if _FINDING.search(rec["text"]) else 0.0
            score -= FRAMING_PENALTY if _FRAMING.search(rec["text"]) else 0.0
            score += DOC_WEIGHT * (docs[rec["doc_id"]] - 1.0)
            scored.append((score, i, r))
        if not scored:
            return []
        scored.sort(key=lambda t: (-t[0], t[2]))
        top_score = scored[0][0]
        chosen: list[_Chosen] = []
        chosen_idx: list[int] = []
        per_doc: dict[str, int] = {}
        limit, per_doc_limit = (5, 3) if mode == "patient" else (5, 2)
        for score, i, r in scored:
            rec = self.index.sentences[r]
            on_top = rec["doc_id"] == top_doc
            if len(chosen) >= limit:
                break
            if not (on_top and mode == "patient") and score < top_score - SENTENCE_MARGIN:
                continue
            if per_doc.get(rec["doc_id"], 0) >= (per_doc_limit if on_top or mode == "clinician" else 1):
                continue
            if chosen_idx and float(np.max(vectors[chosen_idx] @ vectors[i])) > 0.88:
                continue  # near-duplicate of a chosen sentence
            meta = self._meta(rec["doc_id"])
            refs = (
                tuple(parse_citation_markers(rec["text"]))
                if meta.get("refs_from_markers")
                else tuple(meta.get("refs") or ())
            )
            if not refs:
                continue  # a sentence that cannot be cited is not used
            level = int(meta.get("evidence_level", 4))
            chosen.append(_Chosen(r, rec["text"], rec["doc_id"], rec["passage_id"], refs, score, level, meta))
            chosen_idx.append(i)
            per_doc[rec["doc_id"]] = per_doc.get(rec["doc_id"], 0) + 1
        rank = {d: i for i, d in enumerate(docs)}
        if mode == "patient":  # a summary reads in its own order
            chosen.sort(key=lambda c: (c.level, rank[c.doc_id], c.row))
        else:  # strongest evidence first; within a level, the most relevant first
            chosen.sort(key=lambda c: (c.level, -c.score))
        return chosen

    def _fit_grade(self, chosen: list[_Chosen]) -> list[_Chosen]:
        """Drop the hardest sentences until the patient answer reads at grade 8 or below; if
        one sentence is left and still too hard, try the other plain sentences of its document."""

        def grade(items: Sequence[_Chosen]) -> float:
            return readability_grade(self._compose("", items, "patient", ()).answer)

        chosen = list(chosen)
        while len(chosen) > 1 and grade(chosen) > MAX_PATIENT_GRADE:
            chosen.remove(max(chosen, key=lambda c: self.index.sentences[c.row]["grade"]))
        if len(chosen) == 1 and grade(chosen) > MAX_PATIENT_GRADE:
            only = chosen[0]
            options = [
                replace(
                    only, row=r, text=self.index.sentences[r]["text"], passage_id=self.index.sentences[r]["passage_id"]
                )
                for r in self.index.sentence_rows(only.doc_id)
                if self.index.sentences[r]["audience"] == "patient" and r != only.row
            ]
            graded = [(grade([c]), c.row, c) for c in options]
            if graded:
                easiest_grade, _, easiest = min(graded, key=lambda t: t[:2])
                if easiest_grade <= MAX_PATIENT_GRADE:
                    chosen = [easiest]
        return chosen

    # ------------------------------------------------------------------ composition

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
                    quotes=tuple(qs),
                    confidence=ref_meta.get("confidence"),
                    source_note=ref_meta.get("source_note"),
                )
            )
        return tuple(out)

    def _notes(self, chosen: Sequence[_Chosen], mode: str) -> list[str]:
        """Plain statements about the size, agreement and kind of the evidence used."""
        refs = sorted({n for c in chosen for n in c.refs})
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
        texts = [c.text for c in chosen if c.metadata.get("design_group") != "animal"]
        if any(_NEGATIVE.search(t) for t in texts) and any(
            _POSITIVE.search(t) and not _NEGATIVE.search(t) for t in texts
        ):
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

    def _study_details(self, chosen: Sequence[_Chosen]) -> list[tuple[str, tuple[int, ...], str]]:
        """(sentence, refs, passage_id) for the design, population and size of each cited study."""
        out = []
        seen: set[str] = set()
        for c in chosen:
            if c.doc_id in seen or not c.doc_id.startswith("ref-"):
                continue
            seen.add(c.doc_id)
            if len(seen) > MAX_STUDY_DETAILS:
                break
            rows = [r for r in self.index.sentence_rows(c.doc_id) if self.index.sentences[r].get("section") == "study"]
            for r in rows:
                rec = self.index.sentences[r]
                if rec["text"].startswith(
                    ("Study design:", "Population:", "Participants:", "Studies included:", "Animals:")
                ):
                    out.append((rec["text"], c.refs, rec["passage_id"]))
        return out

    def _glossary_lines(self, text: str) -> list[str]:
        glossary = load_glossary(str(Path(self.settings.corpus_dir) / "glossary.json"))
        lines = []
        low = text.lower()
        for term, meaning in glossary.items():
            # The substring test is a cheap exact pre-filter: the regex can only match a substring.
            if term.lower() in low and re.search(rf"\b{re.escape(term.lower())}\b", low):
                lines.append(f"{term[:1].upper()}{term[1:]}: {meaning}")
            if len(lines) >= 4:
                break
        return lines

    def _compose(self, query: str, chosen: Sequence[_Chosen], mode: str, notices: Sequence[str]) -> Answer:
        human = [c for c in chosen if c.metadata.get("design_group") != "animal"]
        animal = [c for c in chosen if c.metadata.get("design_group") == "animal"]
        sentences: list[dict[str, Any]] = []

        def render(items: Sequence[_Chosen]) -> str:
            parts = []
            for c in items:
                shown = c.text if parse_citation_markers(c.text) else cite(c.text, c.refs)
                parts.append(shown)
                sentences.append({"text": shown, "refs": list(c.refs), "passage_id": c.passage_id, "source": c.text})
            return " ".join(parts)

        paragraphs: list[str] = []
        if mode == "patient":
            if human:
                paragraphs.append(f"{PATIENT_LEAD} {render(human)}")
            if animal:
                paragraphs.append(f"{ANIMAL_HEADING_PATIENT} {render(animal)}")
        else:
            if human:
                paragraphs.append(render(human))
            if animal:
                paragraphs.append(f"{ANIMAL_HEADING_CLINICIAN} {render(animal)}")
            details = self._study_details(chosen)
            if details:
                lines = []
                for text, refs, pid in details:
                    shown = cite(text, refs)
                    lines.append(shown)
                    sentences.append({"text": shown, "refs": list(refs), "passage_id": pid, "source": text})
                paragraphs.append(STUDY_HEADING + "\n" + "\n".join(lines))
        notes = self._notes(chosen, mode)
        if notes:
            paragraphs.append((NOTES_HEADING_CLINICIAN + " " if mode == "clinician" else "") + " ".join(notes))
        if mode == "patient":
            words = self._glossary_lines(" ".join(paragraphs))
            if words:
                paragraphs.append(GLOSSARY_HEADING + "\n" + "\n".join(words))
            paragraphs.append(PATIENT_REMINDER)
        citations = self._citations([(s["source"], s["refs"], s["passage_id"]) for s in sentences])
        return Answer(
            answer="\n\n".join(paragraphs),
            citations=citations,
            abstained=False,
            red_flag=False,
            mode=mode,
            query=query,
            notices=tuple(notices),
            sentences=tuple(sentences),
        )

    # ------------------------------------------------------------------ optional LLM

    def _generate(
        self,
        query: str,
        chosen: Sequence[_Chosen],
        hits: Sequence[Hit],
        mode: str,
        turns: Sequence[Turn],
        notices: list[str],
    ) -> Answer | None:
        from assistant.llm import LLMError, generate

        sources: list[tuple[int, str, str]] = []
        seen: set[str] = set()
        for item in [*chosen]:
            if item.passage_id not in seen and item.refs:
                seen.add(item.passage_id)
                sources.append((item.refs[0], item.passage_id, self.index.passage(item.passage_id).text))
        for h in hits[:8]:
            refs = h.passage.refs
            if (
                h.passage_id not in seen
                and refs
                and h.passage.audience == ("patient" if mode == "patient" else "clinician")
            ):
                seen.add(h.passage_id)
                sources.append((refs[0], h.passage_id, h.text))
        history = [{"role": t.role, "content": t.content} for t in turns]
        try:
            result = generate(query, sources, mode, self.llm_config, history=history)
        except LLMError as exc:
            notices.append(f"The language model could not be used ({exc}); showing the extractive answer.")
            return None
        if result is None or result.problems:
            problems = "; ".join(result.problems[:3]) if result else "no output"
            notices.append(
                f"The language model's answer failed validation ({problems}); showing the extractive answer."
            )
            return None
        used = set(result.used_refs)
        first_source: dict[int, tuple[str, str]] = {}
        for n, pid, text in sources:
            if n in used:
                first_source.setdefault(n, (pid, text))
        return Answer(
            answer=result.text,
            citations=self._citations([(text, (n,), pid) for n, (pid, text) in first_source.items()]),
            abstained=False,
            red_flag=False,
            mode=mode,
            query=query,
            notices=tuple(notices),
            generator=f"llm:{self.llm_config.model}",
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
