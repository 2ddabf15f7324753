"""Gather the evidence for a question: every study that bears on it, and its quotable findings.

A broad question ("Is exercise effective for chronic low back pain?") has several studies
behind its answer, a narrow one ("Does McKenzie add to first-line care in acute LBP?") one
or two. :class:`EvidenceGatherer` decides which, in three steps:

1. **Candidates**: the best documents of the hybrid ranking. When the question names
   treatments ("yoga", "massage or spinal manipulation") the studies *about* each of them
   (the treatment in the record's title, keywords, interventions or comparators) join the
   candidates, and candidates that never mention a named treatment leave; when it asks
   which type of exercise works best, the studies about each exercise type join. When the
   search was restricted (filters; a design the question names, "what do the randomised
   trials show", see :meth:`assistant.answers.answer.Answerer.evidence_filters`), only
   studies it allows join.
2. **The cut**: a document stays when its fused score relative to the best and the
   similarity of its best result sentence to the question pass thresholds calibrated on
   the dev questions; the best study about each named treatment (or exercise type) stays
   when it passes a lower similarity bar; a study of an LBP phase that excludes the phase
   asked about (chronic when acute is asked) leaves. At most :data:`MAX_STUDIES`, human
   evidence before animal evidence.
   When a question of the bank of precedents is close, a learned selector
   (:mod:`assistant.answers.selector`) has the last word: it weighs every signal of every
   candidate the rules would let in and cites those likely to bear on the question.
3. **Findings**: from each kept study, the sentences that report a result (framing and
   method sentences are left out, and so are sentences about an excluded phase), scored
   here and chosen by :mod:`assistant.answers.selection`: at most four per study (five in an answer of three studies or fewer) and only
   close to the study's best, without near-repeats.

What each document is about, mentions and reports comes from :mod:`assistant.answers.catalog`;
what the sentences say (direction, phase) is labelled by :mod:`assistant.answers.evidence`; the
gathered :class:`~assistant.answers.studies.Study` records go to :mod:`assistant.answers.compose`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from assistant.answers.catalog import QUOTABLE_SECTIONS_EXCLUDED, Catalog
from assistant.answers.conversation import content_words
from assistant.answers.evidence import sentence_phases
from assistant.answers.precedents import (
    CLOSE_PRECEDENT,
    FACT_BONUS,
    PATIENT_RELEVANT_VOTE,
    PRECEDENT_VOTE,
    RELEVANT_VOTE,
    VOTED_ROUTES,
    Votes,
)
from assistant.answers.questions import (
    Treatments,
    Vocabulary,
    about_animals,
    asked_directions,
    asked_phases,
    asks_which_type,
    compared_subject,
    designs_asked,
    exercise_versus,
    given_as_example,
    outcome_words,
    phase_conflicts,
    studies_named,
    treatments_in,
    without_designs,
)
from assistant.answers.selection import MIN_FACET_SIMILARITY, MIN_FINDING_SIMILARITY, select_findings
from assistant.answers.selector import Context as SelectorContext
from assistant.answers.selector import Selector, question_words
from assistant.answers.selector import features as selector_features
from assistant.answers.studies import Finding, Study
from assistant.documents.reprint import parse_citation_markers
from assistant.search.fusion import aggregate_max, top_k
from assistant.search.priors import without_duration
from assistant.types import Hit

# Calibrated on the dev split of datasets/lbp-dev/answers (broad and in-scope questions):
# ``python -m assistant eval-answers --calibrate-evidence`` prints the candidates' features.
CANDIDATE_DOCS = 12
# Coverage counts the question's distinctive words that one of the best COVERAGE_DOCS documents uses.
COVERAGE_DOCS = 8
MAX_STUDIES = 8
MIN_RELATIVE_SCORE = 0.45
PHASE_MATCH_SHARE = 0.85
# A result sentence this close to the question makes its study relevant whatever the study's
# fused score; the studies of the best such sentences of the whole index are candidates.
MIN_STRONG_SIMILARITY = 0.60
SENTENCE_CANDIDATES = 8
RARE_PHASE = 0.25
PATIENT_CUT_SHARE = 0.75
MIN_COVERAGE = 0.35
PATIENT_COVERAGE = 0.3
FACET_DOCS = 2
ASPECT_DOCS = 3
SECTION_BONUS = {"key_findings": 0.16, "conclusion": 0.05}
RESULT_BONUS = 0.10
FACET_BONUS = 0.05
ASKED_BONUS = 0.05
# A sentence on an aspect of the evidence the question asks about ("lost to follow-up", "moderate-
# quality evidence", "SMD -0.32") leads its study's findings.
LEAD_BONUS = 0.30
# What a question asks about the evidence as a whole (an ``evidence_aspects`` label of
# outcomes.json): every study of the topic bears on how certain the evidence is, whereas dropout,
# effect sizes and protocols are figures that single studies report (and, asked about alone,
# choose the studies that report them).
BODY_OF_EVIDENCE_ASPECTS = frozenset({"Quality of the evidence"})
# A sentence that opens with a pronoun leans on the one before it; quoted alone it is unclear.
DANGLING = re.compile(r"^(it|its|they|their|them|this|these|those|such|he|she)\b", re.IGNORECASE)
DANGLING_PENALTY = 0.10
SPECIFIC_PHASES = ("acute", "subacute", "chronic", "recurrent", "prevention")
FIGURE = re.compile(r"\d")
PATIENT_DOSE = re.compile(r"\b\d+\s?(mg|mcg|milligrams?)\b", re.IGNORECASE)


@dataclass(frozen=True)
class FollowUp:
    """A follow-up's own words, when the question as searched adds the conversation's topic to
    them ("And for subacute LBP?" -> "... subacute ... exercise chronic ..."): that topic
    brings the previous question's studies, and outnumbers the message's words in the search.

    Attributes:
        message: the message as typed.
        votes: the votes of the bank's questions whose own words are like the message's
            (:meth:`assistant.answers.precedents.Precedents.votes` ``by_message``).
        documents: the best documents of a search on the message alone: candidates too.
    """

    message: str
    votes: Votes | None = None
    documents: tuple[str, ...] = ()


class EvidenceGatherer:
    """Select the studies and sentences of an answer from an index.

    Args:
        index: the loaded :class:`~assistant.search.index.Index` (sentences and their vectors).
        encode: the query encoder (text -> normalized vector).
        doc_meta: document id -> metadata.
        expand: the retriever's lay-term expansion (the question as searched).
        treatments: the treatment vocabulary (:mod:`assistant.answers.questions`).
        outcomes: the outcome vocabulary (safety, work, cost...; :mod:`assistant.answers.questions`).
        evidence_aspects: the labels of ``outcomes`` that a question asks about the evidence
            rather than an outcome (dropout, certainty, size of the effect):
            they choose the sentences that lead, not the studies; method sentences giving a
            figure on one are quotable when the question names it.
    """

    def __init__(
        self,
        index: Any,
        encode: Callable[[str], np.ndarray],
        doc_meta: Mapping[str, Mapping[str, Any]],
        expand: Callable[[str], str] = str,
        treatments: Treatments | None = None,
        outcomes: Vocabulary = (),
        evidence_aspects: Collection[str] = (),
    ):
        self.index = index
        self.encode = encode
        self.doc_meta = doc_meta
        self.expand = expand
        self.treatments = treatments or Treatments()
        self.outcomes = outcomes
        self.evidence_aspects = frozenset(evidence_aspects)
        self.catalog = Catalog(index, doc_meta, self.treatments, outcomes)
        self.selector: Selector | None = None
        """The learned selector (:mod:`assistant.answers.selector`): with the precedents' votes,
        it decides which eligible candidates the answer cites."""
        self.examples: list[tuple[str, list[float]]] | None = None
        """When a list, every question with votes appends its eligible candidates' (document
        id, features) here (training the selector)."""

    def _vectors(self, rows: Sequence[int]) -> np.ndarray:
        if self.index.sentence_embeddings is not None:
            return np.asarray(self.index.sentence_embeddings[list(rows)])
        return np.vstack([self.encode(self.index.sentences[r]["text"]) for r in rows])

    def _closest_to(self, text: str, studies: Sequence[Study]) -> dict[str, float]:
        """Each study's closest quotable sentence to ``text`` (expanded as searched): cosine."""
        q = self.encode(self.expand(text))
        out = {}
        for s in studies:
            rows = [f.row for f in (*s.findings, *s.plain)]
            out[s.doc_id] = float(np.max(self._vectors(rows) @ q)) if rows else 0.0
        return out

    def _refs(self, doc_id: str, text: str) -> tuple[int, ...]:
        meta = self.doc_meta.get(doc_id, {})
        if meta.get("refs_from_markers"):
            return tuple(parse_citation_markers(text))
        return tuple(meta.get("refs") or ())

    def _reports_figure(self, row: int, aspects: Sequence[str]) -> bool:
        """Whether sentence ``row`` names one of ``aspects`` and gives a figure ("About 30% were
        lost to follow-up", "Risk of bias was low in 4 of the 9 trials")."""
        return bool(self.catalog.labels_of(row) & set(aspects)) and bool(
            FIGURE.search(self.index.sentences[row]["text"])
        )

    def _titled_other(self, doc_id: str, facets: Collection[str]) -> bool:
        """Whether the document's title names a treatment other than ``facets``."""
        return any(self.catalog.titled(doc_id, label) for label, _ in self.treatments.all if label not in facets)

    def _reports_result(self, finding: Finding) -> bool:
        """Whether ``finding`` reports a result: a direction, or a sentence of the key findings."""
        return finding.direction != "finding" or self.index.sentences[finding.row].get("section") == "key_findings"

    def _findings(
        self,
        doc_id: str,
        q: np.ndarray,
        audience: str,
        asked: Sequence[str] = (),
        facets: Sequence[str] = (),
        question: str = "",
        named: Sequence[str] = (),
        stating: Mapping[int, float] | None = None,
    ) -> list[Finding]:
        """The document's quotable sentences for ``audience``, best first. A method sentence
        is quotable when it gives a figure on an aspect of the evidence that the question
        names (``named``): "how many were lost to follow-up?" is answered by "12-month data
        were available for 68 of 97". ``stating``: sentence row -> the share of similar
        questions one of whose key facts it states (:mod:`assistant.answers.precedents`)."""
        infos = [
            s
            for s in self.catalog.sentences_of(doc_id)
            if s.audience == audience
            and s.section not in QUOTABLE_SECTIONS_EXCLUDED
            and (not s.framing or (named and self._reports_figure(s.row, named)))
            and not phase_conflicts(asked, s.phases)
        ]
        if audience == "patient":
            infos = [s for s in infos if not PATIENT_DOSE.search(self.index.sentences[s.row]["text"])]
        if not infos:
            return []
        sims = self._vectors([s.row for s in infos]) @ q
        wanted = asked_directions(question)
        facet_set = set(facets)
        out = []
        for s, sim in zip(infos, sims, strict=True):
            rec = self.index.sentences[s.row]
            refs = self._refs(doc_id, rec["text"])
            if not refs:
                continue  # a sentence that cannot be cited is not used
            score = float(sim) + SECTION_BONUS.get(s.section, 0.0)
            score += RESULT_BONUS if s.direction != "finding" else 0.0
            on_facet = bool(facet_set and facet_set & self.catalog.labels_of(s.row))
            score += FACET_BONUS if on_facet else 0.0
            score += ASKED_BONUS if s.direction in wanted else 0.0
            score -= DANGLING_PENALTY if DANGLING.match(rec["text"]) else 0.0
            score += LEAD_BONUS if named and set(named) & self.catalog.labels_of(s.row) else 0.0
            precedent = FACT_BONUS * stating.get(s.row, 0.0) if stating else 0.0
            score += precedent
            out.append(
                Finding(
                    s.row,
                    rec["text"],
                    doc_id,
                    rec["passage_id"],
                    refs,
                    score,
                    float(sim),
                    s.direction,
                    s.phases,
                    on_facet=on_facet,
                    precedent=precedent,
                )
            )
        out.sort(key=lambda f: (-f.score, f.row))
        return out

    # ------------------------------------------------------------------ per question

    def facets(self, question: str) -> tuple[tuple[str, ...], bool]:
        """(treatments to cover, strict) for a question.

        The treatments the question names in its own words (strict: the answer keeps to
        studies that mention them, unless each is only an example: "everyday activity like
        walking the dog"); else those its lay-term expansion names ("cardio" ->
        aerobic exercise; not strict); else every exercise type when it asks which type
        works best (not strict); else none.
        """
        named = treatments_in(question, self.treatments.all)
        if named:
            examples = [given_as_example(question, pattern) for label, pattern in self.treatments.all if label in named]
            return named, not all(examples)
        implied = treatments_in(self.expand(question), self.treatments.all)
        if implied:
            return implied, False
        if asks_which_type(question):
            return tuple(label for label, _ in self.treatments.exercise), False
        return (), False

    def aspects(self, question: str) -> tuple[tuple[str, ...], bool]:
        """(outcomes to cover, strict): the outcomes the question names in its own words
        ("Is exercise safe ...?", strict: the answer keeps to studies that report them), else
        those its lay-term expansion names (not strict), else none."""
        named = treatments_in(outcome_words(question), self.outcomes)
        if named:
            return named, True
        return treatments_in(outcome_words(self.expand(question)), self.outcomes), False

    def candidates(
        self,
        query: str,
        hits: Sequence[Hit],
        allowed: Collection[str] | None = None,
        votes: Votes | None = None,
        more: Sequence[str] = (),
    ) -> list[Study]:
        """The candidate studies with their scored findings (no cut yet); see the module docstring.
        ``allowed``: the documents the search was restricted to (filters, a design asked
        about); the studies about a treatment or outcome join only from these. ``votes``: the
        precedents' votes (their sentence votes rank each study's sentences). ``more``: other
        candidate documents (a follow-up's own best: :class:`FollowUp`)."""
        expanded = self.expand(query)
        facets, _ = self.facets(query)
        aspects, named = self.aspects(query)
        asked = asked_phases(expanded)
        scores = top_k(aggregate_max((h.doc_id, h.score) for h in hits), len(hits))
        if not scores:
            return []
        best = scores[0][1] if scores[0][1] > 0 else 1.0
        relative = {d: s / best for d, s in scores}
        docs = [d for d, _ in scores[:CANDIDATE_DOCS]]
        docs.extend(d for d in studies_named(query, self.catalog.authors()) if d not in docs)
        docs.extend(d for d in more if d not in docs)
        about = self.catalog.about()
        for facet in facets:
            docs.extend(d for d, labels in about.items() if facet in labels and d not in docs)
        for aspect in aspects:
            docs.extend(d for d in sorted(self.catalog.reporting(aspect)) if d not in docs)
        q = self.encode(expanded)
        for doc_id in self.sentence_documents(q):  # a study may bear on the question in one sentence
            if doc_id not in docs:
                docs.append(doc_id)
        if allowed is not None:
            docs = [d for d in docs if d in allowed]
        rank = {d: i for i, (d, _) in enumerate(scores)}
        named_aspects = tuple(a for a in aspects if a in self.evidence_aspects) if named else ()
        # the design and the duration ("sore for more than a year") are no topic words, nor a
        # word that none of the best documents uses: it cannot tell them apart
        covered = self.catalog.coverage(
            without_designs(without_duration(expanded)), [d for d, _ in scores[:COVERAGE_DOCS]]
        )
        out = []
        for doc_id in docs:
            study = Study(
                doc_id,
                self.doc_meta.get(doc_id, {}),
                rank.get(doc_id, len(scores)),
                relative.get(doc_id, 0.0),
                facets=tuple(f for f in facets if f in about.get(doc_id, ())),
                coverage=covered(doc_id),
            )
            labels = (*facets, *aspects)
            stating = votes.sentences if votes is not None else None
            study.findings = self._findings(doc_id, q, "clinician", asked, labels, expanded, named_aspects, stating)
            study.plain = self._findings(doc_id, q, "patient", asked, labels, expanded, named_aspects, stating)
            out.append(study)
        return out

    def sentence_documents(self, q: np.ndarray) -> list[str]:
        """The documents of the :data:`SENTENCE_CANDIDATES` sentences most similar to the
        question over the whole index (sentences that report a result), best first."""
        if not SENTENCE_CANDIDATES or self.index.sentence_embeddings is None or not self.index.sentences:
            return []
        sims = np.asarray(self.index.sentence_embeddings) @ q
        docs: list[str] = []
        for row in np.argsort(-sims)[: SENTENCE_CANDIDATES * 4]:
            rec = self.index.sentences[int(row)]
            if rec.get("section") in QUOTABLE_SECTIONS_EXCLUDED or sims[row] < MIN_STRONG_SIMILARITY:
                continue
            doc_id = str(rec["doc_id"])
            if doc_id not in docs:
                docs.append(doc_id)
            if len(docs) >= SENTENCE_CANDIDATES:
                break
        return docs

    def relevant(
        self, study: Study, asked: Sequence[str] = (), patient: bool = False, most_coverage: float = 1.0
    ) -> bool:
        """The calibrated cut: the best document always, others when both their fused score
        (relative to the best) and the similarity of their best result sentence (not a
        background sentence) pass.

        A study of the LBP phase the question names needs a lower fused score
        (:data:`PHASE_MATCH_SHARE` of the bar), and neither a close result sentence nor the
        question's distinctive words, when that phase is rare among the studies (fewer than
        :data:`RARE_PHASE` of them): then the population is what tells the few relevant
        studies apart ("pain that keeps coming back": the trials in recurrent LBP); about a
        treatment the question names, such a study needs no fused score either (the trial of
        motor control exercise in recurrent LBP answers "does motor control training help
        recurrent LBP?" even when the search ranks it low). A study
        of a mixed population counts with the phases its results speak of ("In acute LBP,
        exercise was as effective as ..."). A question in everyday words scores lower against the
        records' wording, so patient answers use :data:`PATIENT_CUT_SHARE` of both bars (their
        word budget, not the cut, bounds how many studies they quote), and their coverage of
        the question's distinctive words counts relative to the best candidate's
        (``most_coverage``): everyday words are seldom the records' own.
        """
        share = PATIENT_CUT_SHARE if patient else 1.0
        bar = MIN_RELATIVE_SCORE * share
        phase = study.meta.get("lbp_phase")
        if phase == "mixed":  # a mixed population: the phases its results speak of ("in acute LBP, ...")
            studied = {p for f in (*study.findings, *study.plain) if f.direction != "finding" for p in f.phases}
        else:
            studied = {str(phase)}
        rare = any(p in studied and self.catalog.phase_share(p) < RARE_PHASE for p in asked)
        if rare:
            bar *= PHASE_MATCH_SHARE
        if study.rank == 0 or study.result_similarity >= MIN_STRONG_SIMILARITY:
            return True
        if rare:  # its population answers the question whether or not its words echo the question's,
            # and whatever its rank when it is also about a treatment the question names
            return bool(study.facets) or study.relative_score >= bar
        coverage = study.coverage / most_coverage if patient and most_coverage > 0 else study.coverage
        if coverage < (PATIENT_COVERAGE if patient else MIN_COVERAGE):
            return False
        return study.relative_score >= bar and study.result_similarity >= MIN_FINDING_SIMILARITY * share

    def gather(
        self,
        query: str,
        hits: Sequence[Hit],
        exclude_rows: set[int] | None = None,
        patient: bool = False,
        allowed: Collection[str] | None = None,
        subject: Collection[str] = (),
        votes: Votes | None = None,
        follow_up: FollowUp | None = None,
    ) -> list[Study]:
        """The studies that bear on ``query``, strongest designs first, each with its findings.

        Args:
            query: the standalone question (part).
            hits: its hybrid hits (about 40).
            exclude_rows: sentence rows already used elsewhere in the answer (another part).
            patient: the cut of patient answers (see :meth:`relevant`).
            allowed: the documents the search was restricted to (None: all).
            subject: the treatments a follow-up compares the ones it names with (see
                :meth:`assistant.answers.answer.Answerer.subject`): like a subject treatment
                beside examples, they restrict the answer and the others bring only the
                studies that also mention them.
            votes: the votes of the similar questions of the bank
                (:mod:`assistant.answers.precedents`), None without a bank: a study most of
                them needed joins, a study that only a treatment or outcome of the question
                brings must have been needed by one of them, and a study the cut or the
                vocabulary keeps (not the best document) must have been relevant to enough of
                them.
            follow_up: the message's own words when ``query`` adds the conversation's topic
                to them: the best documents of its own search are candidates too, and the
                selector weighs how close each study comes to the message and the votes of the
                bank's questions written like it.
        """
        expanded = self.expand(query)
        facets, strict = self.facets(query)
        # "How does McKenzie compare with other options, such as advice or back school?": the
        # treatments given as examples do not restrict the answer, and bring only the studies
        # of the others (McKenzie versus back school)
        patterns = dict(self.treatments.all)
        required = {f for f in facets if not given_as_example(query, patterns[f])} if strict else set(facets)
        # "How does it compare with strengthening?" (it: McKenzie): the conversation's treatment
        subject_named = set(subject) & set(facets) if strict else set()
        if subject_named:
            required = subject_named
        elif strict and set() < (own := set(compared_subject(query, self.treatments)) & required) < required:
            # "Does adding CBT to exercise beat advice?": the treatments named before what they
            # are compared with are the subject; the others bring only the studies of the subject
            required = own
        # "Is exercise worth it in acute LBP, or is advice to stay active enough?": the studies
        # of exercise in general answer it too, whether or not they mention advice
        general = exercise_versus(query, self.treatments)
        # "How does it compare with no exercise?" (it: stabilisation): the studies of the subject
        # against what the follow-up names
        compared = set(facets) - set(subject) if subject_named else set()
        aspects, aspects_strict = self.aspects(query)
        # How the studies were run ("how strong is the evidence?") chooses sentences, not studies:
        # a study that does not rate its evidence still bears on the question.
        reported = [a for a in aspects if a not in self.evidence_aspects]
        evidence_only = aspects_strict and not reported and not facets and not BODY_OF_EVIDENCE_ASPECTS & set(aspects)
        if evidence_only:
            # ... unless the question is about nothing else ("What dropout rates do LBP exercise
            # trials report?"): then the studies that report it answer
            reported = list(aspects)
        aspects_strict = aspects_strict and bool(reported)
        asked = asked_phases(expanded)
        animals_asked = about_animals(expanded)
        candidates = [
            s
            for s in self.candidates(query, hits, allowed, votes, follow_up.documents if follow_up else ())
            if not population_conflicts(asked, s.meta) and (s.findings or s.plain)
        ]
        most_coverage = max((s.coverage for s in candidates), default=0.0)
        if designs_asked(expanded):  # "which findings rest on non-randomised studies?": the design chose
            # the studies, and the question's other words are often about the evidence, not a topic
            for s in candidates:
                s.coverage = s.coverage / most_coverage if most_coverage > 0 else 1.0
            most_coverage = 1.0  # already relative: a patient answer must not divide again

        def on_treatment(s: Study) -> bool:
            """Whether ``s`` mentions the treatments the question restricts the answer to
            (and, for a comparing follow-up, what it compares them with)."""
            mentions = self.catalog.mentions(s.doc_id)
            return (not strict or general or bool(mentions & required)) and (not compared or bool(mentions & compared))

        def on_outcome(s: Study) -> bool:
            """Whether ``s`` reports the outcomes the question restricts the answer to."""
            return not aspects_strict or any(s.doc_id in self.catalog.reporting(a) for a in reported)

        # a named treatment keeps the answer to the studies that mention it, and to the best
        # document ("staying active in my spare time" is activity, not advice to stay active);
        # a named outcome to the studies that report it, and to the best document
        kept = [
            s
            for s in candidates
            if self.relevant(s, asked, patient, most_coverage) and (s.rank == 0 or (on_treatment(s) and on_outcome(s)))
        ]
        named = studies_named(query, self.catalog.authors())  # "Searle et al. (2015)": always kept
        kept.extend(s for s in candidates if s.doc_id in named and s not in kept)
        if named:  # the question is about the studies it names (and the treatments it names)
            kept = [s for s in kept if s.doc_id in named]
        for s in kept:
            s.route = _route(s, named)
        # The best studies about each treatment asked about: for a treatment the question
        # names, those of the phase asked about, then those named for it in their title; for
        # "which type", those named for the type, strongest design first. A study counts when
        # one of its sentences that report a result names the treatment. Animal studies only when the
        # question is about animals or nothing else is about the treatment.
        picked: list[Study] = []
        first_of: dict[int, str] = {}  # the best study of each treatment the question names -> that treatment
        for facet in facets:
            about = [
                s
                for s in candidates
                if facet in s.facets
                and any(
                    f.similarity >= MIN_FACET_SIMILARITY
                    and f.direction != "finding"
                    and facet in self.catalog.labels_of(f.row)
                    for f in (*s.findings, *s.plain)
                )
                and (facet in required or self.catalog.mentions(s.doc_id) & required)
                and (not compared or self.catalog.mentions(s.doc_id) & compared)
            ]
            if not animals_asked and (not strict or any(not s.animal for s in about)):
                about = [s for s in about if not s.animal]  # a treatment named: animals when nothing else
            elif animals_asked and not strict:  # "which exercise relieved pain in the rat studies?"
                about = [s for s in about if s.animal]

            def preference(s: Study, facet: str = facet) -> tuple[Any, ...]:
                other_phase = bool(asked) and s.meta.get("lbp_phase") not in asked
                # "Does yoga cause side effects?": the yoga studies that report harms first
                silent = aspects_strict and not any(s.doc_id in self.catalog.reporting(a) for a in reported)
                if strict:
                    return (silent, other_phase, not self.catalog.titled(s.doc_id, facet), -s.relevance)
                return (silent, not self.catalog.titled(s.doc_id, facet), s.level, other_phase, -s.relevance)

            if not strict and asked:  # "which type" for a phase: not the studies of another phase
                about = [
                    s
                    for s in about
                    if s.meta.get("lbp_phase") not in SPECIFIC_PHASES or s.meta.get("lbp_phase") in asked
                ]

            for i, s in enumerate(sorted(about, key=preference)[: FACET_DOCS if strict else 1]):
                s.route = s.route or "treatment"
                picked.append(s)
                if strict and i == 0:  # a treatment the question names keeps its best study
                    first_of.setdefault(id(s), facet)
        # The best studies that report each outcome asked about, in a sentence close to the
        # question; for how studies were run ("how certain is the evidence for yoga?"), the
        # studies of the treatments the question names are those to report it.
        for aspect in aspects:
            if aspect in self.evidence_aspects and facets:
                continue
            reporting = [
                s
                for s in candidates
                if s.animal == animals_asked
                # a study that tested nothing (a burden-of-disease overview: no interventions in its
                # record) reports no outcome of a treatment; a record without the field may have
                and s.meta.get("interventions") != []
                and any(
                    f.similarity >= MIN_FACET_SIMILARITY
                    and aspect in self.catalog.labels_of(f.row)
                    # for clinicians, in a sentence that reports a result on it (a direction, or
                    # one of the record's key findings), not one that mentions it (plain
                    # summaries state results in fewer words of direction)
                    and (patient or aspect in self.evidence_aspects or self._reports_result(f))
                    for f in (*s.findings, *s.plain)
                )
                and (not strict or self.catalog.mentions(s.doc_id) & set(facets))
            ]

            # those of the phase asked about first (a mixed population includes it)
            def other_phase(s: Study) -> bool:
                return bool(asked) and s.meta.get("lbp_phase") not in (*asked, "mixed")

            for s in sorted(reporting, key=lambda s: (other_phase(s), -s.relevance))[:ASPECT_DOCS]:
                s.route = s.route or "outcome"
                picked.append(s)
        # the precedents judge what the cut and the vocabulary keep when one of them is close enough
        judged = votes is not None and votes.closest >= CLOSE_PRECEDENT
        if votes is not None and judged:  # what only the vocabulary brings, and no similar question needed
            picked = [
                s
                for s in picked
                if s in kept
                or id(s) in first_of
                or s.doc_id not in votes.known
                or votes.needed.get(s.doc_id, 0.0) > 0.0
            ]
        picked = sorted(dict.fromkeys(picked), key=lambda s: -s.relevance if strict else (s.level, -s.relevance))
        kept.extend(s for s in picked if s not in kept)
        order = {id(s): i for i, s in enumerate(picked)}

        def placing(s: Study) -> tuple[Any, ...]:
            return (
                s.doc_id not in named,
                s.animal and not animals_asked,
                s.rank != 0,
                order.get(id(s), len(order)),
                -s.relevance,
            )

        kept.sort(key=placing)
        if votes is not None and judged:  # what the cut and the vocabulary keep, checked by the precedents
            bar = PATIENT_RELEVANT_VOTE if patient else RELEVANT_VOTE
            staying = [
                s
                for s in kept
                if s.route not in VOTED_ROUTES
                or s.rank == 0
                or s.doc_id not in votes.known
                or votes.relevant.get(s.doc_id, 0.0) >= bar
            ]
            # a treatment the question names keeps its best study when no other study of it stays
            covered = {f for s in staying for f in s.facets}
            kept = [s for s in kept if s in staying or (id(s) in first_of and first_of[id(s)] not in covered)]
        kept = kept[:MAX_STUDIES]

        def eligible(s: Study) -> bool:
            """Whether ``s`` may join past the cut (by the votes, or the selector)."""
            return bool(
                # not a study titled for a treatment the question does not name ("And Pilates?"
                # after yoga: not the yoga review that questions on both needed)
                (on_treatment(s) or not (strict and self._titled_other(s.doc_id, facets)))
                # and against what a follow-up compares its subject with; reporting what a
                # question about nothing but an aspect of the evidence asks ("what dropout rates?")
                and (not compared or self.catalog.mentions(s.doc_id) & compared)
                and (not evidence_only or on_outcome(s))
                and (not named or s.doc_id in named)
            )

        if votes is not None:  # the studies most similar questions needed, in the room left
            needed = [
                s
                for s in candidates
                if votes.needed.get(s.doc_id, 0.0) >= PRECEDENT_VOTE and s not in kept and eligible(s)
            ]
            for s in sorted(needed, key=lambda s: -votes.needed.get(s.doc_id, 0.0))[: MAX_STUDIES - len(kept)]:
                s.route = s.route or "precedent"
                kept.append(s)
        if votes is not None and judged and (self.selector is not None or self.examples is not None):
            # the learned selector weighs every signal at once (:mod:`assistant.answers.selector`)
            # a study no bank question graded (added after the bank was labelled) has no votes
            # for the selector to weigh: the rules' choice stands
            pool = [s for s in candidates if s.doc_id in votes.known and (s in kept or eligible(s))]
            unjudged = [s for s in kept if s.doc_id not in votes.known]
            for s in pool:
                if s not in kept:
                    s.route = ""
            context = SelectorContext(
                votes,
                patient,
                asked,
                animals_asked,
                question_words(expanded),
                len(kept),
                self._closest_to(follow_up.message, pool) if follow_up else None,
                follow_up.votes if follow_up else None,
                len(content_words(follow_up.message)) if follow_up else 0,
            )
            rows = [selector_features(s, context, eligible(s)) for s in pool]
            if self.examples is not None:
                self.examples.extend((s.doc_id, row) for s, row in zip(pool, rows, strict=True))
            if self.selector is not None and pool:
                judged_by = dict(zip(map(id, pool), self.selector.judge(rows), strict=True))
                ranked = sorted(pool, key=lambda s: -judged_by[id(s)][0])
                chosen = [s for s in ranked if judged_by[id(s)][1] or s.doc_id in named]
                chosen = (chosen + unjudged)[:MAX_STUDIES]
                if not chosen:  # nothing likely enough: the best document, as the rules keep it
                    chosen = [s for s in kept if s.rank == 0][:1] or ranked[:1]
                # a treatment the question names keeps its best study when no other study of it stays
                covered = {f for s in chosen for f in s.facets}
                chosen.extend(
                    s for s in kept if id(s) in first_of and first_of[id(s)] not in covered and s not in chosen
                )
                for s in chosen:
                    s.route = s.route or "selector"
                kept = sorted(chosen, key=placing)
        select_findings(kept, exclude_rows or set(), self._vectors)
        merged = {pid.rsplit("#", 1)[0] for s in kept for f in (*s.findings, *s.plain) for _, pid, _ in f.also}
        kept = [s for s in kept if s.findings or s.plain or s.doc_id in merged]
        kept.sort(key=lambda s: (s.level, -s.relevance))
        return kept


