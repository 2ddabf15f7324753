"""Evaluation: the measures and the standard formats.

Takes BEIR folders (:mod:`.beir`: corpus, queries, qrels; TREC runs out), the answer sets of
``datasets/lbp-dev`` and external benchmarks (:mod:`.pubmedqa`). Gives retrieval metrics with
significance tests (:mod:`.evaluate` runs them, :mod:`.metrics` scores, :mod:`.report`
renders) and answer-level metrics (:mod:`.answer_eval`, :mod:`.broad_eval`).
"""
