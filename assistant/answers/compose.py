"""Turn gathered studies into the parts of a synthesized answer.

- :func:`bottom_line`: one computed line: how many studies of which designs, and in which
  direction they point, per LBP phase where the findings name phases, with how consistent
  they are and the citations behind each count;
- :func:`group_findings`: the quoted sentences grouped by what they report (benefit, no
  difference, mixed or uncertain, harms, other findings) or, for a question that compares
  treatments, by the treatments they name; strongest designs first in each group;
- :func:`evidence_rows`: one row per cited study for the evidence table;
- :func:`evidence_notes`: plain statements on the size, agreement and kind of the evidence;
- :func:`related_documents`: the studies shown as related evidence when the question names
  what no study covers;
- :class:`Draft`: the paragraphs and quoted sentences of an answer being composed
  (:mod:`assistant.answers.clinician`, :mod:`assistant.answers.patient`), each quote recorded
  with its source sentence and passage; and :func:`strip_markers` to compare a quote with its source.

Nothing here rewrites a quoted sentence: quotes are only given their ``[n]`` markers.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from assistant.answers.evidence import (
    DIRECTION_HEADINGS,
    DIRECTION_ORDER,
    PHASE_LABELS,
    citation_markers,
    consistency,
    design_summary,
    evidence_row,
    join_words,
)
from assistant.answers.gaps import Gap
from assistant.answers.questions import Vocabulary, treatments_in
from assistant.answers.studies import Finding, Study
from assistant.types import EvidenceRow

COUNTED = ("benefit", "no difference", "uncertain")
_COUNT_WORDS = {"benefit": "benefit", "no difference": "no difference", "uncertain": "mixed or uncertain results"}
_PATIENT_WORDS = {
    "benefit": "found a benefit",
    "no difference": "found little or no difference",
    "uncertain": "had mixed or unclear results",
}
GENERAL_GROUP = "Other findings"
SEVERAL_GROUP = "Several of these compared"
DIRECTION_SHORT = {
    "benefit": "benefit",
    "no difference": "no difference",
    "uncertain": "mixed or uncertain",
    "harm": "harms",
}
OTHER_PHASES = "other or mixed phases"
_END = re.compile(r"([.!?]+[\"”')\]]*)$")
_MARKER = re.compile(r"\s*\[\d+(?:\s*[-–,]\s*\d+)*\]")

Pair = tuple[Study, Finding]


def cite_refs(sentence: str, refs: Sequence[int]) -> str:
    """``sentence`` with ``[n]`` markers (``[20][23]`` for several) before its final punctuation."""
    if not refs:
        return sentence
    marker = citation_markers(refs)
    m = _END.search(sentence)
    if m:
        return f"{sentence[: m.start()]} {marker}{m.group(1)}"
    return f"{sentence} {marker}"


def strip_markers(text: str) -> str:
    """``text`` without ``[n]`` markers and with whitespace folded (for traceability checks)."""
    return " ".join(_MARKER.sub("", text).split())


class Draft:
    """The paragraphs and quoted sentences of an answer being composed, and the studies it
    draws on (``related``: the documents shown as related evidence)."""

    def __init__(self) -> None:
        self.paragraphs: list[str] = []
        self.sentences: list[dict[str, Any]] = []
        self.studies: list[Study] = []
        self.related: set[str] = set()

    @property
    def text(self) -> str:
        """The answer's text: its paragraphs, blank-line separated."""
        return "\n\n".join(self.paragraphs)

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


def _study_directions(studies: Sequence[Study]) -> dict[str | None, dict[str, str]]:
    """Phase -> {doc_id: direction} from each study's best counted finding in that phase."""
    by_phase: dict[str | None, dict[str, str]] = {}
    for study in studies:
        for f in study.findings:  # best first
            if f.direction not in COUNTED:
                continue
            by_phase.setdefault(study.phase_of(f), {}).setdefault(study.doc_id, f.direction)
    return by_phase


def _refs_of(studies: Sequence[Study], doc_ids: Sequence[str]) -> list[int]:
    refs: list[int] = []
    for s in studies:
        if s.doc_id in doc_ids:
            refs.extend(s.meta.get("refs") or ())
    return refs


def _direction_clause(studies: Sequence[Study], directions: Mapping[str, str], patient: bool) -> str:
    counts = Counter(directions.values())
    total = sum(counts.values())
    parts = []
    for direction in COUNTED:
        if not counts[direction]:
            continue
        docs = [d for d, x in directions.items() if x == direction]
        refs = citation_markers(_refs_of(studies, docs))
        if patient:
            parts.append(f"{counts[direction]} {_PATIENT_WORDS[direction]}")
        elif len(parts) == 0:
            parts.append(f"{_COUNT_WORDS[direction]} in {counts[direction]} of {total} {refs}")
        else:
            parts.append(f"{_COUNT_WORDS[direction]} in {counts[direction]} {refs}")
    if patient:
        return join_words(parts) + "."
    return f"{', '.join(parts)}" + (f" ({consistency(counts)})" if total > 1 else "")


