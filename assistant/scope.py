"""Does the corpus cover a question? Decided from retrieval evidence.

The signals: the dense similarity of the best passage to the user's own words, the share
of the question's terms that the corpus vocabulary does not contain at all, and a few
out-of-scope intents that retrieval cannot tell apart from in-scope questions (a question
about the dose of a drug for back pain looks like back-pain evidence to an embedding).
Thresholds are calibrated on datasets/lbp-dev/answers with
``python -m assistant eval-answers --calibrate``, which prints every feature.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from assistant.conversation import _STOPWORDS

# Calibrated on datasets/lbp-dev/answers: in-scope questions score 0.456 or more on their
# own words, off-topic ones 0.40 or less; with terms unknown to the corpus, 0.55 separates.
DENSE_IN_SCOPE = 0.40
DENSE_WITH_UNKNOWN_TERMS = 0.55
MAX_UNKNOWN_SHARE = 0.33
# A short follow-up whose best passage scores under this needs the previous question.
FOLLOW_UP_DENSE = 0.45

_DRUGS = (
    r"\b(ibuprofen|naproxen|paracetamol|acetaminophen|tylenol|advil|aspirin|nsaids?|opioids?|tramadol|oxycodone|"
    r"codeine|morphine|gabapentin|pregabalin|diclofenac|duloxetine|amitriptyline|muscle relaxants?|steroids?)\b"
)

# "without pills", "other than medicine": asking for the alternative to medicines is in scope.
_NOT_MEDICINE = re.compile(
    r"(\b(without|instead of|other than|besides|rather than|apart from|not|no|avoid\w*)|n't)\W+(\w+\W+){0,2}"
    r"(pills?|medicines?|medications?|painkillers?|drugs?)\b",
    re.IGNORECASE,
)

# Requests the corpus cannot answer whatever the retrieval scores say. Retrieval evidence
# decides the rest (see Coverage); these only name what retrieval cannot tell apart.
_OUT_OF_SCOPE_INTENTS: dict[str, re.Pattern[str]] = {
    "dosing": re.compile(
        r"\b(\d+\s?(mg|mcg|milligrams?|micrograms?)|dos(e|es|age|ing)|prescri(be|bed|ption) (for|of) (pain|medicine|drugs?)|"
        r"(how (much|many|often)|can i|should i|is it safe to|what (pills?|drugs?|medicines?|medications?))\b.{0,40}"
        r"\b(take|taking|pills?|tablets?|medicines?|medications?|drugs?|painkillers?)|"
        r"(take|taking)\b.{0,20}\b(ibuprofen|naproxen|paracetamol|acetaminophen|tylenol|advil|aspirin|opioids?|tramadol|"
        r"oxycodone|codeine|gabapentin|pregabalin|diclofenac|muscle relaxants?)|"
        r"\b(most|maximum|max)\b.{0,40}\b(take|pills?|tablets?)\b|"
        rf"{_DRUGS}.{{0,40}}\b(take|taking)\b)\b",
        re.IGNORECASE,
    ),
    # A question about medicines that mentions no exercise or activity at all.
    "medication": re.compile(
        rf"^(?!.*\b(exercis\w*|activ\w*|walk\w*|mov\w*|train\w*|yoga|pilates|physio\w*|stretch\w*|sport\w*|"
        rf"swim\w*|run\w*|rest\w*|therap\w*)\b).*({_DRUGS}|\b(medicines?|medications?|pills?|painkillers?|drugs?)\b)",
        re.IGNORECASE,
    ),
    "surgery": re.compile(
        r"\b(surgery|surgical|operation|operate|spinal fusion|fusion surgery|discectomy|laminectomy|"
        r"disc replacement|(knee|hip|joint) replacement|microdiscectomy|decompression)\b",
        re.IGNORECASE,
    ),
    "procedure": re.compile(
        r"\b(injections?|epidurals?|steroid shots?|nerve blocks?|radiofrequency|ablation|acupuncture|chiropract\w*|"
        r"spinal manipulation|massage chair|tens unit)\b",
        re.IGNORECASE,
    ),
    "imaging": re.compile(r"\b(mri|x-?rays?|ct scans?|scans?|imaging|radiograph\w*)\b", re.IGNORECASE),
    "instructions": re.compile(
        r"\b(ignore (all |any |your |the |previous |prior )*(instructions|rules|prompt)|system prompt|"
        r"your (instructions|prompt|rules)|jailbreak|pretend (to be|you are)|act as|you are now|developer mode|"
        r"print (your|the) (prompt|instructions)|reveal (your|the) (prompt|instructions))",
        re.IGNORECASE,
    ),
}

# Calibrated on datasets/lbp-dev/answers (dev split) with `python -m assistant eval-answers --calibrate`.
DENSE_IN_SCOPE = 0.40
DENSE_WITH_UNKNOWN_TERMS = 0.55
MAX_UNKNOWN_SHARE = 0.33
FOLLOW_UP_DENSE = 0.45


@dataclass(frozen=True)
class Coverage:
    """Whether the corpus covers a question, and the evidence for the decision."""

    in_scope: bool
    reason: str
    dense_top: float
    bm25_top: float
    agreement: bool
    unknown_terms: tuple[str, ...]
    unknown_share: float
    intent: str | None = None


def detect_intent(question: str) -> str | None:
    """The out-of-scope intent of ``question`` (``dosing``, ``medication``, ``surgery``,
    ``procedure``, ``imaging``, ``instructions``), or None."""
    for intent, pattern in _OUT_OF_SCOPE_INTENTS.items():
        if pattern.search(question) and not (intent == "medication" and _NOT_MEDICINE.search(question)):
            return intent
    return None


def assess_coverage(
    question: str,
    dense_top: float,
    bm25_top: float,
    agreement: bool,
    tokens: Sequence[str],
    vocabulary: Collection[str],
) -> Coverage:
    """Decide coverage from retrieval features.

    Args:
        question: the standalone question.
        dense_top: cosine of the best passage to the question's own words.
        bm25_top: best BM25 score.
        agreement: the dense top document is among the BM25 top three.
        tokens: the question's BM25 tokens (stemmed, stop words removed).
        vocabulary: the BM25 vocabulary of the corpus.
    """
    unknown = tuple(t for t in tokens if t not in vocabulary and not t.isdigit() and t not in _STOPWORDS)
    share = len(unknown) / len(tokens) if tokens else 1.0
    features = (dense_top, bm25_top, agreement, unknown, share)
    intent = detect_intent(question)
    if intent is not None:
        return Coverage(False, f"intent:{intent}", *features, intent=intent)
    if not tokens and dense_top < DENSE_WITH_UNKNOWN_TERMS:
        return Coverage(False, "no searchable words", *features)
    if dense_top < DENSE_IN_SCOPE:
        return Coverage(False, "low dense similarity", *features)
    if unknown and share >= MAX_UNKNOWN_SHARE and dense_top < DENSE_WITH_UNKNOWN_TERMS:
        return Coverage(False, "terms not in the corpus", *features)
    return Coverage(True, "covered", *features)
