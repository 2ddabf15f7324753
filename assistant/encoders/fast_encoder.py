"""Pure-numpy BERT forward pass for encoding queries without importing torch.

Importing sentence-transformers pulls in torch (~4 s); a query needs one short forward pass
that numpy does in a few milliseconds. :class:`NumpyEncoder` reads a sentence-transformers
model folder of the BERT family (e.g. all-MiniLM-L6-v2) and reproduces
``SentenceTransformer.encode``: the same tokenizer, special tokens and truncation, the BERT
encoder (post-LayerNorm, erf GELU), the folder's pooling and its Normalize module.

Anything it cannot reproduce exactly raises :class:`UnsupportedModelError`, so callers can
fall back to sentence-transformers.

It is the query encoder when ONNX Runtime cannot load the index's graphs. The library route
that would have replaced the hand-written ONNX graphs (and let this fallback go) was measured
and kept neither the int8 latency nor the cosine (:mod:`.onnx_export`, docs/speed.md), so
both stay.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import load_file
from tokenizers import Encoding, Tokenizer

from assistant.encoders.model_folder import (
    WEIGHTS_FILE,
    ModelFolder,
    UnsupportedModelError,
    l2_normalize_,
    load_tokenizer,
    pool_hidden_states,
)

FloatArray = NDArray[np.float32]
IntArray = NDArray[np.int64]

# Weight matrices are stored as contiguous column blocks, shape (n_blocks, in, width), and
# multiplied _SMALL_ROWS token rows at a time, block by block. Each product then stays within
# OpenBLAS's small-matrix limit (m * n * k <= 1e6), where it skips packing and threads and
# reads the block sequentially: ~2x faster than one GEMM for a query on one core, as fast per
# row as a large GEMM on one core, and immune to the multi-threaded OpenBLAS slowdown (10x
# and worse) when other processes keep the CPUs busy. BLAS thread settings are left alone
# (attention products of long passages may still use several threads).
_SMALL_GEMM_MNK = 1_000_000
_SMALL_ROWS = 40
# Added to the attention scores of padding keys. Any value whose exp underflows to 0 gives
# the same softmax as transformers' finfo.min, without float32 overflow warnings.
_MASK_BIAS = np.float32(-1e9)
# Attention scores within +-_EXP_SAFE can go through exp unshifted without overflow (even
# summed over 512 keys) or a row underflowing to 0.
_EXP_SAFE = np.float32(60.0)
# GELU needs the standard normal CDF, Phi(x) = 0.5 + 0.5 * erf(x / sqrt(2)). erf comes from
# the float32 rational approximation Eigen and XLA use, erf(u) = u * P(u^2) / Q(u^2) on
# [-4, 4] (max abs error 5e-7; coefficients highest degree first). Substituting
# u = x / sqrt(2) and folding the constants into the coefficients saves four array passes.
_ERF_P = (
    -2.72614225801306e-10,
    2.77068142495902e-08,
    -2.10102402082508e-06,
    -5.69250639462346e-05,
    -7.34990630326855e-04,
    -2.95459980854025e-03,
    -1.60960333262415e-02,
)
_ERF_Q = (
    -1.45660718464996e-05,
    -2.13374055278905e-04,
    -1.68282697438203e-03,
    -7.37332916720468e-03,
    -1.42647390514189e-02,
)
_CDF_P = tuple(np.float32(c * 0.5 ** (len(_ERF_P) - 1 - i) * 0.5 / math.sqrt(2.0)) for i, c in enumerate(_ERF_P))
_CDF_Q = tuple(np.float32(c * 0.5 ** (len(_ERF_Q) - 1 - i)) for i, c in enumerate(_ERF_Q))
_CDF_CLIP = np.float32(4.0 * math.sqrt(2.0))


@dataclass(frozen=True)
class _Layer:
    """One BERT encoder layer; weight matrices as column blocks (see :func:`_linear`)."""

    qkv_w: FloatArray  # query (pre-scaled by 1/sqrt(head_dim)), key and value, side by side
    qkv_b: FloatArray
    attn_out_w: FloatArray
    attn_out_b: FloatArray
    attn_norm_g: FloatArray
    attn_norm_b: FloatArray
    up_w: FloatArray
    up_b: FloatArray
    down_w: FloatArray
    down_b: FloatArray
    out_norm_g: FloatArray
    out_norm_b: FloatArray


@dataclass(frozen=True)
class _Bert:
    """Embedding tables and encoder layers of a BERT model."""

    word_embeddings: FloatArray  # (vocab, hidden)
    position_type_embeddings: FloatArray  # (max_positions, hidden): position + token type 0
    embed_norm_g: FloatArray
    embed_norm_b: FloatArray
    layers: tuple[_Layer, ...]
    num_heads: int
    eps: float


class NumpyEncoder:
    """Encode texts like ``SentenceTransformer.encode`` with numpy only (no torch).

    Build it with :meth:`from_model_dir`. Safe to share between threads: nothing changes
    after loading, apart from the lazily built counting tokenizer.
    """

    def __init__(
        self,
        *,
        bert: _Bert,
        tokenizer: Tokenizer,
        tokenizer_path: Path,
        max_seq_length: int,
        pooling_modes: tuple[str, ...],
        normalizes: bool,
        lowercase: bool,
    ) -> None:
        self._bert = bert
        self._tokenizer = tokenizer
        self._tokenizer_path = tokenizer_path
        self._counting_tokenizer: Tokenizer | None = None
        self._max_seq_length = max_seq_length
        self._pooling_modes = pooling_modes
        self._normalizes = normalizes
        self._lowercase = lowercase

    @classmethod
    def from_model_dir(cls, path: str | Path) -> NumpyEncoder:
        """Load a sentence-transformers BERT model folder.

        Args:
            path: folder with ``modules.json``, ``config.json``, ``tokenizer.json``,
                ``model.safetensors``, ``sentence_bert_config.json`` and the pooling folder.

        Returns:
            The encoder, weights in float32, matrices pre-transposed into column blocks.

        Raises:
            UnsupportedModelError: a file is missing, or the architecture, pooling or module
                stack is one this encoder does not reproduce.
        """
        folder = ModelFolder.read(path)
        bert = _load_bert(load_file(str(folder.weights_path)), folder.config)
        return cls(
            bert=bert,
            tokenizer=folder.tokenizer(),
            tokenizer_path=folder.tokenizer_path,
            max_seq_length=folder.max_seq_length,
            pooling_modes=folder.pooling_modes,
            normalizes=folder.normalizes,
            lowercase=folder.lowercase,
        )

    @property
    def dim(self) -> int:
        """Dimension of the sentence embeddings."""
        hidden = self._bert.word_embeddings.shape[1]
        return int(hidden) * len(self._pooling_modes)

    @property
    def max_seq_length(self) -> int:
        """Tokens per text (special tokens included) beyond which input is truncated."""
        return self._max_seq_length

    @property
    def normalizes(self) -> bool:
        """Whether the model folder ends in a Normalize module (outputs are then always unit)."""
        return self._normalizes

    def count_tokens(self, text: str) -> int:
        """Number of model tokens of ``text``, special tokens included, without truncation."""
        if self._counting_tokenizer is None:
            self._counting_tokenizer = load_tokenizer(self._tokenizer_path, max_length=None)
        return len(self._counting_tokenizer.encode(self._prepare(text)).ids)

    def encode(self, texts: Sequence[str], batch_size: int = 32, normalize: bool = True) -> FloatArray:
        """Embed texts as sentence-transformers would.

        Texts are sorted by token count so each padded batch wastes little; rows come back in
        input order.

        Args:
            texts: the texts (a bare ``str`` is rejected, to avoid encoding its characters).
            batch_size: texts per forward pass.
            normalize: L2-normalize the embeddings. A model with a Normalize module is
                normalized regardless, as in sentence-transformers.

        Returns:
            float32 array of shape ``(len(texts), dim)``.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not a single str")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if len(texts) == 0:
            return out
        encodings = self._tokenize(texts)
        order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            ids, mask = _pad([encodings[i] for i in rows])
            out[rows] = self._pool(self._forward(ids, mask), mask)
        if normalize or self._normalizes:
            l2_normalize_(out)
        return out

    def _prepare(self, text: str) -> str:
        return text.lower() if self._lowercase else text

    def _tokenize(self, texts: Sequence[str]) -> list[Encoding]:
        prepared = [self._prepare(text) for text in texts]
        if len(prepared) == 1:  # encode_batch spins up the Rust thread pool for nothing
            return [self._tokenizer.encode(prepared[0])]
        return list(self._tokenizer.encode_batch(prepared))

    def _forward(self, ids: IntArray, mask: NDArray[np.bool_] | None) -> FloatArray:
        """Last hidden states ``(batch, seq, hidden)`` for token ids (``mask`` None: no padding)."""
        bert = self._bert
        batch, seq = ids.shape
        x = bert.word_embeddings[ids]
        x += bert.position_type_embeddings[:seq]
        x = x.reshape(batch * seq, -1)
        _layer_norm_(x, bert.embed_norm_g, bert.embed_norm_b, bert.eps)
        bias = None if mask is None else np.where(mask, np.float32(0), _MASK_BIAS)[:, None, None, :]
        for layer in bert.layers:
            x = _encoder_layer(x, layer, batch, seq, bert.num_heads, bias, bert.eps)
        return x.reshape(batch, seq, -1)

    def _pool(self, hidden: FloatArray, mask: NDArray[np.bool_] | None) -> FloatArray:
        return pool_hidden_states(hidden, mask, self._pooling_modes)


