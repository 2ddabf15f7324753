"""The command line, run as a user runs it: ``python -m assistant ...`` in a subprocess."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run(*args: str, index: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if index is not None:
        env["LBP_INDEX"] = str(index)
    proc = subprocess.run(
        [sys.executable, "-m", "assistant", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=600
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_ask_prints_answer_then_references(lbp_index_dir: Path) -> None:
    out = run("ask", "Is yoga effective for chronic back pain?", index=lbp_index_dir).stdout
    answer, _, refs = out.partition("\nReferences\n")
    assert "[32]" in answer
    assert refs.startswith("32. Wieland LS") or "\n32. Wieland LS" in refs


def test_ask_json_contract_and_history(lbp_index_dir: Path, tmp_path: Path) -> None:
    history = tmp_path / "history.json"
    history.write_text(json.dumps([{"role": "user", "content": "Is yoga effective for chronic back pain?"},
                                   {"role": "assistant", "content": "Yoga may help [32]."}]))  # fmt: skip
    out = run(
        "ask", "And Pilates?", "--history", str(history), "--json", "--mode", "patient", index=lbp_index_dir
    ).stdout
    data = json.loads(out)
    assert set(data) >= {"answer", "citations", "abstained", "red_flag", "mode", "query"}
    assert data["mode"] == "patient" and "Pilates" in data["query"]
    assert {c["n"] for c in data["citations"]} & {30, 31}
    assert all(c["passage"] and c["doc_id"] == f"ref-{c['n']}" for c in data["citations"])


def test_ask_bad_input_gives_clear_errors(lbp_index_dir: Path, tmp_path: Path) -> None:
    bad = run("ask", "Is yoga good?", "--mode", "doctor", index=lbp_index_dir, check=False)
    assert bad.returncode == 2 and "unsupported mode" in bad.stderr and "Traceback" not in bad.stderr
    broken = tmp_path / "h.json"
    broken.write_text('[{"role": "user",\n oops}]')
    bad = run("ask", "And Pilates?", "--history", str(broken), index=lbp_index_dir, check=False)
    assert bad.returncode == 2 and f"{broken}:2" in bad.stderr
    empty = run("ask", "   ", "--json", index=lbp_index_dir)
    assert json.loads(empty.stdout)["abstained"] is True


def test_search_json_and_filters(lbp_index_dir: Path) -> None:
    out = run(
        "search",
        "exercise reduces neuropathic pain",
        "--k",
        "5",
        "--json",
        "--filter",
        "species=human",
        index=lbp_index_dir,
    ).stdout
    hits = json.loads(out)
    assert len(hits) == 5 and all(h["metadata"]["species"] == "human" for h in hits)
    assert {"doc_id", "passage_id", "score", "text", "metadata"} <= set(hits[0])
    bad = run("search", "x", "--filter", "species", index=lbp_index_dir, check=False)
    assert bad.returncode == 2 and "key=value" in bad.stderr


def test_retrieve_writes_a_trec_run(lbp_index_dir: Path, tmp_path: Path) -> None:
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        '{"_id": "q1", "text": "bed rest or staying active for acute back pain"}\n{"_id": "q2", "text": "Pilates"}\n'
    )
    run_file = tmp_path / "run.trec"
    run(
        "retrieve",
        "--queries",
        str(queries),
        "--output",
        str(run_file),
        "--k",
        "10",
        "--retriever",
        "bm25",
        index=lbp_index_dir,
    )
    lines = [line.split() for line in run_file.read_text().splitlines()]
    q1 = [x for x in lines if x[0] == "q1"]
    q2 = [x for x in lines if x[0] == "q2"]
    assert len(q1) == 10
    assert {x[2] for x in q2[:2]} == {"ref-30", "ref-31"}  # BM25 lists only documents that match
    assert q1[0][1] == "Q0" and q1[0][2] == "ref-22" and q1[0][3] == "1" and q1[0][5] == "bm25"
    assert [int(x[3]) for x in q1] == list(range(1, 11))
    assert all(float(a[4]) >= float(b[4]) for a, b in itertools.pairwise(q1))


def test_export_beir(tmp_path: Path, lbp_index_dir: Path) -> None:
    run("export", "--format", "beir", "--output", str(tmp_path / "beir"), index=lbp_index_dir)
    rows = [json.loads(x) for x in (tmp_path / "beir" / "corpus.jsonl").read_text().splitlines()]
    assert rows[0]["_id"] == "topic" and len(rows) == 52
    assert rows[22]["_id"] == "ref-22" and rows[22]["metadata"]["pmid"] == "20556780"


def test_build_on_malformed_corpus_names_file_and_line(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "topic.txt").write_text("Title\n\nBody text [1].\n  1. A ref. J 2001; 1:1.\n  3. Skipped. J 2002; 2:2.\n")
    bad = run("build", "--corpus", str(corpus), "--index", str(tmp_path / "index"), check=False)
    assert bad.returncode == 2
    assert f"{corpus / 'topic.txt'}:5: reference 3 is out of sequence" in bad.stderr
    assert not (tmp_path / "index").exists()


@pytest.mark.parametrize("forbidden", ["gradio", "torch", "sentence_transformers"])
def test_query_path_imports_stay_light(lbp_index_dir: Path, forbidden: str) -> None:
    code = (
        "import sys; from assistant.cli import main; "
        "main(['ask', 'Is yoga good for back pain?', '--json']); "
        f"print('LOADED' if '{forbidden}' in sys.modules else 'CLEAN', file=sys.stderr)"
    )
    env = {**os.environ, "LBP_INDEX": str(lbp_index_dir)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().endswith("CLEAN")


def test_build_and_search_a_beir_folder(tmp_path: Path) -> None:
    beir = REPO / "tests" / "fixtures" / "tiny-beir"
    index = tmp_path / "beir-index"
    out = run("build", "--corpus", str(beir), "--index", str(index)).stdout
    ids = {json.loads(x)["_id"] for x in (beir / "corpus.jsonl").read_text().splitlines() if x.strip()}
    assert f"{len(ids)} documents" in out
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["counts"]["documents"] == len(ids)
    hits = json.loads(
        run("search", "walking", "--json", "--documents", "--corpus", str(beir), "--index", str(index)).stdout
    )
    assert hits and {h["doc_id"] for h in hits} <= ids
