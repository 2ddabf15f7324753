"""What a question asks: its parts, the treatments and LBP phases it names, whether it
compares treatments, whether it is about animals. Pure functions over the question text.

The treatments come from ``corpus/treatments.json`` (exercise types and comparator
treatments), the outcomes from ``corpus/outcomes.json`` (safety, work, cost, how long
effects last...), both with the spellings the records use. A question that names
treatments is answered from the studies about them, one that names an outcome from the
studies that report it, and one that asks which type works best from the best study of
each exercise type (:mod:`assistant.answers.synthesis`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from assistant.answers.evidence import sentence_phases
from assistant.errors import FormatError
from assistant.search.priors import duration_phase

TREATMENTS_FILE = "treatments.json"
OUTCOMES_FILE = "outcomes.json"
Vocabulary = tuple[tuple[str, re.Pattern[str]], ...]


@dataclass(frozen=True)
class Treatments:
    """The treatment vocabulary: exercise types and comparators, each ``(label, pattern)``."""

    exercise: Vocabulary = ()
    comparators: Vocabulary = ()

    @property
    def all(self) -> Vocabulary:
        return self.exercise + self.comparators


@lru_cache(maxsize=8)
def load_vocabulary(path: str, *keys: str) -> tuple[Vocabulary, ...]:
    """The vocabularies under ``keys`` of a JSON file of ``{key: {label: [pattern, ...]}}``
    (empty ones when the file is missing).

    Raises:
        FormatError: invalid JSON, a value that is not a list of patterns, or a pattern that
            is not a valid regular expression (the file and the label are named).
    """
    p = Path(path)
    if not p.is_file():
        return tuple(() for _ in keys)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FormatError(p, exc.lineno, f"invalid JSON: {exc.msg}") from exc

    def vocabulary(key: str) -> Vocabulary:
        items = data.get(key, {}) if isinstance(data, dict) else {}
        if not isinstance(items, dict):
            raise FormatError(p, None, f"{key!r} must be an object of label -> list of patterns")
        out = []
        for label, alternatives in items.items():
            if not isinstance(alternatives, list) or not all(isinstance(x, str) and x for x in alternatives):
                raise FormatError(p, None, f"{label!r}: expected a list of patterns (strings)")
            try:
                out.append((str(label), re.compile("|".join(f"(?:{x})" for x in alternatives), re.IGNORECASE)))
            except re.error as exc:
                raise FormatError(p, None, f"{label!r}: {exc}") from exc
        return tuple(out)

    return tuple(vocabulary(key) for key in keys)


def load_treatments(path: str) -> Treatments:
    """The exercise types and comparators of ``treatments.json`` (see :func:`load_vocabulary`)."""
    exercise, comparators = load_vocabulary(path, "exercise_types", "comparators")
    return Treatments(exercise, comparators)


def load_outcomes(path: str) -> Vocabulary:
    """The outcomes and aspects of ``outcomes.json``, the aspects of the evidence
    (``evidence_aspects``) last (see :func:`load_vocabulary`)."""
    outcomes, aspects = load_vocabulary(path, "outcomes", "evidence_aspects")
    return outcomes + aspects


def load_evidence_aspects(path: str) -> Vocabulary:
    """What a question may ask about the evidence rather than an outcome (``evidence_aspects``
    of ``outcomes.json``: dropout, certainty, size of the effect): they
    choose the sentences that lead an answer, not its studies (see :func:`load_vocabulary`)."""
    return load_vocabulary(path, "evidence_aspects")[0]


POPULATIONS_FILE = "populations.json"


def load_populations(path: str) -> Vocabulary:
    """The populations of ``populations.json`` (older adults, pregnancy...; see :func:`load_vocabulary`)."""
    return load_vocabulary(path, "populations")[0]


def treatments_in(text: str, vocabulary: Vocabulary) -> tuple[str, ...]:
    """The treatment labels ``text`` names, in the order it names them."""
    found = [(m.start(), label) for label, pattern in vocabulary for m in [pattern.search(text)] if m]
    return tuple(label for _, label in sorted(found, key=lambda t: t[0]))


_EXAMPLE = re.compile(
    r"\b(like|such as|e\.g\.?|for example|for instance|including|say)[^\w.?!;]*(\w+[^\w.?!;]+){0,3}$|"
    # a list after "such as": "such as first-line care, advice only, back school, strengthening and ..."
    r"\b(such as|e\.g\.?|for example|for instance|including)[ ,]+([\w-]+[ ,]+){0,12}$",
    re.IGNORECASE,
)


def given_as_example(question: str, pattern: re.Pattern[str]) -> bool:
    """True when every mention of ``pattern`` in ``question`` follows "like", "such as",
    "e.g." or "for example" within a few words: an example of what is asked about, not the
    subject ("Does everyday activity like walking the dog help?")."""
    mentions = list(pattern.finditer(question))
    return bool(mentions) and all(_EXAMPLE.search(question[: m.start()]) for m in mentions)


_GENERAL_EXERCISE = re.compile(
    r"\b(exercis\w*|physical activity|physiotherapy programm?e?s?|training)\b", re.IGNORECASE
)


def exercise_versus(question: str, treatments: Treatments) -> bool:
    """True when ``question`` weighs exercise in general against the comparators it names,
    and names no exercise type: "Is exercise worth prescribing in acute LBP, or is advice to
    stay active enough?". The studies of exercise in general answer it as well as those of
    the comparators."""
    if treatments_in(question, treatments.exercise) or not treatments_in(question, treatments.comparators):
        return False
    rest = question
    for _, pattern in treatments.comparators:
        rest = pattern.sub(" ", rest)
    return bool(_GENERAL_EXERCISE.search(rest))


_YEAR = r"\(?(?P<year>(?:19|20)\d\d)\)?"


@lru_cache(maxsize=1024)
def _citation_pattern(surname: str) -> re.Pattern[str]:
    """ "Surname et al.", "Surname 2005", "Surname and Coauthor (2005)", "Surname's"."""
    return re.compile(
        rf"(?<![\w'-]){re.escape(surname)}(?:(?P<etal> et al\.?,?)|(?: and [A-Z][\w'-]+)?,? {_YEAR}|(?P<own>'s\b))"
    )


def studies_named(question: str, authors: Sequence[tuple[str, str, int | None]]) -> tuple[str, ...]:
    """The documents a question names by first author, as clinicians cite them: "Hayden
    2005", "Searle et al. (2015)", "Meng and Yue (2015)", "Hayden's review".

    Args:
        question: the question.
        authors: ``(doc_id, surname, year)`` of every study.

    A surname counts only with "et al", a year, a co-author and a year, or a possessive
    beside it (so "a little" or "Little is known" never names the ATEAM trial of Little
    2008); a year given picks among studies of one surname.
    """
    named: list[str] = []
    by_surname: dict[str, list[tuple[str, int | None]]] = {}
    for doc_id, surname, year in authors:
        if surname:
            by_surname.setdefault(surname, []).append((doc_id, year))
    for surname, studies in by_surname.items():
        if surname not in question:
            continue
        for m in _citation_pattern(surname).finditer(question):
            if not (m.group("etal") or m.group("year") or m.group("own")):
                continue
            given: str | None = m.group("year")
            if given is None and m.group("etal"):  # "Searle et al. (2015)": the year may follow
                after = re.match(rf"\s*{_YEAR}", question[m.end() :])
                given = after.group("year") if after else None
            named.extend(d for d, y in studies if (given is None or str(y) == given) and d not in named)
    return tuple(named)


_SPLIT = re.compile(
    r"(?<=\?)\s+(?=\S)|;\s+|,?\s+and\s+(?=(?:which|what|how|does|do|is|are|can|should|whether|when|who|why)\b)",
    re.IGNORECASE,
)


MAX_PARTS = 4


def split_question(text: str, min_words: int = 3) -> list[str]:
    """The parts of a multi-part question ("Is X effective, and which type works best?").

    Splits at a question mark followed by more text, at semicolons, and at "and" followed
    by a question word; a part of fewer than ``min_words`` words is joined back to the
    previous one, a part asked again is dropped, and at most :data:`MAX_PARTS` parts are
    kept (each part costs a search). One part means the question is not split.
    """
    pieces = [p.strip(" ,") for p in _SPLIT.split(text.strip()) if p and p.strip(" ,?")]
    parts: list[str] = []
    for piece in pieces:
        if parts and len(piece.split()) < min_words:
            parts[-1] = f"{parts[-1]} {piece}"
        elif piece.lower() not in {p.lower() for p in parts} and len(parts) < MAX_PARTS:
            parts.append(piece)
    return [p if p.endswith(("?", ".", "!")) else f"{p}?" for p in parts] if len(parts) > 1 else [text]


_COMPARISON = re.compile(
    r"\b((which|what) (\w+ )?(types?|kinds?|forms?|sorts?|exercises?|approach\w*|method\w*|programm?e?s?)\b|"
    r"compar\w*|versus|vs\.?|best (type|kind|form|exercise)|other (non-?drug |non-?pharmacologic(al)? )?"
    r"(treatments?|therap\w*|options|care)|such as|alternatives?|better than|more than)\b",
    re.IGNORECASE,
)
_WHICH_TYPE = re.compile(
    r"\b((which|what) (\w+ )?(types?|kinds?|forms?|sorts?) of|(which|what) (exercises?|programm?es?|approach\w*)|"
    r"best (type|kind|form|sort|exercise))\b",
    re.IGNORECASE,
)


def asks_comparison(question: str) -> bool:
    """True when the question compares treatments or asks which type works best."""
    return bool(_COMPARISON.search(question))


_COMPARED_WITH = re.compile(
    r"\b(compar\w*|versus|vs\.?|than|over|against|instead of|beats?|outperforms?)\b", re.IGNORECASE
)


def compared_subject(message: str, treatments: Treatments) -> tuple[str, ...]:
    """The treatments ``message`` names before what it compares them with: aerobic exercise
    in "And what about aerobic work, compared with strengthening?"; none in "How does it
    compare with strengthening?", which takes its subject from the conversation."""
    compared = _COMPARED_WITH.search(message)
    return treatments_in(message[: compared.start()], treatments.all) if compared else ()


