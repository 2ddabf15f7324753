"""Sources: bringing in literature from outside.

Takes files in the formats people export (PubMed XML, MEDLINE/.nbib, RIS, BibTeX, BEIR
corpus.jsonl, topic reprints; :mod:`.formats`) and PubMed ids (:mod:`.pubmed`, NCBI
E-utilities). Gives documents added to an existing index without re-embedding it
(:mod:`.ingest`), each bad record named and skipped.
"""
