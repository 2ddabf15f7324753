"""Build an index folder from documents, and keep it matching the corpus and settings.

:func:`build_index` chunks, adapts the embedding model to the corpus when asked, encodes,
makes the FAISS index and writes the folder atomically; :func:`staleness` says why an index
no longer matches; :func:`ensure_index` rebuilds a missing, stale or corrupt index with a
message.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import Settings
from assistant.documents.chunking import chunk_document
from assistant.documents.corpus import documents_hash, load_corpus
from assistant.errors import IndexProblem
from assistant.files import sha256_remembered
from assistant.search.dense import faiss_kind, ivfpq_params, make_faiss_index
from assistant.search.encoding import _counters, _encode, extract_sentences
from assistant.search.folder import (
    ADDED_DOCUMENTS,
    FORMAT_VERSION,
    MANIFEST,
    MODEL_DIR,
    _build_lock,
    _now,
    _write_index_folder,
    document_from_dict,
)
from assistant.search.index import Index, Log, _stderr
from assistant.types import Document, Passage


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for pkg in (
        "lbp-assistant",
        "faiss-cpu",
        "sentence-transformers",
        "bm25s",
        "numpy",
        "torch",
        "tiktoken",
        "onnxruntime",
        "onnx",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


def _adapt(passages: Sequence[Passage], settings: Settings, log: Log) -> tuple[Path | None, dict[str, Any]]:
    """The adapted model folder for ``passages`` (None: keep the base model) and the
    manifest's record of it."""
    from assistant.encoders import adaptation

    if not settings.adapt:
        return None, {"applied": False, "reason": "off (Settings.adapt / LBP_ADAPT=0)"}
    pairs = adaptation.training_pairs(passages)
    if len(pairs) < adaptation.MIN_PAIRS:
        reason = f"{len(pairs)} plain-language/clinician pairs (fewer than {adaptation.MIN_PAIRS})"
        return None, {"applied": False, "reason": reason}
    base = settings.model_path
    weights = _weights_file(base)
    digest = sha256_remembered(weights, adaptation.cache_dir(settings.adapt_cache) / "sha256.json") if weights else base
    folder, record = adaptation.adapted_model(base, digest, pairs, settings.adapt_cache, adaptation.RECIPE, log)
    return folder, {"applied": True, "base_model": settings.model, "folder": MODEL_DIR, **record}


