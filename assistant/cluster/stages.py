"""What the workers of a Ray build run: chunking tasks and embedding actors, on column batches.

Rows that flow from chunking to the Parquet shards, one per passage or sentence:

    seq      int64   the document's position in the corpus (its block order on the driver)
    k        int32   the row's position within its document: passages first, then sentences
    kind     int8    :data:`PASSAGE` or :data:`SENTENCE`
    doc_id   str     the document id
    pairs    bool    the document has plain-language passages (adaptation pairs come from it)
    record   str     JSON: ``Passage.to_dict()`` or the sentence record of ``extract_sentences``
    text     str     the embedded text (chunking only; not written to the shards)
    tokens   int32   its model tokens, specials included, capped at the model's limit
    vector   float32[dim]  (embedding adds it)

Passage ids are numbered from 0 within each document here; the driver renumbers documents
whose id repeats in the corpus (:mod:`assistant.cluster.assemble`), as a local build does.

The embedding model travels as a bundle of files (the model folder and its float32 ONNX
graph) through Ray's object store, so worker nodes need neither the driver's caches nor its
adapted model; each node writes the bundle once into its temporary folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import Settings
from assistant.documents.chunking import chunk_document
from assistant.search.encoding import _counters, extract_sentences

PASSAGE, SENTENCE = 0, 1
SHARD_COLUMNS = ("seq", "k", "kind", "record", "vector")
MODEL_SUBDIR = "model"
ONNX_FILE = "fp32.onnx"


def chunk_block(batch: Mapping[str, Any], settings: Settings, limit: int, overlap: int) -> dict[str, np.ndarray]:
    """Rows (see the module doc) of one block of documents ``{seq, doc}`` (pickled Documents).

    Chunking and sentence extraction are those of a local build (``chunk_document``,
    ``extract_sentences``), one document at a time.
    """
    tokenizer, count_tt = _counters(settings)
    cap = tokenizer.max_seq_length
    cols: dict[str, list[Any]] = {name: [] for name in ("seq", "k", "kind", "doc_id", "pairs", "record", "text")}
    tokens: list[int] = []
    for seq, blob in zip(batch["seq"], batch["doc"], strict=True):
        doc = pickle.loads(blob)
        passages = chunk_document(doc, tokenizer.count, limit, overlap, count_tt)
        sentences = extract_sentences(passages) if settings.sentence_embeddings else []
        pairs = any(p.audience == "patient" for p in passages)
        for k, p in enumerate(passages):
            _row(cols, int(seq), k, PASSAGE, doc.doc_id, pairs, p.to_dict(), p.index_text)
            tokens.append(min(int(p.metadata["n_tokens"]), cap))
        for k, rec in enumerate(sentences, start=len(passages)):
            _row(cols, int(seq), k, SENTENCE, doc.doc_id, pairs, rec, rec["text"])
        if sentences:
            tokens.extend(min(n + 2, cap) for n in tokenizer.count_many([r["text"] for r in sentences]))
    return {
        "seq": np.asarray(cols["seq"], dtype=np.int64),
        "k": np.asarray(cols["k"], dtype=np.int32),
        "kind": np.asarray(cols["kind"], dtype=np.int8),
        "doc_id": np.asarray(cols["doc_id"], dtype=object),
        "pairs": np.asarray(cols["pairs"], dtype=bool),
        "record": np.asarray(cols["record"], dtype=object),
        "text": np.asarray(cols["text"], dtype=object),
        "tokens": np.asarray(tokens, dtype=np.int32),
    }


def _row(
    cols: dict[str, list[Any]], seq: int, k: int, kind: int, doc_id: str, pairs: bool, record: Any, text: str
) -> None:
    for name, value in (("seq", seq), ("k", k), ("kind", kind), ("doc_id", doc_id), ("pairs", pairs)):
        cols[name].append(value)
    cols["record"].append(json.dumps(record, ensure_ascii=False))
    cols["text"].append(text)


def rows_of_documents(batch: Mapping[str, Any], doc_ids: frozenset[str] | None = None) -> dict[str, np.ndarray]:
    """The passage rows of documents with plain-language text (``doc_ids`` None), or of the
    documents ``doc_ids``: what adaptation reads on the driver."""
    keep = batch["kind"] == PASSAGE
    keep &= batch["pairs"] if doc_ids is None else np.isin(batch["doc_id"].astype(str), list(doc_ids))
    return {name: batch[name][keep] for name in ("seq", "k", "doc_id", "record")}


def token_batches(tokens: np.ndarray, budget: int) -> list[np.ndarray]:
    """Row indices in batches of at most ``budget`` padded tokens, longest rows first.

    Rows are sorted by length, so a batch pads little; a batch holds ``budget // longest``
    rows (at least one).
    """
    order = np.argsort(-np.asarray(tokens), kind="stable")
    out, start = [], 0
    while start < len(order):
        size = max(1, budget // max(1, int(tokens[order[start]])))
        out.append(order[start : start + size])
        start += size
    return out


def pack_model(model_dir: str | Path, onnx_file: str | Path | None) -> tuple[str, dict[str, bytes]]:
    """The files of the model folder (under ``model/``) and of the ONNX graph, and a digest."""
    files: dict[str, bytes] = {}
    root = Path(model_dir)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        files[f"{MODEL_SUBDIR}/{path.relative_to(root)}"] = path.read_bytes()
    if onnx_file is not None:
        files[ONNX_FILE] = Path(onnx_file).read_bytes()
    h = hashlib.sha256()
    for name, data in files.items():
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:16], files


def unpack_model(digest: str, files: Mapping[str, bytes]) -> Path:
    """The bundle's folder on this node, written once (renamed into place when complete)."""
    root = Path(tempfile.gettempdir()) / f"lbp-ray-encoder-{digest}"
    if (root / ".complete").is_file():
        return root
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    for name, data in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_bytes(data)
    (tmp / ".complete").write_text(digest)
    try:
        os.rename(tmp, root)
    except OSError:  # another actor on this node was first
        shutil.rmtree(tmp, ignore_errors=True)
    return root


