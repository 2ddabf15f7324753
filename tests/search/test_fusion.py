"""Fusion math against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.search.fusion import (
    aggregate_max,
    fuse_convex,
    fuse_rrf,
    mmr,
    normalize_min_max,
    normalize_min_max_top,
    rocchio,
    top_k,
)


def test_rrf_hand_values() -> None:
    fused = fuse_rrf([["a", "b", "c"], ["c", "d", "a"]], k=60)
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 63)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["d"] == pytest.approx(1 / 62)
    assert top_k(fused, 2) == [("a", pytest.approx(1 / 61 + 1 / 63)), ("c", pytest.approx(1 / 61 + 1 / 63))]


def test_min_max_and_convex_hand_values() -> None:
    assert normalize_min_max({"a": 2.0, "b": 4.0, "c": 3.0}) == {"a": 0.0, "b": 1.0, "c": 0.5}
    assert normalize_min_max({"a": 5.0}) == {"a": 1.0}
    dense = {"a": 0.9, "b": 0.5, "c": 0.7}  # normalized: a=1, b=0, c=0.5
    bm25 = {"b": 10.0, "d": 2.0}  # normalized: b=1, d=0
    fused = fuse_convex(dense, bm25, alpha=0.3)
    assert fused == pytest.approx({"a": 0.3, "b": 0.7, "c": 0.15, "d": 0.0})
    with pytest.raises(ValueError):
        fuse_convex(dense, bm25, alpha=1.5)


def test_mmr_prefers_diverse_second_pick() -> None:
    a = np.array([1.0, 0.0])
    a_dup = np.array([0.999, 0.0447])
    b = np.array([0.0, 1.0])
    vecs = np.vstack([a, a_dup / np.linalg.norm(a_dup), b])
    assert mmr(a, vecs, [1.0, 0.95, 0.8], k=2, lambda_=0.5) == [0, 2]
    assert mmr(a, vecs, [1.0, 0.95, 0.8], k=2, lambda_=1.0) == [0, 1]


def test_aggregate_max() -> None:
    assert aggregate_max([("d1", 0.2), ("d2", 0.5), ("d1", 0.7)]) == {"d1": 0.7, "d2": 0.5}


def test_min_max_bounds_from_the_top_depth() -> None:
    scores = {"a": 10.0, "b": 6.0, "c": 2.0, "d": 1.0}
    # bounds from the best 3: hi 10, lo 2; d falls below lo and is clipped to 0
    assert normalize_min_max_top(scores, 3) == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.0, "d": 0.0})
    assert normalize_min_max_top(scores, None) == normalize_min_max(scores)
    assert normalize_min_max_top(scores, 10) == normalize_min_max(scores)
    # the common top is normalized alike whatever the list length
    assert normalize_min_max_top({"a": 10.0, "b": 6.0, "c": 2.0}, 3) == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.0})
    # dense bounds from its best 2 (a 0.9, c 0.7): a=1, c=0, b below lo -> 0; bm25: b=1, d=0
    fused = fuse_convex({"a": 0.9, "b": 0.5, "c": 0.7}, {"b": 4.0, "d": 2.0}, alpha=0.5, depth=2)
    assert fused == pytest.approx({"a": 0.5, "b": 0.5, "c": 0.0, "d": 0.0})
    with pytest.raises(ValueError):
        normalize_min_max_top(scores, 0)


def test_rocchio_hand_values() -> None:
    q = np.array([1.0, 0.0], dtype=np.float32)
    feedback = np.array([[0.0, 1.0], [0.0, 1.0]], dtype=np.float32)
    moved = rocchio(q, feedback, beta=1.0)  # (1, 1) / sqrt(2)
    assert moved == pytest.approx(np.array([1, 1]) / np.sqrt(2))
    assert rocchio(q, feedback, beta=0.5) == pytest.approx(np.array([1.0, 0.5]) / np.sqrt(1.25))
    assert rocchio(q, feedback[:0], beta=1.0) == pytest.approx(q)
    assert moved.dtype == np.float32 and np.linalg.norm(moved) == pytest.approx(1.0)
