"""Answers: from a question and its hits to a cited answer.

Takes a question (with its conversation) and a retriever. Gives an
:class:`~assistant.types.Answer` (:mod:`.answer`): scope and red-flag checks (:mod:`.scope`,
:mod:`.safety`), follow-up rewriting (:mod:`.conversation`), what the question asks
(:mod:`.questions`), the studies that bear on it and their findings (:mod:`.synthesis`, with
:mod:`.catalog` for what each study is about and reports, :mod:`.selection` for the sentences
quoted, :mod:`.studies` for the records gathered, :mod:`.evidence`, :mod:`.gaps`), the composed
bottom line, groups, notes and evidence table (:mod:`.compose`) of the clinician and patient
answers (:mod:`.clinician`, :mod:`.patient`), and the optional LLM answer with its prompt and
validator (:mod:`.llm`, :mod:`.prompt`, :mod:`.directives`).
"""
