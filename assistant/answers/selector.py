"""The learned selector: which candidate studies an answer cites, judged from all the signals
at once.

The gatherer's rules (:meth:`assistant.answers.synthesis.EvidenceGatherer.gather`) decide
each study by one signal at a time: the calibrated cut, the treatments and outcomes the
question names, the votes of similar questions (:mod:`assistant.answers.precedents`). Each
rule is a threshold on its own signal, and a study that fails one of them narrowly leaves
even when every other signal says it bears on the question. The selector weighs them
together: a small gradient-boosted tree ensemble, trained on the bank of labelled questions,
gives each eligible candidate the probability that it bears on the question (graded 1 or 2)
from :data:`FEATURES`: what the rules decided (the route), the votes of similar questions,
the search (rank, fused score, the similarity of its best result sentence, coverage of the
question's words), its design and evidence level, whether its population is the one asked
about, and, for a follow-up, how close it comes to the message's own words and the votes of
the bank questions written like the message (the question as searched carries the previous
question's topic, which brings that question's studies). The answer cites the candidates whose probability reaches :attr:`Selector.threshold`,
most probable first, up to the answer's bound.

No feature names a document or a reference number: what the selector learns is how the
signals combine, not which study answers which question, so it applies to any question the
bank's questions resemble. The bank's votes are among its inputs, so it is used only with the
bank (:attr:`assistant.config.Settings.precedents`).

Training (``python -m assistant train-selector``) asks every question of the bank with its
own batch left out of the bank, as ``eval-answers`` does, and records each eligible
candidate's features with the question's grade for it. ``eval-answers`` asks each dev
question with a selector trained without its batch (nested: neither the votes nor the trees
have seen the batch); the shipped selector, trained on the whole bank, answers everything
else. Inference is plain NumPy (no scikit-learn at run time): each tree is stored as arrays of
its nodes.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.answers.conversation import content_words
from assistant.answers.precedents import Votes
from assistant.answers.studies import Study
from assistant.errors import FormatError
from assistant.files import write_atomic

ROUTES = ("", "best", "cut", "treatment", "outcome", "precedent", "strong", "named")
"""The rules' routes (:attr:`assistant.answers.studies.Study.route`; empty: the rules left it out)."""
DESIGNS = ("review", "trial", "cohort", "animal", "topic")
"""Design groups given their own feature (others: none of them)."""
FEATURES = (
    *(f"route={r or 'none'}" for r in ROUTES),
    "needed_vote",
    "relevant_vote",
    "sentence_vote",
    "closest_precedent",
    "known_to_bank",
    "log_rank",
    "relative_score",
    "result_similarity",
    "top_similarity",
    "coverage",
    "evidence_level",
    "about_named_treatment",
    "patient",
    "phase_asked",
    "other_phase_asked",
    "animal_not_asked",
    "animal_asked",
    "title_overlap",
    "kept_by_rules",
    "eligible",
    *(f"design={d}" for d in DESIGNS),
    "follow_up",
    "message_similarity",
    "message_gap",
    "message_rank",
    "message_needed_vote",
    "message_relevant_vote",
    "message_closest_precedent",
    "message_words",
)
"""The selector's inputs, in order (a model file names them; another list is refused)."""
RELEVANT_AT = 0.85
"""The probability of bearing on the question at which a candidate is cited."""
ESSENTIAL_AT = 0.3
"""The probability of being essential at which a candidate is cited whatever the other.
Chosen with :data:`RELEVANT_AT` on the dev split, nested (each batch left out of the bank and
of the trees), replaying the candidates that training collects offline, each batch judged by
trees fitted without it; clinician essential recall / precision: 0.7 and 0.4, 0.869 / 0.929; 0.8 and
0.3, 0.869 / 0.932; 0.8 and 0.4, 0.862 / 0.937; 0.85 and 0.3, 0.863 / 0.940; 0.85 and 0.4,
0.853 / 0.945; 0.9 and 0.3, 0.853 / 0.946. Patient at 0.85 and 0.3: 0.833 / 0.959 (0.842 /
0.942 at 0.7 and 0.4). With the features of the fifth session (no message features) the
frontier was lower: 0.7 and 0.4 gave 0.841 / 0.896."""
TREES = 100
"""Boosting rounds (of depth :data:`DEPTH`, at :data:`LEARNING_RATE`): 200 of depth 4 and 60
of depth 3 did no better on the dev split, nested."""
LEARNING_RATE = 0.05
DEPTH = 3
SPECIFIC_PHASES = ("acute", "subacute", "chronic", "recurrent", "prevention")


