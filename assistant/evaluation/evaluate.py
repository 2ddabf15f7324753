"""Evaluate the retrievers on a BEIR folder: runs, qrels, metrics, significance, reports.

Metrics and paired significance tests come from ranx (Bassani, "ranx: A Blazing-Fast Python
Library for Ranking Evaluation and Comparison", ECIR 2022); nothing is hand-computed here.
The pipeline is: load the dataset (:func:`load_eval_dataset`), index its corpus with the
project's own pipeline, cached by content hash (:func:`dataset_index`), run each retriever,
then :func:`evaluate_runs` (pure) turns qrels + runs into the report dict that
:func:`report_markdown` and :func:`plot_report` render.

ranx compiles its kernels with numba on first use (about 30 s on a cold cache); numba caches
them next to the ranx sources (or under ``NUMBA_CACHE_DIR``), so later runs start in ~2 s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.arguments import float_in, hits_k
from assistant.config import PROJECT_ROOT, Settings
from assistant.evaluation.beir import ranked, read_qrels, read_queries_with_metadata, write_trec_run

if TYPE_CHECKING:
    from assistant.search.index import Index

__all__ = [
    "RETRIEVERS",
    "EvalDataset",
    "compare_runs",
    "dataset_index",
    "evaluate_runs",
    "load_eval_dataset",
    "metric_names",
    "per_query_scores",
    "plot_report",
    "report_markdown",
    "run_eval",
]

RunDict = dict[str, dict[str, float]]
QrelsDict = dict[str, dict[str, int]]

RETRIEVERS = ("bm25", "dense", "hybrid")
BUILTIN_DATASET = PROJECT_ROOT / "datasets" / "lbp-dev"
DEFAULT_CACHE = Path("~/.cache/lbp-assistant/indexes")
BREAKDOWN_FIELD = "phrasing"
TOP_DOCS_PER_QUERY = 5
METRIC_LABELS = {"ndcg": "nDCG", "recall": "R", "mrr": "MRR", "map": "MAP"}


def metric_names(k: int = 10) -> list[str]:
    """ranx metric names reported: nDCG@k, Recall@1/5/k/100, MRR@k, MAP@100."""
    names = [
        f"ndcg@{k}",
        "recall@1",
        "recall@5",
        f"recall@{k}",
        "recall@100",
        f"mrr@{k}",
        "map@100",
    ]
    return list(dict.fromkeys(names))


def metric_label(name: str) -> str:
    """``"ndcg@10"`` -> ``"nDCG@10"``."""
    base, _, cut = name.partition("@")
    return f"{METRIC_LABELS.get(base, base)}@{cut}" if cut else METRIC_LABELS.get(base, base)


# --------------------------------------------------------------------------- metrics (pure)


def judged_queries(qrels: Mapping[str, Mapping[str, int]]) -> QrelsDict:
    """The queries with at least one relevant (score > 0) document; others cannot be scored."""
    return {q: dict(docs) for q, docs in qrels.items() if any(r > 0 for r in docs.values())}


def _ranx_inputs(qrels: QrelsDict, run: Mapping[str, Mapping[str, float]], name: str) -> Any:
    """ranx Qrels and Run covering exactly the judged queries.

    Scores are replaced by rank-derived values (n, n-1, ..., 1) after ordering by score then
    doc id, so ranx sees the same order, ties included, as the TREC run files; ranx's own
    tie order is unspecified. Queries without hits get an empty result list (score 0).
    """
    from ranx import Qrels as RanxQrels
    from ranx import Run as RanxRun

    ordered: RunDict = {}
    for qid in qrels:
        hits = ranked(run.get(qid, {}))
        if hits:
            ordered[qid] = {doc: float(len(hits) - i) for i, (doc, _) in enumerate(hits)}
    ranx_run = RanxRun(ordered, name=name) if ordered else RanxRun(name=name)
    ranx_qrels = RanxQrels(qrels)
    return ranx_qrels, ranx_run.make_comparable(ranx_qrels)


def per_query_scores(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str],
) -> dict[str, dict[str, float]]:
    """Each metric for each judged query, computed by ``ranx.evaluate``.

    Args:
        qrels: ``{qid: {docid: relevance}}``; queries without a relevant document are skipped.
        run: ``{qid: {docid: score}}``; a judged query missing from it scores 0.
        metrics: ranx metric names, e.g. ``["ndcg@10", "recall@100"]``.

    Returns:
        ``{qid: {metric: value}}`` for the judged queries, in qrels order.
    """
    from ranx import evaluate

    judged = judged_queries(qrels)
    if not judged:
        return {}
    ranx_qrels, ranx_run = _ranx_inputs(judged, run, "run")
    evaluate(ranx_qrels, ranx_run, list(metrics), return_mean=True, save_results_in_run=True)
    return {q: {m: float(ranx_run.scores[m][q]) for m in metrics} for q in judged}


def mean_scores(
    per_query: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str],
    qids: Sequence[str] | None = None,
) -> dict[str, float]:
    """Arithmetic mean of each metric over ``qids`` (default: all queries of ``per_query``)."""
    chosen = list(per_query) if qids is None else list(qids)
    if not chosen:
        return dict.fromkeys(metrics, 0.0)
    return {m: sum(per_query[q][m] for q in chosen) / len(chosen) for m in metrics}


def _p_value(value: Any) -> float | None:
    p = float(value)
    return None if math.isnan(p) else p


def compare_runs(
    qrels: Mapping[str, Mapping[str, int]],
    runs: Mapping[str, Mapping[str, Mapping[str, float]]],
    metrics: Sequence[str],
    stat_test: str = "student",
    max_p: float = 0.05,
) -> list[dict[str, Any]]:
    """Paired significance tests between every pair of runs, via ``ranx.compare``.

    Args:
        qrels: relevance judgements.
        runs: ``{name: run}``; at least two.
        metrics: ranx metric names.
        stat_test: ``student`` (two-sided paired t-test) or ``fisher`` (randomization test,
            Smucker, Allan and Carterette, CIKM 2007).
        max_p: significance threshold.

    Returns:
        One dict per (pair, metric): ``a``, ``b``, ``metric``, ``mean_a``, ``mean_b``,
        ``p_value`` (None when undefined, e.g. identical scores), ``significant``, and
        per-query ``wins_a``, ``ties``, ``wins_b``.
    """
    from ranx import compare

    names = list(runs)
    judged = judged_queries(qrels)
    if len(names) < 2 or not judged:
        return []
    pairs = [_ranx_inputs(judged, runs[name], name) for name in names]
    with warnings.catch_warnings():
        # scipy warns when all paired differences are equal; the p-value is then NaN -> None.
        warnings.simplefilter("ignore", RuntimeWarning)
        ranx_report = compare(pairs[0][0], [r for _, r in pairs], list(metrics), stat_test=stat_test, max_p=max_p)
    report = ranx_report.to_dict()
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for m in metrics:
                p = _p_value(report[a]["comparisons"][b][m])
                wtl = report[a]["win_tie_loss"][b][m]
                rows.append(
                    {
                        "a": a,
                        "b": b,
                        "metric": m,
                        "mean_a": float(report[a]["scores"][m]),
                        "mean_b": float(report[b]["scores"][m]),
                        "p_value": p,
                        "significant": p is not None and p < max_p,
                        "wins_a": int(wtl["W"]),
                        "ties": int(wtl["T"]),
                        "wins_b": int(wtl["L"]),
                    }
                )
    return rows


def evaluate_runs(
    qrels: Mapping[str, Mapping[str, int]],
    runs: Mapping[str, Mapping[str, Mapping[str, float]]],
    metrics: Sequence[str],
    query_metadata: Mapping[str, Mapping[str, Any]] | None = None,
    stat_test: str = "student",
    max_p: float = 0.05,
    breakdown_field: str = BREAKDOWN_FIELD,
) -> dict[str, Any]:
    """Score runs against qrels: means, per-group means, per-query scores and significance.

    Args:
        qrels: ``{qid: {docid: relevance}}``.
        runs: ``{retriever: {qid: {docid: score}}}``.
        metrics: ranx metric names.
        query_metadata: ``{qid: {"text"?, "metadata": {...}}}``; queries whose metadata
            has ``breakdown_field`` are also averaged per value of that field.
        stat_test: see :func:`compare_runs`.
        max_p: significance threshold.
        breakdown_field: the metadata field to break results down by.

    Returns:
        ``{"metrics", "n_queries", "n_unjudged", "retrievers": {name: {"mean", "by_<field>"}},
        "comparisons": [...], "per_query": {qid: {...}}}``.
    """
    query_metadata = query_metadata or {}
    judged = judged_queries(qrels)
    scores = {name: per_query_scores(judged, run, metrics) for name, run in runs.items()}
    groups: dict[str, list[str]] = {}
    for qid in judged:
        value = dict(query_metadata.get(qid, {}).get("metadata") or {}).get(breakdown_field)
        if value is not None:
            groups.setdefault(str(value), []).append(qid)
    retrievers: dict[str, Any] = {}
    for name, per_query in scores.items():
        entry: dict[str, Any] = {"mean": mean_scores(per_query, metrics)}
        if groups:
            entry[f"by_{breakdown_field}"] = {
                g: {"n": len(qids), "mean": mean_scores(per_query, metrics, qids)} for g, qids in sorted(groups.items())
            }
        retrievers[name] = entry
    per_query_rows: dict[str, Any] = {}
    for qid in judged:
        info = query_metadata.get(qid, {})
        per_query_rows[qid] = {
            "query": info.get("text", ""),
            breakdown_field: dict(info.get("metadata") or {}).get(breakdown_field),
            "relevant": sorted(d for d, r in judged[qid].items() if r > 0),
            "scores": {name: scores[name][qid] for name in scores},
            "top": {name: [d for d, _ in ranked(run.get(qid, {}))[:TOP_DOCS_PER_QUERY]] for name, run in runs.items()},
        }
    return {
        "metrics": list(metrics),
        "n_queries": len(judged),
        "n_unjudged": len(qrels) - len(judged),
        "breakdown_field": breakdown_field,
        "retrievers": retrievers,
        "significance": {"test": stat_test, "max_p": max_p},
        "comparisons": compare_runs(judged, runs, metrics, stat_test, max_p),
        "per_query": per_query_rows,
    }


# --------------------------------------------------------------------------- datasets and runs


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
    from assistant.search.index import ensure_index

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


# --------------------------------------------------------------------------- rendering


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def _p_cell(row: Mapping[str, Any]) -> str:
    diff = row["mean_a"] - row["mean_b"]
    arrow = "↑" if diff > 0 else "↓" if diff < 0 else "="
    if row["p_value"] is None:
        return f"n/a {arrow}"
    return f"{row['p_value']:.3g}{'*' if row['significant'] else ''} {arrow}"


def report_markdown(report: Mapping[str, Any]) -> str:
    """Markdown tables: mean metrics per retriever, per-group means, paired tests."""
    metrics = list(report["metrics"])
    labels = [metric_label(m) for m in metrics]
    ds = report.get("dataset", {})
    title = f"{ds.get('name', 'dataset')} ({ds.get('split', '?')})"
    lines = [
        f"### {title}: {report['n_queries']} queries, {ds.get('n_documents', '?')} documents",
        "",
        "| Retriever | " + " | ".join(labels) + " | ms/query |",
        "|---|" + "---:|" * (len(metrics) + 1),
    ]
    timing = report.get("timing", {})
    for name, entry in report["retrievers"].items():
        ms = timing.get(name, {}).get("ms_per_query")
        cells = [_fmt(entry["mean"][m]) for m in metrics] + [f"{ms:.1f}" if ms else "-"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    field = report.get("breakdown_field", BREAKDOWN_FIELD)
    if any(f"by_{field}" in e for e in report["retrievers"].values()):
        lines += ["", f"By query {field}:", ""]
        lines.append(f"| Retriever | {field} | n | " + " | ".join(labels) + " |")
        lines.append("|---|---|---:|" + "---:|" * len(metrics))
        for name, entry in report["retrievers"].items():
            for group, g in entry.get(f"by_{field}", {}).items():
                cells = [_fmt(g["mean"][m]) for m in metrics]
                lines.append(f"| {name} | {group} | {g['n']} | " + " | ".join(cells) + " |")
    comparisons = report.get("comparisons", [])
    if comparisons:
        sig = report.get("significance", {})
        test = "paired t-test" if sig.get("test") == "student" else "Fisher randomization test"
        lines += [
            "",
            f"Significance ({test}): p-values, * p < {sig.get('max_p', 0.05)}; "
            "the arrow shows whether the first retriever scored higher or lower.",
            "",
            "| Comparison | " + " | ".join(labels) + " |",
            "|---|" + "---:|" * len(metrics),
        ]
        by_pair: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
        for row in comparisons:
            by_pair.setdefault((row["a"], row["b"]), {})[row["metric"]] = row
        for (a, b), rows in by_pair.items():
            cells = [_p_cell(rows[m]) for m in metrics]
            lines.append(f"| {a} vs {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_report(report: Mapping[str, Any], path: str | Path) -> Path:
    """Bar chart of each retriever's metrics (and nDCG by query group) saved as PNG.

    matplotlib is imported here, and the figure is drawn on an Agg canvas without pyplot,
    so no global backend state changes.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metrics = list(report["metrics"])
    names = list(report["retrievers"])
    field = report.get("breakdown_field", BREAKDOWN_FIELD)
    groups = sorted({g for e in report["retrievers"].values() for g in e.get(f"by_{field}", {})})
    fig = Figure(figsize=(11 if groups else 8, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, width_ratios=[3, 1]) if groups else [fig.subplots()]
    width = 0.8 / max(len(names), 1)
    x = np.arange(len(metrics))
    for i, name in enumerate(names):
        values = [report["retrievers"][name]["mean"][m] for m in metrics]
        bars = axes[0].bar(x + (i - (len(names) - 1) / 2) * width, values, width, label=name)
        axes[0].bar_label(bars, fmt="%.3f", fontsize=6, padding=2, rotation=90)
    ds = report.get("dataset", {})
    axes[0].set_title(f"{ds.get('name', '')} ({ds.get('split', '')}), {report['n_queries']} queries")
    axes[0].set_xticks(x, [metric_label(m) for m in metrics])
    axes[0].set_ylim(0, 1.15)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=len(names), fontsize=8)
    if groups:
        main = metrics[0]
        gx = np.arange(len(groups))
        for i, name in enumerate(names):
            by = report["retrievers"][name].get(f"by_{field}", {})
            values = [by.get(g, {}).get("mean", {}).get(main, 0.0) for g in groups]
            axes[1].bar(gx + (i - (len(names) - 1) / 2) * width, values, width, label=name)
        axes[1].set_xticks(gx, groups)
        axes[1].set_ylim(0, 1.15)
        axes[1].set_title(f"{metric_label(main)} by {field}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


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
