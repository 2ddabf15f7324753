"""The int8 query graph's quantization: SmoothQuant factors, symmetric int8 weights per output
column, 8-bit weights in blocks for ``MatMulNBits``, and the built-in calibration texts.

Pure numpy; :mod:`.onnx_export` builds the graphs with it. Why these choices, measured
against float32 on our queries: :mod:`.onnx_export` and docs/speed.md.
"""

from __future__ import annotations

import numpy as np

SMOOTHING_ALPHA = 0.65
# The feed-forward output projections are quantized block-wise instead (MatMulNBits: 8-bit
# weights and int8 activations per block of 128 input channels): their input, the GELU
# output, carries the outliers that one scale per tensor handles worst. Measured on 763
# queries, minimum cosine against float32: all SmoothQuant int8 0.9953; these six in float32
# 0.9992 (+1.2 ms a query); block-wise 0.9990 (+0.3 ms).
BLOCK_LINEARS = ("down",)
BLOCK_SIZE = 128
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
