"""Precedents: the studies that similar questions needed.

A bank of questions labelled with graded relevance (by default the dev split of
``datasets/lbp-dev/answers/broad.jsonl``: for each question, the studies a good answer must
cite) remembers which kind of question needs which study. For a new question the
:data:`NEIGHBOURS` most similar questions of the bank vote: a study's vote is the
similarity-weighted share of them for which it was essential (the closest weigh most:
:data:`SIMILARITY_POWER`). The gatherer
(:meth:`assistant.answers.synthesis.EvidenceGatherer.gather`) uses the votes three ways:

- a candidate study that half the similar questions needed (vote >= :data:`PRECEDENT_VOTE`)
  joins the answer even when the calibrated cut would leave it out ("Is there any point in
  exercise therapy for acute LBP, or is advice to stay active enough?" needs the Cochrane
  review that found no benefit in acute LBP, whose words are not the question's);
- a study that only the treatment or outcome vocabulary brings (not the cut) and that none
  of the similar questions needed is left out (these two only when a bank question is close:
  :data:`CLOSE_PRECEDENT`);
- a study the cut or the vocabulary keeps (not the best document) stays only when at least
  :data:`RELEVANT_VOTE` of the similar questions (:data:`PATIENT_RELEVANT_VOTE` for the
  looser cut of patient answers) found it relevant at all.

The bank's questions also carry key facts, each tied to references and to the words that state
it; the sentences of those references that state a key fact of a similar question gain
:data:`FACT_BONUS` times their vote when a study's sentences are ranked
(:meth:`assistant.answers.synthesis.EvidenceGatherer._findings`): the sentence that answered
similar questions is quoted before one that only shares the question's words.

Measured on the broad questions with each batch of the dev split left out of the bank while
its own questions are asked (:func:`assistant.evaluation.broad_eval.evaluate_broad`), so
that no question votes for itself or for questions written beside it; the test split is never
in the bank. The bank's relevance refers to reference numbers of the embedded corpus, so it
applies by default only to an index of that corpus (:attr:`assistant.config.Settings.precedents`).

A follow-up's own words (without the previous question's topic that the question as searched
carries) also get votes, from the bank questions as written (:meth:`Precedents.votes`
``by_message``): the selector (:mod:`assistant.answers.selector`) reads both.

Bank vectors (the standalone question, history resolved, expanded as searched, and the
question as written) are cached in
the user cache folder, keyed by the bank file's bytes and the index, so that only the first
process after a change of either pays for resolving and encoding the questions.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from assistant.documents.beir_corpus import read_jsonl_records
from assistant.errors import FormatError
from assistant.files import write_atomic

NEIGHBOURS = 8
"""How many of the most similar bank questions vote (measured on the dev split, leaving out
each batch in turn: 4 to 16 all help; 8 best for precision)."""
SIMILARITY_POWER = 8
"""A neighbour's vote weighs its cosine to the question raised to this power, so the closest
questions count most (0.8 weighs 3.4 times 0.68). Measured on the dev split, leaving out each
batch in turn, clinician essential recall / key facts / precision: power 1 0.828 / 0.742 /
0.899, 4 0.841 / 0.748 / 0.900, 8 0.857 / 0.756 / 0.897, 16 0.869 / 0.756 / 0.881."""
PRECEDENT_VOTE = 0.5
"""The vote at which a candidate study joins the answer. Chosen with :data:`RELEVANT_VOTE` on
the 746 dev clinician questions of the end of the fourth session (each batch left out of the
bank), essential recall / key facts / precision: 0.6 with 0.10, 0.829 / 0.758 / 0.884; 0.5 with
0.20, 0.837 / 0.764 / 0.887; 0.4 with 0.20, 0.845 / 0.770 / 0.882; 0.5 with 0.25, 0.834 /
0.762 / 0.888; 0.7 with 0.10, 0.822 / 0.751 / 0.885. (With 214 dev questions, 0.5 had traded
precision for recall.)"""
CLOSE_PRECEDENT = 0.55
"""The studies leave by the votes only when the most similar bank question has at least this
cosine to the question: a question unlike any of the bank ("My back went two days ago. Are
special exercises better than painkillers?" is closest to questions on physiotherapists'
exercises, at 0.515) keeps what the cut and the vocabulary give it. Dev patient essential
recall / precision 0.737 / 0.869 without the condition, 0.744 / 0.849 with it; clinician
0.862 / 0.908 and 0.864 / 0.906."""
VOTED_ROUTES = frozenset({"cut", "treatment", "outcome"})
"""The routes by which a study comes in that the relevant votes check (not the best document,
a study named by its author, a strong result sentence or a precedent)."""
RELEVANT_VOTE = 0.20
"""The share of similar questions that graded a study relevant (1 or 2) below which a
clinician answer does not keep it by :data:`VOTED_ROUTES` (chosen with :data:`PRECEDENT_VOTE`,
see there; with 214 dev questions and the bar at 0.6, 0.05 and 0.10 had given precision 0.906
and 0.910 for 0.892 without the check)."""
PATIENT_RELEVANT_VOTE = 0.25
"""The same for patient answers, whose cut is looser (dev patient questions: essential recall
0.730, precision 0.857 with the check on the cut's studies alone, 0.734 / 0.869 on all of
:data:`VOTED_ROUTES`; 0.15 / 0.35 trade the two)."""
FACT_BONUS = 0.6
"""The score a sentence gains, times its vote, for stating a key fact of similar questions; the
margin within which a study's further sentences must come is still counted from its best
score without it (:func:`assistant.answers.selection.select_findings`), so such a sentence
comes in more easily and keeps no other out. Dev key-fact recall, clinician / patient, and
clinician words: 0.765 / 0.475 / 405 without; 0.783 / 0.586 / 415 at 0.3; 0.789 / 0.601 / 422
at 0.6; 0.787 / 0.608 / 425 at 1.0. (With the margin counted from the best score with the bonus,
0.3 gave 0.779 / 0.586 at 380 words: the bonus crowded out the study's other findings.)"""
CACHE_FORMAT = "vectors+stating+messages/3"
"""Changes when what the cache holds, how a key fact is matched, or how a follow-up is
rewritten into the question as searched (:func:`assistant.answers.conversation.standalone_query`)
changes."""
ESSENTIAL = 2
"""The relevance grade of a study an answer must cite."""
RELEVANT = 1
"""The lowest grade of a study that bears on the question."""


@dataclass(frozen=True)
class Votes:
    """The votes of the similar questions for one question: document id -> share (weighted
    by similarity) of them for which the study was ..."""

    needed: Mapping[str, float]
    """... essential."""
    relevant: Mapping[str, float]
    """... relevant or essential."""
    sentences: Mapping[int, float] = field(default_factory=dict)
    """Sentence row -> the same share for the questions one of whose key facts it states."""
    closest: float = 1.0
    """The cosine of the most similar question of the bank."""
    known: frozenset[str] = frozenset()
    """The documents some question of the bank graded: the votes judge only these (a study
    added to the index after the bank was labelled has no votes, not votes against it)."""


@dataclass(frozen=True)
class Fact:
    """A key fact of a bank question: its references, and the term groups that state it (a
    sentence states it when it contains one alternative of every group, case-insensitively)."""

    refs: tuple[int, ...]
    match: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "match", tuple(tuple(alt.lower() for alt in group) for group in self.match))

    def stated_in(self, text: str) -> bool:
        """Whether ``text`` states the fact."""
        return self.stated_in_lowered(text.lower())

    def stated_in_lowered(self, low: str) -> bool:
        """:meth:`stated_in` for a text already in lower case."""
        return bool(self.match) and all(any(alt in low for alt in group) for group in self.match)


