"""Domain adaptation at build time (real model, real training, real FAISS).

The session index (conftest) is built with the default recipe; the small builds here train
a few steps of a tiny recipe so that caching, staleness and corruption are tested in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from assistant.config import Settings
from assistant.encoders import adaptation
from assistant.errors import IndexProblem
from assistant.search.build import build_index, ensure_index, staleness
from assistant.search.index import Index
from assistant.search.retrieval import Retriever
from assistant.types import Document, Section

TINY = {**adaptation.RECIPE, "epochs": 1, "batch": 2}


def _doc(n: int, clinical: str, plain: str) -> Document:
    return Document(
        f"ref-{n}",
        f"Trial {n}",
        (Section("summary", clinical), Section("plain_language", plain, "patient")),
        {"species": "human"},
    )


DOCS = [
    _doc(
        1,
        "Advice to stay active reduced pain more than bed rest in acute low back pain.",
        "Keep moving; do not stay in bed.",
    ),
    _doc(
        2,
        "Pilates reduced pain and disability in chronic non-specific low back pain.",
        "Pilates classes helped long-term back pain.",
    ),
    _doc(
        3,
        "Yoga improved back-related function at 12 weeks versus usual care.",
        "Yoga helped people do more with a bad back.",
    ),
]


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One adaptation cache for the module: the tiny model is trained once, then reused."""
    return tmp_path_factory.mktemp("adapted")