def _best_direction(study: Study, patient: bool = False) -> str | None:
    """The direction of the study's best finding that reports a benefit or a difference; in
    patient mode that of its first quoted plain sentence when it reports one (what the
    reader sees), else the clinician finding's."""
    if patient and study.plain and study.plain[0].direction in COUNTED:
        return study.plain[0].direction
    return next((f.direction for f in study.findings if f.direction in COUNTED), None)


def _first_per_study(by_phase: Mapping[str | None, Mapping[str, str]], phases: Sequence[str | None]) -> dict[str, str]:
    """Each study's direction in the first of ``phases`` where it has one."""
    merged: dict[str, str] = {}
    for phase in phases:
        for doc, direction in by_phase.get(phase, {}).items():
            merged.setdefault(doc, direction)
    return merged


def bottom_line(
    studies: Sequence[Study], patient: bool = False, related: bool = False, asked: Sequence[str] = ()
) -> str:
    """The computed first line of a synthesized answer ("" for fewer than two human studies).

    Each study counts once per LBP phase, with the direction of its best finding there.
    When the question names a phase, one clause for it; otherwise one clause per phase the
    findings name when they name two or more (plus one for the studies with no finding of a
    particular phase), else one clause. Studies whose quoted findings speak of harms or
    safety are counted in a last clause.

    Clinician: ``Bottom line, counted from the 5 studies below (3 systematic reviews, ...):
    acute LBP: no difference in 2 of 2 [20][22] (consistent); chronic LBP: benefit in 4 of 4
    [20][21][23][24] (consistent).`` Patient: ``We found 5 studies on this. 4 found a benefit
    and 1 found little or no difference.``
    """
    human = [s for s in studies if not s.animal]
    if len(human) < 2:
        return ""
    animals = len(studies) - len(human)
    by_phase = _study_directions(human)
    everything = [*PHASE_LABELS, None]
    safety = [s.doc_id for s in human if any(f.direction == "harm" for f in s.findings)]
    if patient:
        counted = {s.doc_id: d for s in human for d in [_best_direction(s, patient=True)] if d}
        lead = f"We found {len(human)} {'related ' if related else ''}studies on this."
        parts = [lead, _direction_clause(human, counted, True) if counted else ""]
        if safety:
            parts.append(f"{len(safety)} {'says' if len(safety) == 1 else 'say'} something about safety.")
        return " ".join(p for p in parts if p)
    kind = "related studies" if related else "studies"
    designs = design_summary(s.meta for s in human)
    extra = f"; {animals} animal {'study' if animals == 1 else 'studies'} reported apart" if animals else ""
    head = f"Bottom line, counted from the {len(human)} {kind} below ({designs}{extra})"
    harms = f"harms or safety reported by {len(safety)} {citation_markers(_refs_of(human, safety))}" if safety else ""
    if not by_phase:
        if harms:
            return f"{head}: {harms}."
        return f"{head}: none reports a benefit or a difference for this question; see the findings below."
    specific = [p for p in PHASE_LABELS if by_phase.get(p)]
    if asked or len(specific) < 2:
        label = join_words([PHASE_LABELS[p] for p in asked]) if asked else ""
        if not asked and specific and not by_phase.get(None):
            label = PHASE_LABELS[specific[0]]
        counted = _first_per_study(by_phase, [*asked, None] if asked else everything)
        if not counted:
            none = f"none reports a benefit or a difference for {label or 'this question'}"
            return f"{head}: {'; '.join(x for x in (none, harms) if x)}."
        clauses = [f"{label + ': ' if label else ''}{_direction_clause(human, counted, False)}"]
    else:
        clauses = [f"{PHASE_LABELS[p]}: {_direction_clause(human, by_phase[p], False)}" for p in specific]
        placed = {doc for p in specific for doc in by_phase[p]}
        rest = {doc: d for doc, d in by_phase.get(None, {}).items() if doc not in placed}
        if rest:  # studies with no finding of a particular phase
            clauses.append(f"{OTHER_PHASES}: {_direction_clause(human, rest, False)}")
    if harms:
        clauses.append(harms)
    return f"{head}: {'; '.join(clauses)}."


def _order(pairs: Sequence[Pair]) -> list[Pair]:
    return sorted(pairs, key=lambda p: (p[0].level, -p[1].score))