def _weights_file(model_path: str) -> Path | None:
    """The weights file of a local sentence-transformers folder (None for a hub name)."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (Path(model_path) / name).is_file():
            return Path(model_path) / name
    return None


def build_index(
    documents: Sequence[Document],
    settings: Settings,
    corpus_hash: str | None = None,
    source: str = "",
    log: Log = _stderr,
    extra_documents: Sequence[Document] = (),
) -> Index:
    """Chunk, embed and index ``documents`` into ``settings.index_dir`` (atomically).

    Args:
        documents: the base corpus.
        settings: model, chunking and FAISS choices; ``index_dir`` is the target.
        corpus_hash: hash recorded for staleness checks (default: of ``documents``).
        source: where the corpus came from, for the manifest.
        log: progress messages.
        extra_documents: documents added earlier with ``ingest``, re-included.

    Returns:
        The loaded index.
    """
    from assistant.encoders.embedding import load_passage_encoder

    target = Path(settings.index_dir)
    tokenizer, count_tt = _counters(settings)
    limit = min(settings.chunk_tokens, tokenizer.max_seq_length)
    overlap = min(settings.chunk_overlap_tokens, limit // 2)
    all_docs = [*documents, *extra_documents]
    passages: list[Passage] = []
    next_k: dict[str, int] = {}
    for doc in all_docs:
        chunks = chunk_document(doc, tokenizer.count, limit, overlap, count_tt, start_k=next_k.get(doc.doc_id, 0))
        next_k[doc.doc_id] = next_k.get(doc.doc_id, 0) + len(chunks)
        passages.extend(chunks)
    if not passages:
        raise ValueError("the corpus has no text to index")
    log(f"Building index at {target}: {len(all_docs)} documents, {len(passages)} passages (model {settings.model}) ...")
    model_dir, adaptation = _adapt(passages, settings, log)
    encoder, backend = load_passage_encoder(settings.with_(encoder_path=str(model_dir) if model_dir else None), log)
    sentences = extract_sentences(passages) if settings.sentence_embeddings else None
    texts = [p.index_text for p in passages] + [r["text"] for r in sentences or ()]
    if sentences:
        log(f"Embedding {len(passages)} passages and {len(sentences)} sentences for answer composition ({backend}) ...")
    all_vectors = _encode(encoder, texts, settings.batch_size)
    vectors = all_vectors[: len(passages)]
    sentence_vectors = all_vectors[len(passages) :] if sentences is not None else None
    encoders = {"passages": {"backend": backend, "precision": "float32", "batch_size": settings.batch_size}}
    return assemble_index(
        passages,
        vectors,
        sentences,
        sentence_vectors,
        settings,
        chunking=(limit, overlap, tokenizer.max_seq_length),
        adaptation=adaptation,
        model_dir=model_dir,
        encoders=encoders,
        corpus_hash=corpus_hash or documents_hash(documents),
        source=source,
        extra_documents=extra_documents,
        log=log,
    )


def assemble_index(
    passages: Sequence[Passage],
    vectors: np.ndarray,
    sentences: Sequence[Mapping[str, Any]] | None,
    sentence_vectors: np.ndarray | None,
    settings: Settings,
    *,
    chunking: tuple[int, int, int],
    adaptation: Mapping[str, Any],
    model_dir: Path | None,
    encoders: Mapping[str, Any],
    corpus_hash: str,
    source: str,
    extra_documents: Sequence[Document] = (),
    log: Log = _stderr,
    extra_manifest: Mapping[str, Any] | None = None,
) -> Index:
    """The last step of every build: FAISS over ``vectors``, the manifest, the atomic folder
    write into ``settings.index_dir``, then the loaded index.

    A local build (:func:`build_index`) and a cluster build (``assistant.cluster``) both end
    here with the same passages, vectors and records, so their folders differ only in what
    ``extra_manifest`` adds (engine, stage timings).

    Args:
        passages: passages in index order (line i of passages.jsonl is FAISS row i).
        vectors: their normalized float32 vectors (an array or a memory map).
        sentences: sentence records for answers (None: the build embeds none).
        sentence_vectors: their vectors.
        settings: the build settings; ``index_dir`` is the target.
        chunking: (max tokens, overlap tokens, the model's max_seq_length).
        adaptation: the manifest's record of model adaptation.
        model_dir: the adapted model folder to copy in, or None.
        encoders: the manifest's record of the passage encoder.
        corpus_hash: hash of the base documents, for staleness checks.
        source: where the corpus came from.
        extra_documents: documents added with ``ingest``, kept for rebuilds.
        log: progress messages.
        extra_manifest: more manifest keys.
    """
    target = Path(settings.index_dir)
    limit, overlap, max_seq_length = chunking
    faiss_params = dict(settings.extra.get("faiss_params", {}))
    faiss_index = make_faiss_index(vectors, settings.faiss_index, faiss_params)
    kind = faiss_kind(settings.faiss_index, len(passages))
    if kind == "hnsw":
        faiss_params.setdefault("ef_search", faiss_index.hnsw.efSearch)
    if kind == "ivf":
        faiss_params.setdefault("nprobe", faiss_index.nprobe)
    if kind == "ivfpq":
        faiss_params = ivfpq_params(len(vectors), int(vectors.shape[1]), faiss_params)
    manifest = {
        "format_version": FORMAT_VERSION,
        "created_at": _now(),
        "model": settings.model,
        "dimension": int(vectors.shape[1]),
        "normalized": True,
        "similarity": "inner product",
        "chunking": {
            "max_tokens": limit,
            "overlap_tokens": overlap,
            "model_max_seq_length": max_seq_length,
            "unit": "sentences",
            "tiktoken_encoding": settings.encoding,
        },
        "faiss": {"type": kind, "requested": settings.faiss_index, "params": faiss_params},
        "bm25": {"library": "bm25s", "k1": 1.2, "b": 0.75, "stopwords": "en", "stemmer": "snowball-english"},
        "encoders": dict(encoders),
        "adaptation": dict(adaptation),
        "fingerprint": settings.build_fingerprint(),
        "corpus_hash": corpus_hash,
        "corpus_source": source,
        "counts": {
            "documents": len({p.doc_id for p in passages}),
            "passages": len(passages),
            "sentences": len(sentences or []),
        },
        "versions": _versions(),
        "additions": [],
        **(extra_manifest or {}),
    }
    with _build_lock(target):
        _write_index_folder(
            target, manifest, passages, vectors, faiss_index, extra_documents, sentences, sentence_vectors, model_dir
        )
    log(f"Index ready: {len(passages)} passages, dimension {vectors.shape[1]}.")
    index = Index.load(target)
    _prepare_query_encoder(index.query_settings(settings), log)
    return index


def _prepare_query_encoder(settings: Settings, log: Log) -> None:
    """Export the int8 ONNX query graph of the index's model now, so the first question
    after a build does not wait for it (skipped without onnxruntime; a failure here only
    means the query path exports it, or falls back, later)."""
    if settings.query_encoder not in ("auto", "onnx"):
        return
    from assistant.encoders.onnx_encoder import onnxruntime_available

    if not onnxruntime_available():
        return
    from assistant.encoders.onnx_models import model_file

    with contextlib.suppress(Exception):
        model_file(settings.model_path, "query-int8", settings.onnx_cache, log)


def staleness(index_manifest: Mapping[str, Any], settings: Settings, corpus_hash: str) -> str | None:
    """Why an index no longer matches the settings and corpus, or None if it does (layout
    settings the caller did not choose follow the index: :meth:`Settings.following`)."""
    if index_manifest.get("corpus_hash") != corpus_hash:
        return "the corpus changed since the index was built"
    built = index_manifest.get("fingerprint", {})
    for key, value in settings.following(index_manifest).build_fingerprint().items():
        if built.get(key) != value:
            return f"setting {key!r} changed ({built.get(key)!r} -> {value!r})"
    adapted = index_manifest.get("adaptation") or {}
    if adapted.get("applied"):
        from assistant.encoders.adaptation import RECIPE

        if adapted.get("recipe") != RECIPE:
            return "the adaptation recipe changed"
    return None


def ensure_index(settings: Settings, documents: Sequence[Document] | None = None, log: Log = _stderr) -> Index:
    """Load ``settings.index_dir``; build or rebuild it when missing, stale or corrupt.

    Args:
        settings: paths and build settings.
        documents: the corpus; default: loaded from ``settings.corpus_dir``.
        log: where messages about (re)building go.

    Returns:
        An index that matches the corpus and the settings.
    """
    docs = list(documents) if documents is not None else load_corpus(settings.corpus_dir)
    corpus_hash = documents_hash(docs)
    target = Path(settings.index_dir)
    extra: list[Document] = []
    try:
        index = Index.load(target)
        extra = index.added_documents()
        reason = staleness(index.manifest, settings, corpus_hash)
        if reason is None:
            return index
        log(f"Index at {target} is stale: {reason}. Rebuilding.")
        settings = settings.following(index.manifest)
    except IndexProblem as exc:
        if (target / MANIFEST).exists() or target.exists():
            log(f"Index problem: {exc}. Rebuilding.")
            with contextlib.suppress(Exception):
                added = target / ADDED_DOCUMENTS
                if added.is_file():
                    extra = [document_from_dict(json.loads(x)) for x in added.read_text().splitlines() if x.strip()]
        else:
            log(f"No index at {target} yet: building it (first run).")
    source = str(settings.corpus_dir) if documents is None else "documents"
    return build_index(docs, settings, corpus_hash=corpus_hash, source=source, log=log, extra_documents=extra)
