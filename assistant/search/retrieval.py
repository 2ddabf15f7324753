"""Dense, lexical and hybrid retrieval over an :class:`~assistant.search.index.Index`.

- dense: normalized MiniLM query vector, FAISS inner product (exact numpy over the
  allowed rows when filters are given);
- bm25: bm25s scores over the same passages;
- hybrid: a convex combination of min-max normalized scores (default; alpha 0.5) or RRF.
  Hybrid adds two steps measured on datasets/lbp-dev: Rocchio pseudo-relevance feedback
  (the dense query moves towards its 5 best fused passages and searches again; either
  fusion) and, with convex fusion, evidence-aware priors (:mod:`assistant.search.priors`: strength
  of the study design, and the LBP phase the question names), rescaled so that scores stay
  in [0, 1].

Queries are first expanded with the corpus's lay vocabulary (:mod:`assistant.search.expansion`).
Default fusion, measured on the dev split of datasets/lbp-dev (nDCG@10, expansion on):
convex 0.844, RRF 0.831; feedback and priors then lift convex to 0.858 on dev and from
0.833 to 0.883 on the held-out test split; see docs/benchmarks.md.

Results are :class:`~assistant.types.Hit` lists; ``search_documents`` aggregates passage
hits to documents (best passage) for runs and qrels that speak in document ids.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import Settings
from assistant.search.bm25 import bm25_tokenize
from assistant.search.expansion import (
    ABBREVIATIONS_FILE,
    EMPTY,
    LAY_TERMS_FILE,
    Abbreviations,
    load_abbreviations,
    load_lay_vocabulary,
)
from assistant.search.fusion import aggregate_max, fuse_convex, fuse_rrf, mmr, rocchio, top_k
from assistant.search.index import Index
from assistant.search.priors import document_phase, evidence_prior, phase_match, query_phases
from assistant.types import Hit

METHODS = ("hybrid", "dense", "bm25")
FUSIONS = ("rrf", "convex")
EXPANSION_CACHE = 256
FILTER_ALIASES = {
    "phase": "lbp_phase",
    "type": "study_type",
    "design": "design_group",
    "group": "design_group",
    "pmid": "pmid",
    "doc": "doc_id",
    "id": "doc_id",
}

Filters = Mapping[str, str | Sequence[str]]


def filter_key(key: object) -> str:
    """The metadata key a filter key stands for: stripped, lower-cased, aliases resolved."""
    name = str(key).strip().lower()
    return FILTER_ALIASES.get(name, name)


def parse_filters(items: Iterable[str]) -> dict[str, list[str]]:
    """``["species=human", "phase=acute,chronic"]`` -> ``{"species": ["human"], "lbp_phase": [...]}``.

    Raises:
        ValueError: for an item that is not a string ``key=value`` with a key and at least
            one non-blank value.
    """
    out: dict[str, list[str]] = {}
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"filter {item!r} is not a key=value string")
        key, sep, value = item.partition("=")
        values = [v.strip() for v in value.split(",") if v.strip()]
        if not sep or not key.strip() or not values:
            raise ValueError(f"filter {item!r} is not key=value (e.g. species=human, study_type=Cochrane review)")
        out.setdefault(filter_key(key), []).extend(values)
    return out


def _norm(value: Any) -> str:
    return str(value).strip().lower() if value is not None else "none"


class Retriever:
    """Searches one index; thread-safe for concurrent queries."""

    def __init__(self, index: Index, settings: Settings, query_encoder: Any = None) -> None:
        self.index = index
        self.settings = index.query_settings(settings)
        self._encoder = query_encoder
        self._lock = threading.Lock()
        self._facets: dict[str, np.ndarray] = {}
        self._row_priors: tuple[np.ndarray, np.ndarray] | None = None
        self._sentence_rows: np.ndarray | None = None
        self.vocabulary = EMPTY
        self._expanded: dict[str, str] = {}  # a small cache: one answer expands its question several times
        self._abbreviations: Abbreviations | None = None
        if settings.query_expansion:
            self.vocabulary = load_lay_vocabulary(str(Path(settings.corpus_dir) / LAY_TERMS_FILE))

    @property
    def abbreviations(self) -> Abbreviations:
        """The abbreviations the indexed passages define, and those of the corpus folder's
        ``abbreviations.json`` (read on first use; none when expansion is off)."""
        if self._abbreviations is None:
            with self._lock:
                if self._abbreviations is None:
                    if self.settings.query_expansion:
                        path = str(Path(self.settings.corpus_dir) / ABBREVIATIONS_FILE)
                        self._abbreviations = load_abbreviations(path, (p.text for p in self.index.passages))
                    else:
                        self._abbreviations = Abbreviations.from_mapping({})
        return self._abbreviations

    def expand(self, query: str) -> str:
        """The query as searched: with the clinical terms of its everyday phrases and the
        long forms of its abbreviations added."""
        expanded = self._expanded.get(query)
        if expanded is None:
            expanded = self.vocabulary.expand(self.abbreviations.expand(query))
            if len(self._expanded) >= EXPANSION_CACHE:
                self._expanded.clear()
            self._expanded[query] = expanded
        return expanded

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            with self._lock:
                if self._encoder is None:
                    from assistant.encoders.embedding import CachedQueryEncoder, load_query_encoder

                    self._encoder = CachedQueryEncoder(load_query_encoder(self.settings))
        return self._encoder

    # ------------------------------------------------------------------ priors

    @property
    def _priors(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-row evidence prior and LBP phase (see :mod:`assistant.search.priors`), computed once."""
        if self._row_priors is None:
            evidence = np.array([evidence_prior(p.metadata) for p in self.index.passages], dtype=np.float64)
            phases = np.array([document_phase(p.metadata) for p in self.index.passages], dtype=object)
            self._row_priors = (evidence, phases)
        return self._row_priors

    def prior_scores(self, query: str, rows: Iterable[int]) -> dict[int, dict[str, float]]:
        """``{row: {"prior": ..., "phase": ...}}``: the weighted prior terms hybrid adds to a row."""
        evidence, phases = self._priors
        wanted = query_phases(query)
        out: dict[int, dict[str, float]] = {}
        for row in rows:
            out[row] = {
                "prior": self.settings.prior_weight * float(evidence[row]),
                "phase": self.settings.phase_weight * phase_match(wanted, phases[row]),
            }
        return out

    # ------------------------------------------------------------------ filters

    def _facet(self, key: str) -> np.ndarray:
        if key not in self._facets:
            values = []
            known = False
            for p in self.index.passages:
                v = p.doc_id if key == "doc_id" else p.metadata.get(key)  # the document id is no metadata key
                known = known or key == "doc_id" or key in p.metadata
                values.append("|".join(_norm(x) for x in v) if isinstance(v, list) else _norm(v))
            column = np.array(values, dtype=object)
            if not known:  # a key no passage has (a typo, or hostile input) is not kept
                return column
            self._facets[key] = column
        return self._facets[key]

    def mask(self, filters: Filters | None) -> np.ndarray | None:
        """Boolean row mask for metadata filters (values OR within a key, AND across keys).

        Keys are matched stripped and lower-cased (with :data:`FILTER_ALIASES`); a value is a
        string, a number, or a list of them, compared stripped and lower-cased.

        Raises:
            ValueError: for a key that is not a string or a value that is an object.
        """
        if not filters:
            return None
        mask = np.ones(len(self.index), dtype=bool)
        for raw_key, raw_values in filters.items():
            if not isinstance(raw_key, str):
                raise ValueError(f"filter key {raw_key!r} is not a string")
            if isinstance(raw_values, Mapping):
                raise ValueError(f"filter {raw_key!r} has an object as its value; give a string or a list")
            key = filter_key(raw_key)
            single = isinstance(raw_values, str) or not isinstance(raw_values, Iterable)
            values = [raw_values] if single else list(raw_values)
            wanted = {_norm(v) for v in values}
            column = self._facet(key)
            mask &= np.array([any(w in str(c).split("|") for w in wanted) for c in column], dtype=bool)
        return mask

    def documents(self, filters: Filters | None) -> set[str] | None:
        """The ids of the documents whose passages pass ``filters`` (None: no filters)."""
        mask = self.mask(filters)
        if mask is None:
            return None
        return {self.index.passages[int(row)].doc_id for row in np.flatnonzero(mask)}

    # ------------------------------------------------------------------ single retrievers

    def dense_scores(self, query: str, depth: int, mask: np.ndarray | None = None) -> list[tuple[int, float]]:
        """(row, cosine) pairs, best first."""
        return self._dense_search(self.encoder.encode_query(query), depth, mask)

    def _dense_search(self, q: np.ndarray, depth: int, mask: np.ndarray | None = None) -> list[tuple[int, float]]:
        n = len(self.index)
        depth = min(depth, n)
        if depth <= 0:
            return []
        if mask is not None:
            rows = np.flatnonzero(mask)
            if rows.size == 0:
                return []
            sims = np.asarray(self.index.embeddings[rows]) @ q
            order = np.argsort(-sims, kind="stable")[:depth]
            return [(int(rows[i]), float(sims[i])) for i in order]
        scores, ids = self.index.faiss_index.search(q.reshape(1, -1).astype(np.float32), depth)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def _passage_row_of_sentences(self) -> np.ndarray:
        """Passage row of every sentence of the index (computed once)."""
        if self._sentence_rows is None:
            rows = np.array([self.index.row_of(s["passage_id"]) for s in self.index.sentences], dtype=np.int64)
            self._sentence_rows = rows
        return self._sentence_rows

    def _sentence_blend(
        self, q: np.ndarray, hits: list[tuple[int, float]], depth: int, mask: np.ndarray | None, weight: float
    ) -> tuple[list[tuple[int, float]], dict[int, float]]:
        """Dense hits rescored as ``(1 - weight) * cosine + weight * best sentence cosine``.

        Candidates are the passage hits and the passages of the ``depth`` best sentences, so
        a passage whose one sentence answers the question is found even when the passage as
        a whole ranks low. Returns the rescored hits and each candidate's sentence cosine.
        """
        sentence_rows = self._passage_row_of_sentences()
        sims = np.asarray(self.index.sentence_embeddings) @ q
        if mask is not None:
            sims = np.where(mask[sentence_rows], sims, -np.inf)
        best = np.full(len(self.index), -np.inf, dtype=np.float32)
        np.maximum.at(best, sentence_rows, sims.astype(np.float32))
        n_top = min(depth, int(np.isfinite(sims).sum()))
        top = np.argpartition(-sims, n_top - 1)[:n_top] if n_top > 0 else np.zeros(0, dtype=np.int64)
        candidates = np.array(sorted({r for r, _ in hits} | {int(r) for r in sentence_rows[top]}), dtype=np.int64)
        if candidates.size == 0:
            return [], {}
        cosine = np.asarray(self.index.embeddings[candidates]) @ q
        sentence = np.where(np.isfinite(best[candidates]), best[candidates], cosine)
        blended = (1.0 - weight) * cosine + weight * sentence
        order = np.lexsort((candidates, -blended))[:depth]
        return (
            [(int(candidates[i]), float(blended[i])) for i in order],
            {int(candidates[i]): float(sentence[i]) for i in order},
        )

    def bm25_scores(self, query: str, depth: int, mask: np.ndarray | None = None) -> list[tuple[int, float]]:
        """(row, BM25 score) pairs with score > 0, best first."""
        tokens = bm25_tokenize([query], return_ids=False)[0]
        if not tokens:
            return []
        scores = np.asarray(self.index.bm25.get_scores(tokens), dtype=np.float32)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        depth = min(depth, int(np.count_nonzero(scores > 0)))
        if depth <= 0:
            return []
        top = np.argpartition(-scores, depth - 1)[:depth]
        top = top[np.lexsort((top, -scores[top]))]
        return [(int(i), float(scores[i])) for i in top]

    # ------------------------------------------------------------------ public API

    def search(
        self,
        query: str,
        k: int = 10,
        method: str = "hybrid",
        filters: Filters | None = None,
        fusion: str | None = None,
        mmr_lambda: float | None = None,
    ) -> list[Hit]:
        """Passage hits for ``query``.

        Args:
            query: the question.
            k: number of hits.
            method: ``hybrid``, ``dense`` or ``bm25``.
            filters: metadata filters, e.g. ``{"species": "human", "lbp_phase": ["acute"]}``.
            fusion: ``rrf`` or ``convex`` (default from settings).
            mmr_lambda: rerank the fused candidates by MMR with this lambda (None: off).

        Returns:
            Up to ``k`` hits, best first, each with its per-retriever scores and ranks in
            ``components``.
        """
        if method not in METHODS:
            raise ValueError(f"unknown retriever {method!r}: use one of {', '.join(METHODS)}")
        if not query.strip() or k <= 0:
            return []
        fusion = fusion or self.settings.fusion
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}: use rrf or convex")
        mask = self.mask(filters)
        depth = max(self.settings.fusion_depth, k * (4 if mmr_lambda is not None else 1))
        searched = self.expand(query)
        qvec = self.encoder.encode_query(searched) if method in ("dense", "hybrid") else None
        blend = float(self.settings.sentence_weight or 0.0) if method == "hybrid" else 0.0
        if self.index.sentence_embeddings is None or not self.index.sentences:
            blend = 0.0
        components: dict[int, dict[str, float]] = {}
        dense = self._dense_search(qvec, depth, mask) if qvec is not None else []
        if blend > 0 and qvec is not None:
            dense, sentence = self._sentence_blend(qvec, dense, depth, mask, blend)
            for row, score in sentence.items():
                components.setdefault(row, {})["sentence"] = score
        lexical = self.bm25_scores(searched, depth, mask) if method in ("bm25", "hybrid") else []
        for name, pairs in (("dense", dense), ("bm25", lexical)):
            for rank, (row, score) in enumerate(pairs, start=1):
                components.setdefault(row, {})[name] = score
                components[row][f"{name}_rank"] = rank
        if method == "hybrid" and qvec is not None and self.settings.prf_passages > 0 and dense:
            # Rocchio feedback from the first fused ranking, then dense search again. The
            # "dense" component keeps the first pass's score of the question itself.
            first = top_k(self._fuse(dense, lexical, fusion), self.settings.prf_passages)
            feedback = np.asarray(self.index.embeddings[[row for row, _ in first]])
            qvec = rocchio(qvec, feedback, self.settings.prf_weight)
            dense = self._dense_search(qvec, depth, mask)
            if blend > 0:
                dense, _ = self._sentence_blend(qvec, dense, depth, mask, blend)
            for row, score in dense:
                components.setdefault(row, {})["dense_feedback"] = score
        if method == "dense":
            scores = dict(dense)
        elif method == "bm25":
            scores = dict(lexical)
        else:
            scores = self._fuse(dense, lexical, fusion)
            scale = 1.0 + self.settings.prior_weight + self.settings.phase_weight
            if fusion == "convex" and scale > 1.0:
                # Convex scores lie in [0, 1]; with the prior terms they are rescaled to stay there.
                for row, terms in self.prior_scores(searched, scores).items():
                    scores[row] = (scores[row] + terms["prior"] + terms["phase"]) / scale
                    components[row].update(terms)
        ranked = top_k(scores, depth if mmr_lambda is not None else k)
        if mmr_lambda is not None and ranked:
            rows = [r for r, _ in ranked]
            vectors = np.asarray(self.index.embeddings[rows])
            order = mmr(
                qvec if qvec is not None else self.encoder.encode_query(searched),
                vectors,
                [s for _, s in ranked],
                k,
                mmr_lambda,
            )
            ranked = [ranked[i] for i in order]
        return [
            Hit(self.index.passages[row], float(score), rank, method, components.get(row, {}))
            for rank, (row, score) in enumerate(ranked[:k], start=1)
        ]

    def _fuse(self, dense: list[tuple[int, float]], lexical: list[tuple[int, float]], fusion: str) -> dict[int, float]:
        """Hybrid scores of the union of both lists; normalization bounds from the best ``fusion_depth``."""
        if fusion == "rrf":
            return fuse_rrf([[r for r, _ in dense], [r for r, _ in lexical]], k=self.settings.rrf_k)
        return fuse_convex(
            dict(dense), dict(lexical), alpha=float(self.settings.convex_alpha or 0.0), depth=self.settings.fusion_depth
        )

    def search_documents(
        self, query: str, k: int = 10, method: str = "hybrid", filters: Filters | None = None, fusion: str | None = None
    ) -> list[tuple[str, float]]:
        """Document ids with the score of their best passage, best first."""
        depth = max(self.settings.fusion_depth, k * 5)
        hits = self.search(query, k=depth, method=method, filters=filters, fusion=fusion)
        return top_k(aggregate_max((h.doc_id, h.score) for h in hits), k)


def run_queries(
    retriever: Retriever,
    queries: Mapping[str, str],
    k: int = 100,
    method: str = "hybrid",
    filters: Filters | None = None,
    progress: bool = False,
) -> dict[str, dict[str, float]]:
    """A document-level run ``{qid: {doc_id: score}}`` (BEIR/ranx format)."""
    items: Iterable[tuple[str, str]] = queries.items()
    if progress:
        from tqdm import tqdm

        items = tqdm(list(items), desc=f"{method} queries", unit="q")
    return {qid: dict(retriever.search_documents(text, k=k, method=method, filters=filters)) for qid, text in items}
