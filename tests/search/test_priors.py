"""Evidence and phase priors: pure functions, hand-checked values."""

from __future__ import annotations

import pytest

from assistant.search.priors import document_phase, evidence_prior, phase_match, query_phases


@pytest.mark.parametrize(
    ("level", "prior"), [(1, 1.0), (2, 0.75), (3, 0.5), (4, 0.25), (5, 0.0), (9, 0.0), (None, 0.0), ("1", 0.0)]
)
def test_evidence_prior(level: object, prior: float) -> None:
    assert evidence_prior({"evidence_level": level}) == pytest.approx(prior)


def test_evidence_prior_without_level_is_zero() -> None:
    assert evidence_prior({}) == 0.0
    assert evidence_prior({"evidence_level": True}) == 0.0


def test_query_phases() -> None:
    assert query_phases("My back went two days ago acute low back pain onset") == {"acute"}
    assert query_phases("Is exercise better for long-term back pain? chronic") == {"chronic"}
    assert query_phases("Will it stop the pain coming back? recurrence recurrent") == {"recurrent"}
    assert query_phases("Does leisure activity prevent low back pain?") == {"prevention"}
    assert query_phases("Subacute or chronic LBP") == {"acute", "chronic"}
    assert query_phases("Is yoga good for my back?") == frozenset()
    # word boundaries: "chronically" and "preventive" are not phase words here
    assert query_phases("chronically tired, preventive care") == frozenset()


def test_phase_match() -> None:
    assert phase_match({"acute"}, "acute") == 1.0
    assert phase_match({"acute"}, "mixed") == 0.5
    assert phase_match({"acute"}, "chronic") == 0.0
    assert phase_match(set(), "acute") == 0.0
    assert document_phase({"lbp_phase": "Subacute"}) == "acute"
    assert document_phase({"lbp_phase": None}) == ""


def test_hybrid_adds_priors_to_the_fused_score(bot) -> None:  # type: ignore[no-untyped-def]
    hits = bot.search("My back went two days ago. Are exercises better than painkillers?", k=10)
    assert 0.0 <= hits[-1].score <= hits[0].score <= 1.0
    for hit in hits:
        phase = hit.metadata.get("lbp_phase")
        expected_phase = 0.15 if phase == "acute" else 0.075 if phase == "mixed" else 0.0
        assert hit.components["phase"] == pytest.approx(expected_phase)
        assert hit.components["prior"] == pytest.approx(0.15 * evidence_prior(hit.metadata))
    # a systematic review of the post-acute phase rises into the first three, and an animal
    # study (ref-17) falls below it; without priors the animal study is second
    from assistant.search.retrieval import Retriever

    query = "Does exercise help acute low back pain?"
    plain = Retriever(bot.index, bot.settings.with_(prior_weight=0.0, phase_weight=0.0))
    with_priors = [d for d, _ in bot.search_documents(query, k=8)]
    without = [d for d, _ in plain.search_documents(query, k=8)]
    assert "ref-48" in with_priors[:3] and "ref-48" not in without[:3]
    assert without.index("ref-17") < without.index("ref-48")
    assert with_priors.index("ref-17") > with_priors.index("ref-48")
    # single retrievers and RRF stay as they are
    assert all("prior" not in h.components for h in bot.search("yoga", k=5, retriever="dense"))
    assert all("prior" not in h.components for h in bot.retriever.search("yoga", k=5, fusion="rrf"))


def test_priors_off_restores_plain_fusion(bot) -> None:  # type: ignore[no-untyped-def]
    from assistant.search.retrieval import Retriever

    plain = Retriever(bot.index, bot.settings.with_(prior_weight=0.0, phase_weight=0.0, prf_passages=0))
    hits = plain.search("walking for chronic back pain", k=5)
    assert all("prior" not in h.components for h in hits)
    assert 0.0 <= hits[-1].score <= hits[0].score <= 1.0


def test_without_duration() -> None:
    """A duration says which phase is asked about, not what the question is about."""
    from assistant.search.priors import without_duration

    text = without_duration("My lower back has been sore for more than a year. Will exercise help?")
    assert "year" not in text and "Will exercise help?" in text
    assert without_duration("Does the benefit last at 12 months?") == "Does the benefit last at 12 months?"
