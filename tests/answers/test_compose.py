"""Answer composition of assistant.answers.compose on small hand-made studies and findings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.answers.compose import GENERAL_GROUP, bottom_line, cite_refs, evidence_rows, group_findings
from assistant.answers.questions import load_evidence_aspects, load_treatments
from assistant.answers.selection import same_numbers, select_findings
from assistant.answers.studies import Finding, Study
from assistant.documents.corpus import load_corpus

TREATMENTS = Path(__file__).resolve().parents[2] / "corpus" / "treatments.json"
OUTCOMES = TREATMENTS.with_name("outcomes.json")

DESIGNS = {
    "Cochrane review": ("review", 1),
    "Systematic review": ("review", 1),
    "Randomized controlled trial": ("trial", 2),
    "Animal study": ("animal", 5),
}


def make_meta(n: int, study_type: str, phase: str | None, **extra: Any) -> dict[str, Any]:
    group, level = DESIGNS[study_type]
    meta = {
        "n": n,
        "refs": [n],
        "study_type": study_type,
        "evidence_level": level,
        "design_group": group,
        "lbp_phase": phase,
        "first_author": f"Author{n}",
        "year": 2000 + n,
        "sample_size": 10 * n,
    }
    return {**meta, **extra}


def make_finding(
    n: int, direction: str, phases: tuple[str, ...] = (), text: str = "Exercise reduced pain.", score: float = 0.5
) -> Finding:
    return Finding(n, text, f"ref-{n}", f"ref-{n}#0", (n,), score, score, direction, phases)


def make_study(n: int, study_type: str, phase: str | None, *findings: Finding) -> Study:
    study = Study(f"ref-{n}", make_meta(n, study_type, phase), rank=0, relative_score=1.0)
    study.findings = list(findings)
    return study


# Two chronic studies with a benefit, one acute study with no difference, one animal study.
REVIEW = make_study(20, "Cochrane review", "chronic", make_finding(20, "benefit", ("chronic",)))
TRIAL = make_study(21, "Randomized controlled trial", "chronic", make_finding(21, "benefit"))
ACUTE = make_study(22, "Randomized controlled trial", "acute", make_finding(22, "no difference", ("acute",)))
MIXED = make_study(23, "Randomized controlled trial", "mixed", make_finding(23, "uncertain"))
RATS = make_study(30, "Animal study", None, make_finding(30, "benefit"))


# --------------------------------------------------------------------------- cite_refs


def test_cite_refs() -> None:
    assert cite_refs("Exercise helps.", [23, 20]) == "Exercise helps [20][23]."
    assert cite_refs("Exercise helps", [20]) == "Exercise helps [20]"
    assert cite_refs("Does it help?!", [1]) == "Does it help [1]?!"
    assert cite_refs('He said "it helps."', [3]) == 'He said "it helps [3]."'
    assert cite_refs("Exercise helps.", []) == "Exercise helps."


# --------------------------------------------------------------------------- bottom_line


def test_bottom_line_needs_two_human_studies() -> None:
    assert bottom_line([]) == ""
    assert bottom_line([REVIEW]) == ""
    assert bottom_line([REVIEW, RATS]) == ""  # animal studies do not count
    assert bottom_line([REVIEW, RATS], patient=True) == ""


def test_bottom_line_clinician_one_clause_per_phase() -> None:
    assert bottom_line([REVIEW, TRIAL, ACUTE, RATS]) == (
        "Bottom line, counted from the 3 studies below "
        "(1 systematic review and 2 randomized trials; 1 animal study reported apart): "
        "acute LBP: no difference in 1 of 1 [22]; "
        "chronic LBP: benefit in 2 of 2 [20][21] (consistent)."
    )


def test_bottom_line_related_and_two_animal_studies() -> None:
    rats2 = make_study(31, "Animal study", None, make_finding(31, "benefit"))
    assert bottom_line([REVIEW, TRIAL, ACUTE, RATS, rats2], related=True) == (
        "Bottom line, counted from the 3 related studies below "
        "(1 systematic review and 2 randomized trials; 2 animal studies reported apart): "
        "acute LBP: no difference in 1 of 1 [22]; "
        "chronic LBP: benefit in 2 of 2 [20][21] (consistent)."
    )


def test_bottom_line_studies_of_no_phase_get_their_own_clause() -> None:
    assert bottom_line([REVIEW, TRIAL, ACUTE, MIXED]) == (
        "Bottom line, counted from the 4 studies below (1 systematic review and 3 randomized trials): "
        "acute LBP: no difference in 1 of 1 [22]; "
        "chronic LBP: benefit in 2 of 2 [20][21] (consistent); "
        "other or mixed phases: mixed or uncertain results in 1 of 1 [23]."
    )


def test_bottom_line_single_phase_is_named() -> None:
    assert bottom_line([REVIEW, TRIAL]) == (
        "Bottom line, counted from the 2 studies below (1 systematic review and 1 randomized trial): "
        "chronic LBP: benefit in 2 of 2 [20][21] (consistent)."
    )


def test_bottom_line_one_phase_and_no_phase_gives_an_unlabelled_clause() -> None:
    assert bottom_line([REVIEW, MIXED]) == (
        "Bottom line, counted from the 2 studies below (1 systematic review and 1 randomized trial): "
        "benefit in 1 of 2 [20], mixed or uncertain results in 1 [23] (mixed)."
    )


def test_bottom_line_asked_phase_gives_one_clause() -> None:
    # the mixed-phase study counts under the phase asked about; 2 of 3 is below 3/4: mixed
    assert bottom_line([REVIEW, TRIAL, MIXED], asked=["chronic"]) == (
        "Bottom line, counted from the 3 studies below (1 systematic review and 2 randomized trials): "
        "chronic LBP: benefit in 2 of 3 [20][21], mixed or uncertain results in 1 [23] (mixed)."
    )


def test_bottom_line_mostly_consistent() -> None:
    more = [make_study(n, "Randomized controlled trial", "chronic", make_finding(n, "benefit")) for n in (24, 25)]
    nodiff = make_study(26, "Randomized controlled trial", "chronic", make_finding(26, "no difference"))
    # 3 benefit of 4: 3/4 = 0.75, mostly consistent
    assert bottom_line([REVIEW, *more, nodiff]) == (
        "Bottom line, counted from the 4 studies below (1 systematic review and 3 randomized trials): "
        "chronic LBP: benefit in 3 of 4 [20][24][25], no difference in 1 [26] (mostly consistent)."
    )


def test_bottom_line_a_study_counts_once_per_phase_with_its_best_finding() -> None:
    review = make_study(
        26,
        "Systematic review",
        "mixed",
        make_finding(26, "benefit", ("chronic",), score=0.9),
        make_finding(26, "uncertain", ("chronic",), score=0.8),  # not its best in chronic: not counted
        make_finding(26, "no difference", ("acute",), score=0.5),
    )
    assert bottom_line([review, REVIEW]) == (
        "Bottom line, counted from the 2 studies below (2 systematic reviews): "
        "acute LBP: no difference in 1 of 1 [26]; "
        "chronic LBP: benefit in 2 of 2 [20][26] (consistent)."
    )


def test_bottom_line_without_counted_directions() -> None:
    harms = make_study(24, "Randomized controlled trial", "mixed", make_finding(24, "harm"))
    other = make_study(25, "Randomized controlled trial", "mixed", make_finding(25, "finding"))
    # harms and safety findings are counted in a clause of their own
    assert bottom_line([harms, other]) == (
        "Bottom line, counted from the 2 studies below (2 randomized trials): harms or safety reported by 1 [24]."
    )
    assert bottom_line([harms, other], patient=True) == "We found 2 studies on this. 1 says something about safety."
    neutral = make_study(26, "Randomized controlled trial", "mixed", make_finding(26, "finding"))
    assert bottom_line([neutral, other]) == (
        "Bottom line, counted from the 2 studies below (2 randomized trials): "
        "none reports a benefit or a difference for this question; see the findings below."
    )
    assert bottom_line([neutral, other], patient=True) == "We found 2 studies on this."


def test_bottom_line_patient() -> None:
    assert bottom_line([REVIEW, TRIAL, ACUTE, RATS], patient=True) == (
        "We found 3 studies on this. 2 found a benefit and 1 found little or no difference."
    )
    assert bottom_line([REVIEW, TRIAL, ACUTE, MIXED], patient=True, related=True) == (
        "We found 4 related studies on this. "
        "2 found a benefit, 1 found little or no difference and 1 had mixed or unclear results."
    )


# --------------------------------------------------------------------------- group_findings


def pair(n: int, level_type: str, direction: str, text: str, score: float) -> tuple[Study, Finding]:
    finding = make_finding(n, direction, text=text, score=score)
    return make_study(n, level_type, "chronic", finding), finding


YOGA = pair(1, "Randomized controlled trial", "benefit", "Yoga reduced pain.", 0.9)
EXERCISE = pair(2, "Cochrane review", "benefit", "Exercise reduced pain.", 0.5)
PILATES = pair(3, "Cochrane review", "benefit", "Pilates reduced pain.", 0.7)
YOGA_SAME = pair(4, "Randomized controlled trial", "no difference", "Yoga was no better than stretching.", 0.6)
HARMS = pair(5, "Animal study", "harm", "No serious adverse events occurred.", 0.4)
OTHER = pair(6, "Randomized controlled trial", "finding", "Most people recover.", 0.3)
BOTH = pair(7, "Randomized controlled trial", "uncertain", "Yoga and Pilates gave conflicting results.", 0.3)
ALL = [YOGA, EXERCISE, PILATES, YOGA_SAME, HARMS, OTHER, BOTH]


def headings(groups: list[tuple[str, list[tuple[Study, Finding]]]]) -> list[tuple[str, list[str]]]:
    return [(heading, [f.doc_id for _, f in items]) for heading, items in groups]


def test_group_findings_by_direction_strongest_first() -> None:
    # in each group: evidence level first (reviews 1, trials 2), then the higher score
    assert headings(group_findings(ALL)) == [
        ("Benefit", ["ref-3", "ref-2", "ref-1"]),
        ("No difference", ["ref-4"]),
        ("Mixed, uncertain or conflicting", ["ref-7"]),
        ("Harms and safety", ["ref-5"]),
        ("Other findings", ["ref-6"]),
    ]


def test_group_findings_by_treatment() -> None:
    vocabulary = load_treatments(str(TREATMENTS)).all
    # groups follow the facets in the order the question names them, then "Several of these
    # compared", then "Other findings"
    assert headings(group_findings(ALL, vocabulary, ("Pilates", "Yoga"))) == [
        ("Pilates (benefit)", ["ref-3"]),
        ("Yoga (benefit, no difference)", ["ref-1", "ref-4"]),
        ("Several of these compared (mixed or uncertain)", ["ref-7"]),
        (GENERAL_GROUP, ["ref-2", "ref-6", "ref-5"]),
    ]
    assert [h for h, _ in headings(group_findings(ALL, vocabulary, ("Yoga", "Pilates")))][:2] == [
        "Yoga (benefit, no difference)",
        "Pilates (benefit)",
    ]


def test_group_findings_by_direction_when_fewer_than_two_treatments_named() -> None:
    vocabulary = load_treatments(str(TREATMENTS)).all
    expected = [("Benefit", ["ref-2", "ref-1"]), ("No difference", ["ref-4"])]
    assert headings(group_findings([YOGA, EXERCISE, YOGA_SAME], vocabulary, ("Pilates", "Yoga"))) == expected
    assert headings(group_findings([YOGA, EXERCISE, YOGA_SAME], (), ("Pilates", "Yoga"))) == expected
    assert headings(group_findings([YOGA, EXERCISE, YOGA_SAME], vocabulary, ())) == expected
    assert group_findings([]) == []


def test_group_findings_puts_the_asked_aspects_aspect_first() -> None:
    """ "How many dropped out?": the sentences on follow-up lead, under the aspect's name."""
    lost = pair(8, "Randomized controlled trial", "finding", "About 30% were lost to follow-up.", 0.2)
    kept = pair(9, "Randomized controlled trial", "finding", "Follow-up was high: 95% provided 12-month data.", 0.1)
    aspects = load_evidence_aspects(str(OUTCOMES))
    assert headings(group_findings([YOGA, lost, EXERCISE, kept], (), (), aspects)) == [
        ("Follow-up and dropout", ["ref-8", "ref-9"]),
        ("Benefit", ["ref-2", "ref-1"]),
    ]
    assert headings(group_findings([lost], (), (), aspects)) == [("Follow-up and dropout", ["ref-8"])]


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (
            "Retention was high: 138 of the 148 participants (93%) completed follow-up.",
            "Of 148 randomized, 138 (93%) were followed to the end.",
            True,
        ),
        (
            "Pain fell by 7.3 points (95% CI 3.7 to 10.9).",
            "Pain fell by 7.3 points at 12 weeks.",
            False,
        ),  # one number in common
        (
            "Pain fell by 7.3 points (95% CI 3.7 to 10.9).",
            "Function improved by 2.5 points (95% CI 1.0 to 3.9).",
            False,
        ),
    ],
)
def test_same_numbers(a: str, b: str, same: bool) -> None:
    assert same_numbers(a, b) is same


