"""Base versus adapted model: retrieval quality on datasets/lbp-dev and the cost of training.

    .venv/bin/python benchmarks/domain_adaptation.py            # ~4-5 min here (trains once)

Builds the embedded corpus twice in temporary folders, with ``adapt=False`` (the packaged
all-MiniLM-L6-v2) and ``adapt=True`` (the default: :mod:`assistant.encoders.adaptation` fine-tunes it
on the corpus's own plain-language/clinician pairs; nothing from the evaluation set is
used), with an empty adaptation cache so that training is timed, then runs
``assistant.evaluation.evaluate.run_eval`` on the dev and held-out test splits and prints nDCG@10
overall and by phrasing. Each index gets the retrieval weights measured for its kind
(``assistant.config.RETRIEVAL_DEFAULTS``). Results also go to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _scores(report: dict[str, Any]) -> dict[str, float]:
    out = {}
    for name, r in report["retrievers"].items():
        out[name] = float(r["mean"]["ndcg@10"])
        for group, sub in r.get(f"by_{report['breakdown_field']}", {}).items():
            out[f"{name}/{group}"] = float(sub["mean"]["ndcg@10"])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--output", default="artifacts/adaptation/results.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from assistant.config import Settings
    from assistant.evaluation.evaluate import run_eval
    from assistant.search.build import ensure_index

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lbp-adapt-") as tmp:
        for label, adapt in (("base", False), ("adapted", True)):
            settings = Settings.from_env(index_dir=Path(tmp) / label, adapt=adapt, adapt_cache=Path(tmp) / "cache")
            started = time.perf_counter()
            index = ensure_index(settings, log=lambda m: None)
            results[f"{label}/build_seconds"] = round(time.perf_counter() - started, 1)
            results[f"{label}/adaptation"] = index.manifest["adaptation"]
            for split in ("dev", "test"):
                report = run_eval(split=split, settings=settings, cache_dir=Path(tmp) / "eval-cache")
                results[f"{label}/{split}"] = _scores(report)
    adapted = results["adapted/adaptation"]
    print(f"adaptation: {adapted.get('pairs')} pairs, trained {adapted.get('train_seconds')} s; "
          f"build {results['base/build_seconds']} s base, {results['adapted/build_seconds']} s adapted")  # fmt: skip
    print("| model | split | bm25 | dense | hybrid | hybrid clinician | hybrid patient |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label in ("base", "adapted"):
        for split in ("dev", "test"):
            s = results[f"{label}/{split}"]
            cells = [s.get(k, float("nan")) for k in ("bm25", "dense", "hybrid", "hybrid/clinician", "hybrid/patient")]
            print(f"| {label} | {split} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