def asks_which_type(question: str) -> bool:
    """True when the question asks which type (kind, form) of exercise works best."""
    return bool(_WHICH_TYPE.search(question))


_ABOUT_ANIMALS = re.compile(
    r"\b(animals?|rats?|mice|mouse|rodents?|murine|preclinical|mechanis\w*|biolog\w*|neurotroph\w*|cytokines?|"
    r"opioids? (system|receptor)\w*|endogenous|BDNF|glia\w*|inflammat\w*)\b",
    re.IGNORECASE,
)


def about_animals(question: str) -> bool:
    """True when the question asks about animal studies or biological mechanisms."""
    return bool(_ABOUT_ANIMALS.search(question))


# The study designs a question may ask about, by the ``design_group`` of the records
# (:data:`assistant.documents.records.DESIGN_GROUPS`): "according to the meta-analyses",
# "what do the randomised trials show", "which findings rest on non-randomised studies".
# A bare "trials" or "studies" names no design: people say it of any study.
DESIGNS_ASKED: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "review",
        re.compile(
            r"\b(systematic reviews?|meta-?analy[sz]\w*|pooled analys[ie]s|cochrane( reviews?)?|"
            r"(the )?reviews (found|show\w*|report\w*|conclude\w*|say|judge\w*|rate\w*))\b",
            re.IGNORECASE,
        ),
    ),
    (
        "trial",
        re.compile(
            r"\b((?<!non-)(?<!non )randomi[sz]ed( controlled)? (clinical )?trials?|RCTs?|head-to-head (\w+ )?trials?)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "cohort",
        re.compile(
            r"\b(cohorts?( studies| study)?|observational|non-?randomi[sz]ed|uncontrolled|prospective (studies|study))\b",
            re.IGNORECASE,
        ),
    ),
)


