"""Documents: the source texts, read and cut into passages.

Takes the corpus folder (the UpToDate-style topic reprint and ``references.json`` with one
evidence record per reference). Gives :class:`~assistant.types.Document` objects
(:mod:`.corpus`, from the reprint parser :mod:`.reprint` and the evidence records
:mod:`.records`) and, per document, token-bounded :class:`~assistant.types.Passage` objects
with their sentences (:mod:`.chunking`). Imports nothing above the shared core.
"""