# --------------------------------------------------------------------------- evidence_rows

# Reference 20 of the corpus, as the index carries it (Cochrane review, 61 trials, mixed phases).
HAYDEN_COMPARISON = (
    "exercise therapy of various kinds, including graded-activity programmes vs no treatment; "
    "other conservative treatments"
)
HAYDEN = next(d.metadata for d in load_corpus(Path(__file__).resolve().parents[2] / "corpus") if d.doc_id == "ref-20")
SHERMAN = {
    "n": 22,
    "refs": [22],
    "study_type": "Randomized controlled trial",
    "evidence_level": 2,
    "design_group": "trial",
    "lbp_phase": "chronic",
    "first_author": "Sherman KJ",
    "year": 2011,
    "sample_size": 228,
    "interventions": ["yoga"],
    "comparators": ["stretching"],
}
DOC_META = {"ref-20": HAYDEN, "ref-22": SHERMAN}


def quote(doc_id: str, refs: tuple[int, ...], text: str, direction: str, row: int = 0) -> Finding:
    return Finding(row, text, doc_id, f"{doc_id}#{row}", refs, 0.5, 0.5, direction, ())


def hayden_and_sherman() -> list[Study]:
    hayden = Study("ref-20", HAYDEN, 0, 1.0)
    hayden.findings = [
        quote("ref-20", (20,), "Exercise reduced pain slightly.", "benefit"),
        quote("ref-20", (20,), "Function improved.", "benefit", row=1),
    ]
    hayden.plain = [quote("ref-20", (20,), "Exercise eased pain a little.", "benefit", row=2)]
    sherman = Study("ref-22", SHERMAN, 1, 0.8)
    sherman.findings = [quote("ref-22", (22,), "Yoga was no better than stretching.", "no difference")]
    return [hayden, sherman]