def designs_asked(question: str) -> tuple[str, ...]:
    """The ``design_group`` values the question restricts its evidence to (none: any design)."""
    return tuple(group for group, pattern in DESIGNS_ASKED if pattern.search(question))


def without_designs(question: str) -> str:
    """``question`` without the design words (they choose the studies, they are not a topic)."""
    for _, pattern in DESIGNS_ASKED:
        question = pattern.sub(" ", question)
    return question


# The condition or population a message may name (a follow-up such as "Does the effect last
# once training stops?" names none: its topic is the previous question's).
_CONDITION = re.compile(
    r"\b(back ?(pain|ache|trouble|problems?|injur\w*)|backache|(my|the|your|lower|low) back|LBP|CLBP|lumbar|sciatica|"
    r"spin(e|al)|discs?|musculoskeletal|fibromyalgia|osteoarthritis|arthritis|widespread pain|neuropathic|"
    r"pregnan\w*|adolescen\w*|teenagers?|children|elderly|older (adults|people)|workers?)\b",
    re.IGNORECASE,
)


def names_topic(message: str, treatments: Treatments) -> bool:
    """True when ``message`` names a condition, population, treatment or animal model of its
    own; a message in a conversation that names none takes the previous question's topic."""
    return bool(_CONDITION.search(message) or treatments_in(message, treatments.all) or about_animals(message))


