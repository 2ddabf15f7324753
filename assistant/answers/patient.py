"""Patient answers: plain-language quotes at US grade 8 or below, within a word budget.

Patient mode gathers as clinician mode does and quotes the studies' plain-language summaries,
verbatim with ``[n]``: one sentence per study (most relevant study first; of its sentences the
best once those over grade 8 are marked down), then second sentences, within about
:data:`PATIENT_MAX_WORDS` words; the computed bottom line before them, animal studies in their
own labelled paragraph, notes on the evidence, a glossary of the words used where words are
left, and a reminder that this is not medical advice. While the answer reads over grade
:data:`MAX_PATIENT_GRADE` (Flesch-Kincaid, :func:`readability_grade`), its hardest sentence
gives way to an easier one of the same study, or goes. Sentences with doses are never
gathered for patients (:mod:`assistant.answers.synthesis`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from assistant.answers.compose import Draft, bottom_line, evidence_notes, related_documents, strip_markers
from assistant.answers.gaps import Gap, gap_line
from assistant.answers.questions import asked_phases
from assistant.answers.studies import Finding, Study

PATIENT_LEAD = "Here is what studies found."
PATIENT_REMINDER = "This is general information. It is not medical advice. Talk with your doctor or physical therapist about your own back."
ANIMAL_HEADING_PATIENT = "Studies in animals (not people):"
GLOSSARY_HEADING = "Words to know:"

MAX_PATIENT_GRADE = 8.0
HARD_SENTENCE_PENALTY = 0.03  # per grade point over MAX_PATIENT_GRADE, when picking a plain sentence
PATIENT_MAX_WORDS = 150
GLOSSARY_FILE = "glossary.json"
GLOSSARY_TERMS = 4  # at most, where words are left


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


@lru_cache(maxsize=256)
def readability_grade(text: str) -> float:
    """Flesch-Kincaid grade of ``text`` without citation markers (textstat)."""
    import textstat

    return float(textstat.flesch_kincaid_grade(strip_markers(text)))


def word_count(text: str) -> int:
    """Words of ``text`` without citation markers."""
    return len(strip_markers(text).split())


class PatientComposer:
    """Composes patient answers as :class:`~assistant.answers.compose.Draft` s.

    Args:
        index: the loaded :class:`~assistant.search.index.Index` (the sentences' reading grades).
        expand: the retriever's lay-term expansion (the LBP phases a question asks about).
        doc_meta: document id -> metadata (for the notes).
        glossary_path: the corpus's :data:`GLOSSARY_FILE` (``{term: plain explanation}``).
    """

    def __init__(
        self,
        index: Any,
        expand: Callable[[str], str],
        doc_meta: Mapping[str, Mapping[str, Any]],
        glossary_path: str,
    ) -> None:
        self.index = index
        self.expand = expand
        self.doc_meta = doc_meta
        self.glossary_path = glossary_path

    def compose(self, query: str, gathered: Sequence[tuple[str, list[Study]]], gaps: Sequence[Gap]) -> Draft:
        """The patient answer to ``query`` from the studies gathered for its parts; see the module docstring."""
        first: dict[str, Study] = {}
        for _, part in gathered:  # a study gathered for two parts keeps its first, fuller gathering
            for study in part:
                first.setdefault(study.doc_id, study)
        studies = list(first.values())
        related = related_documents(studies, gaps)
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
            trial = self._draft(query, [*chosen, item], gaps, related, glossary=0)
            if chosen and word_count(trial.text) > PATIENT_MAX_WORDS:
                continue
            chosen.append(item)
        return self._fit(query, chosen, gaps, related, options, order)

    def _plain_score(self, finding: Finding) -> float:
        grade = float(self.index.sentences[finding.row].get("grade", 0.0))
        return finding.score - HARD_SENTENCE_PENALTY * max(0.0, grade - MAX_PATIENT_GRADE)

    def _fit(
        self,
        query: str,
        chosen: list[tuple[Study, Finding]],
        gaps: Sequence[Gap],
        related: set[str],
        options: Mapping[str, Sequence[Finding]],
        studies: Sequence[Study] = (),
    ) -> Draft:
        """The patient answer of ``chosen`` brought to grade 8 or below and the word budget
        (``options``: each of ``studies``' plain sentences, best first)."""

        def draft(items: list[tuple[Study, Finding]]) -> Draft:
            # The glossary explains the words the answer uses, where words are left: over the
            # budget or over grade 8 (its explanations are read too) it shrinks to one word,
            # then goes; over the budget still, the last sentences go (as long as two are left).
            fitting = None
            for terms in (GLOSSARY_TERMS, 1, 0):
                answer = self._draft(query, items, gaps, related, glossary=terms)
                if word_count(answer.text) <= PATIENT_MAX_WORDS:
                    fitting = fitting or answer
                    if readability_grade(answer.text) <= MAX_PATIENT_GRADE:
                        return answer
            if fitting is not None:
                return fitting
            while word_count(answer.text) > PATIENT_MAX_WORDS and len(items) > 2:
                items.pop()
                answer = self._draft(query, items, gaps, related, glossary=0)
            return answer

        def grade_of(f: Finding) -> float:
            return float(self.index.sentences[f.row].get("grade", 0.0))

        by_id = {s.doc_id: s for s in studies}
        answer = draft(chosen)
        while readability_grade(answer.text) > MAX_PATIENT_GRADE and chosen:
            study, hardest = max(chosen, key=lambda p: grade_of(p[1]))
            used = {f.row for _, f in chosen}
            easier = [f for f in options.get(study.doc_id, ()) if f.row not in used and grade_of(f) < grade_of(hardest)]
            i = chosen.index((study, hardest))
            if easier:
                chosen[i] = (study, min(easier, key=grade_of))
            elif len(chosen) > 1:
                del chosen[i]
            else:  # one sentence left and none of its study is easier: the easiest of another study
                others = [
                    (by_id[doc_id], f)
                    for doc_id, findings in options.items()
                    for f in findings
                    if doc_id in by_id and grade_of(f) < grade_of(hardest)
                ]
                if others:
                    chosen[i] = min(others, key=lambda p: grade_of(p[1]))
                else:  # last resort: the plain sentences the selection left out, the best that
                    # reads at grade 8 or below, else the easiest
                    spare = [
                        (s, f)
                        for s in studies
                        for f in s.plain_pool
                        if f.row not in used and grade_of(f) < grade_of(hardest)
                    ]
                    if not spare:
                        break
                    plain = [p for p in spare if grade_of(p[1]) <= MAX_PATIENT_GRADE]
                    chosen[i] = (
                        max(plain, key=lambda p: p[1].score) if plain else min(spare, key=lambda p: grade_of(p[1]))
                    )
            answer = draft(chosen)
        return answer

    def _draft(
        self,
        query: str,
        chosen: Sequence[tuple[Study, Finding]],
        gaps: Sequence[Gap],
        related: set[str],
        glossary: int = GLOSSARY_TERMS,
    ) -> Draft:
        draft = Draft()
        studies = list({s.doc_id: s for s, _ in chosen}.values())
        human = [(s, f) for s, f in chosen if not s.animal]
        animal = [(s, f) for s, f in chosen if s.animal]
        if gaps:
            draft.paragraphs.append(gap_line(gaps, patient=True))
        if human:
            is_related = all(s.doc_id in related for s, _ in human)
            line = bottom_line(studies, patient=True, related=is_related, asked=asked_phases(self.expand(query)))
            ordered = sorted(human, key=lambda p: (p[0].level, -p[0].relevance, p[1].row))
            shown = " ".join(draft.quote(f) for _, f in ordered)
            draft.paragraphs.append(" ".join(x for x in (PATIENT_LEAD, line, shown) if x))
        if animal:
            draft.paragraphs.append(f"{ANIMAL_HEADING_PATIENT} {' '.join(draft.quote(f) for _, f in animal)}")
        notes = evidence_notes(studies, self.doc_meta, "patient", len(studies) >= 2)
        if notes:
            draft.paragraphs.append(" ".join(notes))
        words = self._glossary_lines(" ".join(draft.paragraphs))[:glossary]
        if words:
            draft.paragraphs.append(GLOSSARY_HEADING + "\n" + "\n".join(words))
        draft.paragraphs.append(PATIENT_REMINDER)
        for s in studies:  # the table shows what the answer quotes
            s_quoted = [f for q, f in chosen if q is s]
            s.plain = s_quoted + [f for f in s.plain if f not in s_quoted]
        draft.studies, draft.related = studies, related
        return draft

    def _glossary_lines(self, text: str) -> list[str]:
        glossary = load_glossary(self.glossary_path)
        lines = []
        low = text.lower()
        for term, meaning in glossary.items():
            # The substring test is a cheap exact pre-filter: the regex can only match a substring.
            if term.lower() in low and re.search(rf"\b{re.escape(term.lower())}\b", low):
                lines.append(f"{term[:1].upper()}{term[1:]}: {meaning}")
            if len(lines) >= GLOSSARY_TERMS:
                break
        return lines
