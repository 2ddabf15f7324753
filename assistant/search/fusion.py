"""Pure score math: rank fusion, score normalization, MMR and document aggregation.

Scores must be finite: a NaN or an infinity has no place in a ranking, and normalizing
with one would spread NaN over every score, so the functions here refuse them with
``ValueError``, as they refuse parameters outside their range.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)


def fuse_rrf(rankings: Sequence[Sequence[K]], k: int = 60) -> dict[K, float]:
    """Reciprocal rank fusion.

    ``score(d) = sum_r 1 / (k + rank_r(d))`` with 1-based ranks; a list that does not
    contain ``d`` adds nothing (Cormack, Clarke and Buettcher, SIGIR 2009).

    Args:
        rankings: ranked lists of ids, best first; an id repeated in one list counts at
            its best rank only.
        k: the RRF constant (60 in the paper), at least 0.

    Returns:
        Fused scores, not sorted.

    Raises:
        ValueError: for a negative (or NaN) ``k``.
    """
    if not k >= 0:
        raise ValueError(f"the RRF constant k must be at least 0, got {k}")
    fused: dict[K, float] = {}
    for ranking in rankings:
        seen: set[K] = set()
        for rank, key in enumerate(ranking, start=1):
            if key in seen:
                continue
            seen.add(key)
            fused[key] = fused.get(key, 0.0) + 1.0 / (k + rank)
    return fused


def _finite(scores: Iterable[float]) -> None:
    for s in scores:
        if not math.isfinite(s):
            raise ValueError(f"scores must be finite numbers, got {s!r}")


def _scaled(s: float, lo: float, hi: float) -> float:
    """``(s - lo) / (hi - lo)`` without overflow when ``hi - lo`` exceeds the largest float."""
    if math.isinf(hi - lo):
        return (s / 2 - lo / 2) / (hi / 2 - lo / 2)
    return (s - lo) / (hi - lo)


def normalize_min_max(scores: Mapping[K, float]) -> dict[K, float]:
    """Scale scores to [0, 1] by ``(s - min) / (max - min)``; all-equal scores map to 1.

    Raises:
        ValueError: for a score that is NaN or infinite.
    """
    if not scores:
        return {}
    _finite(scores.values())
    lo, hi = min(scores.values()), max(scores.values())
    if hi == lo:
        return dict.fromkeys(scores, 1.0)
    return {key: _scaled(s, lo, hi) for key, s in scores.items()}


def normalize_min_max_top(scores: Mapping[K, float], depth: int | None = None) -> dict[K, float]:
    """Min-max normalization whose bounds come from the ``depth`` best scores only.

    ``lo`` is the ``depth``-th best score and ``hi`` the best; every score is mapped by
    ``(s - lo) / (hi - lo)`` and clipped to [0, 1], so scores below the ``depth``-th count 0.
    With ``depth`` None (or at least ``len(scores)``) this is :func:`normalize_min_max`.
    Fixing ``depth`` makes a normalized score independent of how many candidates were
    retrieved, so a search for 10 hits and one for 500 rank their common top alike.

    Raises:
        ValueError: for a ``depth`` below 1 or a score that is NaN or infinite.
    """
    if depth is not None and depth <= 0:
        raise ValueError(f"depth must be positive, got {depth}")
    if depth is None or depth >= len(scores):
        return normalize_min_max(scores)
    _finite(scores.values())
    best = sorted(scores.values(), reverse=True)
    hi, lo = best[0], best[depth - 1]
    if hi == lo:
        return {key: 1.0 if s >= hi else 0.0 for key, s in scores.items()}
    return {key: min(1.0, max(0.0, _scaled(s, lo, hi))) for key, s in scores.items()}


def fuse_convex(
    dense: Mapping[K, float], lexical: Mapping[K, float], alpha: float = 0.5, depth: int | None = None
) -> dict[K, float]:
    """Convex combination of min-max normalized scores.

    ``score(d) = alpha * norm_dense(d) + (1 - alpha) * norm_lexical(d)``; an id missing
    from one list gets 0 for it (Bruch, Gai and Ingber, TOIS 2023). ``depth`` bounds the
    normalization to each list's best ``depth`` scores (:func:`normalize_min_max_top`).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    nd, nl = normalize_min_max_top(dense, depth), normalize_min_max_top(lexical, depth)
    return {key: alpha * nd.get(key, 0.0) + (1 - alpha) * nl.get(key, 0.0) for key in {*nd, *nl}}


