"""The ONNX models of a model folder, exported once into a content-addressed cache.

    ~/.cache/lbp-assistant/onnx/            (``Settings.onnx_cache`` / ``$LBP_ONNX_CACHE``)
      weights.json                          sha256 of each weights file, by path, size and mtime
      <key>/fp32.onnx                       float32 graph: builds embed passages with it
      <key>/query-int8.onnx                 int8 graph: queries (its own key)
      <key>/<variant>.json                  its size, sha256, export settings and cosine check

``<key>`` hashes the weights' content (sha256, computed once per weights file and remembered
in ``weights.json``), the model's configs, the exporter's version and (int8) its quantization
settings, so a new model, new weights or a new exporter never reuse an old file. Entries of
old keys are left in place (delete the folder to reclaim them). A model is written on first use
(no torch: :mod:`assistant.encoders.onnx_export` writes the graph from the safetensors weights), to a
temporary file renamed into place, so concurrent processes and crashes leave either no file
or a whole one. Loading checks size and sha256 against the sidecar; a missing, corrupt or
failed file is re-exported once, and what cannot be made raises :class:`OnnxUnavailableError`
with the reason (callers then fall back to the numpy encoder).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from assistant.encoders.model_folder import ModelFolder, UnsupportedModelError
from assistant.encoders.onnx_encoder import OnnxEncoder, OnnxUnavailableError, onnxruntime_available
from assistant.files import sha256_file, sha256_remembered, write_atomic

DEFAULT_CACHE = Path("~/.cache/lbp-assistant/onnx")
VARIANTS = ("fp32", "query-int8")
MIN_QUERY_COSINE = 0.99
Log = Callable[[str], None]


def cache_dir(configured: str | Path | None = None) -> Path:
    """The cache folder: ``configured``, else ``$LBP_ONNX_CACHE``, else ~/.cache/lbp-assistant/onnx."""
    return Path(configured or os.environ.get("LBP_ONNX_CACHE") or DEFAULT_CACHE).expanduser()


def weights_sha256(folder: ModelFolder, root: Path) -> str:
    """sha256 of the weights file, remembered in ``root/weights.json`` by path, size and mtime."""
    return sha256_remembered(folder.weights_path, root / "weights.json")


def cache_key(folder: ModelFolder, weights_digest: str, variant: str = "fp32") -> str:
    """16 hex digits over the weights, the configs, the exporter's version and, for the int8
    variant, its quantization settings (so a new calibration never re-exports float32)."""
    from assistant.encoders.onnx_encoder import STATS_PREFIX
    from assistant.encoders.onnx_export import EXPORT_VERSION
    from assistant.encoders.quantization import BLOCK_LINEARS, BLOCK_SIZE, CALIBRATION_TEXTS, SMOOTHING_ALPHA

    payload: dict[str, Any] = {"weights": weights_digest, "config": folder.config, "export_version": EXPORT_VERSION}
    if variant != "fp32":
        payload.update(
            variant=variant,
            alpha=SMOOTHING_ALPHA,
            block_linears=[BLOCK_LINEARS, BLOCK_SIZE],
            calibration=hashlib.sha256("\n".join(CALIBRATION_TEXTS).encode()).hexdigest(),
            stats=STATS_PREFIX,
        )
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def model_file(
    model_path: str, variant: str, configured_cache: str | Path | None = None, log: Log | None = None
) -> Path:
    """The checked ``.onnx`` file of ``variant`` (``fp32`` or ``query-int8``), exported if needed.

    Raises:
        OnnxUnavailableError: onnxruntime or onnx is missing, the model is unsupported, the
            cache is not writable, or the int8 graph failed its cosine check.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown ONNX variant {variant!r}: use one of {', '.join(VARIANTS)}")
    if not onnxruntime_available():
        raise OnnxUnavailableError("onnxruntime is not installed")
    try:
        folder = ModelFolder.read(model_path)
    except UnsupportedModelError as exc:
        raise OnnxUnavailableError(str(exc)) from exc
    root = cache_dir(configured_cache)
    try:
        entry = root / cache_key(folder, weights_sha256(folder, root), variant)
    except OSError as exc:
        raise OnnxUnavailableError(f"cannot read {folder.weights_path}: {exc}") from exc
    path, meta_path = entry / f"{variant}.onnx", entry / f"{variant}.json"
    problem = _check(path, meta_path)
    if problem is None:
        return path
    if problem.startswith("failed"):  # an earlier export was refused: do not retry every query
        raise OnnxUnavailableError(problem)
    if log is not None:
        log(f"Exporting the {variant} ONNX encoder to {path} ({problem}) ...")
    try:
        data, meta = _export(folder, variant)
    except ImportError as exc:
        raise OnnxUnavailableError(f"the onnx package is needed to export the model: {exc}") from exc
    try:
        if data is None:
            write_atomic(meta_path, (json.dumps(meta, indent=1) + "\n").encode())
            raise OnnxUnavailableError(f"failed: {meta['reason']}")
        write_atomic(path, data)
        meta.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
        write_atomic(meta_path, (json.dumps(meta, indent=1) + "\n").encode())
    except OSError as exc:
        raise OnnxUnavailableError(f"cannot write the ONNX cache {entry}: {exc}") from exc
    return path


