"""The FAISS index of a build, and how an index folder's FAISS file is read.

:func:`make_faiss_index` makes the kinds ``Settings.faiss_index`` names: ``flat`` (exact, the
default), ``hnsw``, ``ivf`` and ``ivfpq`` (product-quantized codes in inverted lists, for
corpora whose float vectors do not fit in memory: docs/scale.md). :func:`read_faiss` loads the
file, memory-mapping the inverted lists of an IVF-PQ index so that a large index costs page
cache, not resident memory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

MAPPED_KINDS = ("ivfpq",)
"""FAISS kinds whose file :func:`read_faiss` memory-maps (read-only)."""

IVFPQ_MIN_VECTORS = 10_000
"""Below this many vectors an ``ivfpq`` request builds a flat index: product quantizers of 256
centroids per sub-vector, and inverted lists, need more vectors than that to train well."""


def faiss_kind(requested: str, n: int) -> str:
    """The FAISS index type a build makes for ``requested`` over ``n`` vectors (IVF falls
    back to flat below 1,000 vectors, IVF-PQ below :data:`IVFPQ_MIN_VECTORS`)."""
    if (requested == "ivf" and n < 1000) or (requested == "ivfpq" and n < IVFPQ_MIN_VECTORS):
        return "flat"
    return requested


def make_faiss_index(vectors: np.ndarray, kind: str = "flat", params: Mapping[str, Any] | None = None) -> Any:
    """A FAISS inner-product index over normalized ``vectors``.

    Args:
        vectors: float32 (n, dim); a memory map is fine (IVF-PQ reads it in slices).
        kind: ``flat`` (exact), ``hnsw`` (graph; params ``M``, ``ef_construction``,
            ``ef_search``), ``ivf`` (inverted lists; params ``nlist``, ``nprobe``) or
            ``ivfpq`` (inverted lists of product-quantized codes, for corpora too large
            for float vectors in memory: :func:`make_ivfpq_index`).
        params: overrides of the defaults.

    Returns:
        The populated FAISS index. IVF and IVF-PQ fall back to flat on small inputs
        (:func:`faiss_kind`).
    """
    import faiss

    params = dict(params or {})
    n, dim = vectors.shape
    kind = faiss_kind(kind, n)
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
    elif kind == "ivfpq":
        return make_ivfpq_index(vectors, params)
    else:
        raise ValueError(f"unknown FAISS index type {kind!r}: use flat, hnsw, ivf or ivfpq")
    if n:
        index.add(vectors)
    return index


def ivfpq_params(n: int, dim: int, params: Mapping[str, Any] | None = None) -> dict[str, int]:
    """IVF-PQ parameters for ``n`` vectors: ``params`` over defaults from the size.

    ``nlist`` about 4 sqrt(n) (a power of two); ``m`` sub-quantizers of ``nbits`` 8, four
    dimensions each (96 bytes a vector for 384 dimensions); ``nprobe`` lists searched, 16 and
    more for more lists; ``k_factor``: :class:`Reranked` re-scores 4 times the hits asked for;
    ``train_size`` 20 vectors a list, at least 65,536. At 1M vectors (4,096 lists) these give
    recall@10 0.998 at 0.7 ms a query on one thread (docs/scale.md: 48 bytes a vector with 4
    candidates a hit stay at 0.944, 96 bytes without re-ranking at 0.790).
    """
    nlist = 2 ** max(4, round(math.log2(4 * math.sqrt(max(n, 1)))))
    m = dim // 4 if dim % 4 == 0 else dim
    defaults = {"nlist": nlist, "m": m, "nbits": 8, "nprobe": max(16, nlist // 256), "k_factor": 4}
    defaults["train_size"] = min(n, max(20 * nlist, 65_536))
    return {**defaults, **{k: int(v) for k, v in dict(params or {}).items()}}


def make_ivfpq_index(vectors: np.ndarray, params: Mapping[str, Any] | None = None) -> Any:
    """IVF-PQ over ``vectors``, trained on a sample and filled in slices (memory: the sample,
    one slice and the codes, never all float vectors at once).

    The inverted lists' centroids come from spherical k-means on the sample; an HNSW graph
    over them is the coarse quantizer (assigning millions of vectors to thousands of lists by
    brute force costs hours on a few cores; the graph needs microseconds a vector). The
    product quantizer is trained on the sample's residuals. Params: :func:`ivfpq_params`.
    """
    import faiss

    n, dim = vectors.shape
    p = ivfpq_params(n, dim, params)
    rows = np.sort(np.random.default_rng(0).choice(n, min(n, p["train_size"]), replace=False))
    sample = np.ascontiguousarray(vectors[rows], dtype=np.float32)
    kmeans = faiss.Kmeans(dim, p["nlist"], niter=10, spherical=True, seed=3, min_points_per_centroid=1)
    kmeans.train(sample)
    quantizer = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    quantizer.add(np.ascontiguousarray(kmeans.centroids, dtype=np.float32))
    quantizer.hnsw.efSearch = 32  # adding needs each vector's nearest list only
    index = faiss.IndexIVFPQ(quantizer, dim, p["nlist"], p["m"], p["nbits"], faiss.METRIC_INNER_PRODUCT)
    index.train(sample)  # the quantizer holds nlist centroids: only the product quantizer trains
    for start in range(0, n, 65_536):
        index.add(np.ascontiguousarray(vectors[start : start + 65_536], dtype=np.float32))
    quantizer.hnsw.efSearch = 128  # searching needs the nprobe nearest lists
    index.nprobe = p["nprobe"]
    return index


class Reranked:
    """An IVF-PQ index whose candidates are re-scored exactly.

    :meth:`search` asks the product-quantized index for ``k_factor`` times ``k`` candidates
    and ranks them by their inner product with the float vectors (the index folder's
    ``embeddings.npy``, memory-mapped: only the candidates' rows are read), so scores are
    exact cosines and recall is that of the candidate set (docs/scale.md). Attributes other
    than ``search`` and ``nprobe`` are the FAISS index's.
    """

    def __init__(self, index: Any, vectors: np.ndarray, k_factor: int) -> None:
        self.index = index
        self.vectors = vectors
        self.k_factor = max(1, int(k_factor))

    def __getattr__(self, name: str) -> Any:
        if "index" not in self.__dict__:  # while being copied or unpickled
            raise AttributeError(name)
        return getattr(self.__dict__["index"], name)

    @property
    def nprobe(self) -> int:
        return int(self.index.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self.index.nprobe = int(value)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)`` of the ``k`` best rows for each query (ids -1 past the candidates)."""
        _, candidates = self.index.search(queries, k * self.k_factor)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        for i, row in enumerate(candidates):
            rows = np.unique(row[row >= 0])  # sorted: the rows are read in file order
            sims = np.asarray(self.vectors[rows], dtype=np.float32) @ queries[i]
            best = np.argsort(-sims, kind="stable")[:k]
            scores[i, : len(best)], ids[i, : len(best)] = sims[best], rows[best]
        return scores, ids


def read_faiss(
    path: str | Path,
    kind: str,
    writable: bool = False,
    vectors: np.ndarray | None = None,
    params: Mapping[str, Any] | None = None,
) -> Any:
    """The FAISS index in ``path``, of the manifest's ``kind``.

    An IVF-PQ file is memory-mapped read-only (``IO_FLAG_MMAP``: its inverted lists stay in
    the page cache) and, given the float ``vectors``, wrapped in :class:`Reranked` (with the
    manifest's ``params``). ``writable`` loads it whole and bare, to add vectors.
    """
    import faiss

    mapped = kind in MAPPED_KINDS and not writable
    index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mapped else 0)
    if mapped and vectors is not None:
        return Reranked(index, vectors, int(dict(params or {}).get("k_factor", 1)))
    return index