def top_k(scores: Mapping[K, float], k: int) -> list[tuple[K, float]]:
    """The ``k`` best (id, score) pairs, ties broken by id for reproducibility (none for k < 1)."""
    return sorted(scores.items(), key=lambda kv: (-kv[1], str(kv[0])))[: max(k, 0)]


def mmr(
    query: np.ndarray, candidates: np.ndarray, relevance: Sequence[float], k: int, lambda_: float = 0.7
) -> list[int]:
    """Maximal marginal relevance (Carbonell and Goldstein, SIGIR 1998).

    Picks, one at a time, the candidate maximizing
    ``lambda * rel(c) - (1 - lambda) * max_{s in selected} cos(c, s)``; the first pick is
    the most relevant candidate.

    Args:
        query: the query vector (unused beyond shape checks; relevance is given).
        candidates: normalized candidate vectors (n, dim).
        relevance: relevance of each candidate (any finite scale; min-max normalized here).
        k: how many to pick.
        lambda_: 1.0 is pure relevance, 0.0 pure diversity.

    Returns:
        Indices into ``candidates`` in pick order, distinct, ``min(k, n)`` of them.

    Raises:
        ValueError: for ``lambda_`` outside [0, 1], a relevance that is NaN or infinite, or
            a ``candidates`` that is not one row per relevance.
    """
    if not 0.0 <= lambda_ <= 1.0:
        raise ValueError(f"MMR lambda must be in [0, 1], got {lambda_}")
    n = len(relevance)
    candidates = np.asarray(candidates)
    if candidates.ndim != 2 or len(candidates) != n:
        raise ValueError(f"MMR needs one candidate vector per relevance: {candidates.shape} for {n}")
    if n == 0:
        return []
    given = np.asarray(relevance, dtype=np.float64)
    _finite(given.tolist())
    rel = given
    lo, hi = float(rel.min()), float(rel.max())
    if math.isinf(hi - lo):  # finite, but further apart than the largest float
        rel, lo, hi = rel / 2, lo / 2, hi / 2
    span = hi - lo
    rel = (rel - lo) / span if span > 0 else np.ones_like(rel)
    sims = candidates @ candidates.T
    selected: list[int] = []
    max_sim = np.full(n, -np.inf)
    remaining = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        redundancy = np.where(np.isfinite(max_sim), max_sim, 0.0)
        score = lambda_ * rel - (1 - lambda_) * redundancy if selected else given.copy()
        score[~remaining] = -np.inf
        best = int(np.argmax(score))
        if not remaining[best]:  # every remaining score is NaN or -inf: the first remaining
            best = int(np.argmax(remaining))
        selected.append(best)
        remaining[best] = False
        max_sim = np.maximum(max_sim, sims[best])
    return selected


def aggregate_max(passage_scores: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Document score = its best passage score (MaxP, Dai and Callan, SIGIR 2019)."""
    out: dict[str, float] = {}
    for doc_id, score in passage_scores:
        if doc_id not in out or score > out[doc_id]:
            out[doc_id] = score
    return out


def rocchio(query: np.ndarray, feedback: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """Pseudo-relevance feedback on a dense query (Rocchio, 1971).

    ``q' = normalize(q + beta * mean(feedback))``: the query moves towards the centroid of
    the top-ranked passages, which pulls in passages phrased like them (Li et al.,
    "Pseudo relevance feedback with deep language models and dense retrievers", 2022).

    Args:
        query: the normalized query vector (dim,).
        feedback: normalized vectors of the feedback passages (n, dim); n = 0 returns ``query``.
        beta: weight of the centroid.

    Returns:
        A new unit-length float32 vector; ``query`` itself (as float32) when there is no
        feedback, ``beta`` is 0, or the moved vector is zero (a centroid cancelling the query).

    Raises:
        ValueError: for a ``beta`` that is NaN or infinite.
    """
    if not math.isfinite(beta):
        raise ValueError(f"the Rocchio weight beta must be finite, got {beta}")
    if len(feedback) == 0 or beta == 0:
        return np.asarray(query, dtype=np.float32)
    moved = np.asarray(query, dtype=np.float64) + beta * np.asarray(feedback, dtype=np.float64).mean(axis=0)
    norm = np.linalg.norm(moved)
    if not (np.isfinite(norm) and norm > 0):  # tiny (underflowing) or huge (overflowing) components
        scale = np.max(np.abs(moved)) if moved.size else 0.0
        if not (np.isfinite(scale) and scale > 0):
            return np.asarray(query, dtype=np.float32)
        moved = moved / scale
        norm = np.linalg.norm(moved)
    return (moved / norm).astype(np.float32)
