"""Answers: from a question and its hits to a cited answer.

Takes a question (with its conversation) and a retriever. Gives an
:class:`~assistant.types.Answer` (:mod:`.answer`): scope and red-flag checks (:mod:`.scope`,
:mod:`.safety`), follow-up rewriting (:mod:`.conversation`), what the question asks
(:mod:`.questions`), the studies that bear on it and their findings (:mod:`.synthesis`,
:mod:`.evidence`, :mod:`.gaps`), the composed bottom line, groups and evidence table
(:mod:`.compose`), and the optional LLM answer with its validator (:mod:`.llm`,
:mod:`.directives`).
"""