@dataclass(frozen=True)
class Precedent:
    """One labelled question of the bank."""

    question: str
    """The question as searched: its history resolved (a follow-up stands alone)."""
    essential: frozenset[int]
    """The reference numbers of the studies its answer must cite."""
    relevant: frozenset[int]
    """The reference numbers of the studies that bear on it (essential ones included)."""
    group: str
    """The batch it was written in (left out together while the batch is evaluated)."""
    facts: tuple[Fact, ...] = ()
    """Its key facts."""


class Precedents:
    """The bank of labelled questions and their vectors.

    Args:
        precedents: the labelled questions.
        vectors: their normalized vectors, one row each.
        doc_of_ref: reference number -> document id of the index.
        neighbours: how many similar questions vote.
        sentences_of: document id -> its sentences as (row, text), to find the sentences that
            state each precedent's key facts (none without it).
        stating: those sentence rows per precedent, already found (from the cache).
        message_vectors: the normalized vectors of the questions as written, without their
            history (a follow-up's own words; None: the same as ``vectors``).
    """

    def __init__(
        self,
        precedents: Sequence[Precedent],
        vectors: np.ndarray,
        doc_of_ref: Mapping[int, str],
        neighbours: int = NEIGHBOURS,
        sentences_of: Callable[[str], Sequence[tuple[int, str]]] | None = None,
        stating: Sequence[Sequence[int]] | None = None,
        message_vectors: np.ndarray | None = None,
    ) -> None:
        if len(precedents) != len(vectors):
            raise ValueError(f"{len(precedents)} precedents but {len(vectors)} vectors")
        if message_vectors is not None and len(message_vectors) != len(vectors):
            raise ValueError(f"{len(vectors)} vectors but {len(message_vectors)} message vectors")
        self.precedents = tuple(precedents)
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.message_vectors = (
            self.vectors if message_vectors is None else np.asarray(message_vectors, dtype=np.float32)
        )
        self.neighbours = neighbours
        self._essential = [tuple(doc_of_ref[n] for n in sorted(p.essential) if n in doc_of_ref) for p in precedents]
        self._relevant = [tuple(doc_of_ref[n] for n in sorted(p.relevant) if n in doc_of_ref) for p in precedents]
        self.known = frozenset(d for docs in self._relevant for d in docs)
        lowered: dict[str, list[tuple[int, str]]] = {}  # each document's sentences, lowered once

        def sentences(doc_id: str) -> list[tuple[int, str]]:
            if doc_id not in lowered:
                lowered[doc_id] = [(row, text.lower()) for row, text in sentences_of(doc_id)] if sentences_of else []
            return lowered[doc_id]

        if stating is not None and len(stating) == len(precedents):
            self._stating = [tuple(int(r) for r in rows) for rows in stating]
        else:
            self._stating = [_stating(p.facts, doc_of_ref, sentences) for p in precedents]
        self._groups = np.array([p.group for p in precedents])
        self._local = threading.local()

    def __len__(self) -> int:
        return len(self.precedents)

    @contextmanager
    def excluding(self, group: str | None) -> Iterator[None]:
        """Within the block (in this thread), the questions of ``group`` do not vote: an
        evaluation asks a batch's questions with the batch left out of the bank."""
        previous = getattr(self._local, "group", None)
        self._local.group = group
        try:
            yield
        finally:
            self._local.group = previous

    def votes(self, vector: np.ndarray, by_message: bool = False) -> Votes:
        """The votes of the :attr:`neighbours` bank questions most similar to ``vector`` (a
        normalized question vector): each study's similarity-weighted share of them that
        needed it, and that found it relevant. ``by_message``: similar by the questions as
        written rather than as searched (a follow-up's own words, "And for subacute LBP?",
        against the others' own words)."""
        excluded = getattr(self._local, "group", None)
        pool = np.flatnonzero(self._groups != excluded) if excluded is not None else np.arange(len(self))
        if not len(pool):
            return Votes({}, {}, {}, known=self.known)
        vectors = self.message_vectors if by_message else self.vectors
        sims = vectors[pool] @ np.asarray(vector, dtype=np.float32)
        order = np.argsort(-sims, kind="stable")[: self.neighbours]
        weights = np.clip(sims[order], 0.0, None) ** SIMILARITY_POWER
        total = float(weights.sum())
        if total <= 0.0:
            return Votes({}, {}, {}, known=self.known)
        needed: dict[str, float] = {}
        relevant: dict[str, float] = {}
        sentences: dict[int, float] = {}
        for i, w in zip(order, weights, strict=True):
            share = float(w) / total
            for doc_id in self._essential[pool[i]]:
                needed[doc_id] = needed.get(doc_id, 0.0) + share
            for doc_id in self._relevant[pool[i]]:
                relevant[doc_id] = relevant.get(doc_id, 0.0) + share
            for row in self._stating[pool[i]]:
                sentences[row] = sentences.get(row, 0.0) + share
        return Votes(needed, relevant, sentences, float(sims[order[0]]), self.known)


