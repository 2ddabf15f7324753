"""The vector index alone at scale: exact search against HNSW and IVF on synthetic vectors.

The vectors imitate sentence embeddings rather than uniform noise (which makes approximate
search artificially hard): a mixture of Gaussian clusters in a low-dimensional latent
space, projected to ``dim`` dimensions, plus isotropic noise, then L2-normalized. Queries
are new draws from the same mixture (not database members). Ground truth is exact inner
product search; recall@10 is the share of the exact top 10 an index returns.

Latency is single-query (a batch of 1, one OpenMP thread: ``faiss.omp_set_num_threads(1)``),
which is how the assistant queries; builds use every core.

    python -m benchmarks.ann --n 1000000 --queries 200
    python -m benchmarks.ann --n 1000000 --kinds exact,ivfpq --ivfpq-m 48,96   # IVF-PQ (docs/scale.md)

IVF-PQ is built by the assistant's own code (``assistant.search.dense.make_ivfpq_index``: trained
on a sample, filled in slices), written to a file and searched as ``Index.load`` opens it:
memory-mapped read-only, candidates re-ranked against the memory-mapped float vectors
(``Reranked``). Its memory is given as the file's size (what loading it whole would cost),
the anonymous memory the mapped index takes, and the file pages the sweeps brought in.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import emit, peak_rss_mb, rss_mb, summarize_ms

DIM = 384
EF_SEARCH = (16, 32, 64, 128, 256, 512)
NPROBE = (1, 2, 4, 8, 16, 32, 64, 128)
DATA_DESCRIPTION = (
    "Gaussian mixture: 1024 centres ~ N(0, I) in a 64-d latent space, spread 1.0 around them, "
    "randomly projected to 384-d, isotropic noise 0.03, L2-normalized"
)


def clustered_vectors(
    n: int,
    dim: int = DIM,
    seed: int = 0,
    clusters: int = 1024,
    latent: int = 64,
    spread: float = 1.0,
    noise: float = 0.03,
    mixture_seed: int = 1234,
) -> np.ndarray:
    """``n`` normalized float32 vectors from a fixed Gaussian mixture (see the module doc).

    Args:
        n: how many vectors.
        dim: output dimension.
        seed: seed of the draws (use another seed for queries).
        clusters: mixture components, centres ~ N(0, I) in the latent space.
        latent: dimension of the latent space (the "intrinsic" dimension).
        spread: standard deviation around a centre, in the latent space.
        noise: isotropic noise added in the output space, per coordinate.
        mixture_seed: seed of the mixture itself (centres and projection), shared by
            database and queries.
    """
    mix = np.random.default_rng(mixture_seed)
    projection = (mix.standard_normal((latent, dim)) / math.sqrt(latent)).astype(np.float32)
    centres = mix.standard_normal((clusters, latent)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        m = min(step, n - start)
        z = centres[rng.integers(clusters, size=m)] + spread * rng.standard_normal((m, latent), dtype=np.float32)
        x = z @ projection + noise * rng.standard_normal((m, dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start : start + m] = x
    return out


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Mean over queries of ``|found[:k] & truth[:k]| / k``."""
    hits = sum(len(set(f[:k].tolist()) & set(t[:k].tolist())) for f, t in zip(found, truth, strict=True))
    return hits / (k * len(truth))


def _single_query(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, list[float]]:
    ids = np.empty((len(queries), k), dtype=np.int64)
    times = []
    for i in range(len(queries)):
        t = time.perf_counter()
        _, found = index.search(queries[i : i + 1], k)
        times.append(time.perf_counter() - t)
        ids[i] = found[0]
    return ids, times


def data_stats(x: np.ndarray, queries: np.ndarray, truth_scores: np.ndarray) -> dict[str, float]:
    """How embedding-like the data is: cosine of random pairs and of each query's neighbours."""
    rng = np.random.default_rng(7)
    a, b = rng.integers(len(x), size=(2, 2000))
    return {
        "random_pair_cosine_mean": round(float(np.mean(np.sum(x[a] * x[b], axis=1))), 3),
        "top1_cosine_mean": round(float(truth_scores[:, 0].mean()), 3),
        "top10_cosine_mean": round(float(truth_scores[:, 9].mean()), 3),
    }


