"""Build, save, load and check the index folder.

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

A build writes a temporary sibling folder and renames it into place, so a crash never
leaves a half-written index. Loading verifies the manifest, the file checksums (files over
16 MB, the model weights, by a checksum remembered per path, size and mtime) and the row
counts; :func:`ensure_index` rebuilds a missing, stale or corrupt index with a message.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import math
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import Settings
from assistant.documents.chunking import chunk_document
from assistant.documents.corpus import documents_hash, load_corpus
from assistant.errors import IndexProblem
from assistant.files import link_or_copy_tree, remember_sha256, sha256_file, sha256_remembered
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
_PASSAGE_ONLY_KEYS = ("section", "audience", "n_tokens", "n_tiktoken")

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- pure parts


def make_faiss_index(vectors: np.ndarray, kind: str = "flat", params: Mapping[str, Any] | None = None) -> Any:
    """A FAISS inner-product index over normalized ``vectors``.

    Args:
        vectors: float32 (n, dim).
        kind: ``flat`` (exact), ``hnsw`` (graph; params ``M``, ``ef_construction``,
            ``ef_search``) or ``ivf`` (inverted lists; params ``nlist``, ``nprobe``).
        params: overrides of the defaults.

    Returns:
        The populated FAISS index. IVF falls back to flat below 1,000 vectors, where it
        cannot be trained well.
    """
    import faiss

    params = dict(params or {})
    n, dim = vectors.shape
    if kind == "ivf" and n < 1000:
        kind = "flat"
    index: Any
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, int(params.get("M", 32)), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(params.get("ef_construction", 200))
        index.hnsw.efSearch = int(params.get("ef_search", 128))
    elif kind == "ivf":
        nlist = int(params.get("nlist", max(1, int(4 * math.sqrt(n)))))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        train = vectors if n <= 256 * nlist else vectors[np.random.default_rng(0).choice(n, 256 * nlist, replace=False)]
        index.train(train)
        index.nprobe = int(params.get("nprobe", max(1, nlist // 16)))
    else:
        raise ValueError(f"unknown FAISS index type {kind!r}: use flat, hnsw or ivf")
    if n:
        index.add(vectors)
    return index


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


# --------------------------------------------------------------------------- the index


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
        import faiss

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
            faiss_index = faiss.read_index(str(path / FAISS_FILE))
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


def _counters(settings: Settings) -> tuple[Any, Any]:
    from assistant.encoders.embedding import model_tokenizer, tiktoken_counter

    return model_tokenizer(settings.model_path), tiktoken_counter(settings.encoding)


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
    faiss_params = dict(settings.extra.get("faiss_params", {}))
    faiss_index = make_faiss_index(vectors, settings.faiss_index, faiss_params)
    kind = settings.faiss_index if not (settings.faiss_index == "ivf" and len(passages) < 1000) else "flat"
    if kind == "hnsw":
        faiss_params.setdefault("ef_search", faiss_index.hnsw.efSearch)
    if kind == "ivf":
        faiss_params.setdefault("nprobe", faiss_index.nprobe)
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
            "model_max_seq_length": tokenizer.max_seq_length,
            "unit": "sentences",
            "tiktoken_encoding": settings.encoding,
        },
        "faiss": {"type": kind, "requested": settings.faiss_index, "params": faiss_params},
        "bm25": {"library": "bm25s", "k1": 1.2, "b": 0.75, "stopwords": "en", "stemmer": "snowball-english"},
        "encoders": encoders,
        "adaptation": adaptation,
        "fingerprint": settings.build_fingerprint(),
        "corpus_hash": corpus_hash or documents_hash(documents),
        "corpus_source": source,
        "counts": {
            "documents": len({p.doc_id for p in passages}),
            "passages": len(passages),
            "sentences": len(sentences or []),
        },
        "versions": _versions(),
        "additions": [],
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
    """Why an index no longer matches the settings and corpus, or None if it does."""
    if index_manifest.get("corpus_hash") != corpus_hash:
        return "the corpus changed since the index was built"
    built = index_manifest.get("fingerprint", {})
    for key, value in settings.build_fingerprint().items():
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
