"""Tests for assistant/evaluation/pubmedqa.py: PubMedQA (PQA-L) -> BEIR folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.cli import main
from assistant.errors import FormatError
from assistant.evaluation.beir import read_corpus, read_qrels, read_queries, read_queries_with_metadata
from assistant.evaluation.pubmedqa import convert_pubmedqa, pubmedqa_to_beir

SHARED = Path(__file__).resolve().parents[3] / "shared" / "benchmarks" / "pubmedqa" / "ori_pqal.json"

# Three real entries of ori_pqal.json (MIT licence, Jin et al. 2019), trimmed to the fields
# the converter reads. 21214884 and 23848044 are in the official test split.
SAMPLE = {
    "21214884": {
        "QUESTION": "Can 'high-risk' human papillomaviruses (HPVs) be detected in human breast milk?",
        "CONTEXTS": [
            "Using polymerase chain reaction techniques, we evaluated the presence of HPV infection in human "
            "breast milk collected from 21 HPV-positive and 11 HPV-negative mothers.",
            "Of the 32 studied human milk specimens, no 'high-risk' HPV 16, 18, 31, 33, 35, 39, 45, 51, 52, 56, "
            "58 or 58 DNA was detected.",
        ],
        "YEAR": "2011",
        "final_decision": "no",
        "LONG_ANSWER": "This preliminary case-control study indicates the absence of mucosal 'high-risk' HPV "
        "types in human breast milk.",
    },
    "11296674": {
        "QUESTION": "Prostatic syndrome and pleural effusion: are they different diseases?",
        "CONTEXTS": [
            "To report an uncommon association of prostate and lung cancer.",
            "The characteristics of both tumors, their association with tumors in other sites and the time of "
            "presentation are analyzed.",
        ],
        "YEAR": None,
        "final_decision": "maybe",
    },
    "23848044": {
        "QUESTION": "Does oxybutynin hydrochloride cause arrhythmia in children with bladder dysfunction?",
        "CONTEXTS": [
            "In this study, we have determined that the QT interval changes significantly depending on the use "
            "of oxybutynin. The QT changes increased cardiac arrhythmia in children."
        ],
        "YEAR": "2013",
        "final_decision": "yes",
    },
}
TEST_PMIDS = {"21214884": "no", "23848044": "yes"}


def test_sample_becomes_a_beir_dataset() -> None:
    ds = pubmedqa_to_beir(SAMPLE, TEST_PMIDS)
    # Numeric PMID order; the abstract is CONTEXTS joined by spaces; no title.
    assert [d["_id"] for d in ds.corpus] == ["pmid-11296674", "pmid-21214884", "pmid-23848044"]
    first = ds.corpus[1]
    assert first["title"] == ""
    assert first["text"] == " ".join(SAMPLE["21214884"]["CONTEXTS"])
    assert first["metadata"] == {"pmid": "21214884", "year": "2011"}
    assert ds.corpus[0]["metadata"] == {"pmid": "11296674"}  # YEAR null is left out
    q = ds.queries["q-21214884"]
    assert q["text"] == SAMPLE["21214884"]["QUESTION"]
    assert q["metadata"]["split"] == "test"
    assert q["metadata"]["final_decision"] == "no"
    assert ds.queries["q-11296674"]["metadata"]["split"] == "dev"
    assert ds.qrels == {
        "test": {"q-21214884": {"pmid-21214884": 1}, "q-23848044": {"pmid-23848044": 1}},
        "dev": {"q-11296674": {"pmid-11296674": 1}},
        "all": {
            "q-11296674": {"pmid-11296674": 1},
            "q-21214884": {"pmid-21214884": 1},
            "q-23848044": {"pmid-23848044": 1},
        },
    }
    # No query id is also a document id (ranx and BEIR evaluators drop such hits).
    assert not set(ds.queries) & {d["_id"] for d in ds.corpus}


def test_without_test_ids_everything_is_dev() -> None:
    ds = pubmedqa_to_beir(SAMPLE)
    assert set(ds.qrels) == {"dev", "all"}
    assert len(ds.qrels["dev"]) == 3


def test_bad_entries_raise_format_error() -> None:
    with pytest.raises(FormatError, match="entry 1: missing QUESTION"):
        pubmedqa_to_beir({"1": {"CONTEXTS": ["x"]}})
    with pytest.raises(FormatError, match="entry 2: CONTEXTS must be a list of strings"):
        pubmedqa_to_beir({"2": {"QUESTION": "q?", "CONTEXTS": "x"}})
    with pytest.raises(FormatError, match="1 test PMIDs not in the data"):
        pubmedqa_to_beir(SAMPLE, ["99999999"])


def test_cli_convert_writes_a_beir_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "ori_pqal.json"
    src.write_text(json.dumps(SAMPLE))
    (tmp_path / "test_ground_truth.json").write_text(json.dumps(TEST_PMIDS))  # found next to the source
    out = tmp_path / "beir"
    assert main(["convert", "pubmedqa", str(src), "--output", str(out)]) == 0
    assert "3 documents" in capsys.readouterr().out
    assert len(list(read_corpus(out / "corpus.jsonl"))) == 3
    assert read_queries(out / "queries.jsonl")["q-23848044"].startswith("Does oxybutynin")
    assert read_qrels(out / "qrels" / "test.tsv") == {
        "q-21214884": {"pmid-21214884": 1},
        "q-23848044": {"pmid-23848044": 1},
    }
    assert len(read_qrels(out / "qrels" / "all.tsv")) == 3


@pytest.mark.skipif(not SHARED.is_file(), reason="shared PubMedQA copy not present")
def test_full_pubmedqa_conversion(tmp_path: Path) -> None:
    out = convert_pubmedqa(SHARED, tmp_path / "pubmedqa")
    docs = list(read_corpus(out / "corpus.jsonl"))
    queries = read_queries_with_metadata(out / "queries.jsonl")
    assert len(docs) == 1000
    assert len(queries) == 1000
    assert len(read_qrels(out / "qrels" / "test.tsv")) == 500
    assert len(read_qrels(out / "qrels" / "dev.tsv")) == 500
    assert len(read_qrels(out / "qrels" / "all.tsv")) == 1000
    assert sum(q["metadata"]["split"] == "test" for q in queries.values()) == 500
    assert all(d["text"].strip() for d in docs)
