"""A sentence-transformers model folder, read and checked once, and what every encoder of
it shares: the tokenizer, the pooling and the normalization.

:class:`ModelFolder` reads ``modules.json``, the transformer's configs, the tokenizer and the
pooling folder of a BERT-family model (e.g. all-MiniLM-L6-v2), so that the ONNX encoder
(:mod:`.onnx_encoder`) and the numpy encoder (:mod:`.fast_encoder`) tokenize, truncate, pool
and normalize exactly as ``SentenceTransformer.encode`` does. Anything they cannot reproduce
raises :class:`UnsupportedModelError`, so callers can fall back to sentence-transformers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tokenizers import Tokenizer

FloatArray = NDArray[np.float32]

WEIGHTS_FILE = "model.safetensors"
_REQUIRED_CONFIG_KEYS = ("hidden_size", "num_attention_heads", "num_hidden_layers", "max_position_embeddings")
SUPPORTED_POOLING = ("cls", "mean", "max", "mean_sqrt_len_tokens")
# Legacy ``1_Pooling/config.json`` flags, in the order sentence-transformers concatenates them.
_LEGACY_POOLING_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


class UnsupportedModelError(ValueError):
    """The model folder cannot be run by :class:`NumpyEncoder`; use sentence-transformers."""


@dataclass(frozen=True)
class ModelFolder:
    """What a sentence-transformers BERT folder says about encoding, read and checked once.

    Shared by :class:`assistant.encoders.fast_encoder.NumpyEncoder` and :class:`assistant.encoders.onnx_encoder.OnnxEncoder`, so both
    tokenize, truncate, pool and normalize exactly as ``SentenceTransformer.encode`` does.
    """

    path: Path
    config: dict[str, Any]
    tokenizer_path: Path
    weights_path: Path
    max_seq_length: int
    pooling_modes: tuple[str, ...]
    normalizes: bool
    lowercase: bool

    @classmethod
    def read(cls, path: str | Path) -> ModelFolder:
        """Read ``modules.json``, the configs and the pooling folder of ``path``.

        Raises:
            UnsupportedModelError: a file is missing, or the architecture, pooling or module
                stack is one the numpy and ONNX encoders do not reproduce.
        """
        model_dir = Path(path)
        transformer_dir, pooling_dir, normalizes = _read_modules(model_dir)
        config = _read_json(transformer_dir / "config.json")
        _check_architecture(config)
        st_config = _read_json(transformer_dir / "sentence_bert_config.json", required=False)
        weights_path = transformer_dir / WEIGHTS_FILE
        tokenizer_path = transformer_dir / "tokenizer.json"
        pooling_modes = _read_pooling_modes(pooling_dir)
        if not tokenizer_path.is_file():
            raise UnsupportedModelError(f"{tokenizer_path} not found")
        if not weights_path.is_file():
            raise UnsupportedModelError(f"{weights_path} not found (only safetensors is supported)")
        return cls(
            path=model_dir,
            config=config,
            tokenizer_path=tokenizer_path,
            weights_path=weights_path,
            max_seq_length=_resolve_max_seq_length(transformer_dir, config, st_config),
            pooling_modes=pooling_modes,
            normalizes=normalizes,
            lowercase=bool(st_config.get("do_lower_case", False)),
        )

    @property
    def hidden_size(self) -> int:
        return int(self.config["hidden_size"])

    @property
    def dim(self) -> int:
        """Dimension of the sentence embeddings (hidden size times pooling modes)."""
        return self.hidden_size * len(self.pooling_modes)

    def tokenizer(self, *, truncate: bool = True) -> Tokenizer:
        """The fast tokenizer without padding, truncating at ``max_seq_length`` if ``truncate``."""
        return load_tokenizer(self.tokenizer_path, max_length=self.max_seq_length if truncate else None)

    def prepare(self, text: str) -> str:
        """The text as the tokenizer should see it (lowercased if the model says so)."""
        return text.lower() if self.lowercase else text


def pool_hidden_states(
    hidden: FloatArray, mask: NDArray[np.bool_] | None, modes: Sequence[str] = ("mean",)
) -> FloatArray:
    """Sentence embeddings ``(batch, dim)`` from last hidden states ``(batch, seq, hidden)``.

    Args:
        hidden: the transformer's last hidden states.
        mask: ``(batch, seq)``, True for real tokens; None when nothing is padded.
        modes: the folder's pooling modes (``cls``, ``max``, ``mean``, ``mean_sqrt_len_tokens``),
            concatenated in this order, as sentence-transformers does.
    """
    parts = []
    for mode in modes:
        if mode == "cls":
            parts.append(hidden[:, 0])
        elif mode == "max":
            masked = hidden if mask is None else np.where(mask[:, :, None], hidden, -np.inf)
            parts.append(masked.max(axis=1))
        else:
            if mask is None:
                summed = hidden.sum(axis=1)
                counts = np.full((hidden.shape[0], 1), hidden.shape[1], dtype=np.float32)
            else:
                weights = mask.astype(np.float32)
                summed = np.einsum("bsh,bs->bh", hidden, weights)
                counts = weights.sum(axis=1, keepdims=True)
            counts = np.maximum(counts, np.float32(1e-9))
            parts.append(summed / (counts if mode == "mean" else np.sqrt(counts)))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def l2_normalize_(x: FloatArray) -> None:
    """In-place row L2 normalization, with torch's ``F.normalize`` floor of 1e-12."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
    x /= np.maximum(norms, np.float32(1e-12))