def test_evidence_rows_clinician() -> None:
    rows = evidence_rows(hayden_and_sherman(), DOC_META, patient=False, related={"ref-22"})
    assert [(r.n, r.study, r.size, r.comparison) for r in rows] == [
        (20, "Hayden JA 2005", "61 studies", HAYDEN_COMPARISON),
        (22, "Sherman KJ 2011", "228 participants", "yoga vs stretching"),
    ]
    # the first quote is the result; its passage and the study's direction go with it
    assert [(r.result, r.passage_id, r.direction, r.related) for r in rows] == [
        ("Exercise reduced pain slightly.", "ref-20#0", "benefit", False),
        ("Yoga was no better than stretching.", "ref-22#0", "no difference", True),
    ]


def test_evidence_rows_patient_uses_plain_sentences() -> None:
    rows = evidence_rows(hayden_and_sherman(), DOC_META, patient=True, related=set())
    # Hayden has a plain sentence; Sherman has none and falls back to its clinician one
    assert [(r.n, r.result, r.passage_id) for r in rows] == [
        (20, "Exercise eased pain a little.", "ref-20#2"),
        (22, "Yoga was no better than stretching.", "ref-22#0"),
    ]


def test_evidence_rows_one_row_per_reference() -> None:
    hayden, sherman = hayden_and_sherman()
    again = Study("ref-20", HAYDEN, 2, 0.5)  # the same reference a second time
    again.findings = [quote("ref-20", (20,), "Another sentence.", "benefit")]
    rows = evidence_rows([hayden, sherman, again], DOC_META, patient=False, related=set())
    assert [(r.n, r.result) for r in rows] == [
        (20, "Exercise reduced pain slightly."),
        (22, "Yoga was no better than stretching."),
    ]