class Embedder:
    """A Ray Data actor: embeds the ``text`` of row batches on one CPU.

    Args:
        bundle: ``[digest, ObjectRef of the files]`` from :func:`pack_model` (in a list, so
            that Ray hands the reference over unresolved and the actor fetches it once).
        backend: ``onnx`` (the float32 graph, one thread) or ``torch`` (sentence-transformers).
        token_budget: padded tokens per encoder call (:func:`token_batches`).
    """

    def __init__(self, bundle: Sequence[Any], backend: str, token_budget: int) -> None:
        import ray

        folder = unpack_model(str(bundle[0]), ray.get(bundle[1]))
        self.token_budget = token_budget
        self.encoder: Any
        if backend == "onnx":
            from assistant.encoders.onnx_encoder import OnnxEncoder

            self.encoder = OnnxEncoder.from_file(folder / MODEL_SUBDIR, folder / ONNX_FILE, threads=1)
        else:
            import torch

            from assistant.encoders.embedding import SentenceTransformerEncoder

            torch.set_num_threads(1)
            self.encoder = SentenceTransformerEncoder(str(folder / MODEL_SUBDIR))

    def __call__(self, batch: Mapping[str, Any]) -> Any:
        import pyarrow as pa

        texts = batch["text"]
        vectors = np.empty((len(texts), self.encoder.dim), dtype=np.float32)
        for rows in token_batches(batch["tokens"], self.token_budget):
            vectors[rows] = self.encoder.encode([str(texts[i]) for i in rows], batch_size=len(rows))
        columns = {name: batch[name] for name in SHARD_COLUMNS[:-1]}
        flat = pa.array(vectors.reshape(-1), type=pa.float32())
        columns["vector"] = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
        return pa.table(columns)


def remove_tree(path: str) -> None:
    """Remove a folder or a ``scheme://`` prefix (the shards), quietly."""
    if "://" not in path:
        shutil.rmtree(path, ignore_errors=True)
        return
    import pyarrow.fs as pafs

    with contextlib.suppress(Exception):
        fs, base = pafs.FileSystem.from_uri(path)
        fs.delete_dir(base)
