"""Search: the index folder and retrieval over it.

Takes documents and an encoder. Gives the index folder (FAISS, bm25s, passages, sentences,
manifest; built, checked and loaded by :mod:`.index`) and ranked passage hits
(:mod:`.retrieval`: dense, BM25 and hybrid, with lay-term expansion :mod:`.expansion`, the
fusion math :mod:`.fusion` and the evidence and phase priors :mod:`.priors`).
"""
