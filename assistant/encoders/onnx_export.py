"""Write a sentence-transformers BERT model as an ONNX Runtime graph, from its safetensors
weights, without torch.

Two graphs, both ending at the last hidden states (pooling and normalization stay in numpy,
shared with :mod:`assistant.encoders.fast_encoder`):

- :func:`fp32_graph`: the exact model in float32 (cosine 1.0 against sentence-transformers),
  used to embed passages and sentences at build time. With ``calibration_outputs`` it also
  returns, per linear layer, the largest absolute value of each input channel over the real
  (unpadded) tokens of a batch: the statistics the int8 graph is calibrated with.
- :func:`int8_graph`: the query encoder. The linear layers, except the feed-forward output
  projections (:data:`BLOCK_LINEARS`, 8-bit ``MatMulNBits`` in blocks of 128), are int8
  ``DynamicQuantizeMatMul`` (weights quantized per output column, activations per tensor at
  run time) after SmoothQuant (Xiao et al., 2023, arXiv:2211.10438): input channel ``j`` is
  divided by ``s_j = max|x_j|^a / max|W_j|^(1-a)`` and row ``j`` of the weight multiplied by
  it, which leaves the product unchanged but moves the activation outliers that dominate a
  per-tensor scale into the weights, where per-column scales absorb them. The minimum cosine
  against float32 on our queries is 0.988 with plain int8 everywhere, 0.995 with SmoothQuant
  (``a = 0.65``) and 0.999 with the output projections quantized block-wise (docs/speed.md).
  Calibration: :data:`CALIBRATION_TEXTS`.
  Word embeddings are stored as float16 and cast once when the session loads.

Both use ONNX Runtime's fused BERT operators (``EmbedLayerNormalization``,
``MultiHeadAttention``, ``SkipLayerNormalization``, ``BiasGelu``), so a forward pass is about
60 kernels. Inputs are ``input_ids`` and ``attention_mask`` (int32, right-padded).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from assistant.encoders.fast_encoder import ModelFolder

EXPORT_VERSION = 1
OPSET = 17
MS_DOMAIN = "com.microsoft"
SMOOTHING_ALPHA = 0.65
# The feed-forward output projections are quantized block-wise instead (MatMulNBits: 8-bit
# weights and int8 activations per block of 128 input channels): their input, the GELU
# output, carries the outliers that one scale per tensor handles worst. Measured on 763
# queries, minimum cosine against float32: all SmoothQuant int8 0.9953; these six in float32
# 0.9992 (+1.2 ms a query); block-wise 0.9990 (+0.3 ms).
BLOCK_LINEARS = ("down",)
BLOCK_SIZE = 128
INPUTS = ("input_ids", "attention_mask")
OUTPUT = "last_hidden_state"
STATS_PREFIX = "absmax."
LINEARS = ("qkv", "attn_out", "up", "down")
_EPS = 1e-5

# Built-in calibration texts, added to whatever corpus is being indexed so that the int8
# scales never rest on a handful of passages (four short texts alone give cosine 0.91).
# Written for this purpose: questions in clinical and everyday words, abstract sentences with
# numbers and abbreviations, and general text.
CALIBRATION_TEXTS: tuple[str, ...] = (
    "Is exercise therapy effective for chronic low back pain?",
    "does yoga help a bad back",
    "McKenzie method versus motor control exercise for recurrent LBP",
    "should I rest in bed when my back hurts?",
    "walking programme for older adults with sciatica",
    "Pilates",
    "how many weeks until physiotherapy works",
    "core stability exercises after lumbar disc herniation surgery",
    "my lower back hurts when I bend over, what exercises can I do at home",
    "aquatic exercise compared with land-based exercise: pain and disability at 12 months",
    "What does the evidence say about tai chi for back pain in pregnancy?",
    "NSAIDs plus exercise vs exercise alone?",
    "Can strength training prevent back pain from coming back?",
    "graded activity with cognitive behavioural therapy for work disability",
    "In a randomized trial of 240 adults, twelve weeks of supervised exercise reduced pain "
    "intensity (mean difference -1.2 points on a 0-10 scale, 95% CI -1.8 to -0.6) compared "
    "with usual care.",
    "Exercise therapy probably reduces pain slightly in chronic non-specific low back pain; "
    "the certainty of the evidence was moderate (GRADE), with high heterogeneity (I2 = 74%).",
    "Participants (n = 96; 61% women; mean age 44.3 years) were allocated to motor control "
    "exercise, general exercise or spinal manipulative therapy for eight weeks.",
    "The Roland-Morris Disability Questionnaire (RMDQ, 0-24) and the Oswestry Disability "
    "Index were the primary outcomes, measured at 3, 6 and 12 months.",
    "Rats with experimentally induced disc injury that ran on a treadmill showed less "
    "mechanical allodynia and lower TNF-alpha expression in the dorsal root ganglia.",
    "Advice to stay active led to faster recovery and less sick leave than bed rest in acute low back pain.",
    "Red flags such as new bladder or bowel problems, numbness in the groin, fever or a "
    "history of cancer need urgent medical assessment.",
    "No significant differences were found between groups (p = 0.41); adverse events were "
    "minor and mostly transient muscle soreness.",
    "A Cochrane review of 249 trials (24,486 participants) compared exercise with no "
    "treatment, usual care, placebo and other conservative treatments.",
    "Stretching, aerobic conditioning and muscle strengthening were combined in a home "
    "programme with weekly telephone support.",
    "Keep moving: gentle walking and your usual activities help most people get better within a few weeks.",
    "Patients with sub-acute symptoms (6-12 weeks) benefited from a graded return to work.",
    "The meta-analysis pooled standardized mean differences with a random-effects model.",
    "Function improved by 2.5 points on the RMDQ (95% CI 1.1-3.9) at 26 weeks; the effect had faded by 52 weeks.",
    "The weather was cold and windy, so the children stayed inside and played board games.",
    "Ölçüm sonuçları — résumé des données, naïve estimates, µg/kg, ≥ 30 min, β-blockers.",
    "Please explain in simple words: what is a herniated disc and will it heal by itself?",
    "ICD-10 M54.5; BMI 27.4 kg/m2; VAS 6.2 → 3.1; SF-36 physical component +4.8.",
    "Back schools teach posture, lifting techniques and anatomy, usually in group sessions.",
    "The intervention group attended 75% of the sessions; 12 participants were lost to "
    "follow-up and were analysed by intention to treat.",
    "Thank you! And what about swimming?",
    "Low-quality evidence suggests that workplace interventions do not prevent low back pain.",
    # passage-length texts, shaped like indexed passages (a title and keywords, then text)
    "Exercise therapy for chronic low back pain. Keywords: exercise, chronic pain, disability. "
    "Background: low back pain is a leading cause of disability worldwide. Methods: we searched "
    "CENTRAL, MEDLINE, Embase and two trials registers and included randomized controlled trials "
    "of adults with non-specific low back pain lasting 12 weeks or more. Results: exercise "
    "reduced pain compared with no treatment, usual care or placebo (mean difference -15.2 on a "
    "0-100 scale, 95% CI -18.3 to -12.2) and improved functional limitations by 6.8 points. "
    "Conclusions: exercise is probably effective, although effects are small to moderate.",
    "Yoga for low back pain. In this trial, 320 predominantly low-income, racially diverse adults "
    "with chronic back pain were randomized to 12 weekly yoga classes, 15 physical therapy visits "
    "or an education book. Yoga was non-inferior to physical therapy for function (RMDQ) and pain "
    "at 12 weeks, and both were better than education at one year. Adverse events, mostly mild "
    "joint and back pain, occurred in 10% of the yoga and 13% of the physical therapy groups.",
    "Plain-language summary. What did we want to find out? We wanted to know if exercise helps "
    "people whose back has hurt for a long time. What did we find? People who exercised had a "
    "little less pain and could do a bit more of their daily activities than people who did not. "
    "Walking, stretching, Pilates and strengthening all seemed to help about the same. Most side "
    "effects were sore muscles that went away. You should talk to your doctor or physiotherapist "
    "before you start, and stop if the pain gets much worse or spreads down your leg.",
    "Treadmill running in a rat model of lumbar disc herniation. Sprague-Dawley rats (n = 48) "
    "received autologous nucleus pulposus on the L5 nerve root and were assigned to sedentary or "
    "forced treadmill exercise (10 m/min, 30 min/day, 5 days/week) for four weeks. Exercise "
    "reduced mechanical allodynia (von Frey thresholds, p < 0.01) and the expression of IL-1beta, "
    "IL-6 and TNF-alpha in the ipsilateral dorsal root ganglion compared with sedentary animals.",
    "Motor control exercise versus general exercise. Keywords: transversus abdominis, multifidus, "
    "stabilization. Motor control exercise retrains the coordination of the deep trunk muscles "
    "with real-time ultrasound feedback before progressing to functional tasks. Across 29 trials "
    "(n = 2,431), it was slightly better than minimal intervention for pain in the short term, but "
    "no better than other forms of exercise or manual therapy at any follow-up; quality was low.",
)


def linear_keys(num_layers: int) -> list[str]:
    """Names of the linear layers, ``"<layer>.<qkv|attn_out|up|down>"``, in graph order."""
    return [f"{i}.{name}" for i in range(num_layers) for name in LINEARS]


# --------------------------------------------------------------------------- pure math


def smoothing_factors(activation_max: np.ndarray, weight: np.ndarray, alpha: float = SMOOTHING_ALPHA) -> np.ndarray:
    """SmoothQuant factors ``s_j = max|x_j|^alpha / max_n |W_jn|^(1 - alpha)``.

    Args:
        activation_max: ``(in,)`` largest absolute value of each input channel.
        weight: ``(in, out)`` weight of ``y = x @ weight``.
        alpha: migration strength (0: none; 1: all of the activation range into the weight).

    Returns:
        ``(in,)`` float32; ``(x / s) @ (s[:, None] * weight) == x @ weight``.
    """
    a = np.maximum(np.asarray(activation_max, dtype=np.float64), _EPS)
    w = np.maximum(np.abs(np.asarray(weight, dtype=np.float64)).max(axis=1), _EPS)
    return (a**alpha / w ** (1.0 - alpha)).astype(np.float32)


def quantize_blocks(weight: np.ndarray, block: int = BLOCK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric 8-bit quantization of an ``(in, out)`` weight in blocks of ``block`` input
    channels, in ``MatMulNBits`` layout.

    Returns:
        ``(q, scale)``: uint8 ``(out, in / block, block)`` holding ``round(w / scale) + 128``
        (MatMulNBits' default zero point for 8 bits) and float32 ``(out * in / block,)``, so
        that ``weight[k, n] ~= (q[n, k // block, k % block] - 128) * scale[n * in / block + k // block]``.
    """
    w = np.asarray(weight, dtype=np.float32)
    n_in, n_out = w.shape
    if n_in % block:
        raise ValueError(f"{n_in} input channels are not a multiple of the block size {block}")
    blocks = np.ascontiguousarray(w.T).reshape(n_out, n_in // block, block)
    scale = np.abs(blocks).max(axis=2) / np.float32(127.0)
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(blocks / scale[:, :, None]), -127, 127).astype(np.int16) + 128
    return q.astype(np.uint8), scale.reshape(-1).astype(np.float32)


