"""Does the corpus cover a question? Decided from retrieval evidence.

The signals: the dense similarity of the best passage to the question, the share
of the question's terms that the corpus vocabulary does not contain at all, and a few
out-of-scope intents that retrieval cannot tell apart from in-scope questions (a question
about the dose of a drug for back pain looks like back-pain evidence to an embedding).
Thresholds are calibrated on datasets/lbp-dev/answers with
``python -m assistant eval-answers --calibrate``, which prints every feature, once per
kind of model: a model adapted to the corpus (:mod:`assistant.encoders.adaptation`) spreads
similarities differently from the base model, so each has its own :class:`Thresholds`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from assistant.answers.conversation import _STOPWORDS

MAX_UNKNOWN_SHARE = 0.33


@dataclass(frozen=True)
class Thresholds:
    """Dense-similarity cut-offs of one kind of model.

    Attributes:
        expanded: judge the question with its lay-term expansion (else its own words only).
        in_scope: below this best-passage cosine a question is out of scope.
        with_unknown_terms: the bar when a third or more of its terms are unknown to the corpus.
        follow_up: a short follow-up whose best passage scores under this needs the previous
            question.
        substitution: a follow-up's new word replaces the previous question's closest word
            only when at least this similar (:func:`assistant.answers.conversation.rewrite_follow_up`).
    """

    expanded: bool
    in_scope: float
    with_unknown_terms: float
    follow_up: float
    substitution: float


THRESHOLDS = {
    # Base model, own words: in-scope questions score 0.456 or more, off-topic ones 0.40 or
    # less; with terms unknown to the corpus, 0.55 separates.
    False: Thresholds(expanded=False, in_scope=0.40, with_unknown_terms=0.55, follow_up=0.45, substitution=0.25),
    # Adapted model, expanded question: in-scope 0.281 or more, off-topic without an
    # out-of-scope intent 0.266 or less, except "best treatment for migraine" (0.408), which
    # no feature here separates (it is answered: eval-answers lists it). Word similarities
    # shrink by about a fifth ("walking"-"Pilates" 0.32 -> 0.24), so substitution 0.25 -> 0.20.
    True: Thresholds(expanded=True, in_scope=0.275, with_unknown_terms=0.45, follow_up=0.35, substitution=0.20),
}

# "endogenous opioids" and "the opioid system" are the body's own, studied in the animal evidence
_DRUG_NAMES = (
    r"ibuprofen|naproxen|paracetamol|acetaminophen|tylenol|advil|aspirin|nsaids?|"
    r"(?<!endogenous )opioids?(?! (system|receptors?|peptides?|pathways?|mechanisms?|release))|tramadol|oxycodone|"
    r"codeine|morphine|gabapentin|pregabalin|diclofenac|duloxetine|amitriptyline|muscle relaxants?|steroids?"
)
_DRUGS = rf"\b({_DRUG_NAMES})\b"

_MEDICINE_WORDS = rf"{_DRUGS}|\b(medicines?|medications?|pills?|tablets?|painkillers?|drugs?|analgesics?)\b"

# "without pills", "other than medicine", "beyond opioids": asking for the alternative to
# medicines is in scope.
_NOT_MEDICINE = re.compile(
    r"(\b(without|instead of|other than|besides|beyond|rather than|apart from|not|no|avoid\w*)|n't)\W+(\w+\W+){0,2}"
    rf"(pills?|medicines?|medications?|painkillers?|drugs?|{_DRUG_NAMES})\b",
    re.IGNORECASE,
)

# Requests the corpus cannot answer whatever the retrieval scores say. Retrieval evidence
# decides the rest (see Coverage); these only name what retrieval cannot tell apart.
_IMAGING = r"\b(mri|x-?rays?|ct scans?|scans?|imaging|radiograph\w*)\b"
_ACTIVITY = (
    r"(exercis\w*|activ\w*|walk\w*|mov\w*|train\w*|yoga|pilates|physio\w*|stretch\w*|sport\w*|swim\w*|"
    r"run\w*|rest\w*|therap\w*|mckenzie|mdt|stabili[sz]\w*|strength\w*|aerobic|tai chi|back school|"
    r"rehabilitat\w*|programmes?|programs?)"
)
# Questions about animal studies: their models include surgery, injections and the body's
# opioids ("Does exercise after nerve injury or surgery worsen pain in rats?"), and no patient's
# treatment is asked about.
_ANIMAL = re.compile(r"\b(animals?|rats?|mice|mouse|rodents?|murine|preclinical|pre-clinical)\b", re.IGNORECASE)
_NOT_IN_ANIMALS = frozenset({"dosing", "medication", "surgery", "procedure"})
# Surgery told as the setting of a question about exercise ("I had back surgery last year. Could
# exercise help the pain that hangs on?"), or the doctor's surgery (British: the practice).
_SURGERY_TOLD = re.compile(
    r"\b((after|since|following|had|have had|recovering from|recovery from)\W+(\w+\W+){0,3}"
    r"(surgery|operation|op)|post-?(surgical|operative)|(at|from|in) (the|my|our|your|a) (gp'?s? |doctor'?s? )?"
    r"surgery|gp'?s? surgery)\b",
    re.IGNORECASE,
)
_OUT_OF_SCOPE_INTENTS: dict[str, re.Pattern[str]] = {
    # Doses of medicines. The dose, frequency or amount of exercise is in scope ("exercise dose",
    # "how often should I exercise"): a dose word counts only beside a medicine word.
    "dosing": re.compile(
        r"\b(\d+\s?(mg|mcg|milligrams?|micrograms?)|"
        rf"({_MEDICINE_WORDS}).{{0,60}}\b(dos(e|es|age|ing)|prescri(be|bed|ption))\b|"
        rf"\b(dos(e|es|age|ing)|prescri(be|bed|ption))\b.{{0,60}}({_MEDICINE_WORDS})|"
        r"(how (much|many|often)|can i|should i|is it safe to|what (pills?|drugs?|medicines?|medications?))\b.{0,40}"
        r"\b((?<!\bit )(?<!\bthat )take|taking|pills?|tablets?|medicines?|medications?|drugs?|painkillers?)|"  # not "will it take" (time)
        r"(take|taking)\b.{0,20}\b(ibuprofen|naproxen|paracetamol|acetaminophen|tylenol|advil|aspirin|opioids?|tramadol|"
        r"oxycodone|codeine|gabapentin|pregabalin|diclofenac|muscle relaxants?)|"
        r"\b(most|maximum|max)\b.{0,40}\b(take|pills?|tablets?)\b|"
        rf"{_DRUGS}.{{0,40}}\b(take|taking)\b)\b",
        re.IGNORECASE,
    ),
    # A question about medicines that mentions no exercise or activity at all.
    "medication": re.compile(
        rf"^(?!.*\b{_ACTIVITY}\b).*({_DRUGS}|\b(medicines?|medications?|pills?|painkillers?|drugs?)\b)",
        re.IGNORECASE,
    ),
    "surgery": re.compile(
        r"\b(surgery|surgical|operation|operate|spinal fusion|fusion surgery|discectomy|laminectomy|"
        r"disc replacement|(knee|hip|joint) replacement|microdiscectomy|decompression)\b",
        re.IGNORECASE,
    ),
    # Injections and other procedures. Spinal manipulation, massage, acupuncture, heat and TENS
    # are comparators in the exercise evidence, so they are in scope.
    "procedure": re.compile(
        r"\b(injections?|epidurals?|steroid shots?|nerve blocks?|radiofrequency|ablation|denervation|"
        r"facet (joint )?(injections?|blocks?)|spinal cord stimulat\w*|implant\w*)\b",
        re.IGNORECASE,
    ),
    # A question about imaging; a scan result mentioned in a question about exercise ("A scan
    # showed a worn disc: can exercise still help?") leaves the question in scope.
    "imaging": re.compile(
        rf"\b(should|do|does|need|get|have|order|worth|useful|help\w*|when|why)\b([\w' ]{{0,30}})\b"
        rf"{_IMAGING}|{_IMAGING}.{{0,40}}\b(needed|necessary|useful|worth|help\w*|show|tell|find|before)\b|"
        rf"^(?!.*\b{_ACTIVITY}\b).*{_IMAGING}",
        re.IGNORECASE,
    ),
    "instructions": re.compile(
        r"\b(ignore (all |any |your |the |previous |prior )*(instructions|rules|prompt)|system prompt|"
        r"your (instructions|prompt|rules)|jailbreak|pretend (to be|you are)|act as|you are now|developer mode|"
        r"print (your|the) (prompt|instructions)|reveal (your|the) (prompt|instructions))",
        re.IGNORECASE,
    ),
}


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


_ASKED = re.compile(r"[^.?!]*\?")
# Full stops that end no sentence: abbreviations ("e.g.", "vs.", "et al.") and decimals
_NOT_A_STOP = re.compile(
    r"\b(e\.g|i\.e|vs|etc|et al|cf|approx|incl|esp|resp|dr|fig|no)\.|(?<=\d)\.(?=\d)", re.IGNORECASE
)
MEDICINE_INTENTS = frozenset({"dosing", "medication"})


def detect_intent(question: str) -> str | None:
    """The out-of-scope intent of ``question`` (``dosing``, ``medication``, ``surgery``,
    ``procedure``, ``imaging``, ``instructions``), or None.

    A medicine named only in what the message tells, not in what it asks, is context: "My
    doctor said keep moving and take paracetamol. Should I do exercises, or rest in bed?" asks
    about exercise (the medicine intents are judged on the sentences that end with a question
    mark, when the message has both)."""
    masked = _NOT_A_STOP.sub(lambda m: m.group(0).replace(".", " "), question)
    asked = " ".join(m.group(0) for m in _ASKED.finditer(masked))
    told = asked.strip() and len(asked.strip()) < len(question.strip())
    animals = bool(_ANIMAL.search(question))
    for intent, pattern in _OUT_OF_SCOPE_INTENTS.items():
        text = asked if told and intent in MEDICINE_INTENTS else question
        if not pattern.search(text) or (animals and intent in _NOT_IN_ANIMALS):
            continue
        if intent == "medication" and _NOT_MEDICINE.search(text):
            continue
        if intent == "surgery" and _surgery_told(text):
            continue
        return intent
    return None


def _surgery_told(text: str) -> bool:
    """Whether surgery is only the setting of a question about exercise or activity (and is
    not also asked about: "I had a discectomy. Should I have another operation?")."""
    return bool(
        _SURGERY_TOLD.search(text)
        and re.search(rf"\b{_ACTIVITY}\b", text, re.IGNORECASE)
        and not _OUT_OF_SCOPE_INTENTS["surgery"].search(_SURGERY_TOLD.sub(" ", text))
    )


_REPEATS = re.compile(r"\b(\w+)(?:\W+\1\b)+", re.IGNORECASE)


def collapse_repeats(text: str) -> str:
    """``text`` with runs of one repeated word cut to one ("really really really" -> "really"),
    so padding does not drown the question in the embedding model's window."""
    return _REPEATS.sub(r"\1", text)