def test_evidence_rows_sentence_citing_several_references() -> None:
    topic_meta = {"refs": [20, 22], "study_type": "Narrative review", "title": "Exercise for LBP"}
    topic = Study("topic", topic_meta, 0, 1.0)
    topic.findings = [quote("topic", (22, 20), "Exercise helps [20][22].", "benefit")]
    rows = evidence_rows([topic], DOC_META, patient=False, related=set())
    # one row per cited reference, each from that reference's own record
    assert [(r.n, r.doc_id, r.study, r.result, r.passage_id) for r in rows] == [
        (22, "ref-22", "Sherman KJ 2011", "Exercise helps [20][22].", "topic#0"),
        (20, "ref-20", "Hayden JA 2005", "Exercise helps [20][22].", "topic#0"),
    ]


def test_evidence_rows_study_merged_into_another_claim() -> None:
    hayden = Study("ref-20", HAYDEN, 0, 1.0)
    merged = replace(
        quote("ref-20", (20,), "Exercise reduced pain.", "benefit"),
        also=(((22,), "ref-22#3", "Yoga reduced pain."),),
    )
    hayden.findings = [merged]
    sherman = Study("ref-22", SHERMAN, 1, 0.8)  # no quotes of its own
    no_quotes = Study("ref-99", {"n": 99}, 2, 0.1)  # neither quoted nor merged: no row
    rows = evidence_rows([hayden, sherman, no_quotes], DOC_META, patient=False, related=set())
    assert [(r.n, r.result, r.passage_id) for r in rows] == [
        (20, "Exercise reduced pain.", "ref-20#0"),
        (22, "Yoga reduced pain.", "ref-22#3"),
    ]


