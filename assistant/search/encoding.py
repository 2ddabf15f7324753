"""What the encoder makes of passages, for a full build and an addition alike: the token
counters that chunking bounds passages by, the sentences of passages (for answers), and the
vectors of texts, each distinct text encoded once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from assistant.config import Settings
from assistant.types import Passage


def _counters(settings: Settings) -> tuple[Any, Any]:
    from assistant.encoders.embedding import model_tokenizer, tiktoken_counter

    return model_tokenizer(settings.model_path), tiktoken_counter(settings.encoding)


def extract_sentences(passages: Sequence[Passage], seen: set[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """The sentences of ``passages``, once per document, with their first passage and grade.

    Args:
        passages: passages in index order.
        seen: (doc_id, sentence) pairs already extracted (updated in place), so that the
            overlap between neighbouring passages does not repeat sentences.

    Returns:
        Records ``{text, doc_id, passage_id, audience, section, grade}``; ``grade`` is the
        Flesch-Kincaid grade of the sentence (textstat).
    """
    import textstat

    from assistant.documents.chunking import split_sentences

    seen = set() if seen is None else seen
    out: list[dict[str, Any]] = []
    for p in passages:
        for sentence in split_sentences(p.text):
            key = (p.doc_id, sentence)
            if key in seen or len(sentence) < 3:
                continue
            seen.add(key)
            out.append(
                {
                    "text": sentence,
                    "doc_id": p.doc_id,
                    "passage_id": p.id,
                    "audience": p.audience,
                    "section": p.metadata.get("section"),
                    "grade": round(float(textstat.flesch_kincaid_grade(sentence)), 2),
                }
            )
    return out


def _encode(encoder: Any, texts: Sequence[str], batch_size: int) -> np.ndarray:
    """Vectors of ``texts`` from a build encoder (ONNX or sentence-transformers), each
    distinct text encoded once."""
    from assistant.encoders.embedding import SentenceTransformerEncoder

    unique = list(dict.fromkeys(texts))
    if isinstance(encoder, SentenceTransformerEncoder):
        vectors = encoder.encode(unique, batch_size=batch_size, show_progress=len(unique) > 64)
    else:
        vectors = encoder.encode(unique, batch_size=batch_size)
    if len(unique) == len(texts):
        return np.asarray(vectors, dtype=np.float32)
    row = {text: i for i, text in enumerate(unique)}
    return np.asarray(vectors[[row[t] for t in texts]], dtype=np.float32)