def quantize_columns(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 quantization of each output column of an ``(in, out)`` weight.

    Returns:
        ``(q, scale)``: int8 ``(in, out)`` in [-127, 127] and float32 ``(out,)`` with
        ``weight ~= q * scale``.
    """
    w = np.asarray(weight, dtype=np.float32)
    scale = np.abs(w).max(axis=0) / np.float32(127.0)
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


# --------------------------------------------------------------------------- graphs


class _Graph:
    """Accumulates nodes and initializers of one ONNX graph."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper = helper
        self.numpy_helper = numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.outputs: list[Any] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, *, ms: bool = False, **attrs: Any) -> str:
        domain = MS_DOMAIN if ms else ""
        self.nodes.append(self.helper.make_node(op, inputs, [output], name=output, domain=domain, **attrs))
        return output

    def model(self, hidden: int, metadata: Mapping[str, str]) -> Any:
        from onnx import TensorProto

        h = self.helper
        graph = h.make_graph(
            self.nodes,
            "sentence_encoder",
            [h.make_tensor_value_info(name, TensorProto.INT32, ["batch", "sequence"]) for name in INPUTS],
            [h.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", "sequence", hidden]), *self.outputs],
            self.initializers,
        )
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET), h.make_opsetid(MS_DOMAIN, 1)])
        model.ir_version = 8
        model.producer_name = "lbp-assistant"
        h.set_model_props(model, {"lbp.export_version": str(EXPORT_VERSION), **metadata})
        return model


