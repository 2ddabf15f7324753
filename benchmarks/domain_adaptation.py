"""Experiment: adapt all-MiniLM-L6-v2 to the corpus's own lay/clinical pairs, then evaluate.

    .venv/bin/python benchmarks/domain_adaptation.py                # 3 epochs, ~3-4 min here
    .venv/bin/python benchmarks/domain_adaptation.py --epochs 1 --save-model /tmp/lbp-minilm

Not part of the default pipeline. Every reference record of the corpus says the same thing
twice: once for clinicians (summary, key findings, conclusion, title and keywords) and once
in plain language. Those pairs, and nothing from the evaluation set, fine-tune the packaged
model with an in-batch contrastive loss (MultipleNegativesRankingLoss, symmetric, scale 20),
so that lay wording lands near the clinical wording of the same study. The script builds
an index with the base model and one with the adapted model in temporary folders, runs
``assistant.evaluate.run_eval`` on the dev and held-out test splits of datasets/lbp-dev,
and prints nDCG@10 overall and by phrasing for both. Training is seeded; CPU only.

Measured 2026-12-01 (defaults: 3 epochs, lr 2e-5, batch 16, seed 0; 412 pairs; 228 s of
training on the shared 2-core machine; nDCG@10, retrieval.py defaults incl. feedback and priors):

| model | split | bm25 | dense | hybrid | hybrid clinician | hybrid patient |
|---|---|---:|---:|---:|---:|---:|
| base | dev | 0.819 | 0.784 | 0.858 | 0.890 | 0.826 |
| base | test | 0.785 | 0.781 | 0.883 | 0.963 | 0.804 |
| adapted | dev | 0.819 | 0.853 | 0.882 | 0.912 | 0.852 |
| adapted | test | 0.785 | 0.886 | 0.903 | 0.972 | 0.833 |
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CLINICAL_SECTIONS = ("summary", "key_findings", "conclusion")


def training_pairs(passages: Sequence[Any]) -> list[tuple[str, str]]:
    """(plain-language text, clinician text) pairs of the same document.

    Each document's patient-audience passages are joined into one text and paired with each
    of its clinician passages of the sections in :data:`CLINICAL_SECTIONS`, and with its
    embedded header (title and keywords). Documents without plain-language text give none.
    """
    plain: dict[str, list[str]] = defaultdict(list)
    clinical: dict[str, list[str]] = defaultdict(list)
    headers: dict[str, str] = {}
    for p in passages:
        if p.metadata.get("audience") == "patient":
            plain[p.doc_id].append(p.text)
        elif p.metadata.get("section") in CLINICAL_SECTIONS:
            clinical[p.doc_id].append(p.text)
        if p.context:
            headers.setdefault(p.doc_id, p.context)
    pairs = []
    for doc_id, texts in plain.items():
        lay = " ".join(texts)
        others = [*clinical.get(doc_id, []), *([headers[doc_id]] if doc_id in headers else [])]
        pairs.extend((lay, other) for other in others)
    return pairs


def fine_tune(model_path: str, pairs: Sequence[tuple[str, str]], epochs: int, lr: float, batch: int, seed: int) -> Any:
    """The SentenceTransformer at ``model_path`` trained on ``pairs`` (symmetric in-batch InfoNCE)."""
    import torch
    from sentence_transformers import SentenceTransformer

    random.seed(seed)
    torch.manual_seed(seed)
    model = SentenceTransformer(model_path, device="cpu")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    order = list(pairs)
    for _ in range(epochs):
        random.shuffle(order)
        for start in range(0, len(order), batch):
            chunk = order[start : start + batch]
            if len(chunk) < 2:
                continue
            left = model(model.tokenize([a for a, _ in chunk]))["sentence_embedding"]
            right = model(model.tokenize([b for _, b in chunk]))["sentence_embedding"]
            logits = 20.0 * torch.nn.functional.normalize(left, dim=-1) @ torch.nn.functional.normalize(right, dim=-1).T
            labels = torch.arange(len(chunk))
            loss = (
                torch.nn.functional.cross_entropy(logits, labels) + torch.nn.functional.cross_entropy(logits.T, labels)
            ) / 2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    return model


def _scores(report: dict[str, Any]) -> dict[str, float]:
    out = {}
    for name, r in report["retrievers"].items():
        out[name] = float(r["mean"]["ndcg@10"])
        for group, sub in r.get(f"by_{report['breakdown_field']}", {}).items():
            out[f"{name}/{group}"] = float(sub["mean"]["ndcg@10"])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-model", help="keep the adapted model in this folder")
    parser.add_argument("--output", default="artifacts/adaptation/results.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from assistant.config import Settings
    from assistant.evaluate import run_eval
    from assistant.index import ensure_index

    results: dict[str, Any] = {"settings": vars(args)}
    with tempfile.TemporaryDirectory(prefix="lbp-adapt-") as tmp:
        base = Settings.from_env(index_dir=Path(tmp) / "base-index")
        index = ensure_index(base, log=lambda m: None)
        pairs = training_pairs(index.passages)
        started = time.perf_counter()
        model = fine_tune(base.model_path, pairs, args.epochs, args.lr, args.batch, args.seed)
        results["pairs"] = len(pairs)
        results["train_seconds"] = round(time.perf_counter() - started, 1)
        model_dir = Path(args.save_model) if args.save_model else Path(tmp) / "adapted-model"
        model.save(str(model_dir))
        adapted = base.with_(model=str(model_dir), index_dir=Path(tmp) / "adapted-index")
        for label, settings in (("base", base), ("adapted", adapted)):
            for split in ("dev", "test"):
                report = run_eval(split=split, settings=settings)
                results[f"{label}/{split}"] = _scores(report)
    print(f"{results['pairs']} pairs, trained {results['train_seconds']} s")
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
