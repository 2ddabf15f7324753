"""Tests for assistant/answers/safety.py, the red-flag rules file and the lbp-dev evaluation data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import textstat

from assistant.answers.safety import (
    CLINICAL_CONDITIONS,
    FLAG_KINDS,
    PATIENT_URGENT_OPENING,
    RedFlag,
    default_rules_path,
    detect_red_flags,
    load_rules,
    urgent_message,
)

ROOT = Path(__file__).resolve().parents[2]
DATASET = ROOT / "datasets" / "lbp-dev"
ANSWERS = DATASET / "answers"
RULES_PATH = ROOT / "corpus" / "red_flags.json"
VALID_DOC_IDS = {"topic"} | {f"ref-{n}" for n in range(1, 52)}
KNOWN_SOURCES = ("NICE", "Chou", "Finucane")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _qrels(split: str) -> list[tuple[str, str, int]]:
    with (DATASET / "qrels" / f"{split}.tsv").open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        assert next(reader) == ["query-id", "corpus-id", "score"]
        return [(qid, doc, int(score)) for qid, doc, score in reader]


def _flag_for_every_rule() -> list[RedFlag]:
    return [RedFlag(r.id, r.flag, r.label, r.advice, r.source, "") for r in load_rules(RULES_PATH).rules]


RED_FLAG_CASES = _jsonl(ANSWERS / "red_flags.jsonl")
ORDINARY_CASES = _jsonl(ANSWERS / "ordinary.jsonl")


# --- detection -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", RED_FLAG_CASES, ids=[c["_id"] for c in RED_FLAG_CASES])
def test_red_flag_messages_get_their_flag(case: dict) -> None:
    flags = detect_red_flags(case["text"])
    assert case["flag"] in {f.flag for f in flags}, case["text"]
    assert all(f.matched and f.matched.lower() in case["text"].lower() for f in flags)


@pytest.mark.parametrize("case", ORDINARY_CASES, ids=[c["_id"] for c in ORDINARY_CASES])
def test_ordinary_back_pain_is_not_flagged(case: dict) -> None:
    assert detect_red_flags(case["text"]) == [], case["text"]


def test_every_flag_kind_has_red_flag_examples() -> None:
    assert {c["flag"] for c in RED_FLAG_CASES} == set(FLAG_KINDS)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("no fever, but I've wet myself twice today", ["cauda_equina_bladder_bowel"]),
        ("No numbness, I peed myself last night", ["cauda_equina_bladder_bowel"]),
        ("denies fever; back pain with new numbness around my back passage", ["cauda_equina_saddle_numbness"]),
        ("no saddle numbness, no weakness, no fever, back pain after lifting", []),
        ("back pain and a fever of 39", ["infection_fever"]),
        ("I don't know why, but I have a fever and back pain", ["infection_fever"]),  # "but" ends the negation scope
        ("My family has a history of bowel cancer, my back hurts", []),
        ("I've lost 8kg without trying and my lower back hurts", ["cancer_weight_loss"]),
        ("I've lost 8kg since I started walking and my lower back hurts less", []),
        ("Taking prednisone for 5 years for arthritis and my back suddenly hurts", ["fracture_long_term_steroids"]),
        ("Are epidural steroid injections good for back pain?", []),
    ],
)
def test_negation_and_context(message: str, expected: list[str]) -> None:
    assert [f.id for f in detect_red_flags(message)] == expected


def test_curly_apostrophes_are_normalised() -> None:
    assert [f.flag for f in detect_red_flags("My back hurts and I can\u2019t feel anything when I wipe")] == [
        "cauda_equina"
    ]


def test_red_flag_carries_rule_fields() -> None:
    (flag,) = detect_red_flags("I fell off a ladder and my back hurts")
    assert flag.id == "fracture_trauma"
    assert flag.flag == "fracture"
    assert flag.matched == "fell off a ladder"
    assert "NICE" in flag.source
    assert flag.advice.startswith("See a doctor today")


# --- rules file ------------------------------------------------------------------------------


def test_default_rules_path_is_the_project_corpus() -> None:
    assert default_rules_path() == RULES_PATH


def test_every_rule_names_a_clinical_source() -> None:
    raw = json.loads(RULES_PATH.read_text(encoding="utf-8"))
    assert raw["negation_cues"]
    for rule in raw["rules"]:
        assert rule["source"].strip(), rule["id"]
        assert any(name in rule["source"] for name in KNOWN_SOURCES), rule["id"]
        assert rule["flag"] in FLAG_KINDS
        assert rule["patterns"]


def test_rules_are_cached_per_path(tmp_path: Path) -> None:
    assert load_rules(RULES_PATH) is load_rules(RULES_PATH)
    assert load_rules() is load_rules(RULES_PATH)
    copy = tmp_path / "copy.json"
    copy.write_text(RULES_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    assert load_rules(copy) is not load_rules(RULES_PATH)
    assert detect_red_flags("I fell off a ladder, my back hurts", rules_path=copy)[0].flag == "fracture"


def _minimal_rule(**changes: object) -> dict:
    rule = {
        "id": "r1",
        "flag": "fracture",
        "label": "a fall",
        "patterns": [r"\bfell\b"],
        "source": "NICE guideline NG59 (2016)",
        "advice": "See a doctor today.",
    }
    rule.update(changes)
    return rule


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps([1, 2]), "top level"),
        (json.dumps({"negation_cues": [], "rules": []}), "'rules'"),
        (json.dumps({"negation_cues": ["no"], "rules": [_minimal_rule(source="")]}), "'source'"),
        (json.dumps({"negation_cues": ["no"], "rules": [_minimal_rule(flag="gout")]}), "unknown flag"),
        (json.dumps({"negation_cues": ["no"], "rules": [_minimal_rule(patterns=["(unclosed"])]}), "invalid regex"),
        (json.dumps({"negation_cues": ["no"], "rules": [_minimal_rule(), _minimal_rule()]}), "duplicate rule id"),
        (json.dumps({"rules": [_minimal_rule()]}), "'negation_cues'"),
    ],
)
def test_malformed_rules_file_raises_value_error_naming_file(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "bad_rules.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as excinfo:
        detect_red_flags("I fell", rules_path=path)
    assert str(path) in str(excinfo.value)
    assert problem in str(excinfo.value)


def test_minimal_rules_file_works(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"negation_cues": [r"\bnot\b"], "rules": [_minimal_rule()]}), encoding="utf-8")
    assert [f.id for f in detect_red_flags("I fell", rules_path=path)] == ["r1"]
    assert detect_red_flags("I have not fell", rules_path=path) == []


# --- urgent message --------------------------------------------------------------------------


@pytest.mark.parametrize("flag", _flag_for_every_rule(), ids=lambda f: f.id)
def test_patient_urgent_message_is_plain(flag: RedFlag) -> None:
    text = urgent_message([flag], "patient")
    assert text.startswith(PATIENT_URGENT_OPENING)
    assert text.startswith("Seek medical care now")
    assert textstat.flesch_kincaid_grade(text) <= 8


def test_patient_urgent_message_for_all_flags_is_plain_and_most_urgent_first() -> None:
    flags = _flag_for_every_rule()
    text = urgent_message(flags, "patient")
    assert textstat.flesch_kincaid_grade(text) <= 8
    assert text.index("emergency department now") < text.index("infection")
    # one advice per flag kind
    assert text.count("Go to an emergency department now") == 1


def test_clinician_urgent_message_names_conditions() -> None:
    flags = detect_red_flags("55F with acute LBP, new urinary retention, febrile, IVDU")
    text = urgent_message(flags, "clinician")
    assert text.startswith("URGENT")
    assert CLINICAL_CONDITIONS["cauda_equina"] in text
    assert CLINICAL_CONDITIONS["infection"] in text
    assert "emergency" in text
    assert "\n" not in text


def test_urgent_message_empty_and_bad_mode() -> None:
    assert urgent_message([], "patient") == ""
    with pytest.raises(ValueError, match="mode"):
        urgent_message(_flag_for_every_rule()[:1], "doctor")


# --- evaluation data -------------------------------------------------------------------------


def test_queries_and_qrels_parse_and_agree() -> None:
    queries = _jsonl(DATASET / "queries.jsonl")
    ids = [q["_id"] for q in queries]
    assert len(ids) == len(set(ids))
    by_split = {"dev": set(), "test": set()}
    for q in queries:
        assert q["text"].strip()
        assert q["metadata"]["phrasing"] in ("clinician", "patient")
        by_split[q["metadata"]["split"]].add(q["_id"])
    assert len(by_split["dev"]) >= 40
    assert len(by_split["test"]) >= 15
    for split, qids in by_split.items():
        rows = _qrels(split)
        grades: dict[str, dict[str, int]] = {}
        for qid, doc, score in rows:
            assert doc in VALID_DOC_IDS, (qid, doc)
            assert score in (1, 2)
            assert doc not in grades.setdefault(qid, {}), (qid, doc)
            grades[qid][doc] = score
        assert set(grades) == qids, split
        for qid, docs in grades.items():
            assert 2 in docs.values(), qid


def test_known_answers_are_in_qrels() -> None:
    queries = {q["text"]: q["_id"] for q in _jsonl(DATASET / "queries.jsonl")}
    grades = {(qid, doc): score for split in ("dev", "test") for qid, doc, score in _qrels(split)}
    assert grades[(queries["bed rest or staying active for acute back pain"], "ref-22")] == 2
    lifetime = queries["How many people get a sore back at some point in their life?"]
    assert grades[(lifetime, "topic")] == 2
    assert grades[(lifetime, "ref-1")] == 2


def test_answer_sets_parse() -> None:
    in_scope = _jsonl(ANSWERS / "in_scope.jsonl")
    assert len(in_scope) >= 40
    for row in in_scope:
        assert row["mode"] in ("clinician", "patient")
        assert row["expected_refs"] and all(1 <= n <= 51 for n in row["expected_refs"])
    out_of_scope = _jsonl(ANSWERS / "out_of_scope.jsonl")
    assert len(out_of_scope) >= 20
    assert {"off_topic", "drug_dosing", "surgery", "other_condition", "system_instruction", "near_topic"} <= {
        r["category"] for r in out_of_scope
    }
    assert len(RED_FLAG_CASES) >= 15
    assert len(ORDINARY_CASES) >= 15
    conversations = _jsonl(ANSWERS / "conversations.jsonl")
    assert len(conversations) >= 10
    for conv in conversations:
        assert len(conv["turns"]) == 2
        assert conv["expected_refs"] and all(1 <= n <= 51 for n in conv["expected_refs"])
