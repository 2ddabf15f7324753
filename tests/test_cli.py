"""The command line, run as a user runs it: ``python -m assistant ...`` in a subprocess."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("search", "yoga", "--k", "-5"), "argument --k: must be a whole number from 1 to 1000, not -5"),
        (("search", "yoga", "--k", "0"), "argument --k: must be a whole number from 1 to 1000, not 0"),
        (("search", "yoga", "--k", "1001"), "argument --k: must be a whole number from 1 to 1000, not 1001"),
        (("search", "yoga", "--k", "abc"), "argument --k: must be a whole number from 1 to 1000, not 'abc'"),
        (("search", "yoga", "--mmr", "2"), "argument --mmr: must be a number from 0 to 1, not 2"),
        (("search", "yoga", "--mmr", "nan"), "argument --mmr: must be a number from 0 to 1, not nan"),
        (("retrieve", "--k", "0"), "argument --k: must be a whole number from 1 to 1000, not 0"),
        (("eval", "--k", "0"), "argument --k: must be a whole number from 1 to 1000, not 0"),
        (("eval", "--depth", "0"), "argument --depth: must be a whole number from 1 to 1000, not 0"),
        (
            ("fetch-pubmed", "--batch-size", "500"),
            "argument --batch-size: must be a whole number from 1 to 200, not 500",
        ),
        (
            ("fetch-pubmed", "--max-retries", "-1"),
            "argument --max-retries: must be a whole number of at least 0, not -1",
        ),
        (("fetch-pubmed", "--timeout", "0"), "argument --timeout: must be a number above 0, not 0"),
        (("build", "--chunk-tokens", "2"), "argument --chunk-tokens: must be a whole number from 16 to 512, not 2"),
    ],
)
def test_bad_numbers_exit_2_naming_the_option(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    # a missing index: a number that got past the parser would fail later, and differently
    bad = run(*args, index=tmp_path / "no-index", check=False)
    assert bad.returncode == 2, bad.stderr
    assert message in bad.stderr
    assert "Traceback" not in bad.stderr and bad.stdout == ""


def _help_text(command: list[str]) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "300"}  # one line per command
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "see: python -m assistant" not in proc.stdout + proc.stderr
    return proc.stdout


def _listed_commands(help_text: str) -> dict[str, str]:
    """``{command: its help}`` from the ``COMMAND`` section of ``--help``."""
    section = help_text.split("COMMAND\n", 1)[1].split("\n\n", 1)[0]
    return dict(re.findall(r"^ {4}(\S+)\s+(.+)$", section, flags=re.MULTILINE))


def test_help_lists_every_command_with_its_one_line_help() -> None:
    from assistant.cli import CORE, EXTERNAL_COMMANDS

    listed = _listed_commands(_help_text([sys.executable, "-m", "assistant", "--help"]))
    assert list(listed) == [*CORE, *EXTERNAL_COMMANDS]
    for name, (*_, one_line) in EXTERNAL_COMMANDS.items():
        assert listed[name] == one_line
    assert listed["search"] == "search passages" and listed["ask"] == "a cited answer to a question"
    assert all(listed.values())


def test_each_external_command_registers_the_help_listed_in_the_cli() -> None:
    from assistant.cli import EXTERNAL_COMMANDS, build_parser

    for name, (_, _, _, one_line) in EXTERNAL_COMMANDS.items():
        parser = build_parser(only=name)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        helps = {a.dest: a.help for a in sub._choices_actions}
        assert helps[name] == one_line, name
        # the module's own parser, not the placeholder (no -h, no arguments) of the other commands
        own = sub.choices[name]
        assert own.add_help and len(own._actions) > 1, name
        assert all(
            not p.add_help and not p._actions for n, p in sub.choices.items() if n in EXTERNAL_COMMANDS and n != name
        )


def test_console_script_help_lists_the_same_commands() -> None:
    script = Path(sys.executable).parent / "lbp-assistant"
    if not script.exists():
        pytest.skip(f"no console script at {script} (pip install -e . installs it)")
    from_script = _help_text([str(script), "--help"])
    from_module = _help_text([sys.executable, "-m", "assistant", "--help"])
    assert _listed_commands(from_script) == _listed_commands(from_module)
    assert len(_listed_commands(from_script)) >= 11


def test_requests_past_a_bound_exit_2_before_loading_the_index(tmp_path: Path) -> None:
    history = tmp_path / "history.json"
    history.write_text(json.dumps([{"role": "user", "content": "Is walking good?"}] * 101))
    long_turn = tmp_path / "long.json"
    long_turn.write_text(json.dumps([{"role": "user", "content": "x" * 20_001}]))
    missing = tmp_path / "no-index"  # a bound checked late would build an index here first
    cases = [
        (("ask", "x" * 10_001), "question has 10,001 characters; at most 10,000 are accepted"),
        (("ask", "And Pilates?", "--history", str(history)), "history has 101 messages; at most 100"),
        (("ask", "And Pilates?", "--history", str(long_turn)), "history message 0 has 20,001 characters"),
        (("ask", "Walking?", *[f"--filter=k{i}=v" for i in range(11)]), "filters has 11 keys; at most 10"),
        (("search", "walking", "--filter", "species=" + "h" * 101), "longer than 100 characters"),
        (("search", "w" * 10_001), "the query has 10,001 characters"),
    ]
    for args, says in cases:
        proc = run(*args, "--index", str(missing), check=False)
        assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert not missing.exists()
