"""``build --engine ray`` against the local build: same passages in the same order, the same
vectors to float rounding, the same retrieval metrics (embedded corpus and PubMedQA), on a
local Ray cluster of 2 CPUs started once for the module.

Skipped when Ray is not installed; ``make test`` installs the ``cluster`` extra, so CI runs it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.cli import main
from assistant.cluster.ray_build import build_with_ray, iter_documents
from assistant.cluster.stages import token_batches
from assistant.config import Settings
from assistant.documents.corpus import documents_hash, load_corpus
from assistant.search import dense
from assistant.search.build import assemble_index, build_index, staleness
from assistant.search.index import Index
from assistant.types import Document, Section

pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install '.[cluster]' (make test does)")

REPO = Path(__file__).resolve().parents[2]
PUBMEDQA = REPO.parent / "shared" / "benchmarks" / "pubmedqa" / "ori_pqal.json"
PUBMEDQA_DOCS = 120
MIN_COSINE = 0.9999


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def ray_lbp(ray_cluster: Any, lbp_index_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded corpus built by ``python -m assistant build --engine ray`` (in process)."""
    target = tmp_path_factory.mktemp("ray-lbp") / "index"
    assert main(["build", "--engine", "ray", "--index", str(target), "--corpus", str(REPO / "corpus")]) == 0
    return target


def _same_index(local: Index, clustered: Index) -> None:
    assert [p.id for p in clustered.passages] == [p.id for p in local.passages]
    assert [p.to_dict() for p in clustered.passages] == [p.to_dict() for p in local.passages]
    cosines = np.sum(np.asarray(local.embeddings) * np.asarray(clustered.embeddings), axis=1)
    assert cosines.min() >= MIN_COSINE, cosines.min()
    assert clustered.sentences == local.sentences
    if local.sentence_embeddings is not None:
        assert clustered.sentence_embeddings is not None
        s = np.sum(np.asarray(local.sentence_embeddings) * np.asarray(clustered.sentence_embeddings), axis=1)
        assert s.min() >= MIN_COSINE, s.min()
    for key in ("fingerprint", "corpus_hash", "counts", "chunking", "faiss", "dimension"):
        assert clustered.manifest[key] == local.manifest[key], key


def _metrics(index: Index, settings: Settings, queries: dict[str, str], qrels: dict[str, dict[str, int]]) -> Any:
    from assistant.evaluation.evaluate import RETRIEVERS, run_retrievers
    from assistant.evaluation.metrics import evaluate_runs, metric_names

    runs, _ = run_retrievers(index, settings, queries, RETRIEVERS, depth=100)
    report = evaluate_runs(qrels, runs, metric_names(10))
    return {name: entry["mean"] for name, entry in report["retrievers"].items()}, runs


def _same_retrieval(local: Index, clustered: Index, settings: Settings, queries: Any, qrels: Any) -> None:
    local_metrics, local_runs = _metrics(local, settings, queries, qrels)
    ray_metrics, ray_runs = _metrics(clustered, settings, queries, qrels)
    assert ray_metrics == local_metrics
    for name, run in local_runs.items():  # the same top 10, in the same order
        for qid, hits in run.items():
            assert (
                sorted(hits, key=hits.get, reverse=True)[:10]
                == sorted(ray_runs[name][qid], key=ray_runs[name][qid].get, reverse=True)[:10]
            ), (name, qid)


def test_embedded_corpus_matches_the_local_build(ray_lbp: Path, lbp_index_dir: Path, lbp_settings: Settings) -> None:
    local, clustered = Index.load(lbp_index_dir), Index.load(ray_lbp)
    _same_index(local, clustered)
    # The adapted model is the session's, from the adaptation cache: nothing was trained.
    assert clustered.manifest["adaptation"] == local.manifest["adaptation"]
    assert clustered.manifest["adaptation"]["applied"] and clustered.manifest["adaptation"]["cached"]
    settings = lbp_settings.with_(index_dir=ray_lbp)
    assert staleness(clustered.manifest, settings, documents_hash(load_corpus(settings.corpus_dir))) is None
    m = clustered.manifest
    assert m["engine"] == "ray" and m["cluster"]["workers"] == 2 and m["faiss"]["type"] == "flat"
    assert set(m["stages"]) == {f"{s}_s" for s in ("read", "chunk", "adapt", "embed", "write", "assemble", "total")}
    assert not list(ray_lbp.parent.glob(".index.ray-*")), "the work folder is removed after assembly"


def test_embedded_corpus_retrieval_is_identical(ray_lbp: Path, lbp_index_dir: Path, lbp_settings: Settings) -> None:
    from assistant.evaluation.evaluate import BUILTIN_DATASET, load_eval_dataset

    dev = load_eval_dataset(BUILTIN_DATASET, "dev")
    _same_retrieval(Index.load(lbp_index_dir), Index.load(ray_lbp), lbp_settings, dev.queries, dev.qrels)


