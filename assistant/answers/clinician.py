"""Clinician answers: per part of the question, a bottom line and the studies' results, quoted.

For each part of the question (a multi-part question is split,
:func:`assistant.answers.questions.split_question`, and each part gets a heading), from the
studies gathered for it (:class:`assistant.answers.synthesis.EvidenceGatherer`):

1. a first line saying what the question names that no indexed study covers
   (:mod:`assistant.answers.gaps`), the evidence then being labelled as related;
2. a computed bottom line: how many studies of which designs, which direction they point
   in, per LBP phase, and how consistent they are, each count with its citations;
3. the studies' result sentences, quoted verbatim with ``[n]``, grouped by what they report
   (benefit, no difference, mixed or uncertain, harms) or, for a question that compares
   treatments, by treatment; strongest designs first; animal studies in their own labelled
   paragraph;
4. notes on the strength of the evidence.

The parts come from :mod:`assistant.answers.compose`; the result is a
:class:`~assistant.answers.compose.Draft` that the answerer cites.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from assistant.answers.compose import Draft, bottom_line, evidence_notes, group_findings, related_documents
from assistant.answers.gaps import Gap, gap_line
from assistant.answers.questions import Vocabulary, asked_phases, asks_comparison, outcome_words, treatments_in
from assistant.answers.studies import Study

ANIMAL_HEADING_CLINICIAN = "Animal studies (mechanisms; not evidence of benefit in people):"
NOTES_HEADING_CLINICIAN = "Strength of evidence:"
RELATED_NOTE = "Related evidence follows."
RELATED_HEADING = "related evidence"
PART_HEADING = "Part {k} of {n}: {text}"


class ClinicianComposer:
    """Composes clinician answers as :class:`~assistant.answers.compose.Draft` s.

    Args:
        facets: question -> (the treatments it asks about, strictly or not); see
            :meth:`assistant.answers.synthesis.EvidenceGatherer.facets`.
        expand: the retriever's lay-term expansion (the phases and comparisons a part asks about).
        treatments: the treatment vocabulary (to group the findings by treatment).
        doc_meta: document id -> metadata (for the notes).
        evidence_aspects: what a question may ask about the evidence ("lost to follow-up", "how
            strong is the evidence"): the sentences on one it asks about come first, under its name.
    """

    def __init__(
        self,
        facets: Callable[[str], tuple[tuple[str, ...], bool]],
        expand: Callable[[str], str],
        treatments: Vocabulary,
        doc_meta: Mapping[str, Mapping[str, Any]],
        evidence_aspects: Vocabulary = (),
    ) -> None:
        self.facets = facets
        self.evidence_aspects = evidence_aspects
        self.expand = expand
        self.treatments = treatments
        self.doc_meta = doc_meta

    def compose(self, gathered: Sequence[tuple[str, list[Study]]], gaps: Sequence[Gap]) -> Draft:
        """The clinician answer from the studies gathered for each part of the question (part
        text, studies); see the module docstring."""
        draft = Draft()
        if gaps:
            draft.paragraphs.append(f"{gap_line(gaps)} {RELATED_NOTE}")
        all_studies = [s for _, studies in gathered for s in studies]
        related = related_documents(all_studies, gaps)
        for k, (part, studies) in enumerate(gathered, 1):
            if len(gathered) > 1:
                draft.paragraphs.append(PART_HEADING.format(k=k, n=len(gathered), text=part))
            human = [s for s in studies if not s.animal]
            is_related = bool(human) and all(s.doc_id in related for s in human)
            line = bottom_line(studies, related=is_related, asked=asked_phases(self.expand(part)))
            if line:
                draft.paragraphs.append(line)
            pairs = [(s, f) for s in human for f in s.findings]
            suffix = f" ({RELATED_HEADING})" if is_related else ""
            if len(human) >= 2:
                facets, _ = self.facets(part)
                compared = facets if asks_comparison(self.expand(part)) else ()
                named = treatments_in(outcome_words(self.expand(part)), self.evidence_aspects)
                asked = tuple((label, p) for label, p in self.evidence_aspects if label in named)
                for heading, items in group_findings(pairs, self.treatments, compared, asked):
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
        cited_studies = [s for s in all_studies if s.doc_id in cited]
        notes = evidence_notes(cited_studies, self.doc_meta, "clinician", len(all_studies) >= 2)
        if notes:
            draft.paragraphs.append(f"{NOTES_HEADING_CLINICIAN} {' '.join(notes)}")
        draft.studies, draft.related = all_studies, related
        return draft