class BankRow(NamedTuple):
    """One labelled question as the bank file gives it."""

    text: str
    history: tuple[str, ...]
    essential: frozenset[int]
    relevant: frozenset[int]
    facts: tuple[Fact, ...]
    group: str


def group_of(item: Mapping[str, object], line: int | None = None) -> str:
    """The batch a labelled question is left out of the bank with while its own batch is
    evaluated: its ``batch``, else its ``_id``, else its line."""
    return str(item.get("batch") or item.get("_id") or line)


def read_bank(path: Path, split: str = "dev") -> list[BankRow]:
    """The ``split`` rows of a broad-question file.

    Raises:
        FormatError: a row without text or relevance, or a line that is not JSON (naming the
            file and line).
    """
    rows = []
    for line, item in read_jsonl_records(path):
        if item.get("split", "dev") != split:
            continue
        text, relevance = item.get("text"), item.get("relevance")
        if not isinstance(text, str) or not isinstance(relevance, dict):
            raise FormatError(path, line, "a precedent needs 'text' and a 'relevance' object")
        try:
            grades = {int(n): int(grade) for n, grade in relevance.items()}
        except (TypeError, ValueError):
            raise FormatError(path, line, "relevance must map reference numbers to grades") from None
        history = [h for h in item.get("history") or [] if isinstance(h, str)]
        essential = frozenset(n for n, g in grades.items() if g >= ESSENTIAL)
        relevant = frozenset(n for n, g in grades.items() if g >= RELEVANT)
        try:
            facts = tuple(
                Fact(tuple(int(n) for n in f["refs"]), tuple(tuple(str(a) for a in g) for g in f["match"]))
                for f in item.get("facts") or []
            )
        except (KeyError, TypeError, ValueError):
            raise FormatError(path, line, "a fact needs 'refs' (reference numbers) and 'match' (term groups)") from None
        group = group_of(item, line)
        rows.append(BankRow(text, tuple(history), essential, relevant, facts, group))
    return rows


