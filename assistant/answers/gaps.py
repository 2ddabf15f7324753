"""What a question names that the indexed evidence does not cover.

"Is tai chi good for chronic low back pain?" retrieves the reviews of exercise for chronic
LBP, but none of them tested tai chi; "Is swimming good for back pain?" retrieves only
animal studies of swimming. An answer must say so first, then give the related evidence as
related. The check is lexical and uses the same tokens as BM25 (stop words removed,
Snowball stems): a word of the question is *uncovered* when no document of the corpus
contains it (and it is not a misspelling of a word that one does); a treatment of the
vocabulary (:mod:`assistant.answers.questions`) that only animal studies mention is *animal-only*
when the question is about people. Words that ask rather
than name (good, best, work, help, effective...) and everyday phrases of the lay vocabulary
are never gaps. Consecutive uncovered words make one phrase ("tai chi").
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace

# Words that ask about a treatment rather than name one (checked after stop words).
QUESTION_WORDS = frozenset(
    [
        "good",
        "bad",
        "best",
        "better",
        "worse",
        "worst",
        "great",
        "fine",
        "okay",
        "ok",
        "well",
        "right",
        "wrong",
        "work",
        "works",
        "worked",
        "working",
        "help",
        "helps",
        "helped",
        "helping",
        "helpful",
        "effective",
        "effectiveness",
        "efficacy",
        "efficacious",
        "benefit",
        "benefits",
        "beneficial",
        "useful",
        "use",
        "using",
        "used",
        "worth",
        "recommend",
        "recommended",
        "recommendation",
        "safe",
        "safety",
        "evidence",
        "study",
        "studies",
        "research",
        "researcher",
        "trial",
        "trials",
        "review",
        "reviews",
        "data",
        "show",
        "shows",
        "showed",
        "say",
        "says",
        "said",
        "know",
        "known",
        "find",
        "found",
        "finding",
        "compare",
        "compared",
        "comparison",
        "versus",
        "vs",
        "treatment",
        "treatments",
        "treat",
        "treating",
        "therapy",
        "therapies",
        "option",
        "options",
        "approach",
        "approaches",
        "way",
        "ways",
        "thing",
        "things",
        "stuff",
        "people",
        "patient",
        "patients",
        "person",
        "someone",
        "anyone",
        "everyone",
        "adult",
        "adults",
        "doctor",
        "doctors",
        "really",
        "actually",
        "please",
        "tell",
        "explain",
        "try",
        "trying",
        "tried",
        "get",
        "getting",
        "got",
        "make",
        "making",
        "need",
        "needs",
        "want",
        "like",
        "kind",
        "kinds",
        "type",
        "types",
        "form",
        "forms",
        "sort",
        "sorts",
        "whether",
        "anything",
        "something",
        "everything",
        "lot",
        "lots",
        "little",
        "bit",
        "much",
        "long",
        "often",
        "time",
        "times",
        "start",
        "started",
        "starting",
        "stop",
        "stopping",
        "keep",
        "keeping",
        "go",
        "going",
        "sure",
        "idea",
        "ideas",
        "advice",
    ]
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
# Before an uncovered phrase, these make it the thing tried ("Is tai chi good ...").
_DOER_BEFORE = frozenset(
    [
        "is",
        "are",
        "does",
        "do",
        "did",
        "can",
        "could",
        "would",
        "should",
        "will",
        "try",
        "trying",
        "tried",
        "doing",
        "about",
        "of",
        "with",
        "and",
        "or",
        "vs",
        "versus",
        "than",
        "like",
        "as",
        "start",
        "starting",
    ]
)
_DOER_AFTER = frozenset(
    [
        "is",
        "are",
        "good",
        "bad",
        "help",
        "helps",
        "helped",
        "work",
        "works",
        "effective",
        "better",
        "worse",
        "safe",
        "useful",
        "worth",
        "for",
        "vs",
        "versus",
        "compared",
        "or",
        "and",
        "than",
        "improve",
        "reduce",
        "ease",
        "relieve",
        "ok",
        "okay",
    ]
)


@dataclass(frozen=True)
class Gap:
    """A phrase of the question the evidence does not cover.

    Attributes:
        phrase: the words as the user wrote them ("tai chi").
        kind: ``absent`` (no indexed document contains it, or no human study was done in the
            population it names) or ``animal`` (only animal studies do).
        tried: the phrase names something done (an intervention), judged from the words around it.
        label: the population's name when the phrase is the user's own words for it.
    """

    phrase: str
    kind: str
    tried: bool
    label: str = ""
    """What the first line calls it when not the phrase itself ("older adults" for "I'm 75")."""

    def sentence(self, patient: bool = False) -> str:
        """The answer's first line for this gap."""
        if self.label:
            return replace(self, phrase=self.label, label="").sentence(patient)
        verb = "tested" if self.tried else "looked at"
        if patient:
            verb = "test" if self.tried else "look at"
            if self.kind == "animal":
                return f"The studies here did not {verb} {self.phrase} in people. It was only tested in animals."
            return f"The studies here did not {verb} {self.phrase}."
        if self.kind == "animal":
            return f"None of the indexed studies {verb} {self.phrase} in people; the only evidence on it comes from animal studies."
        return f"None of the indexed studies {verb} {self.phrase}."


