"""The loaded index: :class:`Index` holds passages, vectors, FAISS, BM25 and the manifest.

Loading verifies the manifest, the file checksums (files over 16 MB, the model weights, by
a checksum remembered per path, size and mtime) and the row counts; lookups give passages,
rows, sentences and document metadata; :meth:`Index.add_documents` appends documents
without re-embedding what is indexed. The folder layout is :mod:`assistant.search.folder`;
building one is :mod:`assistant.search.build`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import Settings
from assistant.documents.chunking import chunk_document
from assistant.errors import IndexProblem
from assistant.search.bm25 import _bm25s
from assistant.search.dense import MAPPED_KINDS, read_faiss
from assistant.search.encoding import _counters, _encode, extract_sentences
from assistant.search.folder import (
    ADDED_DOCUMENTS,
    BM25_DIR,
    EMBEDDINGS,
    FAISS_FILE,
    FORMAT_VERSION,
    MANIFEST,
    MODEL_DIR,
    PASSAGES,
    SENTENCE_EMBEDDINGS,
    SENTENCES,
    VERIFY_BELOW_BYTES,
    _build_lock,
    _now,
    _sha256,
    _write_index_folder,
    document_from_dict,
)
from assistant.types import Document, Passage

_PASSAGE_ONLY_KEYS = ("section", "audience", "n_tokens", "n_tiktoken")

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class AddReport:
    """What :meth:`Index.add_documents` did."""

    added: list[str] = field(default_factory=list)
    extended: list[str] = field(default_factory=list)
    passages: int = 0


class Index:
    """A loaded index folder: passages, vectors, FAISS and BM25, and the manifest."""

    def __init__(
        self,
        path: Path,
        manifest: dict[str, Any],
        passages: list[Passage],
        embeddings: np.ndarray,
        faiss_index: Any,
        bm25: Any,
        sentences: list[dict[str, Any]] | None = None,
        sentence_embeddings: np.ndarray | None = None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.passages = passages
        self.embeddings = embeddings
        self.faiss_index = faiss_index
        self.bm25 = bm25
        self.sentences = sentences or []
        self.sentence_embeddings = sentence_embeddings
        self._by_id = {p.id: i for i, p in enumerate(passages)}
        self._sentences_by_doc: dict[str, list[int]] | None = None

    @property
    def encoder_path(self) -> str | None:
        """The adapted model folder inside the index, or None when the base model made it."""
        return str(self.path / MODEL_DIR) if (self.manifest.get("adaptation") or {}).get("applied") else None

    def query_settings(self, settings: Settings) -> Settings:
        """``settings`` with the model that made this index's vectors (queries must use it)
        and the retrieval weights measured for such an index where ``settings`` leaves them None."""
        return settings.with_(encoder_path=self.encoder_path).resolved(adapted=self.encoder_path is not None)

    def sentence_rows(self, doc_id: str) -> list[int]:
        """Rows of ``sentences`` that belong to ``doc_id``, in text order."""
        if self._sentences_by_doc is None:
            by_doc: dict[str, list[int]] = {}
            for i, rec in enumerate(self.sentences):
                by_doc.setdefault(rec["doc_id"], []).append(i)
            self._sentences_by_doc = by_doc
        return self._sentences_by_doc.get(doc_id, [])

    def __len__(self) -> int:
        return len(self.passages)

    @property
    def dim(self) -> int:
        return int(self.manifest["dimension"])

    def row_of(self, passage_id: str) -> int:
        return self._by_id[passage_id]

    def passage(self, passage_id: str) -> Passage:
        return self.passages[self._by_id[passage_id]]

    def term_documents(self) -> dict[str, set[str]]:
        """BM25 token -> ids of the documents whose passages contain it (from the BM25 index's
        token-by-passage matrix; nothing is tokenized again)."""
        vocab = getattr(self.bm25, "vocab_dict", None) or {}
        scores = getattr(self.bm25, "scores", None) or {}
        if not vocab or "indptr" not in scores:
            return {}
        indptr, indices = scores["indptr"], scores["indices"]
        doc_ids = [p.doc_id for p in self.passages]
        return {
            token: {doc_ids[row] for row in indices[indptr[t] : indptr[t + 1]]}
            for token, t in vocab.items()
            if t + 1 < len(indptr)
        }

    def documents_metadata(self) -> dict[str, dict[str, Any]]:
        """Document id -> the metadata of its first passage (document-level fields), with
        ``sections``, the names of all its sections."""
        out: dict[str, dict[str, Any]] = {}
        sections: dict[str, set[str]] = {}
        for p in self.passages:
            sections.setdefault(p.doc_id, set()).add(str(p.metadata.get("section", "")))
            if p.doc_id not in out:
                out[p.doc_id] = {k: v for k, v in p.metadata.items() if k not in _PASSAGE_ONLY_KEYS}
        for doc_id, meta in out.items():
            meta["sections"] = sorted(sections[doc_id])
        return out

    # ------------------------------------------------------------------ persistence

    @classmethod
    def load(cls, path: str | Path, verify: bool | None = None) -> Index:
        """Load and check an index folder.

        Args:
            path: the index folder.
            verify: check file checksums; default: when the files total under 256 MB
                (sizes and row counts are always checked).

        Raises:
            IndexProblem: missing files, unreadable manifest, checksum or row-count mismatch.
        """
        path = Path(path)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise IndexProblem(f"no index at {path} (manifest.json missing)")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise IndexProblem(f"index manifest {manifest_path} is unreadable: {exc}") from exc
        if manifest.get("format_version") != FORMAT_VERSION:
            raise IndexProblem(f"index format {manifest.get('format_version')} != {FORMAT_VERSION}")
        files = manifest.get("files", {})
        if verify is None:
            verify = sum(int(info["bytes"]) for info in files.values()) < VERIFY_BELOW_BYTES
        for name, info in files.items():
            f = path / name
            if not f.is_file():
                raise IndexProblem(f"index file {f} is missing")
            if f.stat().st_size != info["bytes"]:
                raise IndexProblem(f"index file {f} is corrupt (size {f.stat().st_size} != {info['bytes']})")
            if verify and _sha256(f, int(info["bytes"])) != info["sha256"]:
                raise IndexProblem(f"index file {f} is corrupt (checksum mismatch)")
        try:
            with (path / PASSAGES).open(encoding="utf-8") as fh:
                passages = [Passage.from_dict(json.loads(line)) for line in fh if line.strip()]
            embeddings = np.load(path / EMBEDDINGS, mmap_mode="r")
            dense = manifest.get("faiss", {})
            faiss_index = read_faiss(path / FAISS_FILE, dense.get("type", ""), False, embeddings, dense.get("params"))
            bm25 = _bm25s().BM25.load(str(path / BM25_DIR), show_progress=False, verbosity=0)
            sentences: list[dict[str, Any]] = []
            sentence_embeddings = None
            if (path / SENTENCES).is_file():
                with (path / SENTENCES).open(encoding="utf-8") as fh:
                    sentences = [json.loads(line) for line in fh if line.strip()]
                sentence_embeddings = np.load(path / SENTENCE_EMBEDDINGS, mmap_mode="r")
                if sentence_embeddings.shape[0] != len(sentences):
                    raise IndexProblem(f"{SENTENCES} and {SENTENCE_EMBEDDINGS} differ in length")
        except Exception as exc:  # any unreadable file means the index cannot be trusted
            raise IndexProblem(f"index at {path} is corrupt: {exc}") from exc
        counts = {len(passages), int(embeddings.shape[0]), int(faiss_index.ntotal)}
        if len(counts) != 1 or len(passages) != manifest["counts"]["passages"]:
            raise IndexProblem(f"index at {path} is inconsistent: row counts {sorted(counts)}")
        if faiss_index.d != manifest["dimension"]:
            raise IndexProblem(f"index at {path} has dimension {faiss_index.d}, manifest says {manifest['dimension']}")
        if (manifest.get("adaptation") or {}).get("applied") and not (path / MODEL_DIR).is_dir():
            raise IndexProblem(f"index at {path} lacks its adapted model folder {MODEL_DIR}/")
        if "ef_search" in manifest["faiss"].get("params", {}) and hasattr(faiss_index, "hnsw"):
            faiss_index.hnsw.efSearch = int(manifest["faiss"]["params"]["ef_search"])
        if "nprobe" in manifest["faiss"].get("params", {}) and hasattr(faiss_index, "nprobe"):
            faiss_index.nprobe = int(manifest["faiss"]["params"]["nprobe"])
        return cls(path, manifest, passages, embeddings, faiss_index, bm25, sentences, sentence_embeddings)

    def added_documents(self) -> list[Document]:
        """Documents added with :meth:`add_documents` since the last full build."""
        f = self.path / ADDED_DOCUMENTS
        if not f.is_file():
            return []
        return [
            document_from_dict(json.loads(line)) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()
        ]

    def add_documents(
        self, documents: Sequence[Document], source: str, settings: Settings, log: Log = _stderr
    ) -> AddReport:
        """Add documents without re-embedding what is indexed.

        A document whose id is already indexed gets its sections appended as new passages
        of that document; new ids are appended. Only new passages are embedded; FAISS gets
        them appended; BM25 is refitted over all passages (its statistics change; this is
        cheap next to embedding). The result is written atomically and the manifest
        records the addition.

        Returns:
            Which documents were added or extended, and how many passages.
        """
        report = AddReport()
        if not documents:
            return report
        if self.manifest.get("model") != settings.model:
            raise IndexProblem(
                f"index at {self.path} was built with model {self.manifest.get('model')!r}, not {settings.model!r}; "
                "rebuild it or use the same model"
            )
        with _build_lock(self.path):
            return self._add_documents(documents, source, settings, log, report)

    def _add_documents(
        self, documents: Sequence[Document], source: str, settings: Settings, log: Log, report: AddReport
    ) -> AddReport:
        tokenizer, count_tt = _counters(settings)
        limit = int(self.manifest["chunking"]["max_tokens"])
        overlap = int(self.manifest["chunking"]["overlap_tokens"])
        next_k: dict[str, int] = {}
        for p in self.passages:
            next_k[p.doc_id] = max(next_k.get(p.doc_id, 0), int(p.id.rsplit("#", 1)[1]) + 1)
        new_passages: list[Passage] = []
        for doc in documents:
            start = next_k.get(doc.doc_id, 0)
            (report.extended if start else report.added).append(doc.doc_id)
            chunks = chunk_document(doc, tokenizer.count, limit, overlap, count_tt, start_k=start)
            next_k[doc.doc_id] = start + len(chunks)
            new_passages.extend(chunks)
        report.passages = len(new_passages)
        from assistant.encoders.embedding import load_passage_encoder

        recorded = (self.manifest.get("encoders") or {}).get("passages") or {}
        encoder, backend = load_passage_encoder(
            self.query_settings(settings), log, backend=recorded.get("backend") or "torch"
        )
        log(f"Embedding {len(new_passages)} new passages ({backend}) ...")
        vectors = _encode(encoder, [p.index_text for p in new_passages], settings.batch_size)
        passages = [*self.passages, *new_passages]
        embeddings = np.vstack([np.asarray(self.embeddings), vectors]).astype(np.float32)
        sentences: list[dict[str, Any]] | None = None
        sentence_vectors = None
        if self.sentence_embeddings is not None:
            seen = {(r["doc_id"], r["text"]) for r in self.sentences}
            new_sentences = extract_sentences(new_passages, seen)
            new_vectors = (
                _encode(encoder, [r["text"] for r in new_sentences], settings.batch_size)
                if new_sentences
                else np.zeros((0, self.dim), dtype=np.float32)
            )
            sentences = [*self.sentences, *new_sentences]
            sentence_vectors = np.vstack([np.asarray(self.sentence_embeddings), new_vectors]).astype(np.float32)
        faiss_index = self.faiss_index
        if self.manifest["faiss"].get("type") in MAPPED_KINDS:  # memory-mapped read-only: load it to add
            faiss_index = read_faiss(self.path / FAISS_FILE, self.manifest["faiss"]["type"], writable=True)
        faiss_index.add(vectors)
        manifest = dict(self.manifest)
        manifest["additions"] = [
            *manifest.get("additions", []),
            {
                "source": source,
                "added": report.added,
                "extended": report.extended,
                "passages": report.passages,
                "encoder": backend,
                "at": _now(),
            },
        ]
        manifest["counts"] = {
            "documents": len({p.doc_id for p in passages}),
            "passages": len(passages),
            "sentences": len(sentences if sentences is not None else self.sentences),
        }
        added_docs = [*self.added_documents(), *documents]
        model_dir = Path(self.encoder_path) if self.encoder_path else None
        _write_index_folder(
            self.path, manifest, passages, embeddings, faiss_index, added_docs, sentences, sentence_vectors, model_dir
        )
        loaded = Index.load(self.path)
        self.__dict__.update(loaded.__dict__)
        return report
