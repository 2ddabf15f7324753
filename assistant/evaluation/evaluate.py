"""Evaluate the retrievers on a BEIR folder: the dataset, its index, the runs, and the CLI.

The pipeline is: load the dataset (:func:`load_eval_dataset`), index its corpus with the
project's own pipeline, cached by content hash (:func:`dataset_index`), run each retriever,
then :func:`~assistant.evaluation.metrics.evaluate_runs` (pure) turns qrels + runs into the
report dict that :func:`~assistant.evaluation.report.report_markdown` and
:func:`~assistant.evaluation.report.plot_report` render.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.arguments import float_in, hits_k
from assistant.config import PROJECT_ROOT, Settings
from assistant.evaluation.beir import read_qrels, read_queries_with_metadata, write_trec_run
from assistant.evaluation.metrics import QrelsDict, RunDict, evaluate_runs, metric_names
from assistant.evaluation.report import plot_report, report_markdown

if TYPE_CHECKING:
    from assistant.search.index import Index

__all__ = [
    "RETRIEVERS",
    "EvalDataset",
    "dataset_index",
    "load_eval_dataset",
    "run_eval",
]

RETRIEVERS = ("bm25", "dense", "hybrid")
BUILTIN_DATASET = PROJECT_ROOT / "datasets" / "lbp-dev"
DEFAULT_CACHE = Path("~/.cache/lbp-assistant/indexes")


@dataclass(frozen=True)
class EvalDataset:
    """The queries and judgements of one split of a BEIR folder.

    Attributes:
        name: folder name.
        path: the folder.
        split: the qrels file used (``qrels/<split>.tsv``).
        queries: ``{qid: text}`` for the queries judged in this split.
        query_metadata: ``{qid: {"_id", "text", "metadata"}}``.
        qrels: ``{qid: {docid: relevance}}``.
        corpus_file: ``corpus.jsonl``, or None to search the built-in index.
    """

    name: str
    path: Path
    split: str
    queries: dict[str, str]
    query_metadata: dict[str, dict[str, Any]]
    qrels: QrelsDict
    corpus_file: Path | None


def load_eval_dataset(path: str | Path, split: str) -> EvalDataset:
    """Read ``queries.jsonl`` and ``qrels/<split>.tsv`` of a BEIR folder.

    Raises:
        FileNotFoundError: when the folder, queries or qrels file is missing.
        ValueError: when the qrels judge a query that ``queries.jsonl`` does not contain.
    """
    path = Path(path)
    qrels_file = path / "qrels" / f"{split}.tsv"
    for required in (path / "queries.jsonl", qrels_file):
        if not required.is_file():
            raise FileNotFoundError(f"{required} not found (expected a BEIR folder)")
    all_queries = read_queries_with_metadata(path / "queries.jsonl")
    qrels = read_qrels(qrels_file)
    missing = sorted(set(qrels) - set(all_queries))
    if missing:
        raise ValueError(f"{qrels_file}: {len(missing)} judged queries not in queries.jsonl: {missing[:5]}")
    corpus_file = path / "corpus.jsonl"
    return EvalDataset(
        name=path.name,
        path=path,
        split=split,
        queries={q: all_queries[q]["text"] for q in qrels},
        query_metadata={q: all_queries[q] for q in qrels},
        qrels=qrels,
        corpus_file=corpus_file if corpus_file.is_file() else None,
    )


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Where dataset indexes are cached: ``cache_dir``, else ``$LBP_CACHE``, else ~/.cache."""
    chosen = cache_dir or os.environ.get("LBP_CACHE") or DEFAULT_CACHE
    return Path(chosen).expanduser()


def corpus_cache_key(corpus_file: Path, settings: Settings) -> str:
    """SHA-256 over the corpus file bytes and the settings that shape the index."""
    h = hashlib.sha256()
    with corpus_file.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    h.update(json.dumps(settings.build_fingerprint(), sort_keys=True).encode())
    return h.hexdigest()[:16]


