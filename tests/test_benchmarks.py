"""Smoke tests of benchmarks/: the cheap parts run end to end and the JSON has its shape.

No timing assertions: the figures depend on the machine and its load.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import ann, report, workloads  # noqa: E402
from benchmarks.common import ChildRun, run_child, summarize_ms  # noqa: E402


def test_summarize_ms_reports_milliseconds_percentiles() -> None:
    s = summarize_ms([0.001 * i for i in range(1, 101)])  # 1 .. 100 ms
    assert s["n"] == 100
    assert s["p50_ms"] == pytest.approx(50.5)
    assert s["p95_ms"] == pytest.approx(95.05)
    assert s["mean_ms"] == pytest.approx(50.5)
    assert summarize_ms([]) == {"n": 0}


def test_recall_at_k_counts_shared_ids() -> None:
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 3, 9, 9], [5, 6, 7, 8]])
    assert ann.recall_at_k(found, truth, k=4) == pytest.approx((2 + 4) / 8)


def test_clustered_vectors_are_normalized_and_reproducible() -> None:
    a = ann.clustered_vectors(500, dim=32, seed=0, clusters=8, latent=8)
    b = ann.clustered_vectors(500, dim=32, seed=0, clusters=8, latent=8)
    q = ann.clustered_vectors(10, dim=32, seed=1, clusters=8, latent=8)
    assert a.dtype == np.float32 and a.shape == (500, 32)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a, b)
    assert not np.array_equal(a[:10], q)
    # clustered: a point's nearest neighbour is far closer than a random pair
    sims = a[:50] @ a.T
    np.fill_diagonal(sims[:, :50], -1)
    assert sims.max(axis=1).mean() > (a[:50] @ a[50:100].T).mean() + 0.3


def test_best_point_is_the_fastest_above_the_recall() -> None:
    curve = [
        {"nprobe": 4, "recall_at_10": 0.90, "p50_ms": 0.1},
        {"nprobe": 8, "recall_at_10": 0.96, "p50_ms": 0.3},
        {"nprobe": 16, "recall_at_10": 0.99, "p50_ms": 0.5},
    ]
    assert ann.best_point(curve)["nprobe"] == 8
    assert ann.best_point(curve, recall=0.999) is None


def test_question_set_makes_distinct_variants() -> None:
    base = [{"text": "Is yoga good for back pain?", "mode": "patient", "kind": "x"}]
    qs = workloads.question_set(base, 3)
    assert [q["text"] for q in qs] == [
        "Is yoga good for back pain?",
        "Please tell me: Is yoga good for back pain?",
        "Is yoga good for back pain? What does the evidence say?",
    ]
    assert all(q["mode"] == "patient" for q in qs)
    # variant by variant, so a limit keeps every base question before repeating any
    two = [*base, {"text": "Does Pilates help?", "mode": "clinician", "kind": "y"}]
    assert [q["text"] for q in workloads.question_set(two, 2, limit=3)] == [
        "Is yoga good for back pain?",
        "Does Pilates help?",
        "Please tell me: Is yoga good for back pain?",
    ]
    assert len(workloads.lbp_questions()) >= 100


def test_targets_compare_against_the_limits() -> None:
    results = {
        "warm": {
            "lbp": {
                "ours": {"ask_uncached": {"p50_ms": 16.0, "p95_ms": 20.0}, "search_uncached": {"p50_ms": 4.0}},
                "peer": {"search": {"p50_ms": 20.0}, "search_torch_1_thread": {"p50_ms": 10.0}},
            }
        },
        "build": {
            "lbp": {
                "ours": {"passages_per_s": 15.0, "tokens_per_s": 30.0},
                "peer": {"passages_per_s": 20.0, "tokens_per_s": 20.0},
            }
        },
    }
    by_name = {t["target"]: t for t in report.targets(results)}
    assert by_name["warm ask p50 ms, LBP (uncached query embedding)"]["met"] is False  # over 15 ms
    assert by_name["warm ask p50 ms, LBP (uncached query embedding)"]["limit"] == 15
    assert by_name["warm ask p95 ms, LBP (uncached query embedding)"]["met"] is True
    # against the peer's faster configuration: 4 / 10
    assert by_name["search p50 / peer's best search p50, lbp"]["value"] == pytest.approx(0.4)
    # builds compare tokens encoded per second (our LBP build also embeds sentences)
    assert by_name["build tokens encoded/s / peer's, lbp"]["value"] == pytest.approx(1.5)
    assert by_name["build tokens encoded/s / peer's, lbp"]["met"] is True
    assert not any(t["part"] == "cold" for t in report.targets(results))  # cold did not run


def test_run_child_reads_result_and_peak_memory() -> None:
    code = "from benchmarks.common import emit; import time; time.sleep(0.05); emit({'x': 1})"
    run = run_child([sys.executable, "-c", code])
    assert isinstance(run, ChildRun)
    assert run.check().result() == {"x": 1}
    assert run.first_output_s is not None and 0 < run.first_output_s <= run.wall_s
    assert run.peak_rss_mb > 1


def test_quick_ann_run_writes_json_and_table(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    md = tmp_path / "report.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "run.py"),
            "--quick",
            "--only",
            "ann",
            "--ann-sizes",
            "3000",
            "--ann-queries",
            "20",
            "--output",
            str(out),
            "--markdown",
            str(md),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["meta"]["parts"] == ["ann"]
    assert data["meta"]["machine"]["cores"] >= 1
    result = data["ann"]["3000"]
    assert result["n"] == 3000 and result["dim"] == 384
    assert set(result) >= {"data", "exact", "hnsw", "ivf", "peak_rss_mb"}
    for method, knob in (("hnsw", "ef_search"), ("ivf", "nprobe")):
        curve = result[method]["curve"]
        assert curve and all(0.0 <= p["recall_at_10"] <= 1.0 and p["p50_ms"] > 0 for p in curve)
        assert [p[knob] for p in curve] == sorted(p[knob] for p in curve)
        assert curve[-1]["recall_at_10"] >= curve[0]["recall_at_10"] - 0.05
    assert result["hnsw"]["M"] == 32
    assert "| index | build s |" in md.read_text()
    assert "recall@10" in proc.stdout


def test_unknown_part_is_refused() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--only", "nope"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "unknown part" in proc.stderr


def test_matmul_gflops_measures_a_positive_rate() -> None:
    from benchmarks.child import matmul_gflops

    rate = matmul_gflops(n=128, seconds=0.05)
    assert rate["repeats"] >= 3
    assert 0 < rate["median"] <= rate["best"]


def test_warm_ours_child_on_the_session_index(lbp_index_dir: Path, tmp_path: Path) -> None:
    questions = tmp_path / "q.json"
    ask = [{"text": "Is walking good for back pain?", "mode": "patient", "kind": "in_scope"}]
    search = [{"text": "bed rest or staying active", "mode": "clinician", "kind": "in_scope"}]
    questions.write_text(json.dumps({"ask": ask, "search": search}))
    run = run_child(
        [
            sys.executable,
            "-m",
            "benchmarks.child",
            "warm-ours",
            "--index",
            str(lbp_index_dir),
            "--corpus",
            str(REPO / "corpus"),
            "--questions",
            str(questions),
        ],
        timeout=600,
    )
    result = run.check().result()
    for key in ("ask_uncached", "ask_cached", "search_uncached", "search_cached"):
        assert result[key]["n"] == 1 and result[key]["p50_ms"] > 0
    assert set(result["ask_uncached_by_kind"]) == {"in_scope"}