def _read_json(path: Path, *, required: bool = True) -> Any:
    """Parsed JSON file; ``{}`` for a missing optional file."""
    if not path.is_file():
        if required:
            raise UnsupportedModelError(f"{path} not found")
        return {}
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def _read_modules(model_dir: Path) -> tuple[Path, Path, bool]:
    """Transformer folder, pooling folder and Normalize flag from ``modules.json``.

    Only the stack Transformer -> Pooling [-> Normalize] is supported.
    """
    modules = _read_json(model_dir / "modules.json")
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise UnsupportedModelError(f"{model_dir / 'modules.json'} is not a list of modules")
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise UnsupportedModelError(f"module stack {kinds} of {model_dir} is not Transformer -> Pooling [-> Normalize]")
    transformer_dir = model_dir / str(modules[0].get("path", ""))
    pooling_dir = model_dir / str(modules[1].get("path", ""))
    return transformer_dir, pooling_dir, len(kinds) == 3


def _check_architecture(config: dict[str, Any]) -> None:
    missing = [key for key in _REQUIRED_CONFIG_KEYS if not isinstance(config.get(key), int)]
    if missing:
        raise UnsupportedModelError(f"config.json lacks integer {missing}")
    if config.get("model_type") != "bert":
        raise UnsupportedModelError(f"model_type {config.get('model_type')!r} is not 'bert'")
    if config.get("hidden_act", "gelu") != "gelu":
        raise UnsupportedModelError(f"hidden_act {config.get('hidden_act')!r} is not 'gelu'")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise UnsupportedModelError("only absolute position embeddings are supported")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise UnsupportedModelError("hidden_size is not a multiple of num_attention_heads")


def _resolve_max_seq_length(transformer_dir: Path, config: dict[str, Any], st_config: dict[str, Any]) -> int:
    """``max_seq_length`` as sentence-transformers picks it, capped by the position table."""
    limit = int(config["max_position_embeddings"])
    configured = st_config.get("max_seq_length")
    if configured is None:
        tok_config = _read_json(transformer_dir / "tokenizer_config.json", required=False)
        configured = tok_config.get("model_max_length", limit)
    return min(int(configured), limit)


def _read_pooling_modes(pooling_dir: Path) -> tuple[str, ...]:
    """Pooling modes from the pooling config, in either the current or the legacy format."""
    config = _read_json(pooling_dir / "config.json")
    mode = config.get("pooling_mode")
    if mode is None:
        flagged = [name for key, name in _LEGACY_POOLING_FLAGS.items() if config.get(key)]
        modes = tuple(flagged) or ("mean",)
    else:
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    unsupported = [m for m in modes if m not in SUPPORTED_POOLING]
    if unsupported:
        raise UnsupportedModelError(f"pooling {unsupported} is not one of {SUPPORTED_POOLING}")
    return modes


def load_tokenizer(path: Path, *, max_length: int | None) -> Tokenizer:
    """The model's fast tokenizer without padding, truncating at ``max_length`` if given."""
    if not path.is_file():
        raise UnsupportedModelError(f"{path} not found")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    if max_length is None:
        tokenizer.no_truncation()
    else:
        tokenizer.enable_truncation(max_length=max_length)
    return tokenizer
