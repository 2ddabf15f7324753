"""Score retrieval runs against qrels: ranx metrics per query and on average, per-group
means, and paired significance tests between runs.

Metrics and paired significance tests come from ranx (Bassani, "ranx: A Blazing-Fast Python
Library for Ranking Evaluation and Comparison", ECIR 2022); nothing is hand-computed here.
:func:`evaluate_runs` (pure) turns qrels + runs into the report dict that
:mod:`assistant.evaluation.report` renders.

ranx compiles its kernels with numba on first use (about 30 s on a cold cache); numba caches
them next to the ranx sources (or under ``NUMBA_CACHE_DIR``), so later runs start in ~2 s.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from assistant.evaluation.beir import ranked

__all__ = [
    "compare_runs",
    "evaluate_runs",
    "metric_names",
    "per_query_scores",
]

RunDict = dict[str, dict[str, float]]
QrelsDict = dict[str, dict[str, int]]

BREAKDOWN_FIELD = "phrasing"
TOP_DOCS_PER_QUERY = 5


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