Tokenize = Callable[[str], list[str]]
# Before an uncovered phrase, these make it the population asked about ("during pregnancy").
_POPULATION_BEFORE = frozenset(["in", "during", "among", "for", "with", "after"])
RARE_DOCS = 1
MISSPELLING = 0.8  # difflib ratio to a corpus word (with the same first letter) that makes a word a misspelling


def find_gaps(
    question: str,
    tokenize: Tokenize,
    term_docs: Mapping[str, Collection[str]],
    lay_spans: Sequence[tuple[int, int]] = (),
) -> list[Gap]:
    """The phrases of ``question`` that no indexed document contains, in question order.

    Only phrases in the place of a treatment ("Is tai chi good ...", "Does hydrotherapy
    help ...") or of a population ("... during pregnancy") count: an unknown word elsewhere
    in a question ("Is there proof that ...") is not something the question asks about. A
    word next to an uncovered one that only one document contains joins the phrase ("tai chi").

    Args:
        question: the standalone question.
        tokenize: one word -> its BM25 tokens (empty for a stop word).
        term_docs: BM25 token -> ids of the documents that contain it.
        lay_spans: where the question holds everyday phrases of the lay vocabulary
            (character spans); their words are never gaps.
    """
    words = list(_WORD.finditer(question))
    vocabulary = list(term_docs)
    absent: list[bool] = []
    rare: list[bool] = []
    for m in words:
        word = m.group(0).lower()
        in_lay = any(a <= m.start() < b for a, b in lay_spans)
        named = len(word) >= 3 and "'" not in word and word not in QUESTION_WORDS and not in_lay
        tokens = tokenize(word) if named else []
        docs = set().union(*(set(term_docs.get(t, ())) for t in tokens)) if tokens else set()
        absent.append(bool(tokens) and not docs and not _misspelling(tokens, vocabulary))
        rare.append(bool(tokens) and len(docs) <= RARE_DOCS)
    gaps: list[Gap] = []
    i = 0
    while i < len(words):
        if not absent[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(words) and (absent[j + 1] or rare[j + 1]) and words[j + 1].start() - words[j].end() <= 1:
            j += 1
        while i > 0 and rare[i - 1] and words[i].start() - words[i - 1].end() <= 1:
            i -= 1
        phrase = question[words[i].start() : words[j].end()]
        if i == 0 and phrase[:1].isupper() and phrase[1:].islower():
            phrase = phrase.lower()  # capitalized only because it opens the question
        before = words[i - 1].group(0).lower() if i > 0 else ""
        after = words[j + 1].group(0).lower() if j + 1 < len(words) else "?"
        tried = (i == 0 or before in _DOER_BEFORE) and (after in _DOER_AFTER or after == "?")
        population = before in _POPULATION_BEFORE
        if (tried or population) and all(g.phrase.lower() != phrase.lower() for g in gaps):
            gaps.append(Gap(phrase, "absent", tried))
        i = j + 1
    return gaps


def _misspelling(tokens: Sequence[str], vocabulary: Sequence[str]) -> bool:
    """Whether one of ``tokens`` is close to a corpus word with the same first letter."""
    for token in tokens:
        close = difflib.get_close_matches(token, [w for w in vocabulary if w[:1] == token[:1]], n=1, cutoff=MISSPELLING)
        if close:
            return True
    return False


def word_at(text: str, start: int, end: int) -> str:
    """The whole word(s) of ``text`` around the span ``start:end`` ("swim" -> "swimming")."""
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "-'"):
        start -= 1
    while end < len(text) and (text[end].isalnum() or text[end] in "-'"):
        end += 1
    return text[start:end]


def gap_line(gaps: Sequence[Gap], patient: bool = False) -> str:
    """The first line of an answer with gaps ("" without)."""
    return " ".join(g.sentence(patient) for g in gaps)


def population_gaps(
    question: str, populations: Sequence[tuple[str, re.Pattern[str]]], studied: Callable[[str], bool]
) -> list[Gap]:
    """The populations ``question`` names (:func:`assistant.answers.questions.load_populations`)
    that no indexed human study was done in (``studied(label)`` False): "Can a 75-year-old
    benefit?" -> "None of the indexed studies looked at older adults."
    """
    gaps = []
    for label, pattern in populations:
        m = pattern.search(question)
        if m and not studied(label):
            gaps.append(Gap(word_at(question, m.start(), m.end()), "absent", False, label))
    return gaps


def related_question(question: str, gaps: Sequence[Gap], general: str = "exercise") -> str:
    """``question`` with each uncovered treatment replaced by ``general`` and each uncovered
    population left out with its preposition: the question whose evidence is shown as related."""
    out = question
    for gap in gaps:
        if gap.tried:
            out = re.sub(rf"\b{re.escape(gap.phrase)}\b", general, out, count=1, flags=re.IGNORECASE)
        else:
            pattern = rf"(\b(in|during|among|for|with|after)\s+)?\b{re.escape(gap.phrase)}\b"
            out = re.sub(pattern, "", out, count=1, flags=re.IGNORECASE)
    return re.sub(r"\s+([?.!,;:])", r"\1", " ".join(out.split()))
