"""Encoders: passages at build time, queries at run time.

- Passages and sentences (build): ONNX Runtime's float32 graph of the model
  (:mod:`assistant.encoders.onnx_export`, cosine 1.0 against sentence-transformers, 1.5-2x its speed
  on two cores), or sentence-transformers (torch) when onnxruntime is missing or
  ``build_encoder="torch"``.
- Queries (run time): the int8 SmoothQuant ONNX graph (~1.7x faster than numpy, cosine
  0.999 to the float32 vectors; >= 0.99 is checked at export), else :class:`assistant.encoders.fast_encoder.NumpyEncoder` (same
  weights, numpy forward pass), else sentence-transformers. None of them imports torch
  except the last.

Both ONNX graphs are exported from the safetensors weights, without torch, on first use into
a content-addressed cache (:mod:`assistant.encoders.onnx_models`).

All return L2-normalized float32 vectors. Importing sentence-transformers costs seconds
(torch), so this module imports it only when a torch encoder is first used.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from assistant.config import Settings

QUERY_ENCODERS = ("auto", "onnx", "numpy", "torch")
BUILD_ENCODERS = ("auto", "onnx", "torch")

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Encoder(Protocol):
    """What retrieval needs from an encoder."""

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray: ...


def _offline_env() -> None:
    # Never reach for a hub at run time; users with a hub can set HF_HUB_OFFLINE=0.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class ModelTokenizer:
    """The embedding model's own tokenizer, for counting tokens while chunking."""

    def __init__(self, model_path: str) -> None:
        path = Path(model_path)
        self.max_seq_length = 512
        self._hf: Any = None
        self._fast: Any = None
        if (path / "sentence_bert_config.json").is_file():
            cfg = json.loads((path / "sentence_bert_config.json").read_text())
            self.max_seq_length = int(cfg.get("max_seq_length") or 512)
        if (path / "tokenizer.json").is_file():
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(path / "tokenizer.json"))
            tok.no_padding()
            tok.no_truncation()
            self._fast = tok
        else:  # a hub name or a model without tokenizer.json
            _offline_env()
            from transformers import AutoTokenizer

            self._hf = AutoTokenizer.from_pretrained(model_path)
            self.max_seq_length = min(self.max_seq_length, int(getattr(self._hf, "model_max_length", 512)))

    def count(self, text: str) -> int:
        """Tokens of ``text`` without special tokens and without truncation."""
        if self._fast is not None:
            return len(self._fast.encode(text, add_special_tokens=False).ids)
        return len(self._hf.encode(text, add_special_tokens=False))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        if self._fast is not None:
            return [len(e.ids) for e in self._fast.encode_batch(list(texts), add_special_tokens=False)]
        return [self.count(t) for t in texts]


@lru_cache(maxsize=4)
def model_tokenizer(model_path: str) -> ModelTokenizer:
    return ModelTokenizer(model_path)


@lru_cache(maxsize=2)
def tiktoken_counter(encoding: str) -> Any:
    """A function counting tokens with the named tiktoken encoding."""
    import tiktoken

    enc = tiktoken.get_encoding(encoding)
    return lambda text: len(enc.encode(text, disallowed_special=()))


def import_sentence_transformers() -> Any:
    """``sentence_transformers.SentenceTransformer``, imported offline and with torch's
    OpenMP threads sleeping, not spinning, while they wait for work.

    Spinning threads (OpenMP's default) collapse throughput when another process holds a
    core: measured on 2 cores with one busy neighbour, 2,100-2,200 tokens/s encoding
    against 2,400-2,500 with ``OMP_WAIT_POLICY=PASSIVE``, and up to twice slower under
    heavier load; on an idle machine the two are within noise (docs/speed.md). The
    variable only takes effect if torch is not imported yet; a value set by the user wins.
    Vectors are unchanged.
    """
    _offline_env()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer


@lru_cache(maxsize=2)
def _sentence_transformer(model_path: str, device: str) -> Any:
    """One loaded model per (path, device) and process: loading costs seconds."""
    return import_sentence_transformers()(model_path, device=device)