def test_evidence_rows_merged_study_takes_the_claims_direction() -> None:
    hayden = Study("ref-20", HAYDEN, 0, 1.0)
    hayden.findings = [
        replace(
            quote("ref-20", (20,), "Exercise reduced pain.", "benefit"),
            also=(((22,), "ref-22#3", "Yoga reduced pain."),),
        )
    ]
    sherman = Study("ref-22", SHERMAN, 1, 0.8)
    rows = evidence_rows([hayden, sherman], DOC_META, patient=False, related=set())
    assert rows[1].direction == "benefit"


# --------------------------------------------------------------------------- select_findings


def test_a_result_in_another_direction_is_kept_with_the_study() -> None:
    """A study's second sentence must be close to the question, unless it reports a result in
    another direction than those taken: "no difference in acute LBP" after "benefit in chronic
    LBP" is part of what the study found. A further sentence in the same direction, as far from
    the question, is not taken."""

    def finding(row: int, text: str, score: float, similarity: float, direction: str) -> Finding:
        return Finding(row, text, "ref-20", f"ref-20#{row}", (20,), score, similarity, direction, ())

    study = Study("ref-20", make_meta(20, "Cochrane review", "mixed"), rank=0, relative_score=1.0)
    study.findings = [
        finding(0, "In chronic LBP, exercise did better than comparison treatments.", 0.70, 0.50, "benefit"),
        finding(1, "Function also improved with graded activity programmes.", 0.62, 0.25, "benefit"),
        finding(2, "In acute LBP, exercise was no better than comparison treatments.", 0.45, 0.25, "no difference"),
        finding(3, "Trials came from twelve countries.", 0.60, 0.25, "finding"),
    ]
    vectors = np.eye(4)
    select_findings([study], set(), lambda rows: vectors[list(rows)])
    assert [f.row for f in study.findings] == [0, 2]