# Phases that exclude each other: evidence on one does not answer a question on the other.
# Prevention studies follow people without back pain, so they do not answer treatment questions,
# and studies of people with back pain (of one phase or "mixed") do not answer prevention questions.
_EXCLUDES = {
    "acute": {"subacute", "chronic", "recurrent", "prevention"},
    "chronic": {"acute", "prevention"},
    "subacute": {"acute", "prevention"},
    "recurrent": {"acute"},
    "prevention": {"acute", "subacute", "chronic", "mixed"},
}


# Words of the outcome vocabulary that a question uses for something else: "recurrent LBP",
# "persistent pain" and "acute, subacute, chronic and recurrent" name populations or phases
# (the outcomes are recurrence and how long effects last), and "what can I expect", "should be
# expected" or "the expected benefit" are the asker's expectations, not patients' beliefs.
_NOT_OUTCOMES = re.compile(
    r"\b(recurrent|persistent)( [\w-]+){0,2} (LBP|CLBP|low back pain|back pain|pain)\b|"
    r"\b(acute|sub-?acute|chronic)\b[\w ,/-]{0,40}\brecurrent\b|\brecurrent\b[\w ,/-]{0,40}\b(acute|sub-?acute|chronic)\b|"
    r"\b(can|should|could|would|might|to|do|does) (i |we |you |they |patients |people |one )?(be )?expect(ed)?\b|"
    r"\bexpected (benefit|effect|improvement|gain|change|result|outcome)s?\b",
    re.IGNORECASE,
)


def outcome_words(question: str) -> str:
    """``question`` without the phrases that use outcome words for something else
    (:data:`_NOT_OUTCOMES`): the text outcomes are looked for in."""
    return _NOT_OUTCOMES.sub(" ", question)


def asked_phases(question: str) -> tuple[str, ...]:
    """The LBP phases (acute, subacute, chronic, recurrent) a question names, in words or as
    a duration (:func:`duration_phase`)."""
    named = tuple(p for p in sentence_phases(question) if p in _EXCLUDES)
    lasted = duration_phase(question)
    if lasted and lasted not in named and not {"acute", "subacute", "chronic"} & set(named):
        return (*named, lasted)
    return named


def phase_conflicts(asked: Sequence[str], phases: Sequence[str]) -> bool:
    """True when ``phases`` (of a study or a sentence) exclude every phase asked about: each
    asked phase excludes all of them ("recurrent" excludes "acute" but not "chronic")."""
    if not asked or not phases or set(asked) & set(phases):
        return False
    return all(all(p in _EXCLUDES[a] for p in phases) for a in asked)


_SAFETY = re.compile(
    r"\b(safe|safety|harm\w*|adverse|side[- ]effects?|risks?|damage|injur\w*|worse|dangerous)\b", re.IGNORECASE
)


def asked_directions(question: str) -> tuple[str, ...]:
    """The kinds of result a question asks for beyond benefit: ``harm`` when it asks about
    safety, harms or risks."""
    return ("harm",) if _SAFETY.search(question) else ()