def sweep(index: Any, queries: np.ndarray, truth: np.ndarray, knob: str, values: Sequence[int]) -> list[dict[str, Any]]:
    """Recall@10 and single-query latency for each value of ``knob`` (efSearch or nprobe)."""
    curve = []
    for v in values:
        if knob == "ef_search":
            index.hnsw.efSearch = v
        else:
            index.nprobe = v
        index.search(queries[:5], 10)
        found, times = _single_query(index, queries, 10)
        curve.append({knob: v, "recall_at_10": round(recall_at_k(found, truth), 4), **summarize_ms(times)})
    return curve


def best_point(curve: Sequence[dict[str, Any]], recall: float = 0.95) -> dict[str, Any] | None:
    """The fastest (by p50) point of a curve reaching ``recall``."""
    ok = [p for p in curve if p["recall_at_10"] >= recall]
    return min(ok, key=lambda p: p["p50_ms"]) if ok else None


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (``RssAnon``, ``RssFile``), MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def ivfpq(
    x: np.ndarray, queries: np.ndarray, truth: np.ndarray, m: int, threads: int, k_factors: Sequence[int] = (1, 4, 10)
) -> dict[str, Any]:
    """IVF-PQ with ``m`` sub-quantizers as the assistant builds and loads it (module doc):
    the file memory-mapped, candidates re-ranked against the float vectors memory-mapped
    from a ``.npy`` file (as ``embeddings.npy``), for each ``k_factor`` (1: no re-ranking)."""
    import tempfile

    import faiss

    from assistant.search.dense import ivfpq_params, make_ivfpq_index, read_faiss

    faiss.omp_set_num_threads(threads)
    params = ivfpq_params(len(x), x.shape[1], {"m": m})
    t = time.perf_counter()
    index = make_ivfpq_index(x, params)
    build_s = time.perf_counter() - t
    out: dict[str, Any] = {**params, "bytes_per_vector": m + 8, "build_s": round(build_s, 2)}
    with tempfile.TemporaryDirectory() as tmp:
        path, npy = Path(tmp) / "dense.faiss", Path(tmp) / "embeddings.npy"
        faiss.write_index(index, str(path))
        del index
        np.save(npy, x)
        vectors = np.load(npy, mmap_mode="r")
        anon, mapped_file = _status_mb("RssAnon"), _status_mb("RssFile")
        reranked = read_faiss(path, "ivfpq", vectors=vectors, params=params)
        out["file_mb"] = round(path.stat().st_size / 2**20, 1)
        out["anon_mb_loaded"] = round(_status_mb("RssAnon") - anon, 1)
        faiss.omp_set_num_threads(1)
        out["curves"] = {}
        for k_factor in k_factors:
            reranked.k_factor = k_factor
            curve = sweep(reranked, queries, truth, "nprobe", [p for p in NPROBE if p <= params["nlist"]])
            out["curves"][str(k_factor)] = curve
            out[f"best_at_0.95_k_factor_{k_factor}"] = best_point(curve)
        out["anon_mb_after_sweeps"] = round(_status_mb("RssAnon") - anon, 1)
        out["file_mb_paged_in_after_sweeps"] = round(_status_mb("RssFile") - mapped_file, 1)
        del reranked, vectors
    return out


def run(
    n: int,
    n_queries: int,
    m: int = 32,
    ef_construction: int = 32,
    nlist: int | None = None,
    threads: int = 0,
    kinds: Sequence[str] = ("exact", "hnsw", "ivf"),
    ivfpq_m: Sequence[int] = (48, 96),
) -> dict[str, Any]:
    """Build exact, HNSW, IVF and IVF-PQ indexes (those of ``kinds``) over ``n`` synthetic
    vectors and measure them (the exact search is the ground truth whatever ``kinds``)."""
    import faiss

    threads = threads or faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    t = time.perf_counter()
    x = clustered_vectors(n, seed=0)
    queries = clustered_vectors(n_queries, seed=1)
    gen_s = time.perf_counter() - t
    out: dict[str, Any] = {"n": n, "dim": DIM, "queries": n_queries, "generate_s": round(gen_s, 2)}

    base = rss_mb()
    t = time.perf_counter()
    flat = faiss.IndexFlatIP(DIM)
    flat.add(x)
    flat_build = time.perf_counter() - t
    flat_mb = rss_mb() - base
    t = time.perf_counter()
    truth_scores, truth = flat.search(queries, 10)  # batched: ground truth, all threads
    out["ground_truth_s"] = round(time.perf_counter() - t, 2)
    out["data"] = {
        "kind": DATA_DESCRIPTION,
        "seed": 0,
        "query_seed": 1,
        **data_stats(x, queries, truth_scores),
    }
    faiss.omp_set_num_threads(1)
    _, times = _single_query(flat, queries[: min(n_queries, 30)], 10)
    out["exact"] = {"build_s": round(flat_build, 2), "memory_mb": round(flat_mb, 1), **summarize_ms(times)}
    del flat
    out["omp_threads"] = {"build": threads, "search": 1}
    if "ivfpq" in kinds:
        out["ivfpq"] = [ivfpq(x, queries, truth, pq_m, threads) for pq_m in ivfpq_m]
    if "hnsw" in kinds:
        _hnsw(out, x, queries, truth, m, ef_construction, threads)
    if "ivf" in kinds:
        _ivf(out, x, queries, truth, nlist, threads)
    out["peak_rss_mb_in_process"] = round(peak_rss_mb(), 1)
    return out


