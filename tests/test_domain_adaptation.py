"""The pair builder of benchmarks/domain_adaptation.py (training itself is a benchmark, not a test)."""

from __future__ import annotations

from benchmarks.domain_adaptation import training_pairs


def test_training_pairs_join_lay_and_clinical_text_of_one_document(bot) -> None:  # type: ignore[no-untyped-def]
    passages = bot.index.passages
    pairs = training_pairs(passages)
    by_doc = {p.doc_id: p for p in passages}
    plain = {p.text for p in passages if p.metadata.get("audience") == "patient"}
    clinical = {p.text for p in passages if p.metadata.get("section") in ("summary", "key_findings", "conclusion")}
    headers = {p.context for p in passages if p.context}
    assert len(pairs) > 300
    doc_of = {p.text: p.doc_id for p in passages} | {p.context: p.doc_id for p in passages if p.context}
    for lay, other in pairs:
        lay_docs = {doc_of[text] for text in plain if text in lay}
        assert other in clinical or other in headers
        assert lay_docs == {doc_of[other]}  # both sides describe the same study
    # the topic document has no plain-language text, so it gives no pairs
    topic_text = by_doc["topic"].text
    assert all(topic_text not in other for _, other in pairs)
