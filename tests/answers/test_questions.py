"""Question parsing of assistant.answers.questions against hand-checked values."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.answers.questions import (
    Treatments,
    about_animals,
    asked_directions,
    asked_phases,
    asks_comparison,
    asks_which_type,
    compared_subject,
    designs_asked,
    exercise_versus,
    given_as_example,
    load_evidence_aspects,
    load_outcomes,
    load_treatments,
    names_topic,
    outcome_words,
    phase_conflicts,
    split_question,
    studies_named,
    treatments_in,
    without_designs,
)
from assistant.errors import FormatError

REPO = Path(__file__).resolve().parents[2]
TREATMENTS = REPO / "corpus" / "treatments.json"


# --------------------------------------------------------------------------- split_question


@pytest.mark.parametrize(
    ("question", "parts"),
    [
        (
            "Is exercise effective for chronic back pain, and which type works best?",
            ["Is exercise effective for chronic back pain?", "which type works best?"],
        ),
        ("Is yoga safe? Does it help chronic pain?", ["Is yoga safe?", "Does it help chronic pain?"]),
        ("Is yoga safe; does it help with chronic pain?", ["Is yoga safe?", "does it help with chronic pain?"]),
        ("Does exercise help and does it last?", ["Does exercise help?", "does it last?"]),
        (
            "Is Pilates better than yoga and what about walking?",
            ["Is Pilates better than yoga?", "what about walking?"],
        ),
        # "and" before a question word splits after a full stop too; a part ending in "." gets no "?"
        ("Tell me about yoga. And is walking safe?", ["Tell me about yoga.", "is walking safe?"]),
        # three parts
        (
            "Is yoga safe for me; at what age; does walking help my back?",
            ["Is yoga safe for me?", "at what age?", "does walking help my back?"],
        ),
    ],
)
def test_split_question_multi_part(question: str, parts: list[str]) -> None:
    assert split_question(question) == parts


@pytest.mark.parametrize(
    "question",
    [
        "Is exercise good for back pain?",
        "Does walking help?  ",  # returned as given, trailing spaces and all
        # "and" before a word that is not a question word does not split
        "Is walking and swimming good for back pain?",
        # the short second piece ("Why?", "how often?") is joined back: one part, the text unchanged
        "Is yoga safe? Why?",
        "Does exercise help, and how often?",
    ],
)
def test_split_question_single_part_unchanged(question: str) -> None:
    assert split_question(question) == [question]


def test_split_question_min_words() -> None:
    # "how often?" has two words: a part of its own only when min_words allows it
    assert split_question("Does exercise help, and how often?", min_words=2) == ["Does exercise help?", "how often?"]


def test_split_question_rejoins_a_short_middle_piece() -> None:
    parts = split_question("Is yoga safe for me? Why? Does walking help my back?")
    assert len(parts) == 2
    assert parts[1] == "Does walking help my back?"


def test_split_question_rejoined_piece_keeps_its_question_mark() -> None:
    assert split_question("Is yoga safe for me? Why? Does walking help my back?")[0] == "Is yoga safe for me? Why?"


# --------------------------------------------------------------------------- what it asks


@pytest.mark.parametrize(
    ("question", "comparison", "which_type"),
    [
        ("Which type of exercise is best?", True, True),
        ("What kinds of exercise help?", True, True),
        ("What exercises help?", True, True),
        ("What is the best exercise?", True, True),
        ("Is yoga better than walking?", True, False),
        ("Yoga vs. Pilates", True, False),
        ("Compare yoga and Pilates", True, False),
        ("What other treatments are there?", True, False),
        ("Are there alternatives?", True, False),
        ("Is exercise good for back pain?", False, False),
        ("Does yoga help chronic back pain?", False, False),
    ],
)
def test_asks_comparison_and_which_type(question: str, comparison: bool, which_type: bool) -> None:
    assert asks_comparison(question) is comparison
    assert asks_which_type(question) is which_type


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What do animal studies show?", True),
        ("Does exercise work in rats?", True),
        ("What is the mechanism?", True),
        ("Does exercise reduce inflammation?", True),
        ("Does exercise raise BDNF?", True),
        ("Is yoga good for chronic back pain?", False),
        ("Does walking help?", False),
    ],
)
def test_about_animals(question: str, expected: bool) -> None:
    assert about_animals(question) is expected


def test_asked_phases() -> None:
    assert asked_phases("Does exercise help acute back pain?") == ("acute",)
    assert asked_phases("Is walking good for subacute pain?") == ("subacute",)
    assert asked_phases("Chronic or recurrent back pain?") == ("chronic", "recurrent")
    assert asked_phases("Is exercise good?") == ()
    # a question on preventing back pain is not answered by studies of people who have it
    assert asked_phases("Does exercise prevent back pain?") == ("prevention",)
    assert phase_conflicts(("prevention",), ("chronic",)) and not phase_conflicts(("prevention",), ("recurrent",))
    # nor by studies of people with back pain of any duration (a "mixed" population)
    assert phase_conflicts(("prevention",), ("mixed",)) and not phase_conflicts(("chronic",), ("mixed",))


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("My back's been bad for about two months now. Will exercise help?", ("subacute",)),
        ("I have had back pain for 3 weeks.", ("acute",)),
        ("It started 4 days ago.", ("acute",)),
        ("Patient with back pain for about 7 weeks: is exercise worth it?", ("subacute",)),
        ("My back has been sore for years.", ("chronic",)),
        ("I've had it for months.", ("chronic",)),
        ("Pain for over a year: does yoga help?", ("chronic",)),
        # a duration that is not how long the pain has lasted says nothing
        ("Do the benefits hold at 12 months?", ()),
        ("Does the effect last for a year after the classes?", ()),
        # a phase in words wins over a duration
        ("Chronic back pain for 5 weeks?", ("chronic",)),
    ],
)
def test_asked_phases_from_durations(question: str, expected: tuple[str, ...]) -> None:
    assert asked_phases(question) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Does the effect persist after the training stops?", False),
        ("How long do the benefits last?", False),
        ("Is yoga good for chronic low back pain?", True),
        ("Does it help my back?", True),
        ("What happens in rats?", True),
        ("Is it safe in pregnancy?", True),
    ],
)
def test_names_topic(message: str, expected: bool) -> None:
    assert names_topic(message, load_treatments(str(TREATMENTS))) is expected


@pytest.mark.parametrize(
    ("asked", "phases", "expected"),
    [
        (["acute"], ["chronic"], True),
        (["chronic"], ["acute"], True),
        (["recurrent"], ["acute"], True),
        (["acute"], ["recurrent"], True),
        # prevention studies do not answer treatment questions
        (["chronic"], ["prevention"], True),
        (["subacute"], ["prevention"], True),
        (["acute"], ["prevention"], True),
        # mixed, unknown or none never conflicts
        (["acute"], ["mixed"], False),
        (["chronic"], [""], False),
        (["acute"], [], False),
        ([], ["chronic"], False),
        # one phase in common, or one not excluded
        (["acute"], ["chronic", "acute"], False),
        (["acute"], ["chronic", "mixed"], False),
        (["chronic"], ["chronic", "prevention"], False),
        (["chronic"], ["subacute"], False),
        (["acute"], ["subacute"], True),  # post-acute evidence does not answer an acute question
        (["subacute"], ["acute"], True),
        (["acute"], ["acute", "subacute"], False),
        (["chronic"], ["recurrent"], False),
        (["acute", "chronic"], ["chronic"], False),
    ],
)
def test_phase_conflicts(asked: list[str], phases: list[str], expected: bool) -> None:
    assert phase_conflicts(asked, phases) is expected


def test_phase_conflicts_needs_every_asked_phase_excluded() -> None:
    # recurrent excludes acute but not chronic, so it still bears on half the question
    assert phase_conflicts(["acute", "chronic"], ["recurrent"]) is False


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Is yoga safe?", ("harm",)),
        ("Any side effects?", ("harm",)),
        ("Can exercise make my back worse?", ("harm",)),
        ("What are the risks?", ("harm",)),
        ("Could I injure myself?", ("harm",)),
        ("Is yoga good for back pain?", ()),
    ],
)
def test_asked_directions(question: str, expected: tuple[str, ...]) -> None:
    assert asked_directions(question) == expected


# --------------------------------------------------------------------------- treatments


def test_load_treatments_real_file() -> None:
    treatments = load_treatments(str(TREATMENTS))
    assert len(treatments.exercise) == 14
    assert len(treatments.comparators) == 10
    assert treatments.exercise[0][0] == "McKenzie method"
    assert treatments.comparators[0][0] == "Spinal manipulation and manual therapy"
    assert treatments.all == treatments.exercise + treatments.comparators
    # case-insensitive, in the order the question names them
    question = "Is yoga or massage better than PILATES for LBP?"
    assert treatments_in(question, treatments.all) == ("Yoga", "Massage", "Pilates")
    assert treatments_in("Is core stability training good?", treatments.exercise) == (
        "Stabilisation, core and motor control exercise",
    )
    assert treatments_in("Is bed rest better?", treatments.all) == ("Bed rest",)
    assert treatments_in("Does rest help?", treatments.all) == ()


def test_treatments_in_one_pattern_of_several_alternatives(tmp_path: Path) -> None:
    path = tmp_path / "treatments.json"
    path.write_text('{"comparators": {"CBT": ["cognitive[- ]behavio", "\\\\bCBT\\\\b"]}}', encoding="utf-8")
    vocabulary = load_treatments(str(path)).comparators
    assert treatments_in("Is CBT as good?", vocabulary) == ("CBT",)
    assert treatments_in("cognitive-behavioural therapy", vocabulary) == ("CBT",)
    assert treatments_in("ACBTX", vocabulary) == ()  # \b kept inside the group


def test_load_treatments_missing_file_is_empty(tmp_path: Path) -> None:
    assert load_treatments(str(tmp_path / "missing.json")) == Treatments()
    assert Treatments().all == ()


def test_load_treatments_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"exercise_types": {"Yoga": ["yoga"]},', encoding="utf-8")
    with pytest.raises(FormatError) as info:
        load_treatments(str(path))
    assert info.value.path == str(path)
    assert info.value.line == 1
    assert str(path) in str(info.value)
    assert "invalid JSON" in str(info.value)


def test_load_treatments_bad_regular_expression(tmp_path: Path) -> None:
    path = tmp_path / "bad_re.json"
    path.write_text('{"exercise_types": {"Yoga": ["yo(ga"]}}', encoding="utf-8")
    with pytest.raises(FormatError) as info:
        load_treatments(str(path))
    assert info.value.path == str(path)
    assert info.value.line is None
    assert str(info.value).startswith(f"{path}: 'Yoga': ")


def test_load_treatments_string_alternatives_rejected(tmp_path: Path) -> None:
    path = tmp_path / "string.json"
    path.write_text('{"comparators": {"Massage": "massage"}}', encoding="utf-8")
    with pytest.raises(FormatError):
        load_treatments(str(path))


# --------------------------------------------------------------------------- outcomes

OUTCOMES = Path(__file__).resolve().parents[2] / "corpus" / "outcomes.json"


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Is exercise safe for people with low back pain?", ("Harms and safety",)),
        ("Can yoga cause side effects?", ("Harms and safety",)),
        ("Does exercise reduce sick leave?", ("Work and sick leave",)),
        ("What do exercise programmes cost?", ("Costs",)),
        ("Will the improvement last once the classes finish?", ("How long effects last",)),
        ("Are the benefits maintained in the long term?", ("How long effects last",)),
        ("Does exercise help anxiety or depression in chronic LBP?", ("Mood and psychological outcomes",)),
        # words that only look like outcomes
        ("Does Pilates work for a sore back?", ()),
        ("Is yoga good for back pain that has lasted for years?", ()),
        ("Is exercise effective for chronic low back pain?", ()),
        # a population, and the asker's own expectations, are not outcomes
        ("Does stabilisation help recurrent low back pain?", ()),
        ("What improvement should be expected in chronic LBP?", ()),
        ("What can I expect from a group class?", ()),
        ("Does exercise cut recurrences in recurrent LBP?", ("Recurrence",)),
        # aspects of the evidence (evidence_aspects)
        ("How many patients dropped out of the trials?", ("Follow-up and dropout",)),
        ("Were many lost to follow-up?", ("Follow-up and dropout",)),
        ("Is there a 12-month follow-up?", ()),
        ("How strong is the evidence for yoga?", ("Quality of the evidence",)),
        ("What is the certainty of the evidence?", ("Quality of the evidence",)),
        ("Does exercise improve quality of life?", ("Quality of life",)),
        ("Does exercise change patients' global rating of improvement?", ("Global improvement and satisfaction",)),
        ("Are patients satisfied with exercise programmes?", ("Global improvement and satisfaction",)),
        ("How large is the effect of exercise on pain?", ("Size of the effect",)),
        ("By how many Roland-Morris points does disability fall?", ("Size of the effect",)),
        ("How much exercise is needed?", ("Exercise dose and frequency",)),
        ("What exercise protocols relieved pain in rats?", ("Exercise protocol",)),
        ("Did pain intensity fall?", ()),
        ("Do patients' expectations of pain change with exercise?", ("Beliefs and expectations",)),
    ],
)
def test_outcomes_named_in_questions(question: str, expected: tuple[str, ...]) -> None:
    assert treatments_in(outcome_words(question), load_outcomes(str(OUTCOMES))) == expected


def test_load_outcomes_real_file_and_missing_file(tmp_path: Path) -> None:
    labels = [label for label, _ in load_outcomes(str(OUTCOMES))]
    assert labels[:3] == ["Harms and safety", "Work and sick leave", "Costs"] and len(labels) == 23
    assert {"Endogenous opioids", "Serotonin", "Adenosine", "NMDA receptors"} <= set(labels)
    # how a study was run: asked about like an outcome, listed last, and on its own
    aspects = ["Follow-up and dropout", "Quality of the evidence", "Size of the effect", "Exercise protocol"]
    assert labels[-4:] == aspects and [label for label, _ in load_evidence_aspects(str(OUTCOMES))] == aspects
    assert (
        load_outcomes(str(tmp_path / "missing.json")) == ()
        and load_evidence_aspects(str(tmp_path / "missing.json")) == ()
    )


def test_split_question_drops_repeats_and_keeps_at_most_four_parts() -> None:
    repeated = "Is walking good? " * 50
    assert split_question(repeated) == [repeated]  # one question asked 50 times is one part: not split
    many = " ".join(f"Is exercise {i} good for my back?" for i in range(1, 8))
    assert split_question(many) == [f"Is exercise {i} good for my back?" for i in range(1, 5)]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Does everyday activity like walking the dog help my back?", True),
        ("Do aerobic programmes, such as brisk walking, help?", True),
        ("Is walking good for chronic back pain?", False),
        ("Walking or yoga: which helps more, for example after a flare?", False),
        ("Is walking, like swimming, a good choice? Or is walking too gentle?", False),  # one mention is the subject
        # a list after "such as": every item is an example
        (
            "How does McKenzie compare with other options, such as advice only, back school, strengthening and walking?",
            True,
        ),
        ("Do other programmes such as yoga help? Walking is what I do.", False),
    ],
)
def test_treatments_given_as_examples(question: str, expected: bool) -> None:
    walking = dict(load_treatments(str(TREATMENTS)).all)["Walking"]
    assert given_as_example(question, walking) is expected


AUTHORS = [("ref-23", "Searle", 2015), ("ref-28", "Meng", 2015), ("ref-20", "Hayden", 2005), ("ref-33", "Little", 2008),
           ("ref-46", "Rainville", 2002), ("ref-2", "Rainville", 2004), ("ref-3", "Rainville", 2004),
           ("ref-27", "O'Connor", 2015)]  # fmt: skip


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Searle et al. (2015) judged aerobic programmes ineffective, yet Meng and Yue (2015) pooled gains.",
         ("ref-23", "ref-28")),
        ("Does Hayden 2005 agree?", ("ref-20",)),
        ("What did Hayden's review find?", ("ref-20",)),
        ("What did Rainville 2004 show?", ("ref-2", "ref-3")),
        ("What did Rainville et al. 2002 show?", ("ref-46",)),
        ("O'Connor et al. on walking", ("ref-27",)),
        # a surname alone, or a common word, names nothing
        ("Little is known about a little exercise", ()),
        ("Hayden found what?", ()),
        ("Does Hayden 1999 say so?", ()),
    ],
)  # fmt: skip
def test_studies_named_by_first_author(question: str, expected: tuple[str, ...]) -> None:
    assert studies_named(question, AUTHORS) == expected


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How large is the effect according to the meta-analyses?", ("review",)),
        ("What did the Cochrane reviews conclude about yoga?", ("review",)),
        ("What do randomised controlled trials show about McKenzie?", ("trial",)),
        ("Does the advantage in a head-to-head trial last?", ("trial",)),
        ("Which findings rest on uncontrolled or non-randomised studies?", ("cohort",)),
        ("What do the cohort studies add?", ("cohort",)),
        ("Do RCTs and observational studies agree?", ("trial", "cohort")),
        # "trials" and "studies" alone name no design: people say it of any study
        ("Which trials measured range of motion?", ()),
        ("What do studies say about walking?", ()),
    ],
)
def test_designs_asked(question: str, expected: tuple[str, ...]) -> None:
    assert designs_asked(question) == expected
    if expected:  # the design words choose the studies; they are not words of the topic
        assert designs_asked(without_designs(question)) == ()


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Is exercise better than advice to stay active in acute low back pain?", True),
        ("Should I prescribe exercise for acute LBP, or is bed rest enough?", True),
        ("How does physical activity compare with massage?", True),
        ("Does massage help back pain?", False),  # no exercise named
        ("Is Pilates better than massage?", False),  # an exercise type: its own studies answer
        ("Is exercise good for chronic low back pain?", False),  # no comparator
    ],
)
def test_exercise_versus(question: str, expected: bool) -> None:
    assert exercise_versus(question, load_treatments(str(TREATMENTS))) is expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("And what about walking, compared with strengthening?", ("Walking",)),
        (
            "Does cognitive behavioural therapy combined with exercise beat advice alone?",
            ("Cognitive behavioural therapy",),
        ),
        ("Is Pilates better than yoga?", ("Pilates",)),
        ("How does it compare with strengthening?", ()),  # the subject is the conversation's
        ("Does yoga help?", ()),  # nothing compared
    ],
)
def test_compared_subject(message: str, expected: tuple[str, ...]) -> None:
    assert compared_subject(message, load_treatments(str(TREATMENTS))) == expected