Linear = Callable[[_Graph, str, str, np.ndarray], str]
"""Adds ``x @ weight`` (weight ``(in, out)``, no bias) to a graph; returns the output name."""


def _weights_getter(weights: Mapping[str, np.ndarray]) -> Callable[[str], np.ndarray]:
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""

    def get(name: str) -> np.ndarray:
        key = prefix + name
        if key not in weights:
            raise KeyError(f"weight {key!r} missing from the safetensors file")
        return np.asarray(weights[key], dtype=np.float32)

    return get


def _bert(
    folder: ModelFolder,
    weights: Mapping[str, np.ndarray],
    linear: Linear,
    *,
    fp16_embeddings: bool = False,
    tap: Callable[[_Graph, str, str], None] | None = None,
    fold_attn_out: Callable[[str, np.ndarray], np.ndarray] | None = None,
) -> _Graph:
    """The BERT encoder as fused ONNX Runtime operators, with ``linear`` for every projection.

    ``tap(graph, key, x)`` sees the input ``x`` of each linear layer ``key``;
    ``fold_attn_out(key, w)`` returns per-channel divisors folded into the value projection
    (so the attention output's input channels arrive pre-divided), or ones.
    """
    config = folder.config
    get = _weights_getter(weights)
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    eps = float(config.get("layer_norm_eps", 1e-12))
    g = _Graph()
    words = get("embeddings.word_embeddings.weight")
    if fp16_embeddings:  # cast once: ONNX Runtime folds the Cast of an initializer at load
        words_name = g.node(
            "Cast", [g.const("word_embeddings_fp16", words.astype(np.float16))], "word_embeddings", to=1
        )
    else:
        words_name = g.const("word_embeddings", words)
    positions = get("embeddings.position_embeddings.weight") + get("embeddings.token_type_embeddings.weight")[0]
    g.nodes.append(
        g.helper.make_node(
            "EmbedLayerNormalization",
            [
                "input_ids",
                "",
                words_name,
                g.const("position_type_embeddings", positions),
                "",
                g.const("embeddings.norm.gamma", get("embeddings.LayerNorm.weight")),
                g.const("embeddings.norm.beta", get("embeddings.LayerNorm.bias")),
                "attention_mask",
            ],
            ["embeddings", "lengths"],
            name="embeddings",
            domain=MS_DOMAIN,
            epsilon=eps,
        )
    )
    x = "embeddings"
    layers = int(config["num_hidden_layers"])
    split = g.const("qkv_split", np.array([hidden, hidden, hidden], dtype=np.int64))
    for i in range(layers):
        p = f"encoder.layer.{i}."
        n = f"layer{i}."
        qkv_w = np.concatenate([get(p + f"attention.self.{k}.weight") for k in ("query", "key", "value")])
        qkv_b = np.concatenate([get(p + f"attention.self.{k}.bias") for k in ("query", "key", "value")])
        attn_out_w = get(p + "attention.output.dense.weight").T
        if fold_attn_out is not None:
            divisor = fold_attn_out(f"{i}.attn_out", attn_out_w)
            qkv_w[2 * hidden :] /= divisor[:, None]
            qkv_b[2 * hidden :] /= divisor
        if tap is not None:
            tap(g, f"{i}.qkv", x)
        qkv = linear(g, f"{i}.qkv", x, qkv_w.T)
        g.nodes.append(g.helper.make_node("Split", [qkv, split], [n + "q", n + "k", n + "v"], name=n + "split", axis=2))
        context = g.node(
            "MultiHeadAttention",
            [n + "q", n + "k", n + "v", g.const(n + "qkv.bias", qkv_b), "lengths"],
            n + "context",
            ms=True,
            num_heads=heads,
        )
        if tap is not None:
            tap(g, f"{i}.attn_out", context)
        attn = linear(g, f"{i}.attn_out", context, attn_out_w)
        attn = g.node(
            "SkipLayerNormalization",
            [
                attn,
                x,
                g.const(n + "attn_norm.gamma", get(p + "attention.output.LayerNorm.weight")),
                g.const(n + "attn_norm.beta", get(p + "attention.output.LayerNorm.bias")),
                g.const(n + "attn_out.bias", get(p + "attention.output.dense.bias")),
            ],
            n + "attn_norm",
            ms=True,
            epsilon=eps,
        )
        if tap is not None:
            tap(g, f"{i}.up", attn)
        up = linear(g, f"{i}.up", attn, get(p + "intermediate.dense.weight").T)
        act = g.node("BiasGelu", [up, g.const(n + "up.bias", get(p + "intermediate.dense.bias"))], n + "gelu", ms=True)
        if tap is not None:
            tap(g, f"{i}.down", act)
        down = linear(g, f"{i}.down", act, get(p + "output.dense.weight").T)
        x = g.node(
            "SkipLayerNormalization",
            [
                down,
                attn,
                g.const(n + "out_norm.gamma", get(p + "output.LayerNorm.weight")),
                g.const(n + "out_norm.beta", get(p + "output.LayerNorm.bias")),
                g.const(n + "down.bias", get(p + "output.dense.bias")),
            ],
            OUTPUT if i == layers - 1 else n + "out_norm",
            ms=True,
            epsilon=eps,
        )
    return g


