"""Speed and scale of the assistant, side by side with a peer (txtai, same model, same passages).

    .venv/bin/python benchmarks/run.py            # full run (see docs/speed.md)
    .venv/bin/python benchmarks/run.py --quick    # smaller run, a few minutes
    .venv/bin/python benchmarks/run.py --quick --only hardware,ann --ann-sizes 20000

Parts (``--only``): ``hardware`` (matmul GFLOP/s, encoder tokens/s against that bound),
``build`` (build throughput, peak memory, size on disk; LBP and PubMedQA, ours and txtai),
``warm`` (ask and search latency p50/p95/p99, query embedding cached and not; txtai search),
``cold`` (new process to first answer: CLI ask and search, txtai; imports of the query path),
``app`` (``python app.py`` to the port answering and to a first ``/ask``), ``ann`` (exact,
HNSW and IVF over synthetic vectors: recall@10 against exact, latency, memory, build time).

Prints a Markdown report and writes every figure as JSON (``--output``). Each measurement
runs in its own child process; ours and the peer run one after the other in the same run,
so compare ratios, not absolute numbers, on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `assistant` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import coldstart, report, workloads
from benchmarks.common import REPO_ROOT, folder_mb, machine, run_script, versions

PARTS = ("hardware", "build", "warm", "cold", "app", "ann")
PRESETS: dict[str, dict[str, Any]] = {
    "full": {
        "pubmedqa_docs": 120,
        "variants": 3,
        "max_questions": 300,
        "build_repeats": 2,
        "cold_runs": 4,
        "app_runs": 2,
        "ann_sizes": [100_000, 1_000_000],
        "ann_queries": 200,
        "hardware_texts": 64,
    },
    "quick": {
        "pubmedqa_docs": 50,
        "variants": 1,
        "max_questions": 150,
        "build_repeats": 1,
        "cold_runs": 3,
        "app_runs": 1,
        "ann_sizes": [100_000],
        "ann_queries": 100,
        "hardware_texts": 32,
    },
}


class Bench:
    """One benchmark run: its settings, working folder and results."""

    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.results: dict[str, Any] = {}
        self._corpora: dict[str, Path] = {}

    # ------------------------------------------------------------------ inputs

    def corpus(self, name: str) -> Path:
        if name not in self._corpora:
            if name == "lbp":
                self._corpora[name] = workloads.LBP_CORPUS
            else:
                folder, _, converter = workloads.write_pubmedqa_beir(
                    self.workdir / "pubmedqa-beir", self.config["pubmedqa_docs"]
                )
                self.config["pubmedqa_converter"] = converter
                self._corpora[name] = folder
        return self._corpora[name]

    def questions(self, corpus: str) -> Path:
        """The question file of ``corpus``: ``{"ask": [...], "search": [...]}``."""
        path = self.workdir / f"questions-{corpus}.json"
        if not path.exists():
            n = self.config["variants"]
            if corpus == "lbp":
                base = workloads.lbp_questions()
                limit = self.config["max_questions"]
                sets = {
                    "ask": workloads.question_set(base, n, limit=limit),
                    "search": workloads.question_set(base, n, offset=n, limit=limit),
                }
            else:
                _, texts, _ = workloads.write_pubmedqa_beir(
                    self.workdir / "pubmedqa-beir", self.config["pubmedqa_docs"]
                )
                base = [{"text": t, "mode": "clinician", "kind": "pubmedqa"} for t in texts]
                sets = {"ask": [], "search": workloads.question_set(base, n, limit=self.config["max_questions"])}
            path.write_text(json.dumps(sets))
        return path

    def index(self, corpus: str, system: str) -> Path:
        """Our or the peer's index of ``corpus``, built if missing."""
        path = self.workdir / f"index-{corpus}-{system}"
        ready = (path / "manifest.json").exists() if system == "ours" else (path / "config.json").exists()
        if not ready:
            self.build_index(corpus, system)
        return path

    def build_index(self, corpus: str, system: str) -> dict[str, Any]:
        """(Re)build our or the peer's index of ``corpus`` in a child process and measure it."""
        path = self.workdir / f"index-{corpus}-{system}"
        shutil.rmtree(path, ignore_errors=True)
        if system == "ours":
            extra = [] if corpus == "lbp" else ["--no-sentences"]  # as shipped / retrieval-only benchmark index
            if self.config.get("batch_size"):
                extra += ["--batch-size", str(self.config["batch_size"])]
            if self.config.get("build_encoder"):
                extra += ["--build-encoder", str(self.config["build_encoder"])]
            run = run_script("child", "build-ours", "--corpus", str(self.corpus(corpus)), "--index", str(path), *extra)
        else:
            ours = self.index(corpus, "ours")
            run = run_script("child", "build-peer", "--from-index", str(ours), "--output", str(path))
        result = run.check().result()
        result.update(
            passages_per_s=round(result["passages"] / result["seconds"], 2),
            tokens_per_s=round(result["tokens_encoded"] / result["seconds"], 1),
            peak_rss_mb=round(run.peak_rss_mb, 1),
            process_s=round(run.wall_s, 2),
            index_mb=folder_mb(path),
        )
        return result

    # ------------------------------------------------------------------ parts

    def hardware(self) -> dict[str, Any]:
        run = run_script(
            "child",
            "hardware",
            "--texts",
            str(self.config["hardware_texts"]),
            "--questions",
            str(self.questions("lbp")),
        )
        return run.check().result()

    def build(self) -> dict[str, Any]:
        """Ours, then the peer, ``build_repeats`` times (a load change hits both); the fastest
        build of each is reported, every throughput is kept under ``samples``."""
        out: dict[str, Any] = {}
        for corpus in ("lbp", "pubmedqa"):
            runs: dict[str, list[dict[str, Any]]] = {"ours": [], "peer": []}
            for _ in range(self.config["build_repeats"]):
                for system in runs:
                    runs[system].append(self.build_index(corpus, system))
            out[corpus] = {system: max(rs, key=lambda r: r["passages_per_s"]) for system, rs in runs.items()}
            out[corpus]["samples"] = {s: [r["passages_per_s"] for r in rs] for s, rs in runs.items()}
        return out

    def warm(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for corpus in ("lbp", "pubmedqa"):
            q = str(self.questions(corpus))
            ours = self.index(corpus, "ours")
            peer = self.index(corpus, "peer")
            args = ["--index", str(ours), "--corpus", str(self.corpus(corpus)), "--questions", q]
            if corpus != "lbp":
                args.append("--no-sentences")
            out[corpus] = {
                "ours": run_script("child", "warm-ours", *args).check().result(),
                "peer": run_script("child", "warm-peer", "--index", str(peer), "--questions", q).check().result(),
            }
        return out

    def cold(self) -> dict[str, Any]:
        ours, peer, corpus = self.index("lbp", "ours"), self.index("lbp", "peer"), self.corpus("lbp")
        out = coldstart.cli_and_peer(ours, corpus, peer, self.config["cold_runs"])
        out["imports"] = coldstart.query_path_imports(ours, corpus)
        return out

    def app(self) -> dict[str, Any]:
        return coldstart.app(self.index("lbp", "ours"), self.corpus("lbp"), self.config["app_runs"], self.workdir)

    def ann(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for n in self.config["ann_sizes"]:
            try:
                run = run_script("ann", "--n", str(n), "--queries", str(self.config["ann_queries"])).check()
                out[str(n)] = {
                    **run.result(),
                    "peak_rss_mb": round(run.peak_rss_mb, 1),
                    "process_s": round(run.wall_s, 1),
                }
            except Exception as exc:  # a size that does not fit: keep the others
                out[str(n)] = {"error": f"{type(exc).__name__}: {exc}"}
        return out


def _parse_sizes(text: str) -> list[int]:
    return [int(float(s)) for s in text.split(",") if s.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller corpora, fewer questions and runs, 100k vectors only")
    p.add_argument("--only", help=f"comma-separated parts: {','.join(PARTS)} (default: all)")
    p.add_argument("--output", type=Path, default=REPO_ROOT / "artifacts" / "speed" / "results.json")
    p.add_argument("--markdown", type=Path, help="also write the report here")
    p.add_argument("--workdir", type=Path, help="keep indexes and inputs here (default: a temporary folder)")
    p.add_argument("--pubmedqa-docs", type=int, help="PubMedQA abstracts to index (0: all 1,000)")
    p.add_argument("--variants", type=int, help="wordings per question (each is a distinct, uncached query)")
    p.add_argument("--ann-sizes", type=_parse_sizes, help="vector counts, e.g. 100000,1000000")
    p.add_argument("--ann-queries", type=int)
    p.add_argument("--cold-runs", type=int)
    p.add_argument("--batch-size", type=int, help="encoding batch size of our builds (default: the Settings default)")
    p.add_argument("--build-encoder", choices=("auto", "onnx", "torch"), help="passage encoder of our builds")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    parts = [p.strip() for p in (args.only or ",".join(PARTS)).split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        print(f"error: unknown part(s) {unknown}; choose from {', '.join(PARTS)}", file=sys.stderr)
        return 2
    config = dict(PRESETS["quick" if args.quick else "full"])
    for key in ("pubmedqa_docs", "variants", "ann_sizes", "ann_queries", "cold_runs", "batch_size", "build_encoder"):
        value = getattr(args, key)
        if value is not None:
            config[key] = None if key == "pubmedqa_docs" and value == 0 else value
    start = time.perf_counter()
    meta: dict[str, Any] = {
        "command": " ".join(["benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "quick": args.quick,
        "parts": parts,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "versions": versions(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    tmp = None if args.workdir else tempfile.TemporaryDirectory(prefix="lbp-bench-")
    workdir = Path(args.workdir or tmp.name)  # type: ignore[union-attr]
    workdir.mkdir(parents=True, exist_ok=True)
    bench = Bench(config, workdir)
    failed = False
    try:
        for part in PARTS:
            if part not in parts:
                continue
            print(f"[{time.perf_counter() - start:6.0f} s] {part} ...", file=sys.stderr, flush=True)
            fn: Callable[[], dict[str, Any]] = getattr(bench, part)
            try:
                bench.results[part] = fn()
            except Exception:
                failed = True
                bench.results[part] = {"error": traceback.format_exc()}
                print(bench.results[part]["error"], file=sys.stderr)
    finally:
        if tmp is not None:
            tmp.cleanup()
    meta.update(duration_s=round(time.perf_counter() - start, 1), loadavg_end=[round(x, 2) for x in os.getloadavg()])
    results = {"meta": meta, "config": config, **bench.results}
    results["targets"] = report.targets(results)
    text = report.markdown(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(text + "\n")
    print(text)
    print(f"\nwrote {args.output}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
