"""BM25 over the passages: the tokenization that indexing and queries share (lower case,
English stop words removed, Snowball stems) and the bm25s index built from it."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any


def bm25_tokenize(texts: Sequence[str], return_ids: bool = True) -> Any:
    """bm25s tokenization used both for indexing and queries (English stop words, Snowball stems)."""
    bm25s = _bm25s()

    return bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer(), return_ids=return_ids, show_progress=False)


_TOKEN = re.compile(r"(?u)\b\w\w+\b")


_STOPWORDS_EN: frozenset[str] | None = None


def word_tokens(text: str) -> list[str]:
    """The BM25 tokens of one short text, as :func:`bm25_tokenize` gives them (lower case,
    English stop words removed, Snowball stems), without its per-call set-up: for the
    question-sized texts of the answer path."""
    global _STOPWORDS_EN
    if _STOPWORDS_EN is None:
        from bm25s.stopwords import STOPWORDS_EN

        _STOPWORDS_EN = frozenset(STOPWORDS_EN)
    words = [w for w in _TOKEN.findall(text.lower()) if w not in _STOPWORDS_EN]
    return list(_stemmer()(words)) if words else []


_STEMMER: Any = None


def _stemmer() -> Any:
    global _STEMMER
    if _STEMMER is None:
        import Stemmer

        _STEMMER = Stemmer.Stemmer("english").stemWords
    return _STEMMER


def _bm25s() -> Any:
    """The bm25s module, its logger quieted (bm25s sets it to DEBUG, so its "Building index"
    lines reach any console where the app configured logging)."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


def build_bm25(texts: Sequence[str]) -> Any:
    bm25s = _bm25s()
    retriever = bm25s.BM25(k1=1.2, b=0.75)
    retriever.index(bm25_tokenize(texts), show_progress=False)
    return retriever