def assess_coverage(
    question: str,
    dense_top: float,
    bm25_top: float,
    agreement: bool,
    tokens: Sequence[str],
    vocabulary: Collection[str],
    thresholds: Thresholds = THRESHOLDS[False],
    asked: str | None = None,
) -> Coverage:
    """Decide coverage from retrieval features.

    Args:
        question: the standalone question.
        dense_top: cosine of the best passage to the question (see :class:`Thresholds`).
        bm25_top: best BM25 score.
        agreement: the dense top document is among the BM25 top three.
        tokens: the question's BM25 tokens (stemmed, stop words removed).
        vocabulary: the BM25 vocabulary of the corpus.
        thresholds: the cut-offs of the index's kind of model.
        asked: the words out-of-scope intents are judged on (default: ``question``; a
            follow-up's own message when the conversation it continues was in scope, see
            :meth:`assistant.answers.answer.Answerer.ask`).
    """
    unknown = tuple(t for t in tokens if t not in vocabulary and not t.isdigit() and t not in _STOPWORDS)
    share = len(unknown) / len(tokens) if tokens else 1.0
    features = (dense_top, bm25_top, agreement, unknown, share)
    intent = detect_intent(question if asked is None else asked)
    if intent is not None:
        return Coverage(False, f"intent:{intent}", *features, intent=intent)
    if not tokens and dense_top < thresholds.with_unknown_terms:
        return Coverage(False, "no searchable words", *features)
    if dense_top < thresholds.in_scope:
        return Coverage(False, "low dense similarity", *features)
    if unknown and share >= MAX_UNKNOWN_SHARE and dense_top < thresholds.with_unknown_terms:
        return Coverage(False, "terms not in the corpus", *features)
    return Coverage(True, "covered", *features)