@dataclass(frozen=True)
class Context:
    """What the features of one question's candidates share."""

    votes: Votes
    patient: bool
    asked: Sequence[str]
    animals_asked: bool
    words: frozenset[str]
    kept: int
    message: Mapping[str, float] | None = None
    """For a message that leans on the conversation ("And for subacute LBP?"), each
    candidate's closest sentence to the message's own words (the question as searched carries
    the previous question's topic, and with it that question's studies); None otherwise."""
    message_votes: Votes | None = None
    """The votes of the bank's questions whose own words are like the message's (None: as
    :attr:`votes`)."""
    message_words: int = 0
    """How many content words the message has ("long term?" says little on its own)."""


def question_words(text: str) -> frozenset[str]:
    """The question's content words, cut to six letters (a crude stem) for the title overlap."""
    return frozenset(w[:6] for w in content_words(text))


def features(study: Study, ctx: Context, eligible: bool = True) -> list[float]:
    """:data:`FEATURES` of ``study`` (its :attr:`~Study.route` as the rules left it;
    ``eligible``: whether the rules would let it join past the cut)."""
    meta = study.meta
    votes = ctx.votes
    phase = str(meta.get("lbp_phase") or "")
    animal = study.animal
    title = " ".join(str(meta.get(k) or "") for k in ("title", "interventions"))
    words = question_words(title)
    rows = [f.row for f in (*study.findings, *study.plain)]
    design = str(meta.get("design_group") or "")
    to_query = max((f.similarity for f in (*study.findings, *study.plain)), default=0.0)
    message = ctx.message
    to_message = message.get(study.doc_id, 0.0) if message is not None else to_query
    closer = sum(v > to_message for v in message.values()) if message is not None else 0
    by_message = ctx.message_votes if ctx.message_votes is not None else votes
    return [
        *(float(study.route == r) for r in ROUTES),
        votes.needed.get(study.doc_id, 0.0),
        votes.relevant.get(study.doc_id, 0.0),
        max((votes.sentences.get(r, 0.0) for r in rows), default=0.0),
        votes.closest,
        float(study.doc_id in votes.known),
        math.log1p(study.rank),
        study.relative_score,
        study.result_similarity,
        study.top_similarity,
        study.coverage,
        float(study.level),
        float(bool(study.facets)),
        float(ctx.patient),
        float(bool(ctx.asked) and phase in ctx.asked),
        float(bool(ctx.asked) and phase in SPECIFIC_PHASES and phase not in ctx.asked),
        float(animal and not ctx.animals_asked),
        float(animal and ctx.animals_asked),
        len(ctx.words & words) / max(1, len(ctx.words)),
        float(ctx.kept),
        float(eligible),
        *(float(design == d) for d in DESIGNS),
        float(message is not None),
        to_message,
        to_message - to_query,
        math.log1p(closer),
        by_message.needed.get(study.doc_id, 0.0),
        by_message.relevant.get(study.doc_id, 0.0),
        by_message.closest,
        float(ctx.message_words),
    ]


