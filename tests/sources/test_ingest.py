"""Ingest: duplicate merging, numbering, and incremental additions to a real index."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.config import Settings
from assistant.documents.corpus import load_corpus
from assistant.errors import IndexProblem
from assistant.sources.formats import parse_file
from assistant.sources.ingest import (
    ingest_files,
    normalize_doi,
    normalize_title,
    plan_ingest,
    renumber_citations,
    same_work,
)
from assistant.sources.ingest_plan import _Keys

ROOT = Path(__file__).parents[2]
FIXTURES = Path(__file__).parents[1] / "fixtures" / "ingest"
GOOD_FILES = [
    FIXTURES / name
    for name in (
        "pubmed_efetch.xml",
        "medline.nbib",
        "references.ris",
        "library.bib",
        "corpus.jsonl",
        "topic-reprint.txt",
    )
]
QUESTION = "How much did pole walking improve the Zephyr Back Index?"


def _existing(docs: list[Any]) -> dict[str, dict[str, Any]]:
    """doc_id -> metadata with section names, as Index.documents_metadata returns it."""
    return {d.doc_id: {**d.metadata, "sections": sorted({s.name for s in d.sections})} for d in docs}


@pytest.fixture(scope="module")
def corpus_docs() -> list[Any]:
    return load_corpus(ROOT / "corpus")


# --------------------------------------------------------------------------- keys and markers


def test_normalized_keys() -> None:
    assert normalize_title("Fictional Editorial on Core-Stability.") == "fictionaleditorialoncorestability"
    assert normalize_doi("https://doi.org/10.99999/FICT.AQUA.2020") == "10.99999/fict.aqua.2020"
    assert normalize_doi("doi: 10.1/X") == "10.1/x"


def test_same_work_uses_the_first_identifier_both_have() -> None:
    a = _Keys("1", "10.1/a", "exercisetherapy", 2005)
    assert same_work(a, _Keys("1", "10.1/other", "x", 1990)) == "pmid"
    # a review and its update: same title, different PMIDs -> two works
    assert same_work(a, _Keys("2", "10.1/a", "exercisetherapy", 2005)) is None
    assert same_work(a, _Keys("", "10.1/a", "x", None)) == "doi"
    assert same_work(a, _Keys("", "10.1/b", "exercisetherapy", 2005)) is None
    assert same_work(a, _Keys("", "", "exercisetherapy", 2006)) == "title"
    assert same_work(a, _Keys("", "", "exercisetherapy", 2010)) is None  # same title, years apart
    assert same_work(a, _Keys("", "", "exercisetherapy", None)) == "title"


def test_renumber_citations() -> None:
    numbers = {1: 20, 2: 52, 3: 63}
    assert renumber_citations("walking [1]. Trials [2,3] and [1-3].", numbers) == (
        "walking [20]. Trials [52,63] and [20,52,63]."
    )
    assert renumber_citations("unknown [9] stays", numbers) == "unknown [9] stays"


# --------------------------------------------------------------------------- planning (no index needed)


def test_plan_numbers_merges_and_extends(corpus_docs: list[Any]) -> None:
    plan = plan_ingest([parse_file(f) for f in GOOD_FILES], _existing(corpus_docs))
    docs = {d.doc_id: d for d in plan.documents}
    new_refs = sorted(
        (d.metadata["n"], d.title)
        for d in plan.documents
        if d.doc_id.startswith("ref-5") or d.doc_id.startswith("ref-6")
    )
    assert [n for n, _ in new_refs] == list(range(52, 64))  # after the highest indexed reference (51)
    assert docs["ref-52"].title.startswith("Fictional trial of pole walking")
    assert docs["ref-63"].title == "Fictional report of a hospital walking club"

    merges = [
        (m.record.split(" (")[0].rsplit("/", 1)[1], m.record.rsplit(", ", 1)[1], m.doc_id, m.key, m.action)
        for m in plan.merges
    ]
    assert merges == [
        ("medline.nbib", "record 1 (PMID 99000001)", "ref-52", "pmid", "merged"),
        ("medline.nbib", "record 3 (PMID 21041955)", "ref-4", "pmid", "abstract added"),
        (
            "references.ris",
            "record 1 ('Fictional systematic review and meta-analysis of aquatic exe')",
            "ref-53",
            "doi",
            "merged",
        ),
        ("library.bib", "entry 'opinion2017'", "ref-59", "title", "merged"),
        ("topic-reprint.txt", "reference 1", "ref-20", "title", "already indexed"),
        ("topic-reprint.txt", "reference 2", "ref-52", "title", "merged"),
    ]


def test_merged_records_keep_the_abstract_and_fill_blanks(corpus_docs: list[Any]) -> None:
    plan = plan_ingest([parse_file(f) for f in GOOD_FILES], _existing(corpus_docs))
    docs = {d.doc_id: d for d in plan.documents}
    # RIS citation-only record + BibTeX abstract (title match): one document with the abstract
    editorial = docs["ref-59"]
    assert [s.name for s in editorial.sections] == ["abstract"]
    assert editorial.metadata["source"].endswith("library.bib (bibtex)")
    assert plan.sources["ref-59"].endswith("library.bib (bibtex)")
    # PubMed XML (abstract, PMID) + RIS (DOI in capitals, no PMID): the PubMed record wins
    aquatic = docs["ref-53"].metadata
    assert (aquatic["pmid"], aquatic["study_type"]) == ("99000002", "systematic review and meta-analysis")


def test_an_abstract_is_added_to_an_indexed_reference_without_one(corpus_docs: list[Any]) -> None:
    plan = plan_ingest([parse_file(FIXTURES / "medline.nbib")], _existing(corpus_docs))
    ref4 = next(d for d in plan.documents if d.doc_id == "ref-4")
    (section,) = ref4.sections
    assert section.name == "abstract"
    assert section.text.startswith("What is this thing called pain?\n\nFICTIONAL TEST ABSTRACT")
    # the indexed document's own facts are kept; the new passages say where they came from
    assert (ref4.metadata["n"], ref4.metadata["refs"], ref4.metadata["study_type"]) == (4, [4], "narrative review")
    assert ref4.metadata["source_note"].startswith("Abstract as published; ingested from ")
    assert "sections" not in ref4.metadata


def test_topic_reprint_joins_the_reference_list(corpus_docs: list[Any]) -> None:
    files = [FIXTURES / "pubmed_efetch.xml", FIXTURES / "topic-reprint.txt"]
    plan = plan_ingest([parse_file(f) for f in files], _existing(corpus_docs))
    topic = next(d for d in plan.documents if d.doc_id.startswith("topic"))
    assert topic.doc_id == "topic-walking-programs-for-low-back-pain-fictional-test-topic"  # "topic" is taken
    assert topic.metadata["refs_from_markers"] is True
    body = " ".join(s.text for s in topic.sections)
    # [1] is indexed reference 20, [2] the PubMed record numbered 52, [3] a new citation (57)
    assert "reviewed by a Cochrane group [20]" in body
    assert "reported better function [52]" in body
    assert "several invented studies [20,52,57]" in body
    assert plan.documents[-1].doc_id == "ref-57"
    assert [s.name for s in plan.documents[-1].sections] == ["citation"]


def test_the_same_files_twice_add_nothing(corpus_docs: list[Any]) -> None:
    parsed = [parse_file(f) for f in GOOD_FILES]
    first = plan_ingest(parsed, _existing(corpus_docs))
    merged = {
        **_existing(corpus_docs),
        **{d.doc_id: {**d.metadata, "sections": [s.name for s in d.sections]} for d in first.documents},
    }
    second = plan_ingest(parsed, merged)
    assert second.documents == []
    assert {m.action for m in second.merges} == {"already indexed"}


# --------------------------------------------------------------------------- a real index


@pytest.fixture(scope="module")
def base_index(tmp_path_factory: pytest.TempPathFactory, corpus_docs: list[Any]) -> Path:
    """A small real index: the topic and references 4, 20 and 51 (kept small to embed fast)."""
    from assistant.search.build import build_index

    docs = [d for d in corpus_docs if d.doc_id in {"topic", "ref-4", "ref-20", "ref-51"}]
    folder = tmp_path_factory.mktemp("base") / "index"
    build_index(docs, Settings(index_dir=folder), log=lambda msg: None)
    return folder


@pytest.fixture
def index_copy(base_index: Path, tmp_path: Path) -> Path:
    target = tmp_path / "index"
    shutil.copytree(base_index, target)
    return target


def _passage_lines(folder: Path) -> list[str]:
    return (folder / "passages.jsonl").read_text(encoding="utf-8").splitlines()


def test_ingest_adds_to_the_index_without_rebuilding(index_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.search import index as index_module
    from assistant.search.index import Index
    from assistant.search.retrieval import Retriever

    before = Index.load(index_copy)
    old_lines = _passage_lines(index_copy)
    old_vectors = np.load(index_copy / "embeddings.npy")
    encoded: list[str] = []
    original = index_module._encode  # every build encoder (ONNX or torch) goes through it

    def counting_encode(encoder: Any, texts: Any, batch_size: int) -> Any:
        encoded.extend(texts)
        return original(encoder, texts, batch_size)

    monkeypatch.setattr(index_module, "_encode", counting_encode)
    settings = Settings(index_dir=index_copy)
    report = ingest_files(GOOD_FILES, settings, log=lambda msg: None)

    assert report.errors  # the fixtures hold bad records on purpose; the good ones still went in
    topic_id = "topic-walking-programs-for-low-back-pain-fictional-test-topic"
    assert sorted(report.added) == sorted([topic_id, *(f"ref-{n}" for n in range(52, 64))])
    assert report.extended == ["ref-4"]
    # only the new passages were embedded, and the old ones were left exactly as they were
    index = Index.load(index_copy)
    assert len(index) == len(old_lines) + report.passages
    new_passages = index.passages[len(old_lines) :]
    assert len(new_passages) == report.passages > 0
    assert {p.index_text for p in new_passages} <= set(encoded)
    assert not {p.index_text for p in before.passages} & set(encoded)
    assert _passage_lines(index_copy)[: len(old_lines)] == old_lines
    assert np.array_equal(np.load(index_copy / "embeddings.npy")[: len(old_lines)], old_vectors)
    assert index.manifest["created_at"] == before.manifest["created_at"]
    # the manifest says what was added and from where
    additions = index.manifest["additions"]
    assert [a["source"].rsplit("/", 1)[1] for a in additions] == [
        "topic-reprint.txt (reprint)",
        "medline.nbib (medline)",
        "pubmed_efetch.xml (pubmed-xml)",
        "references.ris (ris)",
        "library.bib (bibtex)",
        "corpus.jsonl (beir)",
    ]
    assert additions[1]["extended"] == ["ref-4"] and "ref-57" in additions[1]["added"]
    assert all(a["at"] for a in additions)
    # the abstract of ref-4 continues its passage numbering
    ref4 = [p for p in index.passages if p.doc_id == "ref-4"]
    assert ref4[-1].metadata["section"] == "abstract"
    assert int(ref4[-1].id.split("#")[1]) == len(ref4) - 1
    # and the index answers a question only the new abstract can answer
    retriever = Retriever(index, settings)
    (best, _), *_ = retriever.search_documents(QUESTION, k=3)
    assert best == "ref-52"
    hit = retriever.search(QUESTION, k=1)[0]
    assert hit.metadata["refs"] == [52] and hit.metadata["pmid"] == "99000001"
    assert index.documents_metadata()["ref-52"]["url"] == "https://pubmed.ncbi.nlm.nih.gov/99000001/"


def test_bad_files_lose_nothing(index_copy: Path, tmp_path: Path) -> None:
    from assistant.search.index import Index

    old_lines = _passage_lines(index_copy)
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    files = [tmp_path / "missing.ris", garbage, FIXTURES / "pubmed_bad.xml"]
    report = ingest_files(files, Settings(index_dir=index_copy), log=lambda msg: None)
    messages = [str(e) for e in report.errors]
    assert messages[0].startswith(f"{tmp_path / 'missing.ris'}: cannot read the file")
    assert messages[1].startswith(f"{garbage}: ")
    assert any(":20: record 2 (PMID 99000012)" in m for m in messages)
    assert report.added == ["ref-52"]  # the good record of pubmed_bad.xml
    index = Index.load(index_copy)
    assert _passage_lines(index_copy)[: len(old_lines)] == old_lines
    assert index.documents_metadata()["ref-52"]["title"] == "Fictional survey of stretching habits among desk workers"


def test_cli_ingest_dry_run_then_for_real(index_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from assistant.cli import main

    manifest = (index_copy / "manifest.json").read_text()
    rc = main(["ingest", str(FIXTURES / "references.ris"), "--index", str(index_copy), "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 1  # the RIS fixture has a record without its end tag
    assert "would add ref-52: Fictional systematic review and meta-analysis of aquatic exercise" in out
    assert "references.ris:28: record 3" in out
    assert (index_copy / "manifest.json").read_text() == manifest

    rc = main(["ingest", str(FIXTURES / "corpus.jsonl"), str(FIXTURES / "references.ris"), "--index", str(index_copy)])
    out = capsys.readouterr().out
    assert rc == 1
    assert "added ref-52: Fictional trial of swimming for recurrent back pain" in out
    assert "5 documents added, 0 extended" in out
    rc = main(["ingest", str(FIXTURES / "corpus.jsonl"), "--index", str(index_copy)])
    out = capsys.readouterr().out
    assert "-> ref-52 (already indexed, same doi)" in out and "0 documents added" in out


def test_ingest_refuses_an_index_of_another_model(index_copy: Path) -> None:
    with pytest.raises(IndexProblem, match="built with model"):
        ingest_files([FIXTURES / "corpus.jsonl"], Settings(index_dir=index_copy, model="some/other-model"))


def test_ingest_needs_an_index(tmp_path: Path) -> None:
    with pytest.raises(IndexProblem, match="no index"):
        ingest_files([FIXTURES / "corpus.jsonl"], Settings(index_dir=tmp_path / "nothing"))


def _ingest_command(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m assistant ingest ...`` in a child process, as a user runs it."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "assistant", "ingest", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False)


def test_cli_ingest_skips_a_record_that_once_crashed_the_reader(index_copy: Path) -> None:
    # Bio.Medline raised KeyError('') on record 3 (a blank line inside it): a traceback, nothing added
    broken = FIXTURES / "crashes" / "medline-continuation-starts-a-block-2.nbib"
    run = _ingest_command(str(broken), "--index", str(index_copy), "--dry-run")
    assert run.returncode == 1
    assert "Traceback" not in run.stdout + run.stderr
    assert f"{broken}: medline, 3 records read" in run.stdout
    assert f"{broken}:41: record 3: a continuation line with no tag before it" in run.stdout
    assert "would add ref-52: Fictional trial of pole walking for chronic low back pain" in run.stdout
    assert "would add ref-53: Fictional cohort study of gardening and back pain in retirees" in run.stdout
    assert "would add an abstract to ref-4" in run.stdout  # the record after the broken one


def test_cli_ingest_exits_2_when_nothing_could_be_read(index_copy: Path, tmp_path: Path) -> None:
    only_bad = tmp_path / "only-bad.ris"
    only_bad.write_text("TY  - JOUR\nTI  - Fictional record without its end tag\n", encoding="utf-8")
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    run = _ingest_command(str(only_bad), str(garbage), "--index", str(index_copy), "--dry-run")
    assert run.returncode == 2
    assert "Traceback" not in run.stdout + run.stderr
    assert f"{only_bad}:1: record 1 ('Fictional record without its end tag'): no 'ER  -' line" in run.stdout
    assert f"{garbage}: cannot tell the format" in run.stdout
    # one good file among them: the good records are added, the exit status is 1
    run = _ingest_command(str(only_bad), str(FIXTURES / "corpus.jsonl"), "--index", str(index_copy), "--dry-run")
    assert run.returncode == 1 and "would add ref-52: Fictional trial of swimming" in run.stdout
