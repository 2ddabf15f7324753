"""Query expansion: abbreviations defined in the indexed text or listed in the corpus folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.errors import FormatError
from assistant.search.expansion import Abbreviations, defined_abbreviations, load_abbreviations, spelled_out


def test_definitions_found_in_text() -> None:
    texts = [
        "A functional restoration program (FRP) was compared with active individual therapy (AIT).",
        "Chronic low back pain (CLBP; 12 weeks or more) is common. Pain fell on a visual scale (p<0.05).",
        "Patients (n=40) improved. The trial had two arms (see Table 2).",
        "A study of telephone cognitive behaviour therapy (tCBT) followed.",
        "Pain was rated with versus after treatment. Outcomes: anticipated pain (VAS).",
    ]
    assert defined_abbreviations(texts) == {
        "FRP": "functional restoration program",
        "AIT": "active individual therapy",
        "CLBP": "Chronic low back pain",
        "tCBT": "telephone cognitive behaviour therapy",
    }  # no definition in "(n=40)", "(see Table 2)", "(p<0.05)"; none across a sentence end (VAS)
    assert defined_abbreviations(texts, limit=1) == {
        "FRP": "functional restoration program",
        "AIT": "active individual therapy",
    }


def test_expansion_adds_long_forms_once_and_matches_as_written() -> None:
    abbreviations = Abbreviations.from_mapping({"FRP": "functional restoration program", "MC": "movement control"})
    assert abbreviations.expand("Is FRP better?") == "Is FRP better? functional restoration program"
    assert abbreviations.expand("FRP (functional restoration program) or FRP?") == (
        "FRP (functional restoration program) or FRP?"
    )
    assert abbreviations.expand("frp and mc, FRPs, MCQ") == "frp and mc, FRPs, MCQ"
    assert Abbreviations.from_mapping({}).expand("FRP") == "FRP"


def test_the_text_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "abbreviations.json"
    path.write_text(json.dumps({"terms": {"FRP": "something else", "RMDQ": "Roland-Morris questionnaire"}}))
    loaded = load_abbreviations(str(path), ["A functional restoration program (FRP) helped."])
    assert loaded.terms == {"FRP": "functional restoration program", "RMDQ": "Roland-Morris questionnaire"}
    assert load_abbreviations(str(tmp_path / "missing.json")).terms == {}
    path.write_text("{not json")
    with pytest.raises(FormatError, match=r"abbreviations\.json"):
        load_abbreviations(str(path))
    path.write_text(json.dumps({"terms": {"FRP": 3}}))
    with pytest.raises(FormatError, match="string values"):
        load_abbreviations(str(path))


def test_the_retriever_expands_abbreviations(bot) -> None:  # type: ignore[no-untyped-def]
    expanded = bot.retriever.expand("Does FRP beat AIT in CLBP, on the RMDQ?")
    for long_form in ("functional restoration", "active individual physical therapy", "chronic low back pain",
                      "Roland-Morris"):  # fmt: skip
        assert long_form.lower() in expanded.lower()
    hits = bot.search("LTPA and later pain", k=3)
    assert "ref-25" in {h.doc_id for h in hits} or "ref-51" in {h.doc_id for h in hits}


def test_spelled_out() -> None:
    abbreviations = Abbreviations.from_mapping({"RMDQ": "Roland-Morris disability questionnaire"})
    assert spelled_out("Is RMDQ or rmdq better?", abbreviations) == (
        "Is Roland-Morris disability questionnaire or rmdq better?"
    )
    assert spelled_out("RMDQ", Abbreviations.from_mapping({})) == "RMDQ"


def test_an_abbreviation_is_neither_a_gap_nor_out_of_scope(bot) -> None:  # type: ignore[no-untyped-def]
    """ "LTPA" is in no record, but its long form is: no "None of the indexed studies tested
    LTPA", and "Is RMDQ improved by MCE in CLBP?" is answered, not refused."""
    ltpa = bot.ask("LTPA and LBP - is there a dose-response?")
    assert "tested LTPA" not in ltpa.answer and not ltpa.abstained
    assert {24, 51} & {c.n for c in ltpa.citations}
    rmdq = bot.ask("Is RMDQ improved by MCE in CLBP?")
    assert not rmdq.abstained and rmdq.citations


@pytest.mark.parametrize(
    ("question", "comparator"),
    [
        ("Is a hot water bottle any use for my back?", "Superficial heat"),
        ("Should I see a chiropractor for my back pain?", "Spinal manipulation and manual therapy"),
    ],
)
def test_everyday_names_of_comparators_reach_their_evidence(bot, question: str, comparator: str) -> None:  # type: ignore[no-untyped-def]
    """The lay vocabulary maps everyday names to the records' terms, so the question is about the
    comparator (and the guideline review [21] that rates it answers it)."""
    facets, strict = bot.answerer.gatherer.facets(question)
    assert comparator in facets and not strict
    assert 21 in {c.n for c in bot.ask(question, mode="patient").citations}


@pytest.mark.parametrize(
    "question",
    [
        "Isn't it risky to lift weights with a bad back?",
        "Am I doing damage if it hurts during my exercises?",
        "Will exercise wear out my spine?",
    ],
)
def test_everyday_words_for_harm_ask_about_safety(bot, question: str) -> None:  # type: ignore[no-untyped-def]
    """ "Risky", "doing damage", "wear out" are a patient's words for harm: the question asks
    about safety, whatever the records call it."""
    aspects, strict = bot.answerer.gatherer.aspects(question)
    assert "Harms and safety" in aspects and not strict
