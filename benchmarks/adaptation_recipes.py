"""Cheaper adaptation recipes against the default: training time and retrieval quality.

    .venv/bin/python benchmarks/adaptation_recipes.py                   # ~12 min here (2 cores)
    .venv/bin/python benchmarks/adaptation_recipes.py --only default,e1-lr5e-5

Each recipe builds the embedded corpus from nothing in a temporary folder (empty adaptation
cache), then ``assistant.evaluation.evaluate.run_eval`` scores the dev and held-out test splits of
datasets/lbp-dev. The recipes change the default (``assistant.encoders.adaptation.RECIPE``) in one or
two ways: fewer epochs, a higher learning rate, frozen word embeddings, frozen lower
transformer layers. Prints a Markdown table; writes JSON (``--output``).
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

RECIPES: dict[str, dict[str, Any]] = {
    "default": {},
    "e1-lr5e-5": {"epochs": 1, "lr": 5e-5},
    "e1-lr1e-4": {"epochs": 1, "lr": 1e-4},
    "e1-lr1e-4-frozen3": {"epochs": 1, "lr": 1e-4, "frozen_layers": 3},
    "e1-lr2e-4-frozen3": {"epochs": 1, "lr": 2e-4, "frozen_layers": 3},
    "e2-lr5e-5-frozen3": {"epochs": 2, "lr": 5e-5, "frozen_layers": 3},
    "e3-frozen-embeddings": {"freeze_embeddings": True},
}


def run_recipe(change: dict[str, Any]) -> dict[str, Any]:
    from assistant.config import Settings
    from assistant.encoders import adaptation
    from assistant.evaluation.evaluate import run_eval
    from assistant.search.build import ensure_index

    saved = dict(adaptation.RECIPE)
    adaptation.RECIPE.update(change)
    try:
        with tempfile.TemporaryDirectory(prefix="lbp-recipe-") as tmp:
            settings = Settings.from_env(index_dir=Path(tmp) / "index", adapt=True, adapt_cache=Path(tmp) / "cache")
            started = time.perf_counter()
            index = ensure_index(settings, log=lambda m: None)
            out: dict[str, Any] = {
                "build_s": round(time.perf_counter() - started, 1),
                "train_s": index.manifest["adaptation"].get("train_seconds"),
                "precision": index.manifest["adaptation"].get("precision"),
            }
            for split in ("dev", "test"):
                report = run_eval(split=split, settings=settings, cache_dir=Path(tmp) / "eval-cache")
                out[split] = {k: round(float(r["mean"]["ndcg@10"]), 3) for k, r in report["retrievers"].items()}
            return out
    finally:
        adaptation.RECIPE.clear()
        adaptation.RECIPE.update(saved)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--only", help=f"comma-separated recipes: {','.join(RECIPES)}")
    parser.add_argument("--output", type=Path, default=Path("artifacts/adaptation/recipes.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    names = [n.strip() for n in args.only.split(",")] if args.only else list(RECIPES)
    results = {}
    print("| recipe | training s | build s | hybrid dev | hybrid test | dense dev | dense test |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        r = results[name] = run_recipe(RECIPES[name])
        print(f"| {name} | {r['train_s']} | {r['build_s']} | {r['dev']['hybrid']:.3f} | {r['test']['hybrid']:.3f} "
              f"| {r['dev']['dense']:.3f} | {r['test']['dense']:.3f} |", flush=True)  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
