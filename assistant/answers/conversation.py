"""Conversation history and follow-up rewriting.

A follow-up such as "And Pilates?" after "Is yoga effective for chronic back pain?" is
rewritten into the standalone query "Is Pilates effective for chronic back pain?" before
retrieval: the word of the previous question closest in meaning to the follow-up's new
words (by the embedding model) is replaced by them. A follow-up that refers back with a
pronoun ("Does it help for acute pain?") gets the previous question's topic words added.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from assistant.answers.questions import asked_phases, phase_conflicts
from assistant.types import Turn

MAX_HISTORY_TURNS = 50

# Openers that make a message elliptical ("And Pilates?", "What about walking?").
_FOLLOW_UP_OPENERS = re.compile(
    r"^(?:and what about|and how about|and|or|but|also|so|then|ok(?:ay)?|what about|how about|what of|"
    r"same (?:question )?for|what if it'?s|is it the same for|does the same (?:go|hold) for)\b[\s,]*",
    re.IGNORECASE,
)
_TRAILING_FILLER = re.compile(r"\s*(?:then|instead|too|as well|though)?\s*[?.!]*\s*$", re.IGNORECASE)
_PRONOUNS = re.compile(r"\b(?:it|its|that|this|these|those|they|them|there|one)\b", re.IGNORECASE)
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "do",
        "does",
        "did",
        "doing",
        "have",
        "has",
        "had",
        "of",
        "for",
        "to",
        "in",
        "on",
        "at",
        "by",
        "with",
        "about",
        "and",
        "or",
        "but",
        "if",
        "then",
        "so",
        "than",
        "as",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "they",
        "them",
        "there",
        "i",
        "me",
        "my",
        "we",
        "our",
        "you",
        "your",
        "he",
        "she",
        "what",
        "which",
        "who",
        "whom",
        "how",
        "why",
        "when",
        "where",
        "can",
        "could",
        "should",
        "would",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "not",
        "no",
        "yes",
        "any",
        "some",
        "more",
        "most",
        "much",
        "many",
        "very",
        "just",
        "also",
        "too",
        "into",
        "from",
        "up",
        "down",
        "out",
        "over",
        "under",
        "again",
        "further",
        "once",
        "here",
        "all",
        "both",
        "each",
        "few",
        "other",
        "such",
        "own",
        "same",
        "only",
        "am",
    ]
)
# Word classes a follow-up replaces like for like: "acute" replaces "chronic", never "yoga".
_PHASE_WORDS = frozenset(
    [
        "acute",
        "subacute",
        "sub-acute",
        "chronic",
        "recurrent",
        "recurring",
        "persistent",
        "long-term",
        "long-lasting",
        "lasting",
        "lasted",
        "new",
        "months",
        "month",
        "weeks",
        "week",
        "years",
        "year",
        "days",
        "day",
        "post-acute",
    ]
)
_BODY_WORDS = frozenset(
    [
        "back",
        "pain",
        "low",
        "lower",
        "lumbar",
        "spine",
        "spinal",
        "neck",
        "leg",
        "legs",
        "sciatica",
        "hip",
        "hips",
        "body",
    ]
)


def _word_class(words: Sequence[str]) -> str:
    low = {w.lower().strip(",.?!") for w in words}
    if low & _PHASE_WORDS:
        return "phase"
    if low and low <= _BODY_WORDS:
        return "body"
    return "other"


_QUESTION_WORDS = re.compile(
    r"^(?:is|are|does|do|did|can|could|should|would|will|what|which|how|why|when|who)\b", re.IGNORECASE
)


def normalize_history(history: Any) -> list[Turn]:
    """Validate a chat history into :class:`Turn` objects.

    Accepts ``[{"role": "user"|"assistant", "content": str}, ...]`` as Gradio and OpenAI
    use it; Gradio's multimodal content (a list of ``{"type": "text", "text": ...}`` parts)
    is joined to text (a missing or null text counts as empty), other parts are ignored;
    ``system`` messages are skipped.

    Raises:
        ValueError: naming the first malformed message (not a list, not an object with
            ``role`` and ``content``, an unknown role, content or a text part that is not text).
    """
    if history is None:
        return []
    if not isinstance(history, (list, tuple)):
        raise ValueError(f"history must be a list of {{'role', 'content'}} messages, got {type(history).__name__}")
    turns: list[Turn] = []
    for i, msg in enumerate(history):
        if not isinstance(msg, Mapping) or "role" not in msg or "content" not in msg:
            raise ValueError(f"history message {i} must be an object with 'role' and 'content'")
        role = msg["role"]
        if role == "system":
            continue
        if role not in ("user", "assistant"):
            shown = repr(role[:40]) if isinstance(role, str) else f"of type {type(role).__name__}"
            raise ValueError(f"history message {i} has role {shown}; expected 'user' or 'assistant'")
        content = msg["content"]
        if isinstance(content, (list, tuple)):
            texts = [
                part.get("text") for part in content if isinstance(part, Mapping) and part.get("type", "text") == "text"
            ]
            if not all(text is None or isinstance(text, str) for text in texts):
                raise ValueError(f"history message {i} has a text part whose text is not a string")
            content = " ".join(text or "" for text in texts)
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise ValueError(f"history message {i} has non-text content of type {type(content).__name__}")
        turns.append(Turn(role, content))
    return turns[-MAX_HISTORY_TURNS:]


def content_words(text: str) -> list[str]:
    """Lower-cased words of ``text`` that are not stop words."""
    return [w for w in re.findall(r"[a-z0-9][a-z0-9'-]*", text.lower()) if w not in _STOPWORDS]


def is_follow_up(message: str) -> bool:
    """Whether ``message`` only makes sense with the previous question."""
    text = message.strip()
    if _FOLLOW_UP_OPENERS.match(text):
        return True
    words = content_words(text)
    if len(words) <= 2 and not _QUESTION_WORDS.match(text):
        return True  # "Pilates?", "for acute pain?"
    return bool(_PRONOUNS.search(text)) and len(words) <= 5


def _strip_follow_up(message: str) -> str:
    text = _FOLLOW_UP_OPENERS.sub("", message.strip())
    text = _TRAILING_FILLER.sub("", text)
    return text.strip(" ,;:")


Encode = Callable[[Sequence[str]], np.ndarray]


SHORT_MESSAGE_WORDS = 6
"""A message of at most this many content words may be checked for standing on its own by
retrieval (the ``needs_context`` of :func:`standalone_query`)."""

SUBSTITUTE_SIMILARITY = 0.25
"""A follow-up's new words replace the closest word of the previous query only this similar
(the base model's scale; an adapted model passes its own, :mod:`assistant.answers.scope`)."""


_NEGATIONS = frozenset({"no", "without", "non", "not"})
_COMPARES = re.compile(r"\b(compar\w*|versus|vs\.?|than)\b", re.IGNORECASE)


def rewrite_follow_up(
    message: str, previous_query: str, encode: Encode, min_similarity: float = SUBSTITUTE_SIMILARITY
) -> str:
    """A standalone query for ``message`` given the previous (standalone) query.

    Args:
        message: the new user message.
        previous_query: the standalone form of the previous user question.
        encode: normalized embeddings of a list of texts (the query encoder).
        min_similarity: below this, the follow-up's words are prepended, not substituted.

    Returns:
        ``message`` itself when it stands alone. For an elliptical follow-up, the previous
        query with the word closest in meaning to the follow-up's new words replaced by
        them ("And Pilates?" after "Is yoga effective ...?" -> "Is Pilates effective ...?").
        For a follow-up that refers back with a pronoun, or that compares ("And compared
        with no exercise?"), the message with the previous query's topic words appended.
    """
    if not previous_query.strip() or not is_follow_up(message):
        return message
    new_phrase = _strip_follow_up(message)
    if not content_words(new_phrase):
        return previous_query
    if _PRONOUNS.search(new_phrase):
        return with_topic(_PRONOUNS.sub(" ", new_phrase), previous_query, new_phrase)
    if _COMPARES.search(new_phrase):  # "And compared with no exercise?" asks a new question of
        # the same topic: its own words and the topic's, not a word of the previous one replaced
        return with_topic(new_phrase, previous_query, new_phrase)
    shared = set(content_words(previous_query))
    # a word the previous query has stays after a negation: "no exercise" is not "exercise"
    tokens = new_phrase.split()
    novel = [
        w
        for j, w in enumerate(tokens)
        if w.lower().strip(",.?!") not in shared or (j and tokens[j - 1].lower() in _NEGATIONS)
    ]
    novel_content = [w for w in novel if w.lower().strip(",.?!") not in _STOPWORDS]
    if not novel_content:
        return previous_query
    words = previous_query.split()
    mentioned = set(content_words(new_phrase))
    kind = _word_class(novel_content)
    candidates = [
        i
        for i, w in enumerate(words)
        if w.lower().strip(",.?!") not in _STOPWORDS | mentioned and _word_class([w]) == kind
    ]
    if not candidates:
        return f"{new_phrase} {previous_query}"
    vectors = encode([" ".join(novel_content)] + [words[i].strip(",.?!") for i in candidates])
    sims = vectors[1:] @ vectors[0]
    best = int(np.argmax(sims))
    if sims[best] < min_similarity:
        return f"{new_phrase} {' '.join(content_words(previous_query))}"
    i = candidates[best]
    tail = words[i][len(words[i].rstrip(",.?!")) :]
    novel_words = list(novel)
    # "for acute pain" after "... for chronic ...": the preposition is already there.
    while len(novel_words) > 1 and i > 0 and novel_words[0].lower() == words[i - 1].lower():
        novel_words = novel_words[1:]
    replacement = " ".join(novel_words).strip(" ,")
    return " ".join([*words[:i], replacement + tail, *words[i + 1 :]])


NeedsContext = Callable[[str], bool]


def standalone_query(
    message: str,
    history: Sequence[Turn],
    encode: Encode,
    needs_context: NeedsContext | None = None,
    min_similarity: float = SUBSTITUTE_SIMILARITY,
) -> str:
    """Rewrite ``message`` against the user turns of ``history`` (each rewritten in turn).

    Args:
        message: the new user message.
        history: earlier turns.
        encode: the query encoder (normalized vectors).
        needs_context: for a message that does not look elliptical, whether it needs the
            previous question's topic: it names none of its own, or it is short and retrieves
            nothing relevant by itself ("Does the total amount matter?"); True adds the
            previous question's topic words.
        min_similarity: see :func:`rewrite_follow_up`.
    """
    previous = ""
    for turn in history:
        if turn.role == "user" and turn.content.strip():
            previous = _rewrite(turn.content, previous, encode, needs_context, min_similarity)
    return _rewrite(message, previous, encode, needs_context, min_similarity)


def _rewrite(
    message: str, previous: str, encode: Encode, needs_context: NeedsContext | None, min_similarity: float
) -> str:
    if not previous or is_follow_up(message) or needs_context is None:
        return own_phase(message, rewrite_follow_up(message, previous, encode, min_similarity))
    if needs_context(message):
        return own_phase(message, with_topic(message.rstrip("?.! "), previous, message))
    return message


def own_phase(message: str, query: str) -> str:
    """``query`` (``message`` rewritten with the previous question's topic) without the words
    of an LBP phase that every phase ``message`` names excludes: "And for chronic LBP?" after a
    question on acute LBP asks about chronic LBP only, and "And for primary prevention?" after
    one on chronic pain asks about people without it (:func:`~assistant.answers.questions.asked_phases`)."""
    own = asked_phases(message)
    if not own or query == message:
        return query
    kept = [w for w in query.split() if not (named := asked_phases(w)) or not phase_conflicts(own, named)]
    return " ".join(kept)


def with_topic(text: str, previous: str, message: str) -> str:
    """``text`` followed by the content words of ``previous`` that ``message`` does not repeat."""
    mentioned = set(content_words(message))
    topic = [w for w in content_words(previous) if w not in mentioned]
    return " ".join(f"{text} {' '.join(topic)}".split())
