"""Retrieval over the real embedded-corpus index."""

from __future__ import annotations

import pytest

from assistant.search.retrieval import Retriever, parse_filters, run_queries


@pytest.mark.parametrize("method", ["hybrid", "dense", "bm25"])
def test_bed_rest_ranks_ref_22_top_3(bot, method: str) -> None:  # type: ignore[no-untyped-def]
    docs = [d for d, _ in bot.search_documents("bed rest or staying active for acute back pain", k=3, retriever=method)]
    assert "ref-22" in docs


def test_patient_phrasing(bot) -> None:  # type: ignore[no-untyped-def]
    docs = [d for d, _ in bot.search_documents("Should I stay in bed until my back stops hurting?", k=3)]
    assert docs[0] == "ref-22"
    docs = [d for d, _ in bot.search_documents("Is Pilates good for chronic back pain?", k=2)]
    assert set(docs) == {"ref-30", "ref-31"}


def test_hits_carry_metadata_and_components(bot) -> None:  # type: ignore[no-untyped-def]
    hits = bot.search("yoga for chronic low back pain", k=5)
    assert len(hits) == 5 and [h.rank for h in hits] == [1, 2, 3, 4, 5]
    top = hits[0]
    assert top.doc_id == "ref-32" and top.passage_id.startswith("ref-32#")
    assert top.metadata["study_type"] == "Cochrane review" and top.metadata["refs"] == [32]
    assert {"dense", "bm25", "dense_rank", "bm25_rank"} <= set(top.components)
    assert all(hits[i].score >= hits[i + 1].score for i in range(4))


def test_filters(bot) -> None:  # type: ignore[no-untyped-def]
    query = "exercise reduces neuropathic pain"
    human = bot.search(query, k=20, filters={"species": "human"})
    assert human and all(h.metadata["species"] == "human" for h in human)
    animal = bot.search(query, k=5, filters=parse_filters(["design=animal"]))
    assert animal and all(h.metadata["design_group"] == "animal" for h in animal)
    patient = bot.search(query, k=10, filters={"audience": "patient"})
    assert all(h.metadata["audience"] == "patient" for h in patient)
    phases = bot.search("exercise", k=30, filters=parse_filters(["phase=acute,recurrent"]))
    assert {h.metadata["lbp_phase"] for h in phases} <= {"acute", "recurrent"}
    assert bot.search(query, k=5, filters={"species": "unicorn"}) == []
    with pytest.raises(ValueError):
        parse_filters(["species"])


def test_document_filter(bot) -> None:  # type: ignore[no-untyped-def]
    r: Retriever = bot.retriever
    filters = parse_filters(["doc=ref-20,ref-23"])
    assert filters == {"doc_id": ["ref-20", "ref-23"]}
    assert {h.doc_id for h in r.search("exercise for chronic low back pain", k=20, filters=filters)} == {
        "ref-20",
        "ref-23",
    }
    assert r.documents(filters) == {"ref-20", "ref-23"}
    assert r.documents({"design_group": "trial", "lbp_phase": "acute"}) == {"ref-19"}
    assert r.documents(None) is None


def test_filtered_dense_is_exact_over_the_subset(bot) -> None:  # type: ignore[no-untyped-def]
    r: Retriever = bot.retriever
    mask = r.mask({"species": "human"})
    filtered = r.dense_scores("walking for back pain", 5, mask)
    everything = [(row, s) for row, s in r.dense_scores("walking for back pain", 600) if mask[row]][:5]
    assert [row for row, _ in filtered] == [row for row, _ in everything]


def test_convex_fusion_and_mmr(bot) -> None:  # type: ignore[no-untyped-def]
    convex = bot.retriever.search("McKenzie method acute low back pain", k=5, fusion="convex")
    assert convex[0].doc_id in {"ref-19", "ref-34", "ref-36"}
    assert 0.0 <= convex[-1].score <= convex[0].score <= 1.0
    plain = bot.search("McKenzie method", k=5)
    diverse = bot.search("McKenzie method", k=5, mmr_lambda=0.3)
    assert len({h.doc_id for h in diverse}) >= len({h.doc_id for h in plain})


def test_run_queries_is_document_level(bot) -> None:  # type: ignore[no-untyped-def]
    run = run_queries(bot.retriever, {"q1": "Pilates", "q2": "walking"}, k=10, method="hybrid")
    assert set(run) == {"q1", "q2"}
    for docs in run.values():
        assert len(docs) == 10 and all("#" not in d for d in docs)


def test_bad_arguments(bot) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        bot.search("x", retriever="magic")
    assert bot.search("   ") == []


def test_sentence_blend_matches_hand_computed_scores(bot) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    retriever = bot.retriever
    index = retriever.index
    q = retriever.encoder.encode_query("Does yoga help chronic back pain?")
    passages = np.asarray(index.embeddings) @ q
    sentences = np.asarray(index.sentence_embeddings) @ q
    best: dict[int, float] = {}
    for s, sim in zip(index.sentences, sentences, strict=True):
        row = index.row_of(s["passage_id"])
        best[row] = max(best.get(row, -1.0), float(sim))
    expected = {
        row: 0.7 * float(passages[row]) + 0.3 * best.get(row, float(passages[row])) for row in range(len(index))
    }
    hits = retriever._dense_search(q, 20)
    blended, sentence = retriever._sentence_blend(q, hits, 20, None, 0.3)
    assert len(blended) == 20
    for row, score in blended:
        assert score == pytest.approx(expected[row], abs=1e-5)
        assert sentence[row] == pytest.approx(best.get(row, float(passages[row])), abs=1e-5)
    # sorted; the best 10 of all passages (candidates: the 20 dense hits and the passages of the 20 best sentences)
    assert all(blended[i][1] >= blended[i + 1][1] for i in range(19))
    assert [r for r, _ in blended[:10]] == sorted(expected, key=lambda r: -expected[r])[:10]
    # a mask keeps only its rows
    mask = np.array([p.metadata.get("species") == "human" for p in index.passages])
    masked, _ = retriever._sentence_blend(q, retriever._dense_search(q, 20, mask), 20, mask, 0.3)
    assert masked and all(mask[r] for r, _ in masked)


def test_hybrid_components_show_the_sentence_score(bot) -> None:  # type: ignore[no-untyped-def]
    hit = bot.search("Is yoga good for a bad back?", k=1)[0]
    assert {"sentence", "dense", "dense_feedback", "bm25"} <= set(hit.components)
    assert all("sentence" not in h.components for h in bot.search("yoga", k=5, retriever="dense"))