def _check(path: Path, meta_path: Path) -> str | None:
    """None when ``path`` matches its sidecar, else what is wrong ("failed: ..." if refused)."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "not exported yet"
    except (OSError, ValueError):
        return "its record is unreadable"
    if meta.get("reason"):
        return f"failed: {meta['reason']}"
    if not path.is_file():
        return "the file is missing"
    if path.stat().st_size != meta.get("bytes"):
        return f"the file is corrupt (size {path.stat().st_size} != {meta.get('bytes')})"
    if sha256_file(path) != meta.get("sha256"):
        return "the file is corrupt (checksum mismatch)"
    return None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _export(folder: ModelFolder, variant: str) -> tuple[bytes | None, dict[str, Any]]:
    """Serialized graph of ``variant`` and its record; None and a reason if int8 fails its check."""
    from safetensors.numpy import load_file

    from assistant.encoders.onnx_export import EXPORT_VERSION, fp32_graph, int8_graph
    from assistant.encoders.onnx_export import serialize as to_bytes
    from assistant.encoders.quantization import BLOCK_LINEARS, CALIBRATION_TEXTS, SMOOTHING_ALPHA

    weights = load_file(str(folder.weights_path))
    meta: dict[str, Any] = {"variant": variant, "export_version": EXPORT_VERSION, "model": str(folder.path)}
    meta["created_at"] = _now()
    if variant == "fp32":
        return to_bytes(fp32_graph(folder, weights)), meta
    calibration = OnnxEncoder.from_bytes(folder, to_bytes(fp32_graph(folder, weights, calibration_outputs=True)))
    texts = list(CALIBRATION_TEXTS)
    reference, maxima = calibration.encode_with_stats(texts, batch_size=8)
    data = to_bytes(int8_graph(folder, weights, maxima))
    quantized = OnnxEncoder.from_bytes(folder, data)
    cosines = np.array([float(quantized.encode([t])[0] @ reference[i]) for i, t in enumerate(texts)])
    meta.update(
        smoothquant_alpha=SMOOTHING_ALPHA,
        block_quantized=list(BLOCK_LINEARS),
        calibration_texts=len(texts),
        check={
            "texts": len(texts),
            "min_cosine": round(float(cosines.min()), 6),
            "mean": round(float(cosines.mean()), 6),
        },
    )
    if cosines.min() < MIN_QUERY_COSINE:
        meta["reason"] = f"int8 cosine {cosines.min():.4f} < {MIN_QUERY_COSINE} against float32"
        return None, meta
    return data, meta


def load_encoder(
    model_path: str, variant: str, threads: int, configured_cache: str | Path | None = None, log: Log | None = None
) -> OnnxEncoder:
    """An :class:`OnnxEncoder` of ``variant`` from the cache (exported first if needed).

    A cached file that does not load is exported again once before giving up.

    Raises:
        OnnxUnavailableError: see :func:`model_file`.
    """
    path = model_file(model_path, variant, configured_cache, log)
    try:
        return OnnxEncoder.from_file(model_path, path, threads=threads)
    except OnnxUnavailableError as exc:
        if log is not None:
            log(f"{exc}; exporting it again.")
        with contextlib.suppress(OSError):
            path.with_suffix(".json").unlink()
        return OnnxEncoder.from_file(model_path, model_file(model_path, variant, configured_cache, log), threads)