def group_findings(
    pairs: Sequence[Pair], treatments: Vocabulary = (), facets: Sequence[str] = (), asked: Vocabulary = ()
) -> list[tuple[str, list[Pair]]]:
    """(heading, findings) groups, strongest designs first in each.

    First, the sentences that name an aspect of how the studies were run that the question
    asks about (``asked``: "lost to follow-up"), one group per aspect. Then, by the
    treatments of ``facets`` (those the question compares) when the sentences name at least
    two of them: one group per treatment in the question's order, a sentence that names
    several of them in a group of its own, the rest last. Otherwise by direction (benefit,
    no difference, mixed or uncertain, harms, other findings). A treatment group's heading
    lists the directions of its sentences.
    """
    first: list[tuple[str, list[Pair]]] = []
    for label, pattern in asked:
        items = [pair for pair in pairs if pattern.search(pair[1].text)]
        if items:
            first.append((label, _order(items)))
            pairs = [pair for pair in pairs if pair not in items]
    return first + _grouped(pairs, treatments, facets) if pairs else first


def _grouped(pairs: Sequence[Pair], treatments: Vocabulary, facets: Sequence[str]) -> list[tuple[str, list[Pair]]]:
    """:func:`group_findings` by treatment or by direction."""
    if facets and treatments:
        by_label = dict(treatments)
        patterns = tuple((label, by_label[label]) for label in facets if label in by_label)
        keyed: dict[str, list[Pair]] = {}
        for pair in pairs:
            names = treatments_in(pair[1].text, patterns)
            key = names[0] if len(names) == 1 else SEVERAL_GROUP if names else GENERAL_GROUP
            keyed.setdefault(key, []).append(pair)
        if len([k for k in keyed if k not in (SEVERAL_GROUP, GENERAL_GROUP)]) >= 2:
            order = [label for label, _ in patterns] + [SEVERAL_GROUP, GENERAL_GROUP]
            groups = []
            for name in sorted(keyed, key=order.index):
                items = keyed[name]
                directions = [d for d in DIRECTION_ORDER if d != "finding" and any(f.direction == d for _, f in items)]
                label = f" ({', '.join(DIRECTION_SHORT[d] for d in directions)})" if directions else ""
                groups.append((f"{name}{label}" if name != GENERAL_GROUP else name, _order(items)))
            return groups
    by_direction: dict[str, list[Pair]] = {}
    for pair in pairs:
        by_direction.setdefault(pair[1].direction, []).append(pair)
    return [(DIRECTION_HEADINGS[d], _order(by_direction[d])) for d in DIRECTION_ORDER if d in by_direction]


def evidence_rows(
    studies: Sequence[Study], doc_meta: Mapping[str, Mapping[str, Any]], patient: bool, related: set[str]
) -> tuple[EvidenceRow, ...]:
    """One row per cited reference, in the order of the studies (strongest first).

    The row's result is the study's first quoted sentence in the answer (plain language in
    patient mode), its direction that of the study's main finding (in patient mode that of
    the quoted plain sentence when it reports one).
    """
    rows: dict[int, EvidenceRow] = {}
    # (refs, passage id, text, direction) of sentences merged into another study's claim
    merged = [
        (refs, pid, text, f.direction) for s in studies for f in (*s.findings, *s.plain) for refs, pid, text in f.also
    ]
    for study in studies:
        quotes = (study.plain or study.findings) if patient else (study.findings or study.plain)
        if quotes:
            direction = (_best_direction(study, patient=True) or study.direction) if patient else study.direction
            main = (quotes[0].refs, quotes[0].passage_id, quotes[0].text, direction)
        else:
            found = next((m for m in merged if m[1].rsplit("#", 1)[0] == study.doc_id), None)
            if found is None:
                continue
            main = found
        refs, passage_id, text, direction = main
        for n in refs:
            if n in rows:
                continue
            meta = doc_meta.get(f"ref-{n}") or study.meta
            doc_id = f"ref-{n}" if doc_meta.get(f"ref-{n}") else study.doc_id
            rows[n] = evidence_row(meta, doc_id, text, passage_id, direction, study.doc_id in related, n=n)
    return tuple(rows.values())


def evidence_notes(
    studies: Sequence[Study], doc_meta: Mapping[str, Mapping[str, Any]], mode: str, has_bottom_line: bool
) -> list[str]:
    """Plain statements about the size, agreement and kind of the evidence used."""
    refs = sorted({n for s in studies for n in s.meta.get("refs") or ()})
    metas = {n: doc_meta.get(f"ref-{n}", {}) for n in refs}
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


def related_documents(studies: Sequence[Study], gaps: Sequence[Gap]) -> set[str]:
    """Documents shown as related evidence: all of them when a named term is absent from
    the corpus, the human ones when only animal studies cover it."""
    if any(g.kind == "absent" for g in gaps):
        return {s.doc_id for s in studies}
    if any(g.kind == "animal" for g in gaps):
        return {s.doc_id for s in studies if not s.animal}
    return set()
