"""Index round trip, stale and corrupt detection, atomic rebuilds (real model, real FAISS)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from assistant.config import Settings
from assistant.documents.corpus import documents_hash
from assistant.errors import IndexProblem
from assistant.search.build import build_index, ensure_index, make_faiss_index, staleness
from assistant.search.index import Index
from assistant.types import Document, Section

DOCS = [
    Document(
        "d1",
        "Walking",
        (Section("body", "Walking programmes reduced chronic back pain in adults."),),
        {"species": "human"},
    ),
    Document("d2", "Swimming rats", (Section("body", "Swimming reduced pain behaviour in rats."),), {"species": "rat"}),
    Document(
        "d3",
        "Bed rest",
        (Section("body", "Advice to stay active beat bed rest."), Section("plain", "Keep moving.", "patient")),
        {"species": "human"},
    ),
]


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(index_dir=tmp_path / "index", corpus_dir=tmp_path / "corpus")


def test_round_trip(settings: Settings) -> None:
    built = build_index(DOCS, settings, log=lambda m: None)
    loaded = Index.load(settings.index_dir)
    assert [p.id for p in loaded.passages] == ["d1#0", "d2#0", "d3#0", "d3#1"]
    assert loaded.faiss_index.ntotal == 4 == loaded.embeddings.shape[0]
    assert np.allclose(np.linalg.norm(np.asarray(loaded.embeddings), axis=1), 1.0, atol=1e-5)
    assert np.allclose(np.asarray(built.embeddings), np.asarray(loaded.embeddings))
    m = loaded.manifest
    assert m["dimension"] == 384 and m["counts"] == {"documents": 3, "passages": 4, "sentences": 4}
    assert m["corpus_hash"] == documents_hash(DOCS)
    assert m["chunking"]["max_tokens"] == 160 and m["chunking"]["model_max_seq_length"] == 256
    assert {"faiss-cpu", "bm25s", "numpy"} <= set(m["versions"])
    # line i of passages.jsonl is FAISS row i
    lines = (settings.index_dir / "passages.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == [p.id for p in loaded.passages]
    assert not list(settings.index_dir.parent.glob(".index.tmp-*"))


def test_stale_when_corpus_or_settings_change(settings: Settings) -> None:
    build_index(DOCS, settings, log=lambda m: None)
    m = Index.load(settings.index_dir).manifest
    assert staleness(m, settings, documents_hash(DOCS)) is None
    assert "corpus changed" in str(staleness(m, settings, documents_hash(DOCS[:2])))
    assert "chunk_tokens" in str(staleness(m, settings.with_(chunk_tokens=96), documents_hash(DOCS)))
    messages: list[str] = []
    index = ensure_index(settings, DOCS[:2], log=messages.append)
    assert len(index.passages) == 2
    assert any("stale" in msg for msg in messages)


def test_a_chosen_layout_is_kept_by_commands_that_do_not_choose_one(settings: Settings) -> None:
    """``build --faiss hnsw --chunk-tokens 96`` then ``ask``: the index is served as built,
    not found stale and rebuilt flat; a corpus change rebuilds it in the same layout."""
    build_index(DOCS, settings.with_(faiss_index="hnsw", chunk_tokens=96), log=lambda m: None)
    messages: list[str] = []
    later = Settings.from_env(index_dir=settings.index_dir, corpus_dir=settings.corpus_dir)
    assert later.faiss_index == "flat" and not later.chosen
    index = ensure_index(later, DOCS, log=messages.append)
    assert messages == [] and index.manifest["faiss"]["type"] == "hnsw"
    assert staleness(index.manifest, later, documents_hash(DOCS)) is None
    rebuilt = ensure_index(later, DOCS[:2], log=messages.append)
    assert "corpus changed" in messages[0]
    assert rebuilt.manifest["faiss"]["type"] == "hnsw" and rebuilt.manifest["chunking"]["max_tokens"] == 96
    # choosing another layout, by override or by environment, still makes it stale
    assert "faiss_index" in str(staleness(rebuilt.manifest, later.with_(faiss_index="flat"), documents_hash(DOCS[:2])))
    assert "chunk_tokens" in str(staleness(rebuilt.manifest, later.with_(chunk_tokens=160), documents_hash(DOCS[:2])))


def test_layout_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LBP_FAISS", "IVFPQ")
    monkeypatch.setenv("LBP_CHUNK_TOKENS", "128")
    chosen = Settings.from_env(index_dir=tmp_path)
    assert (chosen.faiss_index, chosen.chunk_tokens) == ("ivfpq", 128)
    assert chosen.chosen == {"faiss_index", "chunk_tokens"}
    monkeypatch.setenv("LBP_FAISS", "annoy")
    with pytest.raises(ValueError, match="LBP_FAISS must be one of flat, hnsw, ivf, ivfpq"):
        Settings.from_env()
    monkeypatch.setenv("LBP_FAISS", "flat")
    monkeypatch.setenv("LBP_CHUNK_TOKENS", "many")
    with pytest.raises(ValueError, match="LBP_CHUNK_TOKENS must be a whole number"):
        Settings.from_env()


@pytest.mark.parametrize("victim", ["passages.jsonl", "dense.faiss", "embeddings.npy", "manifest.json"])
def test_corrupt_index_is_detected_and_rebuilt(settings: Settings, victim: str) -> None:
    build_index(DOCS, settings, log=lambda m: None)
    target = settings.index_dir / victim
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2] + b"garbage")
    with pytest.raises(IndexProblem):
        Index.load(settings.index_dir)
    messages: list[str] = []
    index = ensure_index(settings, DOCS, log=messages.append)
    assert len(index.passages) == 4
    assert any("Rebuilding" in msg for msg in messages)


def test_missing_index_is_built_on_first_run(settings: Settings) -> None:
    messages: list[str] = []
    index = ensure_index(settings, DOCS, log=messages.append)
    assert len(index) == 4 and "first run" in messages[0]


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_faiss_kinds_find_exact_neighbours(kind: str) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(2000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = make_faiss_index(vectors, kind, {"nprobe": 16} if kind == "ivf" else None)
    _, ids = index.search(vectors[:20], 1)
    assert (ids[:, 0] == np.arange(20)).mean() >= 0.95
    with pytest.raises(ValueError):
        make_faiss_index(vectors, "nope")


def test_add_documents_appends_without_reembedding(settings: Settings) -> None:
    index = build_index(DOCS, settings, log=lambda m: None)
    old = np.asarray(index.embeddings).copy()
    new = Document("d4", "Pilates", (Section("body", "Pilates classes eased pain more than usual care."),), {})
    report = index.add_documents([new], "test", settings, log=lambda m: None)
    assert report.added == ["d4"] and report.passages == 1
    again = Index.load(settings.index_dir)
    assert np.array_equal(np.asarray(again.embeddings)[:4], old)
    assert again.passages[-1].id == "d4#0"
    assert again.manifest["additions"][0]["added"] == ["d4"]
    assert [d.doc_id for d in again.added_documents()] == ["d4"]
    # A full rebuild of the base corpus keeps what was added.
    rebuilt = ensure_index(settings.with_(chunk_tokens=128), DOCS, log=lambda m: None)
    assert "d4#0" in {p.id for p in rebuilt.passages}


def test_manifest_records_the_build_encoder(settings: Settings) -> None:
    index = build_index(DOCS, settings, log=lambda m: None)
    passages = index.manifest["encoders"]["passages"]
    assert passages["backend"] == "onnx" and passages["precision"] == "float32"
    assert index.manifest["fingerprint"]["build_encoder"] == "auto"
    assert {"onnxruntime", "onnx"} <= set(index.manifest["versions"])
    # another backend is another index: the setting is part of the fingerprint
    reason = staleness(index.manifest, settings.with_(build_encoder="torch"), documents_hash(DOCS))
    assert reason is not None and "build_encoder" in reason


def test_onnx_and_torch_builds_give_the_same_vectors(settings: Settings) -> None:
    onnx_built = build_index(DOCS, settings, log=lambda m: None)
    onnx_vectors = np.asarray(onnx_built.embeddings).copy()
    onnx_sentences = np.asarray(onnx_built.sentence_embeddings).copy()
    torch_built = build_index(DOCS, settings.with_(build_encoder="torch"), log=lambda m: None)
    assert torch_built.manifest["encoders"]["passages"]["backend"] == "torch"
    assert (onnx_vectors * np.asarray(torch_built.embeddings)).sum(1).min() >= 0.99999
    assert (onnx_sentences * np.asarray(torch_built.sentence_embeddings)).sum(1).min() >= 0.99999


def test_added_documents_use_the_recorded_encoder(settings: Settings) -> None:
    index = build_index(DOCS, settings.with_(build_encoder="torch"), log=lambda m: None)
    new = Document("d4", "Pilates", (Section("body", "Pilates classes eased pain more than usual care."),), {})
    messages: list[str] = []
    index.add_documents([new], "test", settings, log=messages.append)  # settings say auto (onnx)
    again = Index.load(settings.index_dir)
    assert again.manifest["additions"][0]["encoder"] == "torch"
    assert any("(torch)" in m for m in messages)


def test_duplicate_texts_are_encoded_once(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.search import encoding as index_module

    seen: list[int] = []

    class Recorder:
        def encode(self, texts: list[str], batch_size: int = 16) -> np.ndarray:
            seen.append(len(texts))
            return np.eye(len(texts), 4, dtype=np.float32)

    vectors = index_module._encode(Recorder(), ["a", "b", "a", "c", "b"], 16)
    assert seen == [3]
    np.testing.assert_array_equal(vectors[0], vectors[2])
    np.testing.assert_array_equal(vectors[1], vectors[4])
    assert not np.array_equal(vectors[0], vectors[1])


def test_a_build_exports_the_query_graph_of_its_model(settings: Settings, tmp_path: Path) -> None:
    cache = tmp_path / "onnx"
    index = build_index(DOCS, settings.with_(onnx_cache=cache), log=lambda m: None)
    assert index.encoder_path is None
    assert list(cache.glob("*/query-int8.onnx")), "the int8 query graph was not exported at build time"