def _fp32_linear(g: _Graph, key: str, x: str, weight: np.ndarray) -> str:
    return g.node("MatMul", [x, g.const(key + ".weight", weight.astype(np.float32))], key + ".matmul")


def fp32_graph(folder: ModelFolder, weights: Mapping[str, np.ndarray], *, calibration_outputs: bool = False) -> Any:
    """The float32 graph (an ``onnx.ModelProto``).

    Args:
        folder: the model folder (architecture, eps, heads).
        weights: its safetensors tensors (``safetensors.numpy.load_file``).
        calibration_outputs: also output ``absmax.<layer>.<linear>``, the per-channel maximum
            absolute input of every linear layer over the batch's real tokens.
    """
    from onnx import TensorProto

    tap = None
    if calibration_outputs:
        state: dict[str, str] = {}

        def tap(g: _Graph, key: str, x: str) -> None:
            if "mask" not in state:
                mask = g.node("Cast", ["attention_mask"], "stats.mask", to=TensorProto.FLOAT)
                axis = g.const("stats.axis", np.array([2], dtype=np.int64))
                state["mask"] = g.node("Unsqueeze", [mask, axis], "stats.mask3")
            masked = g.node("Mul", [x, state["mask"]], f"stats.{key}.masked")
            absolute = g.node("Abs", [masked], f"stats.{key}.abs")
            out = g.node("ReduceMax", [absolute], STATS_PREFIX + key, axes=[0, 1], keepdims=0)
            g.outputs.append(g.helper.make_tensor_value_info(out, TensorProto.FLOAT, [None]))

    g = _bert(folder, weights, _fp32_linear, tap=tap)
    return g.model(folder.hidden_size, {"lbp.variant": "fp32"})


