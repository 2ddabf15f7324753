"""Broad-question answer metrics of assistant.evaluation.broad_eval against hand-computed values."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from assistant.evaluation.broad_eval import fact_stated, repeated_pairs, score_answer

FACT = {"refs": [20, 23], "match": [["exercise", "training"], ["pain"]]}


# --------------------------------------------------------------------------- fact_stated


def test_fact_stated_needs_a_cited_sentence_matching_every_group() -> None:
    assert fact_stated(FACT, [{"text": "Exercise reduced pain.", "refs": [20]}])
    # any alternative of a group, case-insensitive, any of the fact's references
    assert fact_stated(FACT, [{"text": "Training eased PAIN.", "refs": [23]}])


def test_fact_not_stated() -> None:
    # right words, other reference
    assert not fact_stated(FACT, [{"text": "Exercise reduced pain.", "refs": [21]}])
    # right reference, one group unmatched
    assert not fact_stated(FACT, [{"text": "Exercise reduced disability.", "refs": [20]}])
    # the groups matched across two sentences do not count
    assert not fact_stated(FACT, [{"text": "Exercise helped.", "refs": [20]}, {"text": "Pain fell.", "refs": [23]}])
    # a sentence without references
    assert not fact_stated(FACT, [{"text": "Exercise reduced pain."}])
    assert not fact_stated(FACT, [])


# --------------------------------------------------------------------------- repeated_pairs


def test_repeated_pairs_identical_and_near_identical() -> None:
    sentences = [
        {"text": "Exercise reduced pain in chronic low back pain."},
        # words {exercise reduced pain in chronic low back} + {20}: Jaccard 7/8 = 0.875
        {"text": "Exercise reduced pain in chronic low back pain [20]."},
        {"text": "Yoga was no better than stretching."},
        # "source" is compared when present: same as the first sentence
        {"source": "Exercise reduced pain in chronic low back pain.", "text": "Something else entirely."},
    ]
    # pairs (0, 1), (0, 3), (1, 3)
    assert repeated_pairs(sentences) == 3


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("a b c d", "a b c d e", 1),  # 4/5 = 0.8, the threshold
        ("a b c d e f g h i", "a b c d e f g h i j", 1),  # 9/10
        ("a b c d e", "a b c d f", 0),  # 4/6
        ("Yoga was no better than stretching.", "Walking reduced pain.", 0),
        ("", "", 0),  # no words at all
    ],
)
def test_repeated_pairs_threshold(a: str, b: str, expected: int) -> None:
    assert repeated_pairs([{"text": a}, {"text": b}]) == expected


def test_repeated_pairs_fewer_than_two() -> None:
    assert repeated_pairs([]) == 0
    assert repeated_pairs([{"text": "Exercise helps."}]) == 0


# --------------------------------------------------------------------------- score_answer


def fake_answer(mode: str = "clinician", **overrides: Any) -> SimpleNamespace:
    fields: dict[str, Any] = {
        # 20 cited twice: three distinct references
        "citations": [SimpleNamespace(n=20), SimpleNamespace(n=21), SimpleNamespace(n=99), SimpleNamespace(n=20)],
        "sentences": [
            {"text": "Exercise reduced pain.", "refs": [20]},
            {"text": "Yoga was no better than stretching.", "refs": [21]},
        ],
        "answer": "Exercise reduced pain [20]. Yoga was no better than stretching [21].",
        "mode": mode,
        "abstained": False,
    }
    return SimpleNamespace(**{**fields, **overrides})


ITEM = {
    "relevance": {"20": 2, "21": 1, "22": 2, "23": 2},
    "facts": [
        {"refs": [20], "match": [["exercise"], ["pain"]]},  # stated
        {"refs": [22], "match": [["walking"]]},  # 22 not cited
        {"refs": [21], "match": [["yoga"], ["stretching", "walking"]]},  # stated
    ],
}


def test_score_answer_clinician() -> None:
    scores = score_answer(fake_answer(), ITEM)
    assert scores == pytest.approx(
        {
            "essential_recall": 1 / 3,  # of 20, 22, 23 only 20 cited
            "citation_precision": 2 / 3,  # 20 and 21 graded, 99 not
            "repeated_sentences": 0.0,
            "words": 9.0,  # 3 + 6 words once the markers are gone
            "cited_studies": 3.0,
            "abstained": 0.0,
            "key_fact_recall": 2 / 3,
        }
    )


def test_score_answer_patient_adds_grade() -> None:
    scores = score_answer(fake_answer(mode="patient"), ITEM)
    assert "grade" in scores
    assert scores["essential_recall"] == pytest.approx(1 / 3)


def test_score_answer_without_essentials_facts_or_citations() -> None:
    empty = fake_answer(citations=[], sentences=[], answer="", abstained=True)
    scores = score_answer(empty, {"relevance": {"20": 1}})
    assert scores == {
        "essential_recall": 1.0,  # nothing essential to miss
        "citation_precision": 0.0,  # nothing cited
        "repeated_sentences": 0.0,
        "words": 0.0,
        "cited_studies": 0.0,
        "abstained": 1.0,
    }
    assert "key_fact_recall" not in scores


def test_score_answer_counts_repeats() -> None:
    sentences = [
        {"text": "Exercise reduced pain.", "refs": [20]},
        {"text": "Exercise reduced pain.", "refs": [21]},
    ]
    assert score_answer(fake_answer(sentences=sentences), ITEM)["repeated_sentences"] == 1.0