class Trees:
    """A gradient-boosted tree ensemble for one binary label (log loss).

    Args:
        baseline: the raw score before the trees.
        trees: each tree as (feature, threshold, left, right, value) arrays over its nodes; a
            leaf has left == -1; a sample goes left when its feature is <= the threshold.
    """

    def __init__(self, baseline: float, trees: Sequence[Sequence[Sequence[float]]]) -> None:
        self.baseline = float(baseline)
        self.trees = [
            (
                np.asarray(feature, dtype=np.int64),
                np.asarray(threshold, dtype=np.float64),
                np.asarray(left, dtype=np.int64),
                np.asarray(right, dtype=np.int64),
                np.asarray(value, dtype=np.float64),
            )
            for feature, threshold, left, right, value in trees
        ]
        # all trees as one array of nodes, children as indices into it: every tree is walked at
        # once, one level per step (about 0.1 ms for the candidates of a question)
        sizes = [len(t[0]) for t in self.trees]
        offsets = np.cumsum([0, *sizes])[:-1].astype(np.int64)
        self._roots = offsets
        self._feature = np.concatenate([t[0] for t in self.trees]) if self.trees else np.zeros(0, np.int64)
        self._threshold = np.concatenate([t[1] for t in self.trees]) if self.trees else np.zeros(0)
        self._left = (
            np.concatenate([np.where(t[2] >= 0, t[2] + o, -1) for t, o in zip(self.trees, offsets, strict=True)])
            if self.trees
            else np.zeros(0, np.int64)
        )
        self._right = (
            np.concatenate([np.where(t[2] >= 0, t[3] + o, -1) for t, o in zip(self.trees, offsets, strict=True)])
            if self.trees
            else np.zeros(0, np.int64)
        )
        self._value = np.concatenate([t[4] for t in self.trees]) if self.trees else np.zeros(0)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """The probability of the label for each row of ``x``."""
        x = np.asarray(x, dtype=np.float64)
        raw = np.full(len(x), self.baseline)
        if self.trees and len(x):
            node = np.repeat(self._roots[:, None], len(x), axis=1)  # (trees, samples)
            samples = np.arange(len(x))[None, :]
            inner = self._left[node] >= 0
            while inner.any():
                go_left = x[samples, self._feature[node]] <= self._threshold[node]
                node = np.where(inner, np.where(go_left, self._left[node], self._right[node]), node)
                inner = self._left[node] >= 0
            raw += self._value[node].sum(axis=0)
        return 1.0 / (1.0 + np.exp(-raw))

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "trees": [
                [f.tolist(), [float(v) for v in t], left.tolist(), right.tolist(), [float(v) for v in value]]
                for f, t, left, right, value in self.trees
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Trees:
        return cls(float(data["baseline"]), data["trees"])


class Selector:
    """Which candidates an answer cites: those the :attr:`relevant` trees give at least
    :attr:`relevant_at`, or the :attr:`essential` trees at least :attr:`essential_at` (a
    study most answers must cite may be cited on a lower certainty that it bears at all).

    Args:
        relevant: trees for "graded 1 or 2" (bears on the question).
        essential: trees for "graded 2" (an answer must cite it).
        relevant_at, essential_at: the probabilities at which a candidate is cited.
        meta: what the selector was trained on (bank digest, counts, parameters).
    """

    def __init__(
        self,
        relevant: Trees,
        essential: Trees,
        relevant_at: float = RELEVANT_AT,
        essential_at: float = ESSENTIAL_AT,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self.relevant = relevant
        self.essential = essential
        self.relevant_at = float(relevant_at)
        self.essential_at = float(essential_at)
        self.meta = dict(meta or {})

    def judge(self, rows: Sequence[Sequence[float]]) -> list[tuple[float, bool]]:
        """For each candidate (a row of :data:`FEATURES`): the probability that it bears on the
        question (it orders the cited ones), and whether it is cited."""
        x = np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURES))
        relevant = self.relevant.probabilities(x)
        essential = self.essential.probabilities(x)
        return [
            (float(r), bool(r >= self.relevant_at or e >= self.essential_at))
            for r, e in zip(relevant, essential, strict=True)
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "features": list(FEATURES),
            "relevant_at": self.relevant_at,
            "essential_at": self.essential_at,
            "meta": self.meta,
            "relevant": self.relevant.to_json(),
            "essential": self.essential.to_json(),
        }

    def save(self, path: Path) -> None:
        write_atomic(path, (json.dumps(self.to_json(), separators=(",", ":")) + "\n").encode())


