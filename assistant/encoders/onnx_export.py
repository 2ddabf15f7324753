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

Why not ``torch.onnx.export`` + ``onnxruntime.transformers.optimizer`` +
``onnxruntime.quantization``: measured side by side (``benchmarks/onnx_library_route.py``,
docs/speed.md), no library int8 graph keeps both the query latency (within 10%) and the
cosine (>= 0.999): dynamic int8 is 0.77x the time but 0.987 minimum cosine and up to 0.010
lower nDCG@10; 8-bit blocks everywhere keep 0.9993 but take 1.56x; static calibration falls
to 0.886. Float32 ties. This writer stays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from assistant.encoders.model_folder import ModelFolder
from assistant.encoders.quantization import (
    BLOCK_LINEARS,
    BLOCK_SIZE,
    SMOOTHING_ALPHA,
    quantize_blocks,
    quantize_columns,
    smoothing_factors,
)

EXPORT_VERSION = 1
OPSET = 17
MS_DOMAIN = "com.microsoft"
INPUTS = ("input_ids", "attention_mask")
OUTPUT = "last_hidden_state"
STATS_PREFIX = "absmax."
LINEARS = ("qkv", "attn_out", "up", "down")


def linear_keys(num_layers: int) -> list[str]:
    """Names of the linear layers, ``"<layer>.<qkv|attn_out|up|down>"``, in graph order."""
    return [f"{i}.{name}" for i in range(num_layers) for name in LINEARS]


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
