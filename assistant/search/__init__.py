"""Search: the index folder and retrieval over it.

Takes documents and an encoder. Gives the index folder (FAISS, bm25s, passages, sentences,
manifest; laid out and written by :mod:`.folder`, built and kept current by :mod:`.build`,
loaded, checked and extended by :mod:`.index`, with the BM25 tokenization of :mod:`.bm25`
and the sentences and vectors of :mod:`.encoding`) and ranked passage hits
(:mod:`.retrieval`: dense, BM25 and hybrid, with lay-term expansion :mod:`.expansion`, the
fusion math :mod:`.fusion` and the evidence and phase priors :mod:`.priors`).
"""
