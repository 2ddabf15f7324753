"""Choose the sentences an answer quotes from its studies, without near-repeats.

From each kept study, its best findings (clinician and plain), at most :data:`PER_STUDY`
(one more when the answer has :data:`FEW_STUDIES` studies or fewer)
and only close to the study's best (a result in another direction than those taken, within
a wider margin: "no difference in acute LBP" after "benefit in chronic LBP"). A sentence that nearly repeats one already taken from
another study is merged into it when both say the same thing, so the claim cites both, and
dropped otherwise; a second sentence of the same study must add something (a lower bar for
"nearly repeats", shared wording, the same figures). :class:`assistant.answers.synthesis.EvidenceGatherer`
calls :func:`select_findings` on the studies it keeps.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from assistant.answers.studies import Finding, Study

# Calibrated on the dev split of datasets/lbp-dev/answers with the constants of
# assistant/answers/synthesis.py; its cut uses the same two similarity bars.
MIN_FINDING_SIMILARITY = 0.30
MIN_FACET_SIMILARITY = 0.20
# Per study: sentences within this margin of its best one, at most PER_STUDY of them.
SENTENCE_MARGIN = 0.15
CONTRAST_MARGIN = 0.20
PER_STUDY = 4
FEW_STUDIES = 3
MAX_FINDINGS = 16
NEAR_DUPLICATE = 0.88
SAME_STUDY_DUPLICATE = 0.70
# Two sentences of one study sharing this share of the shorter one's content words say the same thing.
SAME_WORDS = 0.6

_CONTENT_WORD = re.compile(r"[a-z0-9][a-z0-9-]+")
_FUNCTION_WORDS = frozenset(
    # Words that say nothing about a finding
    re.findall(
        r"\w+",
        "the and for with than that this from were was are has have had its their they been but not "
        "into over both all any more less most some such in it is no of to an on as at by or be",
    )
)


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def same_numbers(a: str, b: str) -> bool:
    """Whether two sentences report the same figures: at least two numbers each, those of one
    all in the other ("138 of the 148 (93%) completed" and "of 148 randomized, 138 (93%)")."""
    na, nb = set(_NUMBER.findall(a)), set(_NUMBER.findall(b))
    return len(na) >= 2 and len(nb) >= 2 and (na <= nb or nb <= na)


def word_overlap(a: str, b: str) -> float:
    """Shared content words over the content words of the shorter sentence (0 to 1)."""
    wa = {w for w in _CONTENT_WORD.findall(a.lower()) if w not in _FUNCTION_WORDS}
    wb = {w for w in _CONTENT_WORD.findall(b.lower()) if w not in _FUNCTION_WORDS}
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / min(len(wa), len(wb))


def select_findings(
    studies: Sequence[Study], exclude: set[int], vectors_of: Callable[[Sequence[int]], np.ndarray]
) -> None:
    """Keep each study's best findings (clinician and plain), without near-repeats.

    Round by round: every study's best acceptable sentence first (most relevant study
    first), then second sentences, up to :data:`PER_STUDY`, so that the answer's cap of
    :data:`MAX_FINDINGS` sentences never leaves a kept study without its main finding.
    ``vectors_of`` gives the normalized vectors of sentence rows.
    """
    ordered = sorted(studies, key=lambda s: -s.relevance)
    for study in ordered:
        study.plain_pool = list(study.plain)
    for audience in ("clinician", "patient"):
        pools = {id(s): list(s.findings if audience == "clinician" else s.plain) for s in ordered}
        chosen: dict[int, list[Finding]] = {id(s): [] for s in ordered}
        taken: list[Finding] = []
        vectors: list[np.ndarray] = []
        # an answer from few studies has room for one more sentence of each
        for _ in range(PER_STUDY + (1 if len(ordered) <= FEW_STUDIES else 0)):
            for study in ordered:
                pool, mine = pools[id(study)], chosen[id(study)]
                # the bar is set by the best score without the precedents' bonus: a sentence
                # that answered similar questions comes in more easily, and keeps no other out
                top = max((f.score - f.precedent for f in pool), default=0.0)
                while pool and len(taken) < MAX_FINDINGS:
                    f = pool.pop(0)
                    # A further result in another direction ("no difference in acute LBP" after a
                    # benefit in chronic LBP) is part of what the study found: a wider margin and
                    # the lower bar.
                    contrast = (
                        bool(mine) and f.direction != "finding" and f.direction not in {c.direction for c in mine}
                    )
                    if f.row in exclude or f.score < top - SENTENCE_MARGIN - (CONTRAST_MARGIN if contrast else 0.0):
                        continue
                    if mine and f.similarity < (
                        MIN_FACET_SIMILARITY if f.on_facet or contrast else MIN_FINDING_SIMILARITY
                    ):
                        continue  # a further sentence must be close, name what the question asks about, or contrast
                    v = vectors_of([f.row])[0]
                    if mine and (
                        float(np.max(vectors_of([c.row for c in mine]) @ v))
                        > (NEAR_DUPLICATE if contrast else SAME_STUDY_DUPLICATE)
                        # shared wording says the same thing, unless the results differ in direction
                        or (
                            not contrast
                            and any(
                                word_overlap(f.text, c.text) >= SAME_WORDS or same_numbers(f.text, c.text) for c in mine
                            )
                        )
                    ):
                        continue  # a second sentence of a study must add something
                    if vectors:
                        sims = np.asarray(vectors) @ v
                        j = int(np.argmax(sims))
                        if sims[j] > NEAR_DUPLICATE:
                            taken[j] = _merge(taken[j], f, list(chosen.values()))
                            continue
                    mine.append(f)
                    taken.append(f)
                    vectors.append(v)
                    break
        for study in ordered:
            if audience == "clinician":
                study.findings = chosen[id(study)]
            else:
                study.plain = chosen[id(study)]


def _merge(kept: Finding, repeat: Finding, lists: Sequence[list[Finding]]) -> Finding:
    """Cite ``repeat``'s study with ``kept`` when the two sentences say the same thing;
    returns the finding that now stands for both (``kept`` itself when they differ),
    having put it in ``kept``'s place in ``lists``."""
    if repeat.doc_id == kept.doc_id or repeat.direction != kept.direction:
        return kept
    merged = replace(kept, also=(*kept.also, (repeat.refs, repeat.passage_id, repeat.text)))
    for findings in lists:
        for i, f in enumerate(findings):
            if f is kept:
                findings[i] = merged
    return merged
