"""``build --engine ray``: the index built by Ray Data, on a local cluster or an existing one.

Stages, each timed and recorded in the manifest (``stages``):

1. read (driver): the documents are read as a local build reads them, hashed for the
   staleness check, pickled into blocks of about the same text size and put into Ray's
   object store;
2. chunk (tasks, one CPU each): :func:`assistant.cluster.stages.chunk_block`, the local
   chunker and sentence extractor;
3. adapt (driver): the model is adapted to the corpus's plain-language/clinician pairs once,
   before any embedding, exactly as a local build does (and from the same cache);
4. embed (an actor pool, one actor a CPU): :class:`assistant.cluster.stages.Embedder`, the
   float32 ONNX encoder on one thread, batches sized by padded tokens;
5. write: passages, sentences and vectors as Parquet shards in the work folder;
6. assemble (driver): :mod:`assistant.cluster.assemble`, then the local build's own last step.

The folder is the one a local build writes (same fingerprint, corpus hash, passage ids and
order, vectors to float rounding), plus ``engine: "ray"``, ``cluster`` and ``stages`` in the
manifest, so ``Index.load``, ``staleness`` and every command treat it alike.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from assistant.cluster import stages
from assistant.cluster.assemble import read_shards
from assistant.config import Settings, resolve_model_path
from assistant.documents.corpus import corpus_files, documents_hash, is_beir_folder, load_corpus
from assistant.errors import IndexProblem
from assistant.files import write_atomic
from assistant.search.build import _adapt, assemble_index, staleness
from assistant.search.encoding import _counters
from assistant.search.folder import ADDED_DOCUMENTS, MANIFEST, document_from_dict
from assistant.search.index import Index, Log, _stderr
from assistant.types import Document, Passage, Section

TOKEN_BUDGET = 2048
"""Padded tokens per encoder call in an actor (measured: docs/scale.md)."""
ROWS_PER_BATCH = 256
"""Rows Ray hands an actor at a time; it re-batches them by tokens."""


def ray_module() -> Any:
    """``ray``, or a ValueError saying how to install it."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ValueError(f"--engine ray needs Ray Data: pip install 'lbp-assistant[cluster]' ({exc})") from exc
    return ray


def iter_documents(corpus: Path) -> Iterator[Document]:
    """The documents of ``corpus`` in ``load_corpus`` order; a BEIR ``corpus.jsonl`` is
    streamed (``load_beir_documents`` one line at a time), so millions of abstracts never
    sit in the driver's memory at once."""
    corpus = Path(corpus)
    if not is_beir_folder(corpus):
        yield from load_corpus(corpus)
        return
    from assistant.documents.beir_corpus import read_corpus

    for row in read_corpus(corpus if corpus.is_file() else corpus / "corpus.jsonl"):
        title = str(row.get("title") or "")
        meta = {"title": title, **dict(row.get("metadata") or {})}
        yield Document(
            doc_id=str(row["_id"]), title=title, sections=(Section("body", str(row["text"])),), metadata=meta
        )


class _Blocks:
    """Documents -> pickled blocks in the object store (``{seq, doc}`` Arrow tables)."""

    def __init__(self, ray: Any, block_chars: int, max_docs: int = 10_000) -> None:
        self.ray, self.block_chars, self.max_docs = ray, block_chars, max_docs
        self.refs: list[Any] = []
        self.seq = 0
        self._pending: list[bytes] = []
        self._chars = 0

    def stream(self, docs: Iterable[Document]) -> Iterator[Document]:
        for doc in docs:
            self._pending.append(pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL))
            self._chars += sum(len(s.text) for s in doc.sections) + len(doc.title)
            self.seq += 1
            if self._chars >= self.block_chars or len(self._pending) >= self.max_docs:
                self.flush()
            yield doc

    def flush(self) -> None:
        import pyarrow as pa

        if self._pending:
            first = self.seq - len(self._pending)
            seq = pa.array(np.arange(first, self.seq, dtype=np.int64))
            self.refs.append(self.ray.put(pa.table({"seq": seq, "doc": pa.array(self._pending, pa.binary())})))
            self._pending, self._chars = [], 0


def _previous(target: Path) -> tuple[Index | None, list[Document]]:
    """The index at ``target`` (None if missing or corrupt) and the documents added to it."""
    try:
        index = Index.load(target)
        return index, index.added_documents()
    except IndexProblem:
        with contextlib.suppress(Exception):
            added = target / ADDED_DOCUMENTS
            if added.is_file():
                lines = added.read_text(encoding="utf-8").splitlines()
                return None, [document_from_dict(json.loads(x)) for x in lines if x.strip()]
        return None, []


