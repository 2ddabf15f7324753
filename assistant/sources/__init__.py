"""Sources: bringing in literature from outside.

Takes files in the formats people export (PubMed XML, MEDLINE/.nbib, RIS, BibTeX, BEIR
corpus.jsonl, topic reprints; :mod:`.formats` tells them apart and hands each to its reader,
one module per format: :mod:`.pubmed_xml`, :mod:`.medline`, :mod:`.ris`, :mod:`.bibtex`,
:mod:`.beir_jsonl`, :mod:`.reprint`, all making the records of :mod:`.records`) and PubMed ids
(:mod:`.pubmed`, through the NCBI E-utilities client of :mod:`.eutils`). Gives documents added
to an existing index without re-embedding it (:mod:`.ingest`, deciding what to add with
:mod:`.ingest_plan`), each bad record named and skipped.

Imports point one way: ingest -> formats -> the readers -> records.
"""