def load_precedents(
    path: Path,
    standalone: Callable[[str, Sequence[str]], str],
    encode: Callable[[Sequence[str]], np.ndarray],
    doc_of_ref: Mapping[int, str],
    cache: Path | None = None,
    key: str = "",
    sentences_of: Callable[[str], Sequence[tuple[int, str]]] | None = None,
) -> Precedents | None:
    """The bank of ``path`` (None when it has no dev question, or none of its studies is
    indexed).

    Args:
        path: a broad-question JSONL file (the dev split is the bank).
        standalone: (question, earlier questions) -> the question as searched.
        encode: texts -> normalized vectors (the query encoder, batched).
        doc_of_ref: reference number -> document id of the index.
        cache: a folder for the vectors (None: no cache); a cache that cannot be written is
            skipped.
        key: what else the vectors depend on (the index's identity).
        sentences_of: document id -> its (row, text) sentences (see :class:`Precedents`).

    Raises:
        FormatError: a malformed line of ``path`` (see :func:`read_bank`).
    """
    rows = read_bank(path)
    if not rows or not any(n in doc_of_ref for row in rows for n in row.essential):
        return None
    # the cache holds the questions as searched, their vectors and the rows of the sentences that
    # state their key facts: it depends on the bank, the index and how facts are matched
    digest = hashlib.sha256(f"{key}\0{CACHE_FORMAT}\0".encode() + path.read_bytes()).hexdigest()[:24]
    cached = cache / f"precedents-{digest}.npz" if cache is not None else None
    questions, vectors, stating, messages = _read_cache(cached, len(rows))
    fresh = questions is None or vectors is None or messages is None
    if questions is None or vectors is None or messages is None:
        questions = [standalone(row.text, row.history) for row in rows]
        vectors = np.asarray(encode(questions), dtype=np.float32)
        # a follow-up's own words (a question that stands alone is its own message)
        follow_ups = [i for i, row in enumerate(rows) if row.history]
        messages = vectors.copy()
        if follow_ups:
            messages[follow_ups] = np.asarray(encode([standalone(rows[i].text, ()) for i in follow_ups]))
    precedents = [
        Precedent(q, row.essential, row.relevant, row.group, row.facts) for q, row in zip(questions, rows, strict=True)
    ]
    bank = Precedents(
        precedents, vectors, doc_of_ref, sentences_of=sentences_of, stating=stating, message_vectors=messages
    )
    if cached is not None and (fresh or stating is None):
        # the sentences that state the key facts are cached too: finding them costs about 0.15 s
        rows_of = bank._stating
        buffer = io.BytesIO()
        np.savez(
            buffer,
            vectors=vectors,
            message_vectors=messages,
            questions=np.array(questions, dtype=str),
            stating=np.array([r for rs in rows_of for r in rs], dtype=np.int64),
            stating_counts=np.array([len(rs) for rs in rows_of], dtype=np.int64),
        )
        with contextlib.suppress(OSError):  # a read-only cache folder: the bank lives in memory only
            write_atomic(cached, buffer.getvalue())
    return bank


