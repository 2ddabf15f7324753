"""Coverage gaps of assistant.answers.gaps with a hand-made tokenizer and term-document table."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.answers.gaps import Gap, find_gaps, gap_line, population_gaps, related_question, word_at

STOP_WORDS = frozenset(
    {
        "is",
        "for",
        "the",
        "in",
        "does",
        "with",
        "of",
        "and",
        "or",
        "there",
        "that",
        "it",
        "during",
        "my",
        "can",
        "what",
        "about",
        "than",
        "any",
        "a",
    }
)
# BM25 token -> documents that contain it; "chi" is rare (one document), the rest common.
TERM_DOCS = {
    "chronic": {"d1", "d2", "d3"},
    "low": {"d1", "d2"},
    "back": {"d1", "d2", "d3"},
    "pain": {"d1", "d2", "d3"},
    "exercise": {"d1", "d2", "d3"},
    "helps": {"d1", "d2"},
    "yoga": {"d1", "d4"},
    "chi": {"d9"},
}


def tokenize(word: str) -> list[str]:
    """No stemming: a stop word gives no token, any other word itself."""
    return [] if word in STOP_WORDS else [word]


def gaps(question: str, lay_spans: tuple[tuple[int, int], ...] = ()) -> list[Gap]:
    return find_gaps(question, tokenize, TERM_DOCS, lay_spans)


# --------------------------------------------------------------------------- find_gaps


def test_unknown_treatment_joins_rare_neighbour_into_one_phrase() -> None:
    # "tai" is in no document, "chi" in one: one phrase, in the place of a treatment
    assert gaps("Is tai chi good for chronic low back pain?") == [Gap("tai chi", "absent", True)]


def test_rare_word_alone_is_not_a_gap() -> None:
    assert gaps("Is chi good for back pain?") == []


def test_unknown_word_outside_a_slot_is_not_a_gap() -> None:
    # "proof" is in no document but follows "there", neither a doer nor a population word
    assert gaps("Is there proof that exercise helps back pain?") == []


def test_misspelling_of_a_corpus_word_is_not_a_gap() -> None:
    # difflib ratio of "yogga" to "yoga" is 2*4/9 = 0.89 >= 0.8
    assert gaps("Is yogga good for back pain?") == []
    # "zoga" is as close but starts with another letter than "yoga"
    assert gaps("Is zoga good for back pain?") == [Gap("zoga", "absent", True)]


def test_words_in_lay_spans_are_never_gaps() -> None:
    question = "Is tai chi good for chronic low back pain?"
    start = question.index("tai chi")
    assert gaps(question, ((start, start + len("tai chi")),)) == []
    # a span over "tai" only leaves "chi", which is known
    assert gaps(question, ((start, start + 3),)) == []


def test_population_slot_is_not_tried() -> None:
    assert gaps("Does exercise help back pain during pregnancy?") == [Gap("pregnancy", "absent", False)]


def test_treatment_and_population_in_question_order() -> None:
    assert gaps("Is qigong good for back pain in pregnancy?") == [
        Gap("qigong", "absent", True),
        Gap("pregnancy", "absent", False),
    ]


def test_opening_capital_is_lowered_other_capitals_kept() -> None:
    assert gaps("Hydrotherapy for back pain?") == [Gap("hydrotherapy", "absent", True)]
    assert gaps("Does Hydrotherapy help back pain?") == [Gap("Hydrotherapy", "absent", True)]


def test_repeated_phrase_reported_once() -> None:
    assert gaps("Is tai chi better than tai chi?") == [Gap("tai chi", "absent", True)]


def test_question_words_and_short_words_are_not_gaps() -> None:
    # "good", "really", "work" are absent from TERM_DOCS but ask rather than name; "ok" is short
    assert gaps("Does it really work, is it ok?") == []


# --------------------------------------------------------------------------- sentences


@pytest.mark.parametrize(
    ("gap", "clinician", "patient"),
    [
        (
            Gap("tai chi", "absent", True),
            "None of the indexed studies tested tai chi.",
            "The studies here did not test tai chi.",
        ),
        (
            Gap("pregnancy", "absent", False),
            "None of the indexed studies looked at pregnancy.",
            "The studies here did not look at pregnancy.",
        ),
        (
            Gap("swimming", "animal", True),
            "None of the indexed studies tested swimming in people; the only evidence on it comes from animal studies.",
            "The studies here did not test swimming in people. It was only tested in animals.",
        ),
    ],
)
def test_gap_sentence(gap: Gap, clinician: str, patient: str) -> None:
    assert gap.sentence() == clinician
    assert gap.sentence(patient=True) == patient


def test_gap_line() -> None:
    both = [Gap("tai chi", "absent", True), Gap("pregnancy", "absent", False)]
    assert gap_line([]) == ""
    assert gap_line(both) == (
        "None of the indexed studies tested tai chi. None of the indexed studies looked at pregnancy."
    )
    assert gap_line(both, patient=True) == (
        "The studies here did not test tai chi. The studies here did not look at pregnancy."
    )


def test_word_at_widens_to_whole_words() -> None:
    assert word_at("Is swimming good?", 3, 7) == "swimming"
    assert word_at("Is swimming good?", 6, 9) == "swimming"
    assert word_at("back-pain help", 0, 4) == "back-pain"
    assert word_at("swim", 0, 4) == "swim"
    assert word_at("Try tai chi daily", 4, 11) == "tai chi"


# --------------------------------------------------------------------------- related_question


def test_related_question_replaces_treatment() -> None:
    question = "Is tai chi good for chronic low back pain?"
    assert related_question(question, [Gap("tai chi", "absent", True)]) == (
        "Is exercise good for chronic low back pain?"
    )
    assert related_question(question, [Gap("tai chi", "absent", True)], general="yoga") == (
        "Is yoga good for chronic low back pain?"
    )
    assert related_question("Is Tai Chi good?", [Gap("tai chi", "absent", True)]) == "Is exercise good?"


def test_related_question_drops_population_and_its_preposition() -> None:
    question = "Is exercise during pregnancy safe for back pain?"
    assert related_question(question, [Gap("pregnancy", "absent", False)]) == "Is exercise safe for back pain?"


def test_related_question_first_occurrence_only() -> None:
    question = "Is tai chi or tai chi better?"
    assert related_question(question, [Gap("tai chi", "absent", True)]) == "Is exercise or tai chi better?"


def test_related_question_without_gaps_folds_spaces() -> None:
    assert related_question("Is  exercise   good?", []) == "Is exercise good?"


def test_related_question_keeps_preposition_before_treatment() -> None:
    question = "Is back pain better with tai chi?"
    assert gaps(question) == [Gap("tai chi", "absent", True)]
    assert related_question(question, gaps(question)) == "Is back pain better with exercise?"


def test_related_question_final_population_leaves_no_space() -> None:
    question = "Does exercise help back pain during pregnancy?"
    assert related_question(question, [Gap("pregnancy", "absent", False)]) == "Does exercise help back pain?"


def test_population_gaps_name_the_population() -> None:
    from assistant.answers.questions import load_populations

    populations = load_populations(str(Path(__file__).resolve().parents[2] / "corpus" / "populations.json"))
    studied = {"older adults": False, "pregnancy": False, "athletes": True}
    gaps = population_gaps(
        "I'm 75 and pregnant with a sore back, and an athlete", populations, lambda label: studied.get(label, True)
    )
    assert [(g.phrase, g.label) for g in gaps] == [("I'm 75", "older adults"), ("pregnant", "pregnancy")]
    assert gaps[0].sentence() == "None of the indexed studies looked at older adults."
    assert gaps[0].sentence(patient=True) == "The studies here did not look at older adults."
    assert population_gaps("Is yoga good for chronic low back pain?", populations, lambda label: False) == []


def test_the_answer_says_no_study_was_done_in_the_population(bot) -> None:  # type: ignore[no-untyped-def]
    answer = bot.ask("Can older adults with chronic back pain benefit from exercise?")
    assert answer.answer.startswith("None of the indexed studies looked at older adults.")
    assert {20, 23} & {c.n for c in answer.citations}  # the related evidence on chronic LBP follows
    covered = bot.ask("Is exercise effective for chronic low back pain?")
    assert not covered.answer.startswith("None of the indexed")
