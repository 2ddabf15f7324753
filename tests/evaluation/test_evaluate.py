"""Tests for assistant/evaluation/ (evaluate.py, metrics.py, report.py): metrics through ranx, significance, reports, the eval CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.evaluation.beir import read_trec_run
from assistant.evaluation.evaluate import corpus_cache_key, load_eval_dataset
from assistant.evaluation.metrics import compare_runs, evaluate_runs, mean_scores, metric_names, per_query_scores
from assistant.evaluation.report import plot_report, report_markdown

TINY = Path(__file__).parents[1] / "fixtures" / "tiny-beir"
METRICS = metric_names(10)

# Two queries with graded judgements and a run of three hits each:
#   q1 relevant {d1: 1, d3: 1}; ranked d1, d2, d3 -> gains 1, 0, 1
#   q2 relevant {d2: 2, d5: 1}; ranked d4, d5, d2 -> gains 0, 1, 2
QRELS = {"q1": {"d1": 1, "d3": 1}, "q2": {"d2": 2, "d5": 1}}
RUN = {"q1": {"d1": 0.9, "d2": 0.8, "d3": 0.7}, "q2": {"d4": 0.9, "d5": 0.8, "d2": 0.7}}


def test_metric_names() -> None:
    assert metric_names(10) == ["ndcg@10", "recall@1", "recall@5", "recall@10", "recall@100", "mrr@10", "map@100"]
    assert metric_names(5) == ["ndcg@5", "recall@1", "recall@5", "recall@100", "mrr@5", "map@100"]


def test_per_query_scores_match_hand_computed_values() -> None:
    scores = per_query_scores(QRELS, RUN, METRICS)
    # q1: DCG = 1/log2(2) + 1/log2(4) = 1.5; ideal DCG = 1 + 1/log2(3).
    assert scores["q1"]["ndcg@10"] == pytest.approx(1.5 / (1 + 1 / math.log2(3)))  # 0.9197
    assert scores["q1"]["recall@1"] == 0.5
    assert scores["q1"]["recall@5"] == 1.0
    assert scores["q1"]["mrr@10"] == 1.0
    assert scores["q1"]["map@100"] == pytest.approx((1 / 1 + 2 / 3) / 2)  # 0.8333
    # q2 (linear gains, as trec_eval): DCG = 1/log2(3) + 2/log2(4); ideal = 2/log2(2) + 1/log2(3).
    assert scores["q2"]["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1) / (2 + 1 / math.log2(3)))  # 0.6199
    assert scores["q2"]["recall@1"] == 0.0
    assert scores["q2"]["recall@5"] == 1.0
    assert scores["q2"]["mrr@10"] == 0.5
    assert scores["q2"]["map@100"] == pytest.approx((1 / 2 + 2 / 3) / 2)  # 0.5833
    means = mean_scores(scores, METRICS)
    assert means["ndcg@10"] == pytest.approx((0.919721 + 0.619905) / 2, abs=1e-6)  # 0.7698
    assert means["mrr@10"] == 0.75
    assert means["recall@1"] == 0.25


def test_a_query_id_equal_to_a_relevant_doc_id_is_still_scored() -> None:
    # Some evaluators drop hits whose doc id equals the query id; ours must not.
    scores = per_query_scores({"ref-3": {"ref-3": 1}}, {"ref-3": {"ref-3": 2.0, "topic": 1.0}}, METRICS)
    assert scores["ref-3"] == dict.fromkeys(METRICS, 1.0)


def test_ties_are_broken_by_doc_id_like_the_trec_files() -> None:
    # b and a tie; doc id order puts a (relevant) first, so MRR is 1, not 1/2.
    scores = per_query_scores({"q": {"a": 1}}, {"q": {"b": 0.5, "a": 0.5}}, ["mrr@10"])
    assert scores["q"]["mrr@10"] == 1.0


def test_missing_and_unjudged_queries() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 0}}  # q3 has no relevant document
    scores = per_query_scores(qrels, {"q1": {"d1": 1.0}, "q9": {"d1": 1.0}}, ["ndcg@10"])
    assert scores == {"q1": {"ndcg@10": 1.0}, "q2": {"ndcg@10": 0.0}}  # q2 had no hits; q9 unjudged
    assert per_query_scores(qrels, {}, ["ndcg@10"]) == {"q1": {"ndcg@10": 0.0}, "q2": {"ndcg@10": 0.0}}


def test_only_the_top_k_counts() -> None:
    run = {"q": {f"d{i:02d}": 1.0 - i / 100 for i in range(20)}}  # d00 best ... d19 worst
    scores = per_query_scores({"q": {"d10": 1}}, run, ["ndcg@10", "recall@10", "recall@100", "mrr@10"])
    assert scores["q"] == {"ndcg@10": 0.0, "recall@10": 0.0, "recall@100": 1.0, "mrr@10": 0.0}


def test_paired_t_test_matches_the_closed_form() -> None:
    # Recall@1 per query: a = [1, 1, 0], b = [0, 0, 0]; differences [1, 1, 0] have mean 2/3 and
    # standard deviation sqrt(1/3), so t = (2/3) / (sqrt(1/3) / sqrt(3)) = 2 with 2 degrees of
    # freedom, and the two-sided p-value for df = 2 is 1 - t / sqrt(t^2 + 2) = 1 - 2/sqrt(6).
    qrels = {"q1": {"x": 1}, "q2": {"y": 1}, "q3": {"z": 1}}
    a = {"q1": {"x": 2.0, "n": 1.0}, "q2": {"y": 2.0, "n": 1.0}, "q3": {"n": 2.0, "z": 1.0}}
    b = {"q1": {"n": 2.0, "x": 1.0}, "q2": {"n": 2.0, "y": 1.0}, "q3": {"n": 2.0, "z": 1.0}}
    rows = compare_runs(qrels, {"a": a, "b": b}, ["recall@1", "recall@5"], stat_test="student")
    r1 = next(r for r in rows if r["metric"] == "recall@1")
    assert r1["p_value"] == pytest.approx(1 - 2 / math.sqrt(6))  # 0.1835
    assert r1["significant"] is False
    assert (r1["mean_a"], r1["mean_b"]) == (pytest.approx(2 / 3), 0.0)
    assert (r1["wins_a"], r1["ties"], r1["wins_b"]) == (2, 1, 0)
    # Identical per-query scores: the t statistic is undefined, reported as None.
    r5 = next(r for r in rows if r["metric"] == "recall@5")
    assert r5["p_value"] is None
    assert r5["significant"] is False


def test_fisher_randomization_test() -> None:
    qrels = {f"q{i}": {"rel": 1} for i in range(12)}
    good = {q: {"rel": 2.0, "other": 1.0} for q in qrels}
    bad = {q: {"other": 2.0, "rel": 1.0} for q in qrels}
    (row,) = compare_runs(qrels, {"good": good, "bad": bad}, ["mrr@10"], stat_test="fisher", max_p=0.05)
    # Every query favours "good" (1 vs 1/2): only the identity and the full swap of the 2^12
    # sign assignments are as extreme, so p is about 2/4096, well below 0.05.
    assert row["p_value"] < 0.01
    assert row["significant"] is True
    assert row["wins_a"] == 12


def test_evaluate_runs_breaks_down_by_phrasing() -> None:
    metadata = {
        "q1": {"text": "motor control exercise", "metadata": {"phrasing": "clinician"}},
        "q2": {"text": "does walking help my back?", "metadata": {"phrasing": "patient"}},
    }
    perfect = {"q1": {"d1": 1.0, "d3": 0.9}, "q2": {"d2": 1.0, "d5": 0.9}}
    report = evaluate_runs(QRELS, {"ours": RUN, "perfect": perfect}, METRICS, metadata)
    assert report["n_queries"] == 2
    ours = report["retrievers"]["ours"]
    assert ours["by_phrasing"]["clinician"]["n"] == 1
    assert ours["by_phrasing"]["clinician"]["mean"]["map@100"] == pytest.approx(5 / 6)
    assert ours["by_phrasing"]["patient"]["mean"]["mrr@10"] == 0.5
    assert report["retrievers"]["perfect"]["mean"]["ndcg@10"] == 1.0
    row = report["per_query"]["q2"]
    assert row["phrasing"] == "patient"
    assert row["relevant"] == ["d2", "d5"]
    assert row["top"]["ours"] == ["d4", "d5", "d2"]
    assert row["scores"]["ours"]["mrr@10"] == 0.5
    assert len(report["comparisons"]) == len(METRICS)  # one pair
    json.dumps(report)  # plain JSON types only

    markdown = report_markdown(report)
    assert "| ours | 0.770 | 0.250 | 1.000 |" in markdown
    assert "| ours | clinician | 1 | 0.920 |" in markdown
    assert "| ours vs perfect |" in markdown


def test_no_breakdown_without_the_metadata_field() -> None:
    report = evaluate_runs(QRELS, {"ours": RUN}, METRICS)
    assert "by_phrasing" not in report["retrievers"]["ours"]
    assert report["comparisons"] == []
    assert "By query phrasing" not in report_markdown(report)


def test_plot_report_writes_a_png(tmp_path: Path) -> None:
    metadata = {"q1": {"metadata": {"phrasing": "clinician"}}, "q2": {"metadata": {"phrasing": "patient"}}}
    report = evaluate_runs(QRELS, {"bm25": RUN, "dense": RUN}, METRICS, metadata)
    path = plot_report(report, tmp_path / "plots" / "report.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


def test_load_eval_dataset_reads_the_tiny_fixture() -> None:
    ds = load_eval_dataset(TINY, "test")
    assert ds.name == "tiny-beir"
    assert list(ds.queries) == ["q1", "q2", "q3", "q4"]
    assert ds.qrels["q3"] == {"acute": 2, "walking": 1}
    assert ds.query_metadata["q3"]["metadata"]["phrasing"] == "patient"
    assert ds.corpus_file == TINY / "corpus.jsonl"
    with pytest.raises(FileNotFoundError, match=r"dev\.tsv"):
        load_eval_dataset(TINY, "dev")


def test_cache_key_follows_corpus_bytes_and_build_settings(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "a", "text": "walking"}\n')
    settings = Settings()
    key = corpus_cache_key(corpus, settings)
    assert key == corpus_cache_key(corpus, Settings(fusion="convex"))  # search-time setting
    assert key != corpus_cache_key(corpus, settings.with_(chunk_tokens=96))
    corpus.write_text('{"_id": "a", "text": "walking!"}\n')
    assert key != corpus_cache_key(corpus, settings)


@pytest.mark.slow
def test_eval_cli_end_to_end_on_the_tiny_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real pipeline: index the fixture with the packaged model, run the three retrievers."""
    from assistant.cli import main

    out = tmp_path / "out"
    argv = ["eval", "--dataset", str(TINY), "--cache-dir", str(tmp_path / "cache"), "--output", str(out / "r.json"),
            "--markdown", str(out / "r.md"), "--plot", str(out / "r.png"), "--runs-dir", str(out / "runs")]  # fmt: skip
    assert main(argv) == 0
    assert "### tiny-beir (test): 4 queries, 8 documents" in capsys.readouterr().out
    report = json.loads((out / "r.json").read_text())
    assert list(report["retrievers"]) == ["bm25", "dense", "hybrid"]
    for name in ("bm25", "dense", "hybrid"):
        assert set(report["retrievers"][name]["by_phrasing"]) == {"clinician", "patient"}
        # The corpus has 8 documents and dense ranks all of them: everything is found by 10.
        assert report["retrievers"][name]["mean"]["recall@100"] == 1.0
        # q4's relevant document is also called "q4" and must still count.
        assert report["per_query"]["q4"]["scores"][name]["recall@100"] == 1.0
        run = read_trec_run(out / "runs" / f"tiny-beir-test-{name}.trec")
        assert set(run) == {"q1", "q2", "q3", "q4"}
    assert report["retrievers"]["dense"]["mean"]["recall@10"] == 1.0
    # The distinctive clinician query is answered at rank 1 by BM25.
    assert report["per_query"]["q1"]["top"]["bm25"][0] == "motor-control"
    assert (out / "r.md").read_text().startswith("### tiny-beir")
    assert (out / "r.png").stat().st_size > 10_000
    # The index was cached under <cache>/<hash>; a second run reuses it without rebuilding.
    (cached,) = [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]  # not the lock file
    stamp = (cached / "manifest.json").stat().st_mtime_ns
    assert main([*argv[:5], "--retrievers", "bm25"]) == 0
    assert (cached / "manifest.json").stat().st_mtime_ns == stamp