def _connect(ray: Any, address: str | None, workers: int | None) -> bool:
    """Join ``address`` or start a local cluster (unless Ray is up); True if started here."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline: no usage reports
    quiet = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=workers, **quiet)
    deadline = time.monotonic() + 10  # a new cluster reports its CPUs a moment after init
    while not ray.available_resources().get("CPU") and time.monotonic() < deadline:
        time.sleep(0.1)
    return True


def _encoder_files(model_path: str, settings: Settings, log: Log) -> tuple[str, Path | None]:
    """The backend the actors run (``onnx`` or ``torch``, chosen as a local build chooses)
    and the float32 ONNX graph (exported on the driver first if needed)."""
    from assistant.encoders.embedding import BUILD_ENCODERS
    from assistant.encoders.onnx_encoder import OnnxUnavailableError, onnxruntime_available
    from assistant.encoders.onnx_models import model_file

    choice = settings.build_encoder
    if choice not in BUILD_ENCODERS:
        raise ValueError(f"unknown build encoder {choice!r}: use one of {', '.join(BUILD_ENCODERS)}")
    if choice in ("auto", "onnx"):
        try:
            return "onnx", model_file(model_path, "fp32", settings.onnx_cache, log)
        except OnnxUnavailableError as exc:
            if choice == "onnx" or onnxruntime_available():
                log(f"ONNX build encoder not used: {exc}. Using sentence-transformers.")
    return "torch", None


def _pair_passages(chunked: Any) -> list[Passage]:
    """The passages adaptation reads (those of documents with plain-language text), in order."""
    numpy = {"batch_format": "numpy"}
    flagged = frozenset(
        str(d)
        for b in chunked.map_batches(stages.rows_of_documents, **numpy).iter_batches(**numpy)
        for d in b["doc_id"]
    )
    if not flagged:
        return []
    rows = chunked.map_batches(stages.rows_of_documents, fn_kwargs={"doc_ids": flagged}, **numpy)
    found = [
        (int(s), int(k), r)
        for b in rows.iter_batches(**numpy)
        for s, k, r in zip(b["seq"], b["k"], b["record"], strict=True)
    ]
    return [Passage.from_dict(json.loads(r)) for _, _, r in sorted(found, key=lambda t: (t[0], t[1]))]


def build_with_ray(
    settings: Settings,
    *,
    address: str | None = None,
    workers: int | None = None,
    work_dir: str | Path | None = None,
    keep_shards: bool = False,
    force: bool = False,
    token_budget: int = TOKEN_BUDGET,
    log: Log = _stderr,
) -> Index:
    """Build ``settings.index_dir`` from ``settings.corpus_dir`` with Ray Data.

    Args:
        settings: what a local build takes (model, chunking, FAISS kind, adaptation).
        address: a Ray cluster to join (``auto``, ``ray://host:10001``, ``host:6379``);
            None starts a local cluster (or uses the Ray this process already started).
        workers: embedding actors (default: one per CPU of the cluster); also the CPUs of
            a local cluster started here.
        work_dir: where the Parquet shards go (a folder every node and the driver can see,
            or ``s3://...``); default a temporary folder beside the index.
        keep_shards: leave the shards (``<work_dir>/shards``) after assembly.
        force: rebuild even when the index matches the corpus and settings.
        token_budget: padded tokens per encoder call.
        log: progress messages.

    Returns:
        The loaded index.
    """
    ray = ray_module()
    target = Path(settings.index_dir)
    corpus = Path(settings.corpus_dir)
    previous, extra = _previous(target)
    if previous is not None:
        settings = settings.following(previous.manifest)
    if previous is not None and not force:
        reason = staleness(previous.manifest, settings, documents_hash(iter_documents(corpus)))
        if reason is None:
            log(f"Index at {target} is up to date (--force rebuilds it).")
            return previous
        log(f"Index at {target} is stale: {reason}. Rebuilding with Ray.")
    started = _connect(ray, address, workers)
    target.parent.mkdir(parents=True, exist_ok=True)
    own_dir = work_dir is None
    if work_dir is None:
        work = tempfile.mkdtemp(prefix=f".{target.name}.ray-", dir=target.parent)
    else:  # absolute: Ray's workers do not run in the driver's folder
        work = str(work_dir) if "://" in str(work_dir) else str(Path(work_dir).resolve())
    shards = f"{work.rstrip('/')}/shards"
    scratch = Path(work) if "://" not in work else target.parent
    try:
        return _run(ray, settings, corpus, extra, shards, scratch, address, workers, token_budget, log)
    finally:
        if not keep_shards:
            stages.remove_tree(shards)
            if own_dir:
                stages.remove_tree(work)
        else:
            log(f"Shards kept in {shards}")
        if started:
            ray.shutdown()


def _run(
    ray: Any,
    settings: Settings,
    corpus: Path,
    extra: list[Document],
    shards: str,
    scratch: Path,
    address: str | None,
    workers: int | None,
    token_budget: int,
    log: Log,
) -> Index:
    from ray.data import ActorPoolStrategy, DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    n_workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[f"{stage}_s"] = round(now - clock, 3)
        clock = now

    size = sum(f.stat().st_size for f in corpus_files(corpus)) if corpus.exists() else 0
    blocks = _Blocks(ray, block_chars=int(min(4_000_000, max(16_000, size // (4 * n_workers)))))
    corpus_hash = documents_hash(blocks.stream(iter_documents(corpus)))
    n_docs = blocks.seq
    for _ in blocks.stream(extra):
        pass
    blocks.flush()
    if not blocks.refs:
        raise ValueError("the corpus has no text to index")
    lap("read")

    tokenizer, _ = _counters(settings)
    limit = min(settings.chunk_tokens, tokenizer.max_seq_length)
    overlap = min(settings.chunk_overlap_tokens, limit // 2)
    chunked = (
        ray.data.from_arrow_refs(blocks.refs)
        .map_batches(
            stages.chunk_block,
            fn_kwargs={"settings": settings, "limit": limit, "overlap": overlap},
            batch_size=None,
            batch_format="numpy",
            num_cpus=1,
        )
        .materialize()
    )
    del blocks
    kinds = [b["kind"] for b in chunked.select_columns(["kind"]).iter_batches(batch_format="numpy")]
    counts = np.bincount(np.concatenate(kinds) if kinds else np.zeros(0, np.int8), minlength=2)
    if not counts[stages.PASSAGE]:
        raise ValueError("the corpus has no text to index")
    log(
        f"Building index at {settings.index_dir} with Ray ({n_workers} embedding workers): {n_docs + len(extra)} "
        f"documents, {counts[0]} passages, {counts[1]} sentences (model {settings.model}) ..."
    )
    lap("chunk")

    model_dir, adaptation = _adapt(_pair_passages(chunked) if settings.adapt else [], settings, log)
    model_path = str(model_dir) if model_dir else resolve_model_path(settings.model)
    if not Path(model_path).is_dir():
        raise ValueError(f"the Ray engine needs a local model folder, not {model_path!r}")
    backend, onnx_file = _encoder_files(model_path, settings, log)
    digest, files = stages.pack_model(model_path, onnx_file)
    bundle = [digest, ray.put(files)]
    del files
    lap("adapt")

    log(f"Embedding {counts[0]} passages and {counts[1]} sentences on {n_workers} actors ({backend}) ...")
    embedded = chunked.map_batches(
        stages.Embedder,
        fn_constructor_kwargs={"bundle": bundle, "backend": backend, "token_budget": token_budget},
        compute=ActorPoolStrategy(size=n_workers),
        num_cpus=1,
        batch_size=ROWS_PER_BATCH,
        batch_format="numpy",
    ).materialize()
    del chunked
    lap("embed")

    stages.remove_tree(shards)
    embedded.write_parquet(shards)
    del embedded
    lap("write")

    parts = read_shards(shards, scratch, log)
    encoders = {
        "passages": {"backend": backend, "precision": "float32", "batch_size": settings.batch_size},
    }
    cluster = {
        "address": address or "local",
        "workers": n_workers,
        "cpus": int(ray.cluster_resources().get("CPU", 0)),
        "ray": ray.__version__,
        "token_budget": token_budget,
        "rows_per_batch": ROWS_PER_BATCH,
    }
    index = assemble_index(
        parts.passages,
        parts.vectors,
        parts.sentences if settings.sentence_embeddings else None,
        parts.sentence_vectors if settings.sentence_embeddings else None,
        settings,
        chunking=(limit, overlap, tokenizer.max_seq_length),
        adaptation=adaptation,
        model_dir=model_dir,
        encoders=encoders,
        corpus_hash=corpus_hash,
        source=str(corpus),
        extra_documents=extra,
        log=log,
        extra_manifest={"engine": "ray", "cluster": cluster, "stages": timings},
    )
    lap("assemble")
    # The manifest was written before assembly ended: record its time too (the manifest is
    # not among the checksummed files).
    index.manifest["stages"] = {**timings, "total_s": round(sum(timings.values()), 3)}
    write_atomic(index.path / MANIFEST, (json.dumps(index.manifest, indent=2, ensure_ascii=False) + "\n").encode())
    return index
