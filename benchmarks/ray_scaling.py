"""Ray builds at 1 and 2 workers: throughput, time per stage, and what 1M and 15M abstracts cost.

    .venv/bin/python benchmarks/ray_scaling.py                        # ~15 min here
    .venv/bin/python benchmarks/ray_scaling.py --pubmedqa-docs 200 --workers 1,2
    .venv/bin/python benchmarks/ray_scaling.py --project artifacts/scale/ray_scaling.json --price 0.02

Corpora: the embedded LBP corpus (the default build: adapted model from the cache, sentence
vectors for answers) and the first ``--pubmedqa-docs`` PubMedQA abstracts as a BEIR folder,
built twice: retrieval-only (as ``eval`` builds benchmark sets) and as the default ``build``
does (with sentence vectors). Each corpus is built by the local engine (the baseline: one
process, ONNX Runtime on every core) and by ``build --engine ray`` on a fresh local Ray
cluster of ``w`` CPUs (``ray.init(num_cpus=w)``: ``w`` embedding actors) for each ``w`` of
``--workers``. Every build runs in its own child process; the stage times are those the
manifest records (read, chunk, adapt, embed, write, assemble); cluster start is timed apart.

The projections (:func:`project`) scale the measured PubMedQA builds to N workers:
per-abstract worker time (chunk + embed + write) divides by N, the driver's read and assembly
do not, and the IVF-PQ index is built from the 1M-vector benchmark's time per vector
(``benchmarks/ann.py --kinds exact,ivfpq``, its JSON given with ``--ann``). The results and the
projections go to ``--output`` (JSON) and to stdout (Markdown tables, docs/scale.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `assistant` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import PYTHON, REPO_ROOT, child_env, emit, machine, run_child, versions

CORPUS = REPO_ROOT / "corpus"
OUTPUT = REPO_ROOT / "artifacts" / "scale" / "ray_scaling.json"
ANN = REPO_ROOT / "artifacts" / "scale" / "ann_ivfpq_1m.json"
STAGES = ("read", "chunk", "adapt", "embed", "write", "assemble")
SIZES = (1_000_000, 15_000_000)
WORKERS = (8, 32, 128, 512)


def child(corpus: Path, engine: str, workers: int, sentences: bool) -> dict[str, Any]:
    """Build ``corpus`` once (in this process) and describe the build."""
    from assistant.config import Settings
    from assistant.encoders.embedding import model_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env(index_dir=Path(tmp) / "index", corpus_dir=corpus)
        settings = settings.with_(sentence_embeddings=sentences)
        out: dict[str, Any] = {"engine": engine, "workers": workers, "with_sentences": sentences}
        start = time.perf_counter()
        if engine == "local":
            from assistant.documents.corpus import load_corpus
            from assistant.search.build import build_index

            index = build_index(load_corpus(corpus), settings, source=str(corpus), log=lambda _: None)
            out["total_s"] = round(time.perf_counter() - start, 3)
        else:
            import ray

            from assistant.cluster.ray_build import build_with_ray

            ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.WARNING)
            out["cluster_start_s"] = round(time.perf_counter() - start, 3)
            index = build_with_ray(settings, workers=workers, log=lambda _: None)
            ray.shutdown()
            out.update(index.manifest["stages"])
        counts = index.manifest["counts"]
        tok = model_tokenizer(index.encoder_path or settings.model_path)
        cap = tok.max_seq_length
        tokens = sum(min(int(p.metadata["n_tokens"]), cap) for p in index.passages)
        tokens += sum(min(n + 2, cap) for n in tok.count_many([s["text"] for s in index.sentences]))
        out.update(counts, tokens=tokens, embedded=counts["passages"] + counts["sentences"])
        return out


def measure(
    name: str, corpus: Path, sentences: bool, workers: Sequence[int], local: bool = True
) -> list[dict[str, Any]]:
    """The local build (if ``local``) and one Ray build per worker count, each in a child process."""
    runs = []
    for engine, w in [*([("local", 0)] if local else []), *[("ray", w) for w in workers]]:
        args = ["--child", str(corpus), "--engine", engine, "--child-workers", str(w)]
        env = child_env(RAY_USAGE_STATS_ENABLED="0")
        run = run_child([PYTHON, "-m", "benchmarks.ray_scaling", *args, *(["--sentences"] if sentences else [])], env)
        result = {"corpus": name, **run.check().result(), "process_s": round(run.wall_s, 2)}
        result["peak_rss_mb_driver"] = round(run.peak_rss_mb, 1)
        print(f"  {name} {engine} {w or ''}: {result.get('total_s')} s", file=sys.stderr, flush=True)
        runs.append(result)
    return runs


def ivfpq_cost(ann: Mapping[str, Any] | None, m: int = 96) -> dict[str, Any]:
    """Seconds per vector to build IVF-PQ (training included) and its default operating point."""
    for entry in (ann or {}).get("ivfpq", []):
        if entry["m"] == m:
            curve = entry["curves"][str(entry["k_factor"])]
            point = next(p for p in curve if p["nprobe"] == entry["nprobe"])
            return {"s_per_vector": entry["build_s"] / ann["n"], "m": m, "nlist_1m": entry["nlist"], **point}
    return {"s_per_vector": 0.0}


def fit(small: Mapping[str, Any], large: Mapping[str, Any], stage: str) -> tuple[float, float]:
    """``(seconds per abstract, fixed seconds)`` of ``stage`` on one cluster: the line through
    two corpus sizes (a fixed cost such as starting the actors is in the intercept). A
    negative slope (noise, or no per-abstract work at all) counts as none."""
    t_small, t_large = small[f"{stage}_s"], large[f"{stage}_s"]
    slope = max(0.0, (t_large - t_small) / (large["documents"] - small["documents"]))
    return slope, max(0.0, t_large - slope * large["documents"])


def project(
    runs: Sequence[Mapping[str, Any]],
    ann: Mapping[str, Any] | None,
    price: float,
    sizes: Sequence[int] = SIZES,
    workers: Sequence[int] = WORKERS,
    driver_vcpus: int = 8,
    m: int = 96,
) -> list[dict[str, Any]]:
    """Wall time and cost of Ray builds of ``sizes`` abstracts on N workers, from the two
    PubMedQA sizes built on the largest cluster measured (assumptions: docs/scale.md)."""
    pq = ivfpq_cost(ann, m)
    out = []
    for sentences in (False, True):
        found = [
            r for r in runs if r["corpus"] == "pubmedqa" and r["engine"] == "ray" and r["with_sentences"] == sentences
        ]
        w = max((r["workers"] for r in found), default=0)
        by_size = sorted((r for r in found if r["workers"] == w), key=lambda r: r["documents"])
        if len(by_size) < 2:
            continue
        small, large = by_size[0], by_size[-1]
        lines = {stage: fit(small, large, stage) for stage in STAGES}
        worker_s = w * sum(lines[s][0] for s in ("chunk", "embed", "write"))  # one worker, per abstract
        driver_s = sum(lines[s][0] for s in ("read", "adapt", "assemble"))  # on the driver, per abstract
        fixed = sum(b for _, b in lines.values())
        per_doc = large["passages"] / large["documents"]
        for n_docs in sizes:
            vectors = n_docs * per_doc
            serial = fixed + n_docs * driver_s + vectors * pq["s_per_vector"]
            for n in workers:
                parallel = n_docs * worker_s / n
                wall_h, parallel_h = (parallel + serial) / 3600, parallel / 3600
                out.append(
                    {
                        "abstracts": n_docs,
                        "sentences": sentences,
                        "workers": n,
                        "passages": round(vectors),
                        "wall_h": round(wall_h, 2),
                        "parallel_h": round(parallel_h, 2),
                        "serial_h": round(serial / 3600, 2),
                        "cost_usd": round((n * parallel_h + driver_vcpus * wall_h) * price, 2),
                        "worker_s_per_abstract": round(worker_s, 4),
                        "driver_s_per_abstract": round(driver_s, 6),
                        "ivfpq_mb": round(vectors * (m + 8) / 2**20, 1),
                    }
                )
    return out


def markdown(results: Mapping[str, Any]) -> str:
    """The tables of docs/scale.md."""
    lines = [
        "| corpus | engine | workers | documents | passages | sentences | "
        + " | ".join(f"{s} s" for s in STAGES)
        + " | total s | passages/s | embedded texts/s | tokens/s |",
        "|---|---|---|---|---|---|" + "---|" * (len(STAGES) + 4),
    ]
    for r in results["runs"]:
        label = r["corpus"] + (" + sentences" if r["with_sentences"] and r["corpus"] != "lbp" else "")
        stage = " | ".join(f"{r[f'{s}_s']:.1f}" if f"{s}_s" in r else "" for s in STAGES)
        total = r["total_s"]
        lines.append(
            f"| {label} | {r['engine']} | {r['workers'] or '2 threads'} | {r['documents']} | {r['passages']} | "
            f"{r['sentences']} | "
            f"{stage} | {total:.1f} | {r['passages'] / total:.1f} | {r['embedded'] / total:.1f} | {r['tokens'] / total:.0f} |"
        )
    lines += [
        "",
        f"Projection at ${results['price_per_vcpu_hour']}/vCPU-hour (one worker = one vCPU while it embeds, "
        f"plus a {results['driver_vcpus']}-vCPU driver all along):",
        "",
        "| abstracts | sentence vectors | workers | passages | wall h | parallel h | serial h | cost USD | IVF-PQ MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in results["projection"]:
        lines.append(
            f"| {p['abstracts']:,} | {'yes' if p['sentences'] else 'no'} | {p['workers']} | {p['passages']:,} | "
            f"{p['wall_h']} | {p['parallel_h']} | {p['serial_h']} | {p['cost_usd']} | {p['ivfpq_mb']:,} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/ray_scaling.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2", help="Ray worker counts (default: %(default)s)")
    parser.add_argument("--pubmedqa-docs", type=int, default=1000, help="PubMedQA abstracts (default: %(default)s)")
    parser.add_argument("--price", type=float, default=0.04, help="USD per vCPU-hour (default: %(default)s)")
    parser.add_argument("--driver-vcpus", type=int, default=8, help="the driver's vCPUs in the cost (default: 8)")
    parser.add_argument("--ann", type=Path, default=ANN, help="benchmarks/ann.py JSON with IVF-PQ at 1M vectors")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--project", type=Path, help="only recompute the projection from this results JSON")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="ray", help=argparse.SUPPRESS)
    parser.add_argument("--child-workers", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--sentences", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        emit(child(args.child, args.engine, args.child_workers, args.sentences))
        return 0
    ann = json.loads(args.ann.read_text()) if args.ann.is_file() else None
    if args.project:
        results = json.loads(args.project.read_text())
    else:
        from benchmarks.workloads import write_pubmedqa_beir

        workers = [int(w) for w in args.workers.split(",")]
        results = {"machine": machine(), "versions": versions(), "runs": []}
        with tempfile.TemporaryDirectory() as tmp:
            beir, _, _ = write_pubmedqa_beir(Path(tmp) / "pubmedqa", args.pubmedqa_docs)
            small, _, _ = write_pubmedqa_beir(Path(tmp) / "pubmedqa-small", args.pubmedqa_docs // 4)
            results["runs"] += measure("lbp", CORPUS, True, workers)
            for sentences in (False, True):
                results["runs"] += measure("pubmedqa", beir, sentences, workers)
                results["runs"] += measure("pubmedqa", small, sentences, workers[-1:], local=False)
        results["machine_after"] = machine()
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2) + "\n")  # the runs, whatever follows
    results.update(price_per_vcpu_hour=args.price, driver_vcpus=args.driver_vcpus, ivfpq_1m=ivfpq_cost(ann))
    results["projection"] = project(results["runs"], ann, args.price, driver_vcpus=args.driver_vcpus)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
