"""Pure chunking: Document -> Passages with stable ids ``<doc_id>#<k>``.

Passages are built from whole sentences, bounded by the embedding model's own token limit
(counted with its tokenizer, the context header included), with a sentence overlap of about
``overlap_tokens`` between neighbouring passages of the same section.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from assistant.documents.reprint import parse_citation_markers
from assistant.types import Document, Passage, passage_id

TokenCounter = Callable[[str], int]

_ABBREVIATIONS = {
    "al", "e.g", "i.e", "vs", "dr", "fig", "no", "approx", "ca", "cf", "etc", "jr", "sr", "st", "mr", "mrs", "ms",
    "prof", "vol", "pp", "eq", "min", "max", "resp",
}  # fmt: skip
# A sentence end: . ! or ? with the closing quotes and brackets after it (group 1, kept
# with the sentence), then space before what may start a sentence.
_BOUNDARY = re.compile(r"(?<=[.!?])([\"”)\]]*)\s+(?=[\"“(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences, keeping abbreviations, initials and decimals intact.

    Returns:
        Sentences with surrounding whitespace removed; their concatenation with single
        spaces equals the input with whitespace folded.
    """
    text = " ".join(text.split())
    if not text:
        return []
    sentences: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        before = text[start : m.start()]
        last_word = before.rsplit(" ", 1)[-1].rstrip(".!?").lower()
        if last_word in _ABBREVIATIONS or re.fullmatch(r"[a-z]", last_word):
            continue  # "et al. Smith", "J. Clin" are not sentence ends
        sentences.append(text[start : m.end(1)].strip())
        start = m.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _split_word(word: str, count: TokenCounter, budget: int) -> list[str]:
    """Cut a word (a run without spaces: CJK text, a long formula) that alone exceeds the
    budget between characters into pieces that fit (a single character always makes a
    piece). Each piece is found by doubling, then halving, its length: O(n log n) counting."""
    pieces: list[str] = []
    while len(word) > 1:
        fits, too_long = 1, 2
        while too_long <= len(word) and count(word[:too_long]) <= budget:
            fits, too_long = too_long, 2 * too_long
        if too_long > len(word):
            if fits == len(word) or count(word) <= budget:
                break  # the rest fits
            too_long = len(word)
        while too_long - fits > 1:
            mid = (fits + too_long) // 2
            if count(word[:mid]) <= budget:
                fits = mid
            else:
                too_long = mid
        pieces.append(word[:fits])
        word = word[fits:]
    return [*pieces, word]


def _split_long(sentence: str, count: TokenCounter, budget: int) -> list[str]:
    """Cut a sentence that alone exceeds the budget into word runs that fit (a word too long
    by itself is cut between characters)."""
    pieces: list[str] = []
    words: list[str] = []
    for word in sentence.split():
        too_long = count(word) > budget
        if words and (too_long or count(" ".join([*words, word])) > budget):
            pieces.append(" ".join(words))
            words = []
        if too_long:
            *whole, word = _split_word(word, count, budget)
            pieces.extend(whole)
        words.append(word)
    if words:
        pieces.append(" ".join(words))
    return pieces


def window_sentences(
    sentences: Sequence[str], count: TokenCounter, budget: int, overlap_tokens: int
) -> list[list[str]]:
    """Group sentences into windows of at most ``budget`` tokens with sentence overlap.

    Args:
        sentences: the sentences of one section, in order.
        count: token counter for a text (without special tokens).
        budget: the most tokens one window's text may have.
        overlap_tokens: trailing sentences of a window worth up to this many tokens are
            repeated at the start of the next one.

    Returns:
        Windows as lists of sentences; every sentence appears in at least one window.
    """
    units: list[str] = []
    for s in sentences:
        units.extend(_split_long(s, count, budget) if count(s) > budget else [s])
    windows: list[list[str]] = []
    current: list[str] = []
    i = 0
    while i < len(units):
        candidate = [*current, units[i]]
        if current and count(" ".join(candidate)) > budget:
            windows.append(current)
            carry: list[str] = []
            for s in reversed(current):
                if count(" ".join([s, *carry])) > overlap_tokens or len(carry) + 1 >= len(current):
                    break
                carry.insert(0, s)
            # Never carry so much that the next unit cannot fit.
            while carry and count(" ".join([*carry, units[i]])) > budget:
                carry.pop(0)
            current = carry
            continue
        current = candidate
        i += 1
    if current:
        windows.append(current)
    return windows


def context_header(doc: Document) -> str:
    """The header embedded with every passage of ``doc``: title and keywords."""
    keywords = doc.metadata.get("keywords") or []
    header = doc.title
    if keywords:
        header += ". Keywords: " + ", ".join(keywords)
    return header


def chunk_document(
    doc: Document,
    count_model_tokens: TokenCounter,
    max_tokens: int,
    overlap_tokens: int,
    count_tiktoken: TokenCounter | None = None,
    special_tokens: int = 2,
    start_k: int = 0,
) -> list[Passage]:
    """Chunk one document into passages.

    Args:
        doc: the document.
        count_model_tokens: embedding-model token count of a text, without special tokens.
        max_tokens: the bound for a passage's embedded text (header + text + specials).
        overlap_tokens: sentence overlap between neighbouring passages of a section.
        count_tiktoken: cl100k token counter, recorded as ``n_tiktoken``.
        special_tokens: special tokens the model adds ([CLS], [SEP]).
        start_k: the first passage number (to append passages to an indexed document).

    Returns:
        Passages whose ``metadata["n_tokens"]`` never exceeds ``max_tokens``.
    """
    header = context_header(doc)
    header_tokens = count_model_tokens(header) if header else 0
    if header_tokens > max_tokens // 2:  # an overlong title must not starve the text
        header = " ".join(header.split()[: max(4, len(header.split()) // 3)])
        header_tokens = count_model_tokens(header)
        if header_tokens > max_tokens // 2:  # still too long: its first words that fit
            header = _split_long(header, count_model_tokens, max_tokens // 2)[0]
            header_tokens = count_model_tokens(header)
    budget = max_tokens - special_tokens - header_tokens - (1 if header else 0)
    base = {k: v for k, v in doc.metadata.items() if k not in ("keywords", "cross_references", "editors")}
    passages: list[Passage] = []
    k = start_k
    for section in doc.sections:
        for window in window_sentences(split_sentences(section.text), count_model_tokens, budget, overlap_tokens):
            text = " ".join(window)
            refs = parse_citation_markers(text) if doc.metadata.get("refs_from_markers") else list(base.get("refs", []))
            embedded = f"{header}\n{text}" if header else text
            meta = {
                **base,
                "refs": refs,
                "section": section.name,
                "audience": section.audience,
                "n_tokens": count_model_tokens(embedded) + special_tokens,
                "n_tiktoken": count_tiktoken(text) if count_tiktoken else None,
            }
            passages.append(
                Passage(id=passage_id(doc.doc_id, k), doc_id=doc.doc_id, text=text, metadata=meta, context=header)
            )
            k += 1
    return passages


def chunk_documents(
    docs: Iterable[Document],
    count_model_tokens: TokenCounter,
    max_tokens: int,
    overlap_tokens: int,
    count_tiktoken: TokenCounter | None = None,
) -> list[Passage]:
    """Chunk many documents (see :func:`chunk_document`)."""
    out: list[Passage] = []
    for doc in docs:
        out.extend(chunk_document(doc, count_model_tokens, max_tokens, overlap_tokens, count_tiktoken))
    return out