def population_conflicts(asked: Sequence[str], meta: Mapping[str, Any]) -> bool:
    """Whether a study's population excludes every LBP phase asked about: by its
    ``lbp_phase``, or, for a mixed population, by the phases its population names ("LBP
    lasting more than 6 weeks (subacute and chronic)" does not answer an acute question)."""
    phase = str(meta.get("lbp_phase") or "")
    if phase_conflicts(asked, [phase]):
        return True
    named = sentence_phases(str(meta.get("population") or "")) if phase == "mixed" else ()
    return phase_conflicts(asked, named)


def _route(study: Study, named: Sequence[str]) -> str:
    """Why the cut keeps ``study`` (:attr:`Study.route`)."""
    if study.doc_id in named:
        return "named"
    if study.rank == 0:
        return "best"
    return "strong" if study.result_similarity >= MIN_STRONG_SIMILARITY else "cut"


def merge_studies(first: Sequence[Study], second: Sequence[Study], animal_first: bool = False) -> list[Study]:
    """The studies of two gatherings (a study in both keeps its ``first`` gathering): half of
    the :data:`MAX_STUDIES` places for ``first`` (its animal studies before its human ones
    when ``animal_first``: they are the only evidence on what the question names), then
    ``second``, then the rest of ``first``; strongest designs first."""
    seen = {s.doc_id for s in first}
    extra = [s for s in second if s.doc_id not in seen]
    for s in extra:
        s.route = f"related {s.route}".strip()
    ordered = sorted(first, key=lambda s: not s.animal) if animal_first else list(first)
    half = MAX_STUDIES // 2
    merged = [*ordered[:half], *extra, *ordered[half:]][:MAX_STUDIES]
    merged.sort(key=lambda s: (s.level, -s.relevance))
    return merged