def dataset_index(
    dataset: EvalDataset, settings: Settings, cache_dir: str | Path | None = None
) -> tuple[Index, Settings]:
    """The index to search for ``dataset`` and the settings it was opened with.

    A dataset with its own ``corpus.jsonl`` is indexed with the project pipeline into
    ``<cache>/<hash>`` (built once, then reused); one without searches ``settings.index_dir``.
    """
    from assistant.search.build import ensure_index

    if dataset.corpus_file is not None:
        # Retrieval benchmarks need no sentence vectors (those serve answer composition).
        settings = settings.with_(sentence_embeddings=False)
        key = corpus_cache_key(dataset.corpus_file, settings)
        settings = settings.with_(index_dir=cache_root(cache_dir) / key, corpus_dir=dataset.path)
    return ensure_index(settings), settings


def run_retrievers(
    index: Index,
    settings: Settings,
    queries: Mapping[str, str],
    retrievers: Sequence[str],
    depth: int,
    progress: bool = False,
) -> tuple[dict[str, RunDict], dict[str, float]]:
    """Run each retriever over ``queries``; returns ``({name: run}, {name: seconds})``.

    The query encoder is loaded once, before timing, and each retriever gets its own
    query-embedding cache, so hybrid is not timed on embeddings that dense already computed.
    """
    from assistant.encoders.embedding import CachedQueryEncoder, load_query_encoder
    from assistant.search.retrieval import Retriever, run_queries

    settings = index.query_settings(settings)
    base = load_query_encoder(settings) if {"dense", "hybrid"} & set(retrievers) else None
    runs: dict[str, RunDict] = {}
    seconds: dict[str, float] = {}
    for method in retrievers:
        retriever = Retriever(index, settings, query_encoder=CachedQueryEncoder(base) if base else None)
        run_queries(retriever, {"warm-up": "warm-up query"}, k=depth, method=method)
        start = time.perf_counter()
        runs[method] = run_queries(retriever, queries, k=depth, method=method, progress=progress)
        seconds[method] = time.perf_counter() - start
    return runs, seconds


def run_eval(
    dataset_path: str | Path | None = None,
    split: str | None = None,
    retrievers: Sequence[str] = RETRIEVERS,
    k: int = 10,
    depth: int = 100,
    settings: Settings | None = None,
    cache_dir: str | Path | None = None,
    runs_dir: str | Path | None = None,
    stat_test: str = "student",
    max_p: float = 0.05,
    progress: bool = False,
) -> dict[str, Any]:
    """Index a dataset, run the retrievers, write TREC runs and return the report dict.

    Args:
        dataset_path: a BEIR folder; default the built-in LBP dev set.
        split: qrels split; default ``dev`` for the built-in set, ``test`` otherwise.
        retrievers: any of ``bm25``, ``dense``, ``hybrid``.
        k: cutoff of nDCG, MRR and the middle recall.
        depth: hits retrieved per query (at least 100 for Recall@100 and MAP@100).
        settings: pipeline settings (default :meth:`Settings.from_env`).
        cache_dir: dataset index cache (see :func:`cache_root`).
        runs_dir: where to write ``<retriever>.trec`` runs; None writes none.
        stat_test: ``student`` or ``fisher``.
        max_p: significance threshold.
        progress: show progress bars on stderr.

    Returns:
        The report of :func:`evaluate_runs` plus ``dataset``, ``settings``, ``timing``,
        ``runs`` (files written) and ``versions``.
    """
    unknown = sorted(set(retrievers) - set(RETRIEVERS))
    if unknown or not retrievers:
        raise ValueError(f"unknown retrievers {unknown}; choose from {', '.join(RETRIEVERS)}")
    path = Path(dataset_path) if dataset_path else BUILTIN_DATASET
    split = split or ("dev" if dataset_path is None else "test")
    dataset = load_eval_dataset(path, split)
    metrics = metric_names(k)
    index, used = dataset_index(dataset, settings or Settings.from_env(), cache_dir)
    runs, seconds = run_retrievers(index, used, dataset.queries, retrievers, max(depth, k), progress=progress)
    run_files = {}
    if runs_dir is not None:
        for name, run in runs.items():
            tag = f"{dataset.name}-{split}-{name}"
            run_files[name] = str(write_trec_run(Path(runs_dir) / f"{tag}.trec", run, tag))
    report = evaluate_runs(dataset.qrels, runs, metrics, dataset.query_metadata, stat_test, max_p)
    n = max(len(dataset.queries), 1)
    return {
        "dataset": {
            "name": dataset.name,
            "path": str(dataset.path),
            "split": split,
            "n_documents": int(index.manifest["counts"]["documents"]),
            "n_passages": int(index.manifest["counts"]["passages"]),
            "corpus_hash": index.manifest.get("corpus_hash"),
            "index_dir": str(used.index_dir),
        },
        "settings": {"k": k, "depth": max(depth, k), **_settings_record(used)},
        **report,
        "timing": {m: {"seconds": s, "ms_per_query": 1000 * s / n} for m, s in seconds.items()},
        "runs": run_files,
        "versions": _versions(),
    }