def int8_graph(
    folder: ModelFolder,
    weights: Mapping[str, np.ndarray],
    activation_max: Mapping[str, np.ndarray],
    alpha: float = SMOOTHING_ALPHA,
    block_linears: tuple[str, ...] = BLOCK_LINEARS,
) -> Any:
    """The int8 query graph (an ``onnx.ModelProto``).

    Args:
        folder: the model folder.
        weights: its safetensors tensors.
        activation_max: ``{"<layer>.<linear>": (in,) max |input|}`` for every SmoothQuant
            linear layer (see :func:`fp32_graph` ``calibration_outputs``).
        alpha: SmoothQuant migration strength.
        block_linears: kinds of linear layer (of :data:`LINEARS`) quantized block-wise
            (``MatMulNBits``) instead of with SmoothQuant; float32 if their input width is not
            a multiple of :data:`BLOCK_SIZE`.

    Raises:
        KeyError: a SmoothQuant linear layer has no calibration statistics.
    """
    keys = linear_keys(int(folder.config["num_hidden_layers"]))
    smoothed = [k for k in keys if k.split(".")[1] not in block_linears]
    missing = [k for k in smoothed if k not in activation_max]
    if missing:
        raise KeyError(f"no calibration statistics for {missing[:3]}")

    def factors(key: str, weight: np.ndarray) -> np.ndarray:
        if key not in smoothed:
            return np.ones(weight.shape[0], dtype=np.float32)
        return smoothing_factors(activation_max[key], weight, alpha)

    def linear(g: _Graph, key: str, x: str, weight: np.ndarray) -> str:
        if key not in smoothed:
            if weight.shape[0] % BLOCK_SIZE:
                return _fp32_linear(g, key, x, weight)
            q, scale = quantize_blocks(weight, BLOCK_SIZE)
            inputs = [x, g.const(key + ".weight_uint8", q), g.const(key + ".scale", scale)]
            n_in, n_out = weight.shape
            attrs = {"K": n_in, "N": n_out, "bits": 8, "block_size": BLOCK_SIZE, "accuracy_level": 4}
            return g.node("MatMulNBits", inputs, key + ".matmul", ms=True, **attrs)
        s = factors(key, weight)
        if not key.endswith(".attn_out"):  # attn_out's divisor is folded into the value projection
            x = g.node("Mul", [x, g.const(key + ".smooth", (1.0 / s).astype(np.float32))], key + ".smoothed")
        q, scale = quantize_columns(weight * s[:, None])
        zero = np.zeros(q.shape[1], dtype=np.int8)
        inputs = [x, g.const(key + ".weight_int8", q), g.const(key + ".scale", scale), g.const(key + ".zero", zero)]
        return g.node("DynamicQuantizeMatMul", inputs, key + ".matmul", ms=True)

    g = _bert(folder, weights, linear, fp16_embeddings=True, fold_attn_out=factors)
    metadata = {
        "lbp.variant": "int8-smoothquant",
        "lbp.smoothquant_alpha": str(alpha),
        "lbp.block_linears": ",".join(block_linears),
    }
    return g.model(folder.hidden_size, metadata)


def serialize(model: Any) -> bytes:
    """The model as bytes (what ``InferenceSession`` and the index file take)."""
    data: bytes = model.SerializeToString()
    return data