def _stating(
    facts: Sequence[Fact], doc_of_ref: Mapping[int, str], lowered: Callable[[str], Sequence[tuple[int, str]]]
) -> tuple[int, ...]:
    """The sentence rows of the facts' references that state one of ``facts`` (``lowered``:
    document id -> its (row, lower-case text) sentences)."""
    rows: set[int] = set()
    for fact in facts:
        for n in fact.refs:
            if n in doc_of_ref:
                rows.update(row for row, low in lowered(doc_of_ref[n]) if fact.stated_in_lowered(low))
    return tuple(sorted(rows))


def _read_cache(
    path: Path | None, rows: int
) -> tuple[list[str] | None, np.ndarray | None, list[tuple[int, ...]] | None, np.ndarray | None]:
    """(questions, vectors, stating rows, message vectors) of a cache file with ``rows`` rows;
    None for what it lacks, all None when it is missing, damaged or of another size."""
    if path is None or not path.is_file():
        return None, None, None, None
    try:
        with np.load(path, allow_pickle=False) as data:
            vectors, questions = np.asarray(data["vectors"], dtype=np.float32), [str(q) for q in data["questions"]]
            messages = np.asarray(data["message_vectors"], dtype=np.float32) if "message_vectors" in data else None
            flat = np.asarray(data["stating"], dtype=np.int64) if "stating" in data else None
            counts = np.asarray(data["stating_counts"], dtype=np.int64) if "stating_counts" in data else None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None, None, None, None  # damaged: encode again
    if len(vectors) != rows or len(questions) != rows or vectors.ndim != 2:
        return None, None, None, None
    if messages is not None and messages.shape != vectors.shape:
        messages = None
    stating = None
    if flat is not None and counts is not None and len(counts) == rows and int(counts.sum()) == len(flat):
        ends = np.cumsum(counts)
        stating = [tuple(int(r) for r in flat[e - c : e]) for c, e in zip(counts, ends, strict=True)]
    return questions, vectors, stating, messages