@pytest.fixture()
def tiny(tmp_path: Path, tiny_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(adaptation, "MIN_PAIRS", 2)
    monkeypatch.setattr(adaptation, "RECIPE", TINY)
    return Settings.from_env(index_dir=tmp_path / "index", adapt_cache=tiny_cache, adapt=True)


def test_training_pairs_join_lay_and_clinical_text_of_one_document(bot) -> None:  # type: ignore[no-untyped-def]
    passages = bot.index.passages
    pairs = adaptation.training_pairs(passages)
    plain = {p.text for p in passages if p.metadata.get("audience") == "patient"}
    clinical = {p.text for p in passages if p.metadata.get("section") in adaptation.CLINICAL_SECTIONS}
    headers = {p.context for p in passages if p.context}
    assert len(pairs) > 300
    doc_of = {p.text: p.doc_id for p in passages} | {p.context: p.doc_id for p in passages if p.context}
    for lay, other in pairs:
        lay_docs = {doc_of[text] for text in plain if text in lay}
        assert other in clinical or other in headers
        assert lay_docs == {doc_of[other]}  # both sides describe the same study
    # the topic document has no plain-language text, so it gives no pairs
    assert all(other not in {p.text for p in passages if p.doc_id == "topic"} for _, other in pairs)


def test_the_default_index_is_adapted_and_queries_use_its_model(bot) -> None:  # type: ignore[no-untyped-def]
    index = bot.index
    record = index.manifest["adaptation"]
    assert record["applied"] and record["pairs"] > 300 and record["recipe"] == adaptation.RECIPE
    assert (index.path / "model" / "model.safetensors").is_file()
    retriever = Retriever(index, bot.settings)
    assert retriever.settings.model_path == str(index.path / "model")
    assert (retriever.settings.convex_alpha, retriever.settings.sentence_weight) == (0.6, 0.5)
    # the query encoder reproduces the stored passage vectors: it is the adapted model
    row = index.row_of("ref-22#0")
    stored = np.asarray(index.embeddings[row])
    assert float(retriever.encoder.encode_query(index.passages[row].index_text) @ stored) > 0.99
    # and the adapted model is not the base model
    from assistant.encoders.embedding import SentenceTransformerEncoder

    base = SentenceTransformerEncoder(Settings().model_path).encode([index.passages[row].index_text])[0]
    assert float(base @ stored) < 0.99


def test_adaptation_is_cached_by_content_and_recorded(
    tiny: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny = tiny.with_(adapt_cache=tmp_path / "own-cache")
    first = build_index(DOCS, tiny, log=lambda m: None)
    record = first.manifest["adaptation"]
    assert record["applied"] and record["pairs"] == 6 and record["cached"] is False
    assert (first.path / "model" / "config.json").is_file()
    assert (tiny.adapt_cache / record["key"] / "adaptation.json").is_file()

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained again although the pairs did not change")

    monkeypatch.setattr(adaptation, "fine_tune", no_training)
    again = build_index(DOCS, tiny.with_(chunk_tokens=128), log=lambda m: None)
    assert again.manifest["adaptation"]["cached"] is True
    assert np.allclose(np.asarray(again.embeddings), np.asarray(first.embeddings), atol=1e-5)
    # other pairs are another key: training runs (and here fails loudly)
    with pytest.raises(AssertionError, match="trained again"):
        build_index([*DOCS, _doc(4, "Walking reduced pain.", "Walks helped.")], tiny, log=lambda m: None)


def test_adapt_is_part_of_the_fingerprint(tiny: Settings) -> None:
    index = build_index(DOCS, tiny, log=lambda m: None)
    reason = staleness(index.manifest, tiny.with_(adapt=False), index.manifest["corpus_hash"])
    assert reason is not None and "adapt" in reason
    plain = build_index(DOCS, tiny.with_(adapt=False), log=lambda m: None)
    assert plain.manifest["adaptation"]["applied"] is False and not (plain.path / "model").exists()
    assert plain.encoder_path is None
    assert Retriever(plain, tiny).settings.sentence_weight == 0.0


def test_too_few_pairs_keep_the_base_model(tmp_path: Path) -> None:
    settings = Settings.from_env(index_dir=tmp_path / "index", adapt_cache=tmp_path / "adapted", adapt=True)
    index = build_index(DOCS, settings, log=lambda m: None)
    record = index.manifest["adaptation"]
    assert record["applied"] is False and "6 plain-language/clinician pairs" in record["reason"]
    assert not (tmp_path / "adapted").exists()


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_a_missing_or_corrupt_model_folder_is_detected_and_rebuilt(tiny: Settings, damage: str) -> None:
    built = build_index(DOCS, tiny, log=lambda m: None)
    weights = built.path / "model" / "model.safetensors"
    Index.load(built.path)  # remembers the weights' checksum
    if damage == "delete":
        import shutil

        shutil.rmtree(built.path / "model")
    else:
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.unlink()  # a new file (hard links share the cache's bytes)
        weights.write_bytes(bytes(data))
    with pytest.raises(IndexProblem, match="model"):
        Index.load(built.path)
    messages: list[str] = []
    rebuilt = ensure_index(tiny, DOCS, log=messages.append)
    assert any("Rebuilding" in m for m in messages)
    assert (rebuilt.path / "model" / "model.safetensors").stat().st_size == weights.stat().st_size
    Index.load(rebuilt.path)


def test_added_documents_are_embedded_with_the_adapted_model(tiny: Settings) -> None:
    index = build_index(DOCS, tiny, log=lambda m: None)
    new = Document("ref-9", "Swimming", (Section("summary", "Swimming reduced chronic back pain."),), {})
    index.add_documents([new], "test", tiny, log=lambda m: None)
    assert (index.path / "model" / "model.safetensors").is_file()
    row = index.row_of("ref-9#0")
    retriever = Retriever(index, tiny)
    assert float(retriever.encoder.encode_query(index.passages[row].index_text) @ index.embeddings[row]) > 0.99
    assert json.loads((index.path / "manifest.json").read_text())["adaptation"]["applied"] is True


def test_a_new_index_does_not_read_its_model_weights_again_on_load(
    tiny: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import assistant.files

    built = build_index(DOCS, tiny, log=lambda m: None)
    real = assistant.files.sha256_file

    def no_weights(path: Path) -> str:
        assert path.suffix != ".safetensors", "the weights were hashed again"
        return real(path)

    monkeypatch.setattr(assistant.files, "sha256_file", no_weights)
    Index.load(built.path)  # checks every checksum; the weights' comes from the memo


def test_a_new_recipe_makes_an_adapted_index_stale(tiny: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    index = build_index(DOCS, tiny, log=lambda m: None)
    assert staleness(index.manifest, tiny, index.manifest["corpus_hash"]) is None
    monkeypatch.setattr(adaptation, "RECIPE", {**TINY, "epochs": 2})
    assert staleness(index.manifest, tiny, index.manifest["corpus_hash"]) == "the adaptation recipe changed"


BUILD_QUIETLY = """
import dataclasses, json, logging, sys
from pathlib import Path

# as app.py does: a console handler on the root logger, so any logger left at DEBUG would show
logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
from assistant.encoders import adaptation
from assistant.config import Settings
from assistant.search.build import build_index
from assistant.types import Document, Section

recipe, docs, index_dir, cache = json.loads(sys.argv[1])
adaptation.MIN_PAIRS = 2
adaptation.RECIPE = recipe
docs = [Document(d["doc_id"], d["title"], tuple(Section(**s) for s in d["sections"]), d["metadata"]) for d in docs]
settings = Settings.from_env(index_dir=Path(index_dir), adapt_cache=Path(cache), adapt=True)
print(json.dumps(build_index(docs, settings).manifest["adaptation"]))
"""


def test_a_tiny_adapted_build_prints_no_debug_lines_or_deprecation_warnings(tmp_path: Path) -> None:
    import dataclasses
    import os
    import subprocess
    import sys

    job = [TINY, [dataclasses.asdict(d) for d in DOCS], str(tmp_path / "index"), str(tmp_path / "adapted")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "default"}  # warnings shown, as to a user
    proc = subprocess.run(
        [sys.executable, "-c", BUILD_QUIETLY, json.dumps(job)],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    assert record["applied"] is True and record["cached"] is False  # the model was really trained here
    assert "adapting model" in proc.stderr  # stderr is the build's own output
    assert "deprecated" not in proc.stderr.lower(), proc.stderr
    assert "DEBUG bm25s" not in proc.stderr, proc.stderr
    assert [line for line in proc.stderr.splitlines() if " DEBUG " in line] == []
