"""Domain adaptation of the embedding model to the corpus's own lay and clinical wording.

Every evidence record says the same thing twice: for clinicians (summary, key findings,
conclusion, title and keywords) and in plain language. :func:`training_pairs` pairs the two
texts of each document, and :func:`adapted_model` fine-tunes the base model on those pairs
with a symmetric in-batch contrastive loss (InfoNCE, "MultipleNegativesRankingLoss"), so that
a patient's wording lands near the clinical wording of the same study. Nothing from an
evaluation set is used. Measured on datasets/lbp-dev: docs/benchmarks.md.

The result is cached by content::

    ~/.cache/lbp-assistant/adapted/<key>/     (``Settings.adapt_cache`` / ``$LBP_ADAPT_CACHE``)

``<key>`` hashes the base model's weights, the pairs and :data:`RECIPE`, so a corpus whose
pairs did not change reuses the model, and a rebuild after a settings change trains nothing.
The folder is written beside its final name and renamed into place, so a crash never leaves
half a model. The index keeps its own copy (``index/model/``, see :mod:`assistant.search.folder`),
so the cache can be deleted at any time.

Training needs torch (sentence-transformers); it is seeded and runs on the CPU, but thread
scheduling can change the last digits of the weights between machines; the cache keeps one
machine's builds identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from assistant.types import Passage

Log = Callable[[str], None]

DEFAULT_CACHE = Path("~/.cache/lbp-assistant/adapted")
CLINICAL_SECTIONS = ("summary", "key_findings", "conclusion")
MIN_PAIRS = 32
"""A corpus with fewer pairs is not adapted (too little signal; the base model is kept)."""

RECIPE: dict[str, Any] = {
    "version": 1,
    "loss": "symmetric in-batch InfoNCE",
    "scale": 20.0,
    "epochs": 3,
    "lr": 2e-5,
    "batch": 16,
    "seed": 0,
    "precision": "auto",
}
"""``precision`` ``auto``: bfloat16 autocast where the CPU has native bfloat16 (oneDNN says
so: AVX512-BF16 or AMX), else float32. Measured on the 2-core AMD EPYC here: 112 s instead
of about 190 s, and the same nDCG@10 to three decimals on every split (docs/benchmarks.md)."""


def training_precision(requested: str = "auto") -> str:
    """``bf16`` or ``fp32``: what :func:`fine_tune` will use for ``requested``."""
    if requested != "auto":
        return requested
    import torch

    try:
        return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
    except (AttributeError, RuntimeError):
        return "fp32"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cache_dir(configured: str | Path | None = None) -> Path:
    """``configured``, else ``$LBP_ADAPT_CACHE``, else ~/.cache/lbp-assistant/adapted."""
    return Path(configured or os.environ.get("LBP_ADAPT_CACHE") or DEFAULT_CACHE).expanduser()


def training_pairs(passages: Sequence[Passage]) -> list[tuple[str, str]]:
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
    pairs: list[tuple[str, str]] = []
    for doc_id, texts in plain.items():
        lay = " ".join(texts)
        others = [*clinical.get(doc_id, []), *([headers[doc_id]] if doc_id in headers else [])]
        pairs.extend((lay, other) for other in others)
    return pairs


def adaptation_key(base_weights_sha256: str, pairs: Sequence[tuple[str, str]], recipe: dict[str, Any]) -> str:
    """16 hex digits over the base weights, the pairs and the recipe."""
    h = hashlib.sha256()
    h.update(json.dumps({"base": base_weights_sha256, "recipe": recipe}, sort_keys=True).encode())
    for lay, other in pairs:
        h.update(b"\x00" + lay.encode() + b"\x01" + other.encode())
    return h.hexdigest()[:16]


def fine_tune(
    model_path: str, pairs: Sequence[tuple[str, str]], recipe: dict[str, Any] = RECIPE, progress: bool = True
) -> Any:
    """The SentenceTransformer at ``model_path`` trained on ``pairs`` (symmetric in-batch
    InfoNCE; weights and optimizer in float32, forward passes autocast per ``precision``)."""
    import torch
    from tqdm import tqdm

    from assistant.encoders.embedding import import_sentence_transformers

    SentenceTransformer = import_sentence_transformers()
    random.seed(recipe["seed"])
    torch.manual_seed(recipe["seed"])
    model = SentenceTransformer(model_path, device="cpu")
    model.train()
    trained = _unfrozen_parameters(
        model, int(recipe.get("frozen_layers", 0)), bool(recipe.get("freeze_embeddings", False))
    )
    optimizer = torch.optim.AdamW(trained, lr=recipe["lr"])
    order = list(pairs)
    batch = int(recipe["batch"])
    steps = recipe["epochs"] * ((len(order) + batch - 1) // batch)
    normalize = torch.nn.functional.normalize
    cross_entropy = torch.nn.functional.cross_entropy
    bf16 = training_precision(recipe.get("precision", "fp32")) == "bf16"
    # sentence-transformers 5.x calls it tokenize, 6.x preprocess (and warns on tokenize)
    features = getattr(model, "preprocess", None) or model.tokenize
    with tqdm(total=steps, desc="adapting model", unit="batch", disable=not progress, file=sys.stderr) as bar:
        for _ in range(recipe["epochs"]):
            random.shuffle(order)
            for start in range(0, len(order), batch):
                bar.update(1)
                chunk = order[start : start + batch]
                if len(chunk) < 2:
                    continue
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    left = model(features([a for a, _ in chunk]))["sentence_embedding"]
                    right = model(features([b for _, b in chunk]))["sentence_embedding"]
                left, right = left.float(), right.float()
                logits = recipe["scale"] * normalize(left, dim=-1) @ normalize(right, dim=-1).T
                labels = torch.arange(len(chunk))
                loss = (cross_entropy(logits, labels) + cross_entropy(logits.T, labels)) / 2
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    model.eval()
    return model


def _unfrozen_parameters(model: Any, frozen_layers: int, freeze_embeddings: bool) -> list[Any]:
    """The parameters to train when the word embeddings (``freeze_embeddings``) and the lowest
    ``frozen_layers`` transformer layers stay fixed."""
    bert = model[0].auto_model
    frozen = [
        *([bert.embeddings] if freeze_embeddings or frozen_layers > 0 else []),
        *bert.encoder.layer[:frozen_layers],
    ]
    for module in frozen:
        module.eval()  # no dropout in a frozen part
        for param in module.parameters():
            param.requires_grad_(False)
    return [p for p in model.parameters() if p.requires_grad]


def adapted_model(
    base_model_path: str,
    base_weights_sha256: str,
    pairs: Sequence[tuple[str, str]],
    configured_cache: str | Path | None = None,
    recipe: dict[str, Any] = RECIPE,
    log: Log = _stderr,
) -> tuple[Path, dict[str, Any]]:
    """The folder of the base model adapted to ``pairs`` (trained now unless cached) and its record.

    The record (``key``, ``pairs``, ``recipe``, ``precision``, ``train_seconds``, ``cached``) goes into the
    index manifest.
    """
    key = adaptation_key(base_weights_sha256, pairs, recipe)
    root = cache_dir(configured_cache)
    folder = root / key
    record: dict[str, Any] = {"key": key, "pairs": len(pairs), "recipe": dict(recipe)}
    meta_path = folder / "adaptation.json"
    if meta_path.is_file():
        try:
            stored = json.loads(meta_path.read_text(encoding="utf-8"))
            cached = {k: stored.get(k) for k in ("train_seconds", "precision")}
            return folder, {**record, **cached, "cached": True}
        except (OSError, ValueError):
            log(f"Adapted model at {folder} is unreadable: training it again.")
    log(f"Adapting the embedding model to the corpus: {len(pairs)} lay/clinical pairs, {recipe['epochs']} epochs ...")
    started = time.perf_counter()
    model = fine_tune(base_model_path, pairs, recipe)
    seconds = round(time.perf_counter() - started, 1)
    record["precision"] = training_precision(recipe.get("precision", "fp32"))
    tmp = root / f".{key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        model.save(str(tmp))
        (tmp / "adaptation.json").write_text(
            json.dumps({**record, "base_weights_sha256": base_weights_sha256, "train_seconds": seconds}, indent=2)
            + "\n",
            encoding="utf-8",
        )
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"Adapted model ready in {seconds:.0f} s ({folder}).")
    return folder, {**record, "train_seconds": seconds, "cached": False}