def _settings_record(settings: Settings) -> dict[str, Any]:
    """The settings as plain JSON values (build and search choices; paths as strings)."""
    record = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        record[f.name] = str(value) if isinstance(value, Path) else value
    return record


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0]}
    for package in ("ranx", "bm25s", "faiss-cpu", "sentence-transformers"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


# --------------------------------------------------------------------------- CLI


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def add_eval_parser(sub: Any) -> None:
    """Register ``eval`` on an argparse subparsers object."""
    p = sub.add_parser(
        "eval",
        help="evaluate the retrievers on a BEIR folder (default: the built-in LBP dev set)",
        description="Index a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) with "
        "the project pipeline, run each retriever and report nDCG, recall, MRR and MAP "
        "with paired significance tests.",
    )
    p.add_argument("--dataset", type=Path, default=None, help="BEIR folder (default: datasets/lbp-dev)")
    p.add_argument("--split", default=None, help="qrels split (default: dev for lbp-dev, else test)")
    p.add_argument("--retrievers", default=",".join(RETRIEVERS), help="comma-separated (default: %(default)s)")
    p.add_argument("--k", type=hits_k, default=10, help="cutoff of nDCG/MRR/Recall (default: %(default)s)")
    p.add_argument("--depth", type=hits_k, default=100, help="hits per query (default: %(default)s)")
    p.add_argument("--output", type=Path, default=None, help="write the JSON report here")
    p.add_argument("--markdown", type=Path, default=None, help="write the Markdown tables here")
    p.add_argument("--plot", type=Path, default=None, help="write a PNG bar chart here")
    p.add_argument("--runs-dir", type=Path, default=None, help="write TREC runs here")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="dataset index cache (default: $LBP_CACHE or ~/.cache/lbp-assistant/indexes)",
    )
    p.add_argument(
        "--stat-test",
        choices=("student", "fisher"),
        default="student",
        help="paired test (default: %(default)s)",
    )
    p.add_argument(
        "--max-p",
        type=float_in(0.0, 1.0, low_open=True),
        default=0.05,
        help="significance threshold (default: %(default)s)",
    )
    p.add_argument("--index", type=Path, default=None, help="built-in index folder, for datasets without corpus.jsonl")
    p.add_argument("--corpus", type=Path, default=None, help="corpus folder that index is built from")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    """Run ``eval`` from parsed arguments; prints the Markdown tables."""
    retrievers = [r.strip() for r in args.retrievers.split(",") if r.strip()]
    report = run_eval(
        dataset_path=args.dataset,
        split=args.split,
        retrievers=retrievers,
        k=args.k,
        depth=args.depth,
        settings=Settings.from_env(index_dir=args.index, corpus_dir=args.corpus),
        cache_dir=args.cache_dir,
        runs_dir=args.runs_dir,
        stat_test=args.stat_test,
        max_p=args.max_p,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    markdown = report_markdown(report)
    print(markdown, end="")
    if args.output:
        _write_text(args.output, json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n")
    if args.markdown:
        _write_text(args.markdown, markdown)
    if args.plot:
        plot_report(report, args.plot)
    return 0