def test_an_answer_from_few_studies_quotes_one_more_sentence_of_each() -> None:
    """Four sentences a study, five when the answer has three studies or fewer."""

    def study_with_five(n: int) -> Study:
        study = Study(f"ref-{n}", make_meta(n, "Cochrane review", "chronic"), rank=0, relative_score=1.0)
        study.findings = [
            Finding(5 * n + i, text, f"ref-{n}", f"ref-{n}#{i}", (n,), 0.6 - 0.01 * i, 0.5, "benefit", ())
            for i, text in enumerate(
                (
                    "Pain fell with exercise.",
                    "Function improved too.",
                    "Sick leave was shorter.",
                    "Fewer relapses occurred.",
                    "Mood lifted as well.",
                )
            )
        ]
        return study

    vectors = np.eye(40)
    few = [study_with_five(n) for n in (1, 2, 3)]
    select_findings(few, set(), lambda rows: vectors[list(rows)])
    assert [len(s.findings) for s in few] == [5, 5, 5]
    many = [study_with_five(n) for n in (1, 2, 3, 4)]
    select_findings(many, set(), lambda rows: vectors[list(rows)])
    assert [len(s.findings) for s in many] == [4, 4, 4, 4]


def test_a_patient_answer_that_cannot_reach_grade_8_takes_the_easiest_sentence_of_another_study(
    tmp_path: Path,
) -> None:
    """One sentence left, over grade 8, and none of its study easier: the easiest plain sentence
    of another gathered study takes its place, so the answer still reads at grade 8 or below."""
    from types import SimpleNamespace

    from assistant.answers.patient import MAX_PATIENT_GRADE, PatientComposer, readability_grade

    hard = (
        "For persistent lumbar symptoms, multidisciplinary biopsychosocial rehabilitation, cognitive-behavioural "
        "therapy and supervised individualised exercise demonstrated moderate, statistically significant "
        "improvements in functional disability."
    )
    easy = "Walking helped people with back pain a little."
    index = SimpleNamespace(sentences=[{"text": hard, "grade": readability_grade(hard)}, {"text": easy, "grade": 3.0}])
    a = Study("ref-1", make_meta(1, "Cochrane review", "chronic"), rank=0, relative_score=1.0)
    b = Study("ref-2", make_meta(2, "Cochrane review", "chronic"), rank=1, relative_score=0.8)
    a.plain = [Finding(0, hard, "ref-1", "ref-1#0", (1,), 0.9, 0.5, "benefit", ())]
    b.plain = [Finding(1, easy, "ref-2", "ref-2#0", (2,), 0.5, 0.3, "benefit", ())]
    composer = PatientComposer(index, str, {}, str(tmp_path / "no-glossary.json"))
    options = {"ref-1": a.plain, "ref-2": b.plain}
    answer = composer._fit("Does exercise help?", [(a, a.plain[0])], [], set(), options, [a, b])
    assert readability_grade(answer.text) <= MAX_PATIENT_GRADE
    assert easy.rstrip(".") in answer.text and hard.rstrip(".") not in answer.text
