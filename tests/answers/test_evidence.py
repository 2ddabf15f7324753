"""Sentence labels and study facts of assistant.answers.evidence against hand-checked values."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.answers.evidence import (
    citation_markers,
    comparison_text,
    consistency,
    design_names,
    design_summary,
    evidence_row,
    is_framing,
    join_words,
    phase_key,
    sentence_direction,
    sentence_phases,
    study_label,
    study_size,
)
from assistant.documents.corpus import load_corpus
from assistant.types import EvidenceRow

# Reference 20 of the corpus, as the index carries it (Cochrane review, 61 trials, mixed phases).
HAYDEN = next(d.metadata for d in load_corpus(Path(__file__).resolve().parents[2] / "corpus") if d.doc_id == "ref-20")


# --------------------------------------------------------------------------- direction


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # benefit cues
        ("Exercise reduced pain compared with usual care.", "benefit"),
        ("Exercise helped.", "benefit"),
        ("Exercise showed a small effect on pain.", "benefit"),
        ("Exercise prevented recurrences.", "benefit"),
        # "no better than" and friends are removed before benefit cues are looked for
        ("Exercise was no better than usual care.", "no difference"),
        ("Exercise was no more effective than usual care.", "no difference"),
        ("Exercise did no better than advice.", "no difference"),
        ("Exercise did not reduce pain.", "no difference"),
        ("Exercise had no clear effect on pain.", "no difference"),
        ("Yoga was as effective as stretching.", "no difference"),
        ("The difference was not significant.", "no difference"),
        ("The effect was too small to matter.", "no difference"),
        # a benefit and a no difference without a contrast word: no difference wins
        ("Improvements were similar in both groups.", "no difference"),
        ("Exercise eased pain and did not improve function.", "no difference"),
        # ... across a contrast word: a mixed result
        ("Exercise eased pain, but did not improve function.", "uncertain"),
        ("Exercise reduced pain whereas rest was no better than placebo.", "uncertain"),
        ("Exercise was not better than rest, although pain improved.", "uncertain"),
        # uncertainty named
        ("The evidence was conflicting.", "uncertain"),
        ("The benefit of exercise is unclear.", "uncertain"),
        # harms and safety win over everything else
        ("There were no serious adverse events.", "harm"),
        ("Exercise was safe.", "harm"),
        ("Walking is safe and reduced pain.", "harm"),
        ("Exercise prevented new back trouble.", "harm"),
        ("Safety data were sparse.", "harm"),
        # neither
        ("About 10% of adults have low back pain.", "finding"),
    ],
)
def test_sentence_direction(text: str, expected: str) -> None:
    assert sentence_direction(text) == expected


def test_not_effective_is_no_difference() -> None:
    assert sentence_direction("Exercise was not effective.") == "no difference"


def test_improved_but_not_significantly_is_no_difference() -> None:
    assert sentence_direction("Pain improved, but not significantly.") == "no difference"


# --------------------------------------------------------------------------- phases


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("In acute LBP, exercise did not help.", ("acute",)),
        ("pain lasting less than 4 weeks", ("acute",)),
        ("a new episode of back pain", ("acute",)),
        ("In subacute LBP, graded activity helped.", ("subacute",)),
        ("In sub-acute pain", ("subacute",)),
        # "post-acute" and "sub-acute" are not acute
        ("In post-acute low back pain", ("subacute",)),
        ("persistent pain", ("chronic",)),
        ("cLBP", ("chronic",)),
        ("recurrences", ("recurrent",)),
        ("prevention of LBP", ("prevention",)),
        ("Exercise prevented back pain", ("prevention",)),
        # "Preventive" is not one of prevent/prevents/prevented/preventing/prevention
        ("Preventive exercise", ()),
        # several, in PHASE_LABELS order whatever the sentence order
        ("Chronic and acute pain", ("acute", "chronic")),
        ("Subacute and chronic LBP", ("subacute", "chronic")),
        ("Exercise is good for back pain.", ()),
        # plain language: the pain is new or long-term; a time point or a new bout is not a phase
        ("For new, short-term back pain, exercise worked about as well as other care.", ("acute",)),
        ("For long-term back pain, exercise helps.", ("chronic",)),
        ("Short-term pain relief was seen.", ()),
        ("Exercise with education lowered the chance of a new bout of back pain.", ()),
    ],
)
def test_sentence_phases(text: str, expected: tuple[str, ...]) -> None:
    assert sentence_phases(text) == expected


# --------------------------------------------------------------------------- framing


@pytest.mark.parametrize(
    "text",
    [
        "This review examined exercise therapy for chronic LBP.",
        "This Cochrane review included 61 trials.",
        "In this randomized controlled trial, the authors compared yoga with stretching.",
        "Low back pain is one of the most common reasons to see a doctor.",
        "Groups were similar at baseline.",
        "Secondary outcomes were function and sick leave.",
        "Participants were randomized to exercise or usual care.",
        # method words and no result cue
        "The authors searched MEDLINE to 2004.",
        "Trials were pooled using random effects.",
        "Eligible trials compared exercise with no treatment.",
        "Reviews were graded with the Oxman criteria and trials with Cochrane criteria.",
        # who took part, how the groups were treated, when outcomes were measured
        "Forty patients with chronic pain took part: 20 did yoga and 20 stretched.",
        "The cohort comprised 300 consecutive people with LBP.",
        "Both groups attended 12 sessions over 6 weeks.",
        "Outcomes were measured after treatment and at 6 months.",
        "Assessments took place before and after treatment.",
        "Results were grouped by time since randomization.",
        # a long subject before what the study set out to do
        "This pragmatic, multicentre randomized controlled trial in the United Kingdom, with 12 months of "
        "follow-up, tested whether physiotherapy works better when stabilization exercises are added.",
        "This randomized comparative trial by researchers at the Back Center of Copenhagen, Denmark, with an "
        "8-month follow-up, compared the McKenzie treatment with intensive strengthening.",
        "The American Pain Society commissioned this evidence review to support a joint guideline.",
        # how the study was run: what was measured, who took part, what the groups did
        "The RVM was examined for mu-opioid receptor (MOR) with immunohistochemistry.",
        "They included English-language systematic reviews and randomized trials that reported pain.",
        "The trial involved 132 patients treated at two rehabilitation centres.",
        "In this small study, 22 people did either Pilates or regular back exercises twice a week for 8 weeks.",
        "In this rat study, disc degeneration was induced by injecting adjuvant into the disc.",
        "The review also covered yoga and a range of physical modalities.",
        "Adults with long-lasting back pain had either an intensive 5-week programme or one-on-one physiotherapy.",
    ],
)
def test_framing_and_method_sentences(text: str) -> None:
    assert is_framing(text)


@pytest.mark.parametrize(
    "text",
    [
        "Exercise reduced pain compared with usual care.",
        "This study found that exercise reduced pain.",
        # method words beside a result cue: a result
        "Trials were pooled and showed that exercise reduced pain.",
        "Pain improved more with exercise, on intention-to-treat analysis.",
        "Those who took part in more sessions improved more.",
        "Both groups improved, and pain fell more with yoga.",
        "The trial found that exercise helped, and tested whether it lasted.",
        "The review showed that exercise works better than rest whether or not pain was chronic.",
        "The exercise group did better than the control group.",
        "40 patients who received exercise improved more than controls.",
    ],
)
def test_result_sentences_are_not_framing(text: str) -> None:
    assert not is_framing(text)


def test_phase_key() -> None:
    assert phase_key(("acute",), "chronic") == "acute"  # the sentence's phase wins
    assert phase_key((), "chronic") == "chronic"  # else the study's
    assert phase_key((), "mixed") is None  # a study of no single phase
    assert phase_key((), None) is None
    assert phase_key(("acute", "chronic"), "chronic") is None  # the sentence names two


# --------------------------------------------------------------------------- studies


def test_design_names() -> None:
    assert design_names("Cochrane review") == ("systematic review", "systematic reviews")
    assert design_names("RANDOMIZED CONTROLLED TRIAL") == ("randomized trial", "randomized trials")
    assert design_names("Prospective cohort study") == ("cohort study", "cohort studies")
    assert design_names("case series") == ("other study", "other studies")
    assert design_names(None) == ("other study", "other studies")


def test_design_summary_counts_strongest_first() -> None:
    metas = [
        {"study_type": "Randomized controlled trial"},
        {"study_type": "Cochrane review"},
        {"study_type": "case series"},
        {"study_type": "Systematic review"},
        {"study_type": "Randomized controlled trial"},
        {"study_type": "Clinical practice guideline review"},
    ]
    assert design_summary(metas) == ("2 systematic reviews, 1 guideline review, 2 randomized trials and 1 other study")


def test_design_summary_singular_and_plural() -> None:
    assert design_summary([{"study_type": "Randomized controlled trial"}]) == "1 randomized trial"
    assert design_summary([{"study_type": "Randomized controlled trial"}] * 2) == "2 randomized trials"
    # Cochrane and a meta-analysis are both systematic reviews
    assert design_summary([{"study_type": "Cochrane review"}, {"study_type": "Meta-analysis"}]) == (
        "2 systematic reviews"
    )
    assert design_summary([]) == ""


def test_join_words() -> None:
    assert join_words([]) == ""
    assert join_words(["a"]) == "a"
    assert join_words(["a", "b"]) == "a and b"
    assert join_words(["a", "b", "c"]) == "a, b and c"
    assert join_words(["a", "b"], last="or") == "a or b"


def test_study_label() -> None:
    assert study_label(HAYDEN) == "Hayden JA 2005"
    assert study_label({"authors": ["Smith A", "Jones B"], "year": 2001}) == "Smith A 2001"
    assert study_label({"first_author": "Smith A"}) == "Smith A"
    # no author: the title's first six words, an ellipsis when cut, the year in brackets
    title = "Exercise therapy for treatment of non-specific low back pain"
    assert study_label({"title": title, "year": 2005}) == "Exercise therapy for treatment of non-specific… (2005)"
    assert study_label({"title": "Short title"}) == "Short title"
    assert study_label({}) == ""


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"sample_size": 61, "design_group": "review"}, "61 studies"),
        ({"sample_size": 1, "design_group": "review"}, "1 study"),
        ({"sample_size": 32, "design_group": "animal"}, "32 animals"),
        ({"sample_size": 148, "design_group": "trial"}, "148 participants"),
        ({"sample_size": 1}, "1 participant"),
        ({"sample_size": 0}, ""),
        ({"sample_size": -3}, ""),
        ({"sample_size": "61"}, ""),
        ({"sample_size": 12.0}, ""),
        ({"sample_size": True}, ""),
        ({"sample_size": None}, ""),
        ({}, ""),
    ],
)
def test_study_size(meta: dict[str, object], expected: str) -> None:
    assert study_size(meta) == expected


def test_comparison_text() -> None:
    meta = {"interventions": ["yoga", "stretching"], "comparators": ["self-care book"]}
    assert comparison_text(meta) == "yoga; stretching vs self-care book"
    assert comparison_text({"interventions": ["yoga"], "comparators": []}) == "yoga"
    assert comparison_text({"comparators": ["usual care"]}) == "usual care"
    assert comparison_text({}) == ""


def test_evidence_row_from_the_record() -> None:
    row = evidence_row(HAYDEN, "ref-20", "Exercise reduced pain slightly.", "ref-20#3", "benefit")
    assert row == EvidenceRow(
        n=20,
        doc_id="ref-20",
        study="Hayden JA 2005",
        design="Cochrane review",
        design_group="review",
        species="human",
        size="61 studies",
        population=(
            "61 randomized controlled trials with 6390 adults in total: 11 trials in acute, 6 in subacute and 43 in "
            "chronic LBP (1 unclear)"
        ),
        phase="mixed",
        comparison=(
            "exercise therapy of various kinds, including graded-activity programmes vs no treatment; "
            "other conservative treatments"
        ),
        result="Exercise reduced pain slightly.",
        passage_id="ref-20#3",
        direction="benefit",
        related=False,
    )


def test_evidence_row_number_from_refs_and_defaults() -> None:
    meta = {"refs": [23, 24], "title": "Yoga for back pain", "interventions": ["yoga"], "comparators": ["advice"]}
    row = evidence_row(meta, "ref-23", "Yoga helped.", "ref-23#0", "benefit", related=True)
    assert row.n == 23  # no "n": the first of refs
    assert row.study == "Yoga for back pain"
    assert row.design == "not stated"
    assert row.design_group == "other"
    assert row.size == ""
    assert row.phase is None
    assert row.comparison == "yoga vs advice"
    assert row.related is True
    assert evidence_row({"n": "7", "refs": [9]}, "x", "r", "x#0", "finding").n == 9  # a non-int n is ignored
    assert evidence_row({}, "x", "r", "x#0", "finding").n == 0


def test_citation_markers() -> None:
    assert citation_markers([23, 20, 23]) == "[20][23]"
    assert citation_markers([5]) == "[5]"
    assert citation_markers([]) == ""


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({}, "consistent"),
        ({"benefit": 1}, "consistent"),
        ({"benefit": 4}, "consistent"),
        ({"benefit": 3, "no difference": 1}, "mostly consistent"),  # 3/4 = 0.75, the threshold
        ({"benefit": 5, "no difference": 1}, "mostly consistent"),  # 5/6
        ({"benefit": 2, "no difference": 1}, "mixed"),  # 2/3 < 0.75
        ({"benefit": 2, "no difference": 2}, "mixed"),
        ({"benefit": 2, "no difference": 1, "uncertain": 1}, "mixed"),  # 2/4
    ],
)
def test_consistency(counts: dict[str, int], expected: str) -> None:
    assert consistency(counts) == expected