def _hnsw(
    out: dict[str, Any],
    x: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    m: int,
    ef_construction: int,
    threads: int,
) -> None:
    import faiss

    faiss.omp_set_num_threads(threads)
    base = rss_mb()
    t = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(DIM, m, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = ef_construction
    hnsw.add(x)
    hnsw_build = time.perf_counter() - t
    hnsw_mb = rss_mb() - base
    faiss.omp_set_num_threads(1)
    curve = sweep(hnsw, queries, truth, "ef_search", EF_SEARCH)
    out["hnsw"] = {
        "M": m,
        "ef_construction": ef_construction,
        "build_s": round(hnsw_build, 2),
        "memory_mb": round(hnsw_mb, 1),
        "curve": curve,
        "best_at_0.95": best_point(curve),
    }
    del hnsw


def _ivf(
    out: dict[str, Any], x: np.ndarray, queries: np.ndarray, truth: np.ndarray, nlist: int | None, threads: int
) -> None:
    import faiss

    n = len(x)
    faiss.omp_set_num_threads(threads)
    nlist = nlist or 2 ** round(math.log2(4 * math.sqrt(n)))
    base = rss_mb()
    t = time.perf_counter()
    sample = x[np.random.default_rng(2).choice(n, min(n, 20 * nlist), replace=False)]
    kmeans = faiss.Kmeans(DIM, nlist, niter=10, spherical=True, seed=3, min_points_per_centroid=1)
    kmeans.train(sample)
    train_s = time.perf_counter() - t
    # An HNSW coarse quantizer: assigning 1M vectors to 4096 lists by brute force costs
    # minutes on 2 cores; the graph finds the nearest lists in microseconds.
    quantizer = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
    quantizer.add(kmeans.centroids)
    quantizer.hnsw.efSearch = 32  # adding needs each vector's nearest list only
    ivf = faiss.IndexIVFFlat(quantizer, DIM, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.add(x)
    quantizer.hnsw.efSearch = 128  # searching needs the nprobe nearest lists
    ivf_build = time.perf_counter() - t
    ivf_mb = rss_mb() - base
    faiss.omp_set_num_threads(1)
    curve = sweep(ivf, queries, truth, "nprobe", [p for p in NPROBE if p <= nlist])
    out["ivf"] = {
        "nlist": nlist,
        "train_sample": len(sample),
        "quantizer": "HNSW (M=32; efSearch 32 to add, 128 to search) over the k-means centroids",
        "train_s": round(train_s, 2),
        "build_s": round(ivf_build, 2),
        "memory_mb": round(ivf_mb, 1),
        "curve": curve,
        "best_at_0.95": best_point(curve),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ann", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=32)
    parser.add_argument("--nlist", type=int)
    parser.add_argument("--kinds", default="exact,hnsw,ivf", help="of exact, hnsw, ivf, ivfpq (default: %(default)s)")
    parser.add_argument("--ivfpq-m", default="48,96", help="IVF-PQ sub-quantizers to try (default: %(default)s)")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    ivfpq_m = [int(v) for v in args.ivfpq_m.split(",") if v.strip()]
    emit(run(args.n, args.queries, args.m, args.ef_construction, args.nlist, kinds=kinds, ivfpq_m=ivfpq_m))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
