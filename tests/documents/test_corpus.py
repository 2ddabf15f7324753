"""The reprint parser, the reference-records loader and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.documents.corpus import load_corpus
from assistant.documents.records import load_reference_records
from assistant.documents.reprint import parse_citation, parse_citation_markers, parse_topic_reprint
from assistant.errors import FormatError

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "corpus" / "topic-exercise-based-therapy-for-low-back-pain.txt"

MINI_REPRINT = """Official reprint from UpToDate®
www.uptodate.com ©2020 UpToDate, Inc. and/or its affiliates. All Rights Reserved.

Walking for neck pain

Ann Author, MD
Section Editor
Ed Itor, MD

Neck pain is common [1]. Walking may help [2,3]. Some trials disagree [1-3].

(See "Neck pain: Overview".)

To continue reading this article, you must log in.
  1. Smith A, Jones B. A cohort of necks. J Necks 2001; 1:1.
  2. Doe J. Walking trial? Neck J 2005; 2:2.
  3. Roe R, et al. Another trial. Spine (Phila Pa 1976) 2010; 35:3.
"""


def test_seed_reprint_parses() -> None:
    topic = parse_topic_reprint(SEED.read_text(encoding="utf-8"), SEED)
    assert topic.title == "Exercise-based therapy for low back pain"
    assert topic.authors == ("Carol Hartigan, MD", "James Rainville, MD")
    assert topic.editors["section editor"] == ("Steven J Atlas, MD, MPH",)
    assert len(topic.references) == 51
    assert [r.n for r in topic.references] == list(range(1, 52))
    assert topic.references[21].title.startswith("Advice to rest in bed")
    assert topic.references[21].year == 2010
    assert len(topic.cross_references) == 3
    assert topic.cross_references[0] == "Treatment of acute low back pain"
    body = " ".join(topic.paragraphs)
    assert "85 percent" in body and "[1]" in body and "[2]" in body
    # Boilerplate is not evidence.
    assert "subscription" not in body.lower()
    assert "UpToDate" not in body
    assert "substitute for medical advice" not in body
    assert topic.metadata["last_updated"] == "Nov 21, 2017"


def test_other_reprint_in_same_format() -> None:
    topic = parse_topic_reprint(MINI_REPRINT, "mini.txt")
    assert topic.title == "Walking for neck pain"
    assert topic.authors == ("Ann Author, MD",)
    assert topic.cross_references == ("Neck pain: Overview",)
    assert [r.n for r in topic.references] == [1, 2, 3]
    assert topic.references[1].title == "Walking trial?"
    assert topic.references[2].journal == "Spine (Phila Pa 1976)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a [1] b", [1]), ("[2,3]", [2, 3]), ("[4-6]", [4, 5, 6]), ("[1, 8–9] and [12]", [1, 8, 9, 12]), ("none", [])],
)
def test_citation_markers(text: str, expected: list[int]) -> None:
    assert parse_citation_markers(text) == expected


def test_citation_with_question_mark_title() -> None:
    c = parse_citation(4, "Woolf CJ. What is this thing called pain? J Clin Invest 2010; 120:3742.")
    assert (c.authors, c.title, c.journal, c.year) == (
        "Woolf CJ",
        "What is this thing called pain?",
        "J Clin Invest",
        2010,
    )


@pytest.mark.parametrize(
    ("mutate", "line", "message"),
    [
        (lambda t: "", 1, "empty"),
        (lambda t: t.split("  1. ")[0], None, "no numbered reference list"),
        (lambda t: t.replace("  3. Roe R", "  4. Roe R"), 17, "out of sequence"),
        (lambda t: t.replace("Some trials disagree [1-3].", "Some trials disagree [1-7]."), 10, "citation [4]"),
        (lambda t: t.replace("  1. Smith", "  2. Smith"), 15, "does not start at 1"),
    ],
)
def test_malformed_reprint_names_file_and_line(mutate, line, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FormatError) as err:
        parse_topic_reprint(mutate(MINI_REPRINT), "bad.txt")
    assert err.value.path == "bad.txt"
    assert message in str(err.value)
    if line is not None:
        assert err.value.where == line, str(err.value)


def test_records_file_errors_name_the_line(tmp_path: Path) -> None:
    good = json.loads((REPO / "corpus" / "references.json").read_text())
    bad = tmp_path / "references.json"
    bad.write_text('{"references": [\n  {"n": 1,\n  "title": }\n]}')
    with pytest.raises(FormatError) as err:
        load_reference_records(bad)
    assert err.value.where == 3 and str(bad) in str(err.value)

    del good["references"][4]["summary"]
    bad.write_text(json.dumps(good, indent=1))
    with pytest.raises(FormatError) as err:
        load_reference_records(bad)
    assert "'summary'" in str(err.value)
    line_text = bad.read_text().splitlines()[int(err.value.where) - 1]
    assert '"n": 5' in line_text


def test_embedded_corpus_documents() -> None:
    docs = load_corpus(REPO / "corpus")
    ids = [d.doc_id for d in docs]
    assert ids[0] == "topic" and ids[1:] == [f"ref-{n}" for n in range(1, 52)]
    ref22 = docs[22]
    assert ref22.metadata["pmid"] == "20556780"
    assert ref22.metadata["study_type"] == "Cochrane review"
    assert ref22.metadata["lbp_phase"] == "acute"
    assert {s.audience for s in ref22.sections} == {"clinician", "patient"}
    animal = [d for d in docs if d.metadata.get("design_group") == "animal"]
    assert len(animal) == 12
    assert docs[10].metadata["confidence"] == "low" and docs[10].metadata["source_note"]