def _beir_corpus(folder: Path) -> tuple[Path, dict[str, str], dict[str, dict[str, int]]]:
    """The first PUBMEDQA_DOCS PubMedQA abstracts as a BEIR folder (tiny-beir without it)."""
    from assistant.evaluation.beir import read_qrels, read_queries, write_corpus
    from assistant.evaluation.pubmedqa import pubmedqa_to_beir

    if not PUBMEDQA.is_file():
        tiny = REPO / "tests" / "fixtures" / "tiny-beir"
        return tiny, read_queries(tiny / "queries.jsonl"), read_qrels(tiny / "qrels" / "test.tsv")
    data = json.loads(PUBMEDQA.read_text(encoding="utf-8"))
    dataset = pubmedqa_to_beir({pmid: data[pmid] for pmid in list(data)[:PUBMEDQA_DOCS]})
    write_corpus(folder / "corpus.jsonl", dataset.corpus)
    return folder, {q: v["text"] for q, v in dataset.queries.items()}, dataset.qrels["all"]


def test_pubmedqa_matches_the_local_build(ray_cluster: Any, tmp_path: Path) -> None:
    corpus, queries, qrels = _beir_corpus(tmp_path / "beir")
    settings = Settings.from_env(corpus_dir=corpus).with_(sentence_embeddings=False)  # as `eval` builds BEIR sets
    docs = load_corpus(corpus)
    assert list(iter_documents(corpus)) == docs
    local = build_index(docs, settings.with_(index_dir=tmp_path / "local"), source=str(corpus))
    work = tmp_path / "work"
    clustered = build_with_ray(settings.with_(index_dir=tmp_path / "ray"), work_dir=work, keep_shards=True)
    assert list((work / "shards").glob("*.parquet")), "--keep-shards keeps the Parquet shards"
    _same_index(local, clustered)
    assert staleness(clustered.manifest, settings, documents_hash(docs)) is None
    _same_retrieval(local, clustered, settings, queries, qrels)
    messages: list[str] = []
    again = build_with_ray(settings.with_(index_dir=tmp_path / "ray"), log=messages.append)
    assert again.manifest["created_at"] == clustered.manifest["created_at"] and "up to date" in messages[0]


def test_ivfpq_is_memory_mapped_and_still_takes_additions(
    ray_lbp: Path, lbp_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = Index.load(ray_lbp)
    monkeypatch.setattr(dense, "IVFPQ_MIN_VECTORS", 256)  # the embedded corpus is small
    settings = lbp_settings.with_(
        index_dir=tmp_path / "pq",
        faiss_index="ivfpq",
        extra={"faiss_params": {"nlist": 16, "m": 48, "nprobe": 16}},
    )
    index = assemble_index(
        source.passages,
        np.asarray(source.embeddings),
        None,
        None,
        settings,
        chunking=(160, 32, 256),
        adaptation={"applied": False},
        model_dir=None,
        encoders=source.manifest["encoders"],
        corpus_hash="test",
        source="test",
        log=lambda _: None,
    )
    faiss = index.manifest["faiss"]
    assert faiss["type"] == faiss["requested"] == "ivfpq"
    assert faiss["params"] == {"nlist": 16, "m": 48, "nbits": 8, "nprobe": 16, "k_factor": 4, "train_size": 515}
    assert isinstance(index.faiss_index, dense.Reranked) and index.faiss_index.ntotal == len(source)
    assert index.faiss_index.nprobe == 16 and index.faiss_index.k_factor == 4
    with pytest.raises(RuntimeError, match="read-only"):  # mapped, not loaded
        index.faiss_index.index.add(np.asarray(source.embeddings[:1]))
    scores, ids = index.faiss_index.search(np.asarray(source.embeddings[:50]), 5)
    assert (ids[:, 0] == np.arange(50)).mean() >= 0.95  # candidates re-ranked by exact cosine
    exact = np.einsum("ij,ij->i", np.asarray(source.embeddings[ids[:, 1]]), np.asarray(source.embeddings[:50]))
    assert np.allclose(scores[:, 1], exact, atol=1e-5)
    doc = Document("new-1", "Walking", (Section("body", "Walking helped chronic low back pain."),), {})
    report = index.add_documents([doc], "test", lbp_settings.with_(index_dir=tmp_path / "pq"), log=lambda _: None)
    assert report.passages == 1 and Index.load(tmp_path / "pq").faiss_index.ntotal == len(source) + 1


def test_token_batches_bound_padded_tokens() -> None:
    tokens = np.array([10, 200, 30, 30, 256, 5, 64])
    batches = token_batches(tokens, 512)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(tokens)))
    assert all(len(b) * tokens[b].max() <= 512 or len(b) == 1 for b in batches)
    assert tokens[batches[0][0]] == 256  # longest first


@pytest.mark.parametrize("flag", [["--workers", "2"], ["--address", "auto"], ["--keep-shards"]])
def test_cluster_options_need_the_ray_engine(flag: list[str], tmp_path: Path, capsys: Any) -> None:
    assert main(["build", "--index", str(tmp_path / "i"), *flag]) == 2
    assert "need --engine ray" in capsys.readouterr().err
