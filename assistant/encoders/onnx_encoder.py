"""Sentence embeddings with ONNX Runtime: the graphs of :mod:`assistant.encoders.onnx_export`.

:class:`OnnxEncoder` has the interface of :class:`assistant.encoders.fast_encoder.NumpyEncoder`
(``encode``, ``dim``, ``max_seq_length``, ``normalizes``, ``count_tokens``) and reuses its
tokenizer, truncation, pooling and normalization, so it returns what ``SentenceTransformer.encode``
returns: exactly (float32 graph, cosine 1.0) or within int8 rounding (query graph, cosine
>= 0.99 checked at build time). Importing this module imports neither torch nor onnx; only
onnxruntime, when an encoder is created.

Threads: a one-query pass multiplies matrices of a few dozen rows, where a second thread
costs more than it saves (measured 2.3 ms on one thread against 6.5 ms on two for a 20-token
query, docs/speed.md), so query encoders run on one thread; build encoders use every core,
with ONNX Runtime's spin-waiting off so that a busy neighbour process does not stall them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tokenizers import Encoding, Tokenizer

from assistant.encoders.model_folder import ModelFolder, l2_normalize_, pool_hidden_states

INPUTS = ("input_ids", "attention_mask")
OUTPUT = "last_hidden_state"
STATS_PREFIX = "absmax."  # the same names as assistant.encoders.onnx_export, which needs onnx to import


class OnnxUnavailableError(RuntimeError):
    """ONNX Runtime or a usable ONNX model is missing; the message says which and why."""


def onnxruntime_available() -> bool:
    """Whether ``onnxruntime`` can be imported (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def available_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def make_session(model: bytes | str | Path, threads: int = 1) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU with ``threads`` intra-op threads.

    Raises:
        OnnxUnavailableError: onnxruntime is not installed, or the model does not load
            (missing, truncated or corrupt file, or an operator this build lacks).
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise OnnxUnavailableError("onnxruntime is not installed (pip install onnxruntime)") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only
    if threads > 1:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad models
        where = "the ONNX model" if isinstance(model, bytes) else str(model)
        raise OnnxUnavailableError(f"{where} does not load: {str(exc).strip()[:300]}") from exc


class OnnxEncoder:
    """Encode texts with an ONNX Runtime session, like ``SentenceTransformer.encode``.

    Build it with :meth:`from_file` (the query model of an index) or :meth:`from_bytes`.
    Safe to share between threads (ONNX Runtime sessions are).
    """

    def __init__(self, session: Any, folder: ModelFolder) -> None:
        """Args:
        session: the graph's session (inputs ``input_ids``, ``attention_mask``; output
            ``last_hidden_state``; optionally calibration outputs ``absmax.*``).
        folder: the model folder (tokenizer, pooling, normalization).
        """
        _check_session(session, folder)
        self._session = session
        self._stats_outputs = [o.name for o in session.get_outputs() if o.name.startswith(STATS_PREFIX)]
        self._folder = folder
        self._tokenizer = folder.tokenizer()
        self._counting_tokenizer: Tokenizer | None = None
        self._lock = threading.Lock()
        self.variant = dict(session.get_modelmeta().custom_metadata_map).get("lbp.variant", "")

    @classmethod
    def from_file(cls, model_dir: str | Path, path: str | Path, threads: int = 1) -> OnnxEncoder:
        """The encoder of an ``.onnx`` file for the model folder ``model_dir``.

        Raises:
            OnnxUnavailableError: onnxruntime is missing, or the file is missing or unusable.
            UnsupportedModelError: the model folder is not one this encoder reproduces.
        """
        path = Path(path)
        if not path.is_file():
            raise OnnxUnavailableError(f"{path} not found")
        return cls(make_session(path, threads), ModelFolder.read(model_dir))

    @classmethod
    def from_bytes(cls, folder: ModelFolder, model: bytes, threads: int = 1) -> OnnxEncoder:
        """The encoder of a serialized ONNX model (e.g. just exported)."""
        return cls(make_session(model, threads), folder)

    @property
    def dim(self) -> int:
        """Dimension of the sentence embeddings."""
        return self._folder.dim

    @property
    def max_seq_length(self) -> int:
        """Tokens per text (special tokens included) beyond which input is truncated."""
        return self._folder.max_seq_length

    @property
    def normalizes(self) -> bool:
        """Whether the model folder ends in a Normalize module (outputs are then always unit)."""
        return self._folder.normalizes

    @property
    def has_calibration_outputs(self) -> bool:
        return bool(self._stats_outputs)

    def count_tokens(self, text: str) -> int:
        """Number of model tokens of ``text``, special tokens included, without truncation."""
        with self._lock:
            if self._counting_tokenizer is None:
                self._counting_tokenizer = self._folder.tokenizer(truncate=False)
        return len(self._counting_tokenizer.encode(self._folder.prepare(text)).ids)

    def encode(self, texts: Sequence[str], batch_size: int = 32, normalize: bool = True) -> NDArray[np.float32]:
        """Embed ``texts`` (longest first in batches of ``batch_size``; rows in input order).

        Returns:
            float32 ``(len(texts), dim)``; unit rows when ``normalize`` or the model normalizes.
        """
        vectors, _ = self._run(texts, batch_size, normalize, stats=False)
        return vectors

    def encode_with_stats(
        self, texts: Sequence[str], batch_size: int = 32
    ) -> tuple[NDArray[np.float32], dict[str, NDArray[np.float32]]]:
        """:meth:`encode`, plus the int8 calibration statistics of a graph that has them
        (:func:`assistant.encoders.onnx_export.fp32_graph` with ``calibration_outputs``).

        Returns:
            The normalized vectors and ``{"<layer>.<linear>": (in,) max |input|}`` over the real
            tokens of all ``texts`` (empty if the graph has no calibration outputs).
        """
        return self._run(texts, batch_size, True, stats=True)

    def _run(
        self, texts: Sequence[str], batch_size: int, normalize: bool, *, stats: bool
    ) -> tuple[NDArray[np.float32], dict[str, NDArray[np.float32]]]:
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not a single str")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        maxima: dict[str, NDArray[np.float32]] = {}
        if len(texts) == 0:
            return out, maxima
        encodings = self._tokenize(texts)
        order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
        fetch = [OUTPUT, *self._stats_outputs] if stats else [OUTPUT]
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            ids, mask = pad_int32([encodings[i] for i in rows])
            results = self._session.run(fetch, {INPUTS[0]: ids, INPUTS[1]: mask})
            for name, value in zip(fetch[1:], results[1:], strict=True):
                key = name[len(STATS_PREFIX) :]
                maxima[key] = value if key not in maxima else np.maximum(maxima[key], value)
            padded = None if mask.all() else mask.astype(bool)
            out[rows] = pool_hidden_states(results[0], padded, self._folder.pooling_modes)
        if normalize or self._folder.normalizes:
            l2_normalize_(out)
        return out, maxima

    def _tokenize(self, texts: Sequence[str]) -> list[Encoding]:
        prepared = [self._folder.prepare(text) for text in texts]
        if len(prepared) == 1:  # encode_batch spins up the Rust thread pool for nothing
            return [self._tokenizer.encode(prepared[0])]
        return list(self._tokenizer.encode_batch(prepared))


def _check_session(session: Any, folder: ModelFolder) -> None:
    """Raise :class:`OnnxUnavailableError` unless ``session`` is a sentence-encoder graph for ``folder``."""
    names = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if names != list(INPUTS) or OUTPUT not in outputs:
        raise OnnxUnavailableError(f"ONNX model has inputs {names} and outputs {outputs[:3]}, not {list(INPUTS)}")
    width = session.get_outputs()[outputs.index(OUTPUT)].shape[-1]
    if isinstance(width, int) and width != folder.hidden_size:
        raise OnnxUnavailableError(f"ONNX model has hidden size {width}, the model folder {folder.hidden_size}")


def pad_int32(encodings: Sequence[Encoding]) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
    """Right-padded token ids ``(batch, longest)`` and their attention mask, as int32."""
    lengths = [len(enc.ids) for enc in encodings]
    longest = max(lengths)
    ids = np.zeros((len(encodings), longest), dtype=np.int32)
    for row, enc in enumerate(encodings):
        ids[row, : lengths[row]] = enc.ids
    mask = (np.arange(longest)[None, :] < np.asarray(lengths)[:, None]).astype(np.int32)
    return ids, mask