class SentenceTransformerEncoder:
    """sentence-transformers encoder (torch); loaded on first use."""

    def __init__(self, model_path: str, device: str = "cpu") -> None:
        self.model_path = model_path
        self.device = device
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = _sentence_transformer(self.model_path, self.device)
        return self._model

    @property
    def dim(self) -> int:
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get_dim())

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def load_query_encoder(settings: Settings, log: Log = _stderr) -> Encoder:
    """The fastest available query encoder that agrees with the index's passage vectors.

    ``settings.query_encoder``:

    - ``auto`` (default): the int8 ONNX model (exported once into ``settings.onnx_cache``)
      when onnxruntime and onnx are installed, else numpy, else torch;
    - ``onnx``: the same, but say why whenever the ONNX model cannot be used;
    - ``numpy``: the numpy forward pass (fails if the model is unsupported);
    - ``torch``: sentence-transformers.

    A missing, corrupt or unloadable ONNX file never fails a query: it is exported again,
    or the next encoder is used and ``log`` says why (in ``auto`` mode, unless onnxruntime is
    simply not installed).
    """
    choice = settings.query_encoder
    if choice not in QUERY_ENCODERS:
        raise ValueError(f"unknown query encoder {choice!r}: use one of {', '.join(QUERY_ENCODERS)}")
    if choice in ("onnx", "auto"):
        from assistant.encoders.onnx_encoder import OnnxUnavailableError, onnxruntime_available
        from assistant.encoders.onnx_models import load_encoder

        try:
            return load_encoder(
                settings.model_path, "query-int8", threads=1, configured_cache=settings.onnx_cache, log=log
            )
        except OnnxUnavailableError as exc:
            if choice == "onnx" or onnxruntime_available():
                log(f"ONNX query encoder not used: {exc}. Using the numpy encoder.")
    if choice != "torch":
        try:
            from assistant.encoders.fast_encoder import NumpyEncoder, UnsupportedModelError
        except ImportError:  # pragma: no cover - the module ships with the package
            if choice == "numpy":
                raise
        else:
            try:
                return NumpyEncoder.from_model_dir(settings.model_path)
            except (UnsupportedModelError, FileNotFoundError, OSError):
                if choice == "numpy":
                    raise
    return SentenceTransformerEncoder(settings.model_path)


def load_passage_encoder(settings: Settings, log: Log = _stderr, backend: str | None = None) -> tuple[Any, str]:
    """The build encoder and its backend name (``onnx`` or ``torch``).

    ``backend`` (default ``settings.build_encoder``): ``auto`` prefers ONNX Runtime's float32
    graph (every core) and falls back to sentence-transformers quietly when onnxruntime is
    not installed; ``onnx`` falls back with a message; ``torch`` is sentence-transformers.
    """
    choice = backend or settings.build_encoder
    if choice not in BUILD_ENCODERS:
        raise ValueError(f"unknown build encoder {choice!r}: use one of {', '.join(BUILD_ENCODERS)}")
    if choice in ("auto", "onnx"):
        from assistant.encoders.onnx_encoder import OnnxUnavailableError, available_cores, onnxruntime_available
        from assistant.encoders.onnx_models import load_encoder

        try:
            encoder = load_encoder(
                settings.model_path, "fp32", threads=available_cores(), configured_cache=settings.onnx_cache, log=log
            )
            return encoder, "onnx"
        except OnnxUnavailableError as exc:
            if choice == "onnx" or onnxruntime_available():
                log(f"ONNX build encoder not used: {exc}. Using sentence-transformers.")
    return SentenceTransformerEncoder(settings.model_path), "torch"


@lru_cache(maxsize=1)
def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a dependency of scikit-learn, itself of sentence-transformers
        return None
    return ThreadpoolController()


class _OneBlasThread:
    """Context manager: numpy's BLAS runs on one thread while any query is being encoded.

    A one-query forward pass multiplies matrices of a dozen rows; handing half of each to a
    second BLAS thread costs more than it saves, and far more when the cores are busy
    (measured: p50 10-22 ms on one thread against 39-152 ms on two, with the machine loaded; see
    docs/speed.md). The limit is counted, so concurrent queries restore it only when the
    last one finishes. Results are the same: each output element is still summed by one thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._limiter: Any = None

    def __enter__(self) -> None:
        with self._lock:
            if self._users == 0:
                controller = _blas_controller()
                self._limiter = controller.limit(limits=1, user_api="blas") if controller is not None else None
            self._users += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._limiter is not None:
                self._limiter.restore_original_limits()
                self._limiter = None


_ONE_BLAS_THREAD = _OneBlasThread()


class CachedQueryEncoder:
    """Wraps an encoder with a thread-safe LRU cache of single-query embeddings."""

    def __init__(self, encoder: Encoder, size: int = 2048) -> None:
        self.encoder = encoder
        self.size = size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def encode_query(self, text: str) -> np.ndarray:
        """One normalized query vector of shape (dim,)."""
        key = " ".join(text.split())
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        with _ONE_BLAS_THREAD:
            vec = self.encoder.encode([key])[0]
        vec.setflags(write=False)
        with self._lock:
            self._cache[key] = vec
            if len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return vec

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return self.encoder.encode(texts, batch_size=batch_size)