def _encoder_layer(
    x: FloatArray,
    layer: _Layer,
    batch: int,
    seq: int,
    num_heads: int,
    bias: FloatArray | None,
    eps: float,
) -> FloatArray:
    """One post-LayerNorm BERT layer on ``x`` of shape ``(batch * seq, hidden)``."""
    hidden = x.shape[1]
    qkv = _linear(x, layer.qkv_w, layer.qkv_b)
    heads = qkv.reshape(batch, seq, 3, num_heads, hidden // num_heads)
    query = heads[:, :, 0].transpose(0, 2, 1, 3)  # (batch, heads, seq, head_dim)
    key_t = heads[:, :, 1].transpose(0, 2, 3, 1)  # (batch, heads, head_dim, seq)
    value = heads[:, :, 2].transpose(0, 2, 1, 3)
    scores = query @ key_t
    _softmax_(scores, bias)
    context = np.matmul(scores, value).transpose(0, 2, 1, 3).reshape(batch * seq, hidden)
    attn = _linear(context, layer.attn_out_w, layer.attn_out_b)
    attn += x
    _layer_norm_(attn, layer.attn_norm_g, layer.attn_norm_b, eps)
    inner = _linear(attn, layer.up_w, layer.up_b)
    _gelu_(inner)
    out = _linear(inner, layer.down_w, layer.down_b)
    out += attn
    _layer_norm_(out, layer.out_norm_g, layer.out_norm_b, eps)
    return out


def _linear(x: FloatArray, blocks: FloatArray, bias: FloatArray) -> FloatArray:
    """``x @ w + bias`` for ``w`` stored as column blocks ``(n_blocks, in, width)``."""
    rows = x.shape[0]
    n_blocks, _, width = blocks.shape
    out = np.empty((rows, n_blocks * width), dtype=np.float32)
    for start in range(0, rows, _SMALL_ROWS):
        stop = min(start + _SMALL_ROWS, rows)
        products = np.matmul(x[start:stop], blocks)  # (n_blocks, stop - start, width)
        out[start:stop] = products.transpose(1, 0, 2).reshape(stop - start, n_blocks * width)
    out += bias
    return out


def _layer_norm_(x: FloatArray, gain: FloatArray, bias: FloatArray, eps: float) -> None:
    """In-place LayerNorm over the last axis of a 2-d array (biased variance, as torch)."""
    # Row means as a matrix-vector product: faster than ndarray.mean on short rows.
    averager = _averaging_vector(x.shape[1])
    x -= x @ averager
    var = np.square(x) @ averager
    var += np.float32(eps)
    np.sqrt(var, out=var)
    x /= var
    x *= gain
    x += bias


@functools.lru_cache(maxsize=8)
def _averaging_vector(n: int) -> FloatArray:
    """Read-only ``(n, 1)`` column of ``1 / n``; ``x @ v`` is the mean of each row of ``x``."""
    vector = np.full((n, 1), 1.0 / n, dtype=np.float32)
    vector.flags.writeable = False
    return vector


def _softmax_(scores: FloatArray, bias: FloatArray | None) -> None:
    """In-place softmax over the last axis of ``scores + bias``."""
    # Shifting each row by its max only guards exp against overflow and underflow. When all
    # scores are moderate, one global check replaces the row maxima (slow on short rows);
    # the mask bias is added after the check, its exp is 0 either way.
    moderate = scores.min() > -_EXP_SAFE and scores.max() < _EXP_SAFE
    if bias is not None:
        scores += bias
    if not moderate:
        scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores @ _ones_column(scores.shape[-1])


@functools.lru_cache(maxsize=8)
def _ones_column(n: int) -> FloatArray:
    """Read-only ``(n, 1)`` column of ones; ``x @ v`` sums the rows of ``x``."""
    vector = np.ones((n, 1), dtype=np.float32)
    vector.flags.writeable = False
    return vector


def _normal_cdf(x: FloatArray) -> FloatArray:
    """Standard normal CDF of a float32 array (max abs error 3e-7), as a new array."""
    x = np.clip(x, -_CDF_CLIP, _CDF_CLIP)
    x2 = x * x
    cdf = _polynomial(x2, _CDF_P)
    cdf *= x
    cdf /= _polynomial(x2, _CDF_Q)
    cdf += np.float32(0.5)
    return cdf


def _polynomial(x: FloatArray, coefficients: Sequence[np.float32]) -> FloatArray:
    """Horner evaluation, coefficients highest degree first, as a new array."""
    acc = x * coefficients[0]
    acc += coefficients[1]
    for c in coefficients[2:]:
        acc *= x
        acc += c
    return acc


def _gelu_(x: FloatArray) -> None:
    """In-place exact (erf) GELU, ``x * Phi(x) = x * 0.5 * (1 + erf(x / sqrt(2)))``, as BERT's."""
    x *= _normal_cdf(x)


def _pad(encodings: Sequence[Encoding]) -> tuple[IntArray, NDArray[np.bool_] | None]:
    """Right-padded ids ``(batch, longest)`` and the attention mask (None if nothing padded)."""
    lengths = [len(enc.ids) for enc in encodings]
    longest = max(lengths)
    ids = np.zeros((len(encodings), longest), dtype=np.int64)
    for row, enc in enumerate(encodings):
        ids[row, : lengths[row]] = enc.ids
    if min(lengths) == longest:
        return ids, None
    mask = np.arange(longest)[None, :] < np.asarray(lengths)[:, None]
    return ids, mask


def _column_blocks(weight: FloatArray) -> FloatArray:
    """A torch ``(out, in)`` weight as contiguous column blocks ``(n_blocks, in, width)`` of ``weight.T``.

    ``width`` is the largest power of two dividing ``out`` that keeps ``_SMALL_ROWS`` rows
    times a block within OpenBLAS's small-matrix limit.
    """
    n_out, n_in = weight.shape
    width = 1
    while n_out % (2 * width) == 0 and _SMALL_ROWS * n_in * 2 * width <= _SMALL_GEMM_MNK:
        width *= 2
    return np.ascontiguousarray(weight.reshape(n_out // width, width, n_in).transpose(0, 2, 1))


def _load_bert(weights: dict[str, np.ndarray], config: dict[str, Any]) -> _Bert:
    """Arrange safetensors weights for the forward pass (float32, matrices as (in, out))."""
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""

    def get(name: str) -> FloatArray:
        key = prefix + name
        if key not in weights:
            raise UnsupportedModelError(f"weight {key!r} missing from {WEIGHTS_FILE}")
        return np.asarray(weights[key], dtype=np.float32)

    def matrix(name: str) -> FloatArray:
        return _column_blocks(get(name + ".weight"))

    num_heads = int(config["num_attention_heads"])
    head_dim = int(config["hidden_size"]) // num_heads
    scale = np.float32(1.0 / math.sqrt(head_dim))
    layers = []
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}."
        # Query, key and value as one projection, the softmax scale folded into the query.
        projections = [p + f"attention.self.{n}" for n in ("query", "key", "value")]
        qkv_w = np.concatenate([get(name + ".weight") for name in projections])
        qkv_b = np.concatenate([get(name + ".bias") for name in projections])
        hidden = qkv_b.shape[0] // 3
        qkv_w[:hidden] *= scale
        qkv_b[:hidden] *= scale
        layers.append(
            _Layer(
                qkv_w=_column_blocks(qkv_w),
                qkv_b=qkv_b,
                attn_out_w=matrix(p + "attention.output.dense"),
                attn_out_b=get(p + "attention.output.dense.bias"),
                attn_norm_g=get(p + "attention.output.LayerNorm.weight"),
                attn_norm_b=get(p + "attention.output.LayerNorm.bias"),
                up_w=matrix(p + "intermediate.dense"),
                up_b=get(p + "intermediate.dense.bias"),
                down_w=matrix(p + "output.dense"),
                down_b=get(p + "output.dense.bias"),
                out_norm_g=get(p + "output.LayerNorm.weight"),
                out_norm_b=get(p + "output.LayerNorm.bias"),
            )
        )
    token_type = get("embeddings.token_type_embeddings.weight")
    return _Bert(
        word_embeddings=get("embeddings.word_embeddings.weight"),
        position_type_embeddings=get("embeddings.position_embeddings.weight") + token_type[0],
        embed_norm_g=get("embeddings.LayerNorm.weight"),
        embed_norm_b=get("embeddings.LayerNorm.bias"),
        layers=tuple(layers),
        num_heads=num_heads,
        eps=float(config.get("layer_norm_eps", 1e-12)),
    )
