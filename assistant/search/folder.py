"""The index folder on disk: its layout, the atomic write of all its files, the build lock,
and the checksums that loading checks.

The folder is meant to be read by people::

    index/
      manifest.json          model, dimension, chunking, corpus hash, counts, versions, files
      passages.jsonl         line i is FAISS row i
      embeddings.npy         float32 (n, dim), normalized; row i is passage i
      dense.faiss            FAISS index (flat inner product, HNSW or IVF)
      bm25/                  bm25s files (plain numpy arrays and JSON)
      sentences.jsonl        the passages' sentences (deduplicated per document), for answers
      sentence_embeddings.npy  their normalized vectors, so answers need no encoding at run time
      documents.jsonl        documents added after the build (``ingest``), kept for rebuilds
      model/                 the embedding model adapted to the corpus (assistant.encoders.adaptation),
                             when the build adapted one: queries are encoded with it

A write fills a temporary sibling folder and renames it into place, so a crash never
leaves a half-written index. Files over 16 MB (the model weights) have their checksums
remembered per path, size and mtime, so a load need not hash them again.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.files import link_or_copy_tree, remember_sha256, sha256_file, sha256_remembered
from assistant.search.bm25 import build_bm25
from assistant.types import Document, Passage, Section

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PASSAGES = "passages.jsonl"
EMBEDDINGS = "embeddings.npy"
FAISS_FILE = "dense.faiss"
BM25_DIR = "bm25"
ADDED_DOCUMENTS = "documents.jsonl"
SENTENCES = "sentences.jsonl"
SENTENCE_EMBEDDINGS = "sentence_embeddings.npy"
MODEL_DIR = "model"
VERIFY_BELOW_BYTES = 256 * 2**20
REMEMBER_ABOVE_BYTES = 16 * 2**20


def _files_digest(folder: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            out[str(p.relative_to(folder))] = {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
    return out


def _remember_large_checksums(folder: Path, files: Mapping[str, Mapping[str, Any]]) -> None:
    """Remember the checksums of a new folder's large files (they were just computed)."""
    from assistant.encoders.adaptation import cache_dir

    large = {folder / name: str(info["sha256"]) for name, info in files.items() if info["bytes"] > REMEMBER_ABOVE_BYTES}
    remember_sha256(large, cache_dir() / "sha256.json")


def _sha256(path: Path, size: int) -> str:
    """sha256 of an index file; a large one (model weights) remembered across loads."""
    if size <= REMEMBER_ABOVE_BYTES:
        return sha256_file(path)
    from assistant.encoders.adaptation import cache_dir

    return sha256_remembered(path, cache_dir() / "sha256.json")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def document_to_dict(doc: Document) -> dict[str, Any]:
    return {
        "doc_id": doc.doc_id,
        "title": doc.title,
        "sections": [{"name": s.name, "text": s.text, "audience": s.audience} for s in doc.sections],
        "metadata": dict(doc.metadata),
    }


def document_from_dict(d: Mapping[str, Any]) -> Document:
    return Document(
        doc_id=d["doc_id"],
        title=d["title"],
        sections=tuple(Section(s["name"], s["text"], s.get("audience", "clinician")) for s in d["sections"]),
        metadata=dict(d.get("metadata", {})),
    )


@contextlib.contextmanager
def _build_lock(target: Path) -> Iterator[None]:
    """An exclusive lock beside the index folder so two builds never interleave."""
    import fcntl

    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_index_folder(
    target: Path,
    manifest: dict[str, Any],
    passages: Sequence[Passage],
    embeddings: np.ndarray,
    faiss_index: Any,
    added_documents: Sequence[Document] = (),
    sentences: Sequence[Mapping[str, Any]] | None = None,
    sentence_embeddings: np.ndarray | None = None,
    model_dir: Path | None = None,
) -> None:
    """Write every file into a temporary sibling, then swap it into place."""
    import faiss

    target = Path(target)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with (tmp / PASSAGES).open("w", encoding="utf-8") as fh:
            for p in passages:
                fh.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
        np.save(tmp / EMBEDDINGS, np.ascontiguousarray(embeddings, dtype=np.float32))
        faiss.write_index(faiss_index, str(tmp / FAISS_FILE))
        build_bm25([p.index_text for p in passages]).save(str(tmp / BM25_DIR), show_progress=False)
        if sentences is not None and sentence_embeddings is not None:
            with (tmp / SENTENCES).open("w", encoding="utf-8") as fh:
                for rec in sentences:
                    fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            np.save(tmp / SENTENCE_EMBEDDINGS, np.ascontiguousarray(sentence_embeddings, dtype=np.float32))
        if model_dir is not None:
            link_or_copy_tree(model_dir, tmp / MODEL_DIR)
        if added_documents:
            with (tmp / ADDED_DOCUMENTS).open("w", encoding="utf-8") as fh:
                for d in added_documents:
                    fh.write(json.dumps(document_to_dict(d), ensure_ascii=False) + "\n")
        manifest = {**manifest, "files": _files_digest(tmp)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        _remember_large_checksums(target, manifest["files"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