def load_selector(path: Path) -> Selector:
    """The selector of a model file (:meth:`Selector.save`).

    Raises:
        FileNotFoundError: no such file.
        FormatError: not a selector file, or one for other features (naming the file).
    """
    if not path.is_file():
        raise FileNotFoundError(f"selector file {path} does not exist (LBP_SELECTOR=off turns it off)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FormatError(path, None, f"not a selector file ({exc})") from None
    if not isinstance(data, dict) or data.get("features") != list(FEATURES):
        raise FormatError(
            path, None, "a selector for other features: train it again (python -m assistant train-selector)"
        )
    try:
        return Selector(
            Trees.from_json(data["relevant"]),
            Trees.from_json(data["essential"]),
            float(data.get("relevant_at", RELEVANT_AT)),
            float(data.get("essential_at", ESSENTIAL_AT)),
            data.get("meta"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(path, None, f"not a selector file ({exc!r})") from None


@dataclass(frozen=True)
class Example:
    """One candidate of one bank question: its features and the question's grade for it."""

    group: str
    """The question's batch."""
    question: int
    doc_id: str
    features: tuple[float, ...]
    grade: int


def fit_trees(x: np.ndarray, y: np.ndarray) -> Trees:
    """Trees fitted to the binary label ``y`` (scikit-learn's histogram gradient boosting,
    installed with sentence-transformers and imported here only: answering needs NumPy alone)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    model = HistGradientBoostingClassifier(
        max_iter=TREES, learning_rate=LEARNING_RATE, max_depth=DEPTH, early_stopping=False, random_state=0
    )
    with threadpool_limits(1):  # OpenMP threads spin against other processes' (an evaluation beside the app)
        model.fit(x, y)
    trees = []
    for (predictor,) in model._predictors:  # one predictor per round for a binary label
        nodes = predictor.nodes
        leaf = nodes["is_leaf"].astype(bool)
        trees.append(
            [
                nodes["feature_idx"].astype(np.int64),
                nodes["num_threshold"],
                np.where(leaf, -1, nodes["left"].astype(np.int64)),
                np.where(leaf, -1, nodes["right"].astype(np.int64)),
                nodes["value"],
            ]
        )
    return Trees(float(np.ravel(model._baseline_prediction)[0]), trees)


def train_selector(
    examples: Sequence[Example], exclude: Collection[str] = (), meta: Mapping[str, Any] | None = None
) -> Selector:
    """A selector fitted on ``examples`` (those of the groups ``exclude`` left out).

    Raises:
        ValueError: no example, or no relevant or no irrelevant one.
    """
    rows = [e for e in examples if e.group not in exclude]
    x = np.array([e.features for e in rows], dtype=np.float64).reshape(-1, len(FEATURES))
    grades = np.array([e.grade for e in rows], dtype=np.int64)
    if len({bool(g >= 1) for g in grades}) < 2 or not (grades >= 2).any():
        raise ValueError(f"{len(rows)} examples: a selector needs relevant, essential and irrelevant candidates")
    info = {
        "examples": len(rows),
        "relevant": int((grades >= 1).sum()),
        "essential": int((grades >= 2).sum()),
        "trees": TREES,
        "depth": DEPTH,
        "learning_rate": LEARNING_RATE,
        **(meta or {}),
    }
    return Selector(fit_trees(x, grades >= 1), fit_trees(x, grades >= 2), meta=info)


def digest(path: Path) -> str:
    """A short digest of a bank file (recorded in the model it trains)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
