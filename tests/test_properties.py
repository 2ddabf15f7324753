"""Property-based tests (hypothesis) for the parts that read hostile input or do score math.

History and filter parsing, follow-up rewriting, the chunker, the fusion and normalization
math, and the evidence priors. Whatever they are given, they return what they promise or
raise ``ValueError`` (or a subclass) naming the problem; no other exception gets out.

Runs are reproducible: every property is derandomized (its examples come from a hash of the
test) and writes no example database. Every input that once broke a property is kept as an
``@example``.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from assistant.answers.conversation import (
    MAX_HISTORY_TURNS,
    is_follow_up,
    normalize_history,
    rewrite_follow_up,
    standalone_query,
)
from assistant.config import Settings
from assistant.documents.chunking import chunk_document, split_sentences, window_sentences
from assistant.search.fusion import (
    aggregate_max,
    fuse_convex,
    fuse_rrf,
    mmr,
    normalize_min_max,
    normalize_min_max_top,
    rocchio,
    top_k,
)
from assistant.search.priors import MIXED_MATCH, document_phase, evidence_prior, phase_match, query_phases
from assistant.search.retrieval import FILTER_ALIASES, Retriever, parse_filters
from assistant.types import Document, Passage, Section, Turn


def props(max_examples: int = 80) -> Any:
    """Settings of one property: reproducible (derandomized), no example database, no deadline."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


# --------------------------------------------------------------------------- strategies

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
roles = st.sampled_from(["user", "assistant", "system", "bot", "", "USER"]) | json_values
parts = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image", "file"]) | json_values},
    optional={"text": st.text(max_size=20) | json_values, "url": st.text(max_size=5)},
)
contents = st.text(max_size=30) | st.none() | json_values | st.lists(parts | json_values, max_size=4)
messages = st.fixed_dictionaries({"role": roles, "content": contents}, optional={"name": json_values}) | json_values
good_messages = st.builds(
    lambda role, text: {"role": role, "content": text}, st.sampled_from(["user", "assistant"]), st.text(max_size=20)
)
histories = (
    json_values
    | st.lists(messages, max_size=8)
    | st.lists(good_messages, max_size=8)
    | st.integers(0, 300).map(lambda n: [{"role": "user", "content": f"q{i}"} for i in range(n)])
)

# Words that exercise the follow-up rules: openers, pronouns, stop words, phase and body words.
_VOCAB = [
    *["and", "or", "but", "what", "about", "how", "same", "is", "the", "does", "go", "hold", "then", "instead"],
    *["it", "this", "that", "they", "one", "too", "as", "well", "though", "for", "better", "than", "help"],
    *["yoga", "Pilates", "walking", "exercise", "rest", "effective", "acute", "chronic", "subacute", "long-term"],
    *["weeks", "months", "back", "pain", "low", "lumbar", "neck", "sciatica"],
    *[",", ".", "?", "!", ";", ":", "'", "-"],
]
vocab_text = st.lists(st.sampled_from(_VOCAB), max_size=12).map(" ".join)
any_text = st.text(max_size=80) | vocab_text


def fake_encode(texts: Sequence[str]) -> np.ndarray:
    """Deterministic unit vectors from a hash of each text (stands in for the query encoder)."""
    rows = []
    for text in texts:
        v = np.random.default_rng(zlib.crc32(text.encode("utf-8", "surrogatepass"))).normal(size=16)
        rows.append(v / np.linalg.norm(v))
    return np.vstack(rows) if rows else np.zeros((0, 16))


# --------------------------------------------------------------------------- history


@props(150)
@given(histories)
@example({"bad": "shape"})
@example([{"role": "user", "content": [{"type": "text", "text": None}]}])
@example([{"role": "user", "content": [{"type": "text", "text": 3}, {"type": "image", "text": 4}]}])
def test_normalize_history_returns_turns_or_value_error(history: Any) -> None:
    try:
        turns = normalize_history(history)
    except ValueError as exc:
        assert str(exc)
        return
    assert isinstance(turns, list) and len(turns) <= MAX_HISTORY_TURNS
    for turn in turns:
        assert isinstance(turn, Turn)
        assert turn.role in ("user", "assistant")
        assert isinstance(turn.content, str)
        assert turn.content != "None"  # a missing text is empty, not the word None


@pytest.mark.parametrize(
    "history",
    [
        [{"role": "user", "content": [{"type": "text", "text": _nested(5000)}]}],
        [{"role": _nested(5000), "content": "x"}],
    ],
    ids=["deep-text", "deep-role"],
)
def test_deeply_nested_history_is_a_value_error(history: Any) -> None:
    # Not @example: hypothesis's own printer recurses too deep on such values. Turning them
    # into text (str(), repr()) raised RecursionError before.
    with pytest.raises(ValueError, match="message 0"):
        normalize_history(history)


@props()
@given(st.lists(good_messages, max_size=120))
def test_well_formed_history_keeps_the_last_turns_in_order(history: list[dict[str, str]]) -> None:
    turns = normalize_history(history)
    expected = [Turn(m["role"], m["content"]) for m in history][-MAX_HISTORY_TURNS:]  # type: ignore[arg-type]
    assert turns == expected


@props(150)
@given(any_text, any_text, st.floats(-1.0, 1.0))
@example("And Pilates?", "Is yoga effective for chronic back pain?", 0.25)
@example("And , ?", "Is yoga good?", 0.0)
def test_rewrite_follow_up_always_returns_text(message: str, previous: str, min_similarity: float) -> None:
    out = rewrite_follow_up(message, previous, fake_encode, min_similarity)
    assert isinstance(out, str)
    if not previous.strip() or not is_follow_up(message):
        assert out == message


@props(100)
@given(any_text, st.lists(st.tuples(st.sampled_from(["user", "assistant"]), any_text), max_size=6), st.booleans())
def test_standalone_query_always_returns_text(message: str, turns: list[tuple[str, str]], context: bool) -> None:
    history = [Turn(role, text) for role, text in turns]  # type: ignore[arg-type]
    out = standalone_query(message, history, fake_encode, needs_context=lambda _: context)
    assert isinstance(out, str)
    if not any(t.role == "user" and t.content.strip() for t in history):
        assert out == message


# --------------------------------------------------------------------------- filters

_KEY_CHARS = st.characters(codec="utf-8", exclude_characters="=,")
filter_keys = st.text(_KEY_CHARS, min_size=1, max_size=10).filter(lambda s: s.strip()) | st.sampled_from(
    sorted(FILTER_ALIASES)
)
filter_values = st.text(st.characters(codec="utf-8", exclude_characters=","), max_size=10).filter(lambda s: s.strip())


@props(150)
@given(st.lists(st.text(max_size=30) | json_scalars, max_size=6))
@example(["phase=,"])
@example(["species= , ,"])
@example([None])
def test_parse_filters_returns_clean_filters_or_value_error(items: list[Any]) -> None:
    try:
        parsed = parse_filters(items)
    except ValueError as exc:
        assert str(exc)
        return
    for key, values in parsed.items():
        assert key and key == key.strip() and key == key.lower() and "=" not in key
        assert values, f"{key} has no values"
        assert all(v and v == v.strip() and "," not in v for v in values)


@props(150)
@given(st.lists(st.tuples(filter_keys, st.lists(filter_values, min_size=1, max_size=4)), max_size=5))
def test_parse_filters_round_trip(items: list[tuple[str, list[str]]]) -> None:
    raw = [f" {key} = {' , '.join(values)} " for key, values in items]
    expected: dict[str, list[str]] = {}
    for key, values in items:
        name = key.strip().lower()
        expected.setdefault(FILTER_ALIASES.get(name, name), []).extend(v.strip() for v in values)
    assert parse_filters(raw) == expected


def test_parse_filters_aliases() -> None:
    for alias, key in FILTER_ALIASES.items():
        assert parse_filters([f"{alias.upper()}=x"]) == {key: ["x"]}


class _StubIndex:
    """The little of an index that filter matching reads."""

    def __init__(self, metadata: list[dict[str, Any]]) -> None:
        self.passages = [Passage(f"d#{i}", "d", "text", m) for i, m in enumerate(metadata)]

    def __len__(self) -> int:
        return len(self.passages)

    def query_settings(self, settings: Settings) -> Settings:
        return settings


_FACET_VALUES = ["human", "Human ", "animal", "acute", "chronic", None, 2020, ["acute", "chronic"], ["Review"]]
metadata_rows = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "species": st.sampled_from(_FACET_VALUES),
            "lbp_phase": st.sampled_from(_FACET_VALUES),
            "year": st.sampled_from(_FACET_VALUES),
        },
    ),
    min_size=1,
    max_size=8,
)
filter_dicts = st.dictionaries(
    st.sampled_from(["species", "phase", "lbp_phase", " Species ", "year", "YEAR"]) | st.text(max_size=5),
    st.sampled_from(_FACET_VALUES) | st.lists(st.sampled_from(_FACET_VALUES), max_size=3) | json_values,
    max_size=3,
)


def _norm(value: Any) -> str:
    return "none" if value is None else str(value).strip().lower()


@props(150)
@given(metadata_rows, filter_dicts)
@example([{"year": 2020}], {"year": 2020})
@example([{"species": "human"}], {" Species ": "human"})
@example([{}], {"species": None})
def test_mask_matches_any_value_of_every_key(rows: list[dict[str, Any]], filters: dict[str, Any]) -> None:
    retriever = Retriever(_StubIndex(rows), Settings(query_expansion=False), query_encoder=object())  # type: ignore[arg-type]
    try:
        mask = retriever.mask(filters)
    except ValueError as exc:
        assert str(exc)
        return
    if not filters:
        assert mask is None
        return
    assert mask is not None and mask.dtype == bool and mask.shape == (len(rows),)
    for row, meta in zip(mask, rows, strict=True):
        keep = True
        for raw_key, raw_values in filters.items():
            name = raw_key.strip().lower()
            facet = meta.get(FILTER_ALIASES.get(name, name))
            have = {_norm(x) for x in facet} if isinstance(facet, list) else {_norm(facet)}
            values = raw_values if isinstance(raw_values, list) else [raw_values]
            keep = keep and any(_norm(v) in have for v in values)
        assert row == keep


# --------------------------------------------------------------------------- chunking


@cache
def _tokenizer() -> Any:
    from assistant.encoders.embedding import model_tokenizer

    return model_tokenizer(Settings().model_path)


def _count(text: str) -> int:
    return int(_tokenizer().count(text))


# Text that looks like prose: capitalised words, abbreviations, decimals, quotes, brackets.
_PROSE = [
    *["Exercise", "helps.", "Pain", "fell", "by", "0.5", "points!", "Was", "it", "worth", "it?", "Yes."],
    *["Hayden", "et", "al.", "reviewed", "trials.", "e.g.", "See", "Fig.", "2", "vs.", "usual", "care."],
    *["He", "said", '"Stop."', "Then", "he", "left.", "(This", "is", "it.)", "Next", "one.", "[22].", "J."],
    *["Smith", "wrote", "腰痛", "背痛。", "Ärger.", "...", "!!!", "??", "42", "3.14", "---", "“Quoted.”"],
]
prose = st.lists(st.sampled_from(_PROSE), max_size=60).map(" ".join)
_WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u2003\u2028\u3000"
# Hostile text: any unicode, odd whitespace, very long words, no punctuation at all.
hostile = (
    st.text(max_size=300)
    | st.text(st.sampled_from(_WHITESPACE), max_size=20)
    | st.text(st.sampled_from("ab-.,腰痛한"), min_size=100, max_size=1500)
    | st.lists(st.text(st.characters(exclude_categories=["Cs", "Zs", "Cc"]), max_size=8), max_size=80).map(" ".join)
)
texts = prose | hostile


@props(150)
@given(texts)
@example('He said "Stop." Then he left.')
@example("(This is it.) Next one.")
def test_split_sentences_loses_nothing(text: str) -> None:
    sentences = split_sentences(text)
    assert " ".join(sentences) == " ".join(text.split())
    assert all(s and s == s.strip() for s in sentences)


def _covers(windows: Sequence[Sequence[Any]], units: Sequence[Any]) -> bool:
    """Whether ``windows`` are ``units`` in order, each window starting with at most a proper
    suffix of the previous window (the overlap) followed by new units."""
    memo: dict[tuple[int, int], bool] = {}

    def walk(j: int, p: int) -> bool:
        if j == len(windows):
            return p == len(units)
        if (j, p) not in memo:
            w = windows[j]
            most = min(p, len(w) - 1, len(windows[j - 1]) - 1 if j else 0)
            memo[j, p] = any(
                list(w[:c]) == list(units[p - c : p])
                and list(w[c:]) == list(units[p : p + len(w) - c])
                and walk(j + 1, p + len(w) - c)
                for c in range(most + 1)
            )
        return memo[j, p]

    return walk(0, 0)


@props(150)
@given(
    st.lists(st.text(st.sampled_from("ab. "), min_size=1, max_size=12).filter(str.strip), max_size=20),
    st.integers(12, 40),
    st.integers(0, 40),
)
def test_windows_cover_every_sentence_in_order(sentences: list[str], budget: int, overlap: int) -> None:
    windows = window_sentences(sentences, len, budget, overlap)
    assert all(w and len(" ".join(w)) <= budget for w in windows)
    assert _covers(windows, sentences)


def _chars(text: str) -> str:
    return "".join(text.split())


@props(60)
@given(
    st.text(max_size=40) | st.text(st.sampled_from("腰痛-a "), min_size=1, max_size=600),
    st.lists(texts, min_size=1, max_size=3),
    st.integers(32, 200),
    st.integers(0, 48),
    st.integers(0, 3),
)
@example("Title", ["腰痛" * 200], 160, 32, 0)
@example("腰痛" * 200, ["Short text here."], 160, 32, 0)
@example("a b c d e f g h i j k l m n o p q r s t u v w x y z " * 20, ["Short text here."], 160, 32, 0)
@example("T", ['He said "Stop." Then he left. ' * 30], 64, 16, 0)
@example("", ["0" * 62], 32, 0, 0)
def test_chunks_fit_the_model_and_lose_nothing(
    title: str, bodies: list[str], max_tokens: int, overlap: int, start_k: int
) -> None:
    tokenizer = _tokenizer()
    sections = tuple(Section(f"s{i}", body) for i, body in enumerate(bodies))
    doc = Document("doc", title, sections, {"refs": [3]})
    passages = chunk_document(doc, tokenizer.count, max_tokens, overlap, start_k=start_k)
    assert [p.id for p in passages] == [f"doc#{k}" for k in range(start_k, start_k + len(passages))]
    for p in passages:
        real = len(tokenizer._fast.encode(p.index_text, add_special_tokens=True).ids)
        assert real == p.metadata["n_tokens"] <= max_tokens
        assert p.text and p.text == p.text.strip()
    for section in sections:
        mine = [_chars(p.text) for p in passages if p.metadata["section"] == section.name]
        # character level (a word too long for one passage is cut between characters)
        assert _covers([list(m) for m in mine], list(_chars(section.text))), section.name


# --------------------------------------------------------------------------- fusion

finite = st.floats(allow_nan=False, allow_infinity=False)
score_maps = st.dictionaries(st.integers(0, 40), finite, max_size=12)
rankings = st.lists(st.lists(st.integers(0, 30), unique=True, max_size=15), max_size=4)


@props()
@given(rankings, st.integers(0, 1000))
def test_rrf_is_finite_positive_and_monotone_in_rank(lists: list[list[int]], k: int) -> None:
    fused = fuse_rrf(lists, k=k)
    assert set(fused) == {d for ranking in lists for d in ranking}
    assert all(math.isfinite(s) and 0 < s <= len(lists) / (k + 1) * (1 + 1e-12) for s in fused.values())
    for ranking in lists:  # alone, a list's order is the fused order
        alone = fuse_rrf([ranking], k=k)
        assert all(alone[a] > alone[b] for a, b in itertools.pairwise(ranking))


@props(30)
@given(st.lists(st.sampled_from("abcd"), max_size=10), st.integers(-5, 60))
@example(["a", "b", "b", "b"], 0)
@example(["a"], -1)
def test_rrf_counts_an_id_once_per_list(ranking: list[str], k: int) -> None:
    try:
        fused = fuse_rrf([ranking], k=k)
    except ValueError:
        assert k < 0
        return
    firsts = list(dict.fromkeys(ranking))
    assert all(fused[a] > fused[b] for a, b in itertools.pairwise(firsts))


def _check_normalized(scores: dict[int, float], norm: dict[int, float]) -> None:
    assert set(norm) == set(scores)
    assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in norm.values())
    for a in scores:
        for b in scores:
            if scores[a] <= scores[b]:
                assert norm[a] <= norm[b]
    if scores:
        assert norm[max(scores, key=scores.__getitem__)] == 1.0


@props(150)
@given(score_maps)
@example({0: -1e308, 1: 1e308})
@example({0: 5.0, 1: 5.0})
def test_min_max_is_bounded_and_order_preserving(scores: dict[int, float]) -> None:
    norm = normalize_min_max(scores)
    _check_normalized(scores, norm)
    if len(set(scores.values())) > 1:
        assert norm[min(scores, key=scores.__getitem__)] == 0.0
    else:
        assert all(v == 1.0 for v in norm.values())


@props(150)
@given(score_maps, st.integers(1, 14))
@example({0: -1e308, 1: 1e308, 2: 0.0}, 2)
def test_min_max_top_is_bounded_and_order_preserving(scores: dict[int, float], depth: int) -> None:
    _check_normalized(scores, normalize_min_max_top(scores, depth))


@props(60)
@given(
    st.dictionaries(st.integers(0, 5), st.floats() | st.sampled_from([math.nan, math.inf, -math.inf]), min_size=1),
    st.none() | st.integers(-2, 6),
)
@example({0: math.nan, 1: 1.0}, None)
@example({0: math.inf, 1: 1.0}, None)
@example({}, 0)
def test_non_finite_scores_or_bad_depth_are_refused(scores: dict[int, float], depth: int | None) -> None:
    bad = not all(math.isfinite(s) for s in scores.values()) or (depth is not None and depth <= 0)
    try:
        norm = normalize_min_max_top(scores, depth)
    except ValueError:
        assert bad
        return
    assert not bad
    _check_normalized(scores, norm)


@props(150)
@given(score_maps, score_maps, st.floats(0.0, 1.0), st.none() | st.integers(1, 14))
@example({}, {0: 9.9792015476736e291, 1: -1.7976931348623157e308}, 0.0, None)
def test_convex_fusion_is_bounded_and_alpha_picks_a_side(
    dense: dict[int, float], lexical: dict[int, float], alpha: float, depth: int | None
) -> None:
    fused = fuse_convex(dense, lexical, alpha=alpha, depth=depth)
    assert set(fused) == set(dense) | set(lexical)
    assert all(0.0 <= v <= 1.0 for v in fused.values())
    nd, nl = normalize_min_max_top(dense, depth), normalize_min_max_top(lexical, depth)
    assert fuse_convex(dense, lexical, alpha=1.0, depth=depth) == {d: nd.get(d, 0.0) for d in fused}
    assert fuse_convex(dense, lexical, alpha=0.0, depth=depth) == {d: nl.get(d, 0.0) for d in fused}


@props(30)
@given(st.floats() | st.sampled_from([-0.1, 1.1, math.nan]))
def test_convex_alpha_outside_the_unit_interval_is_refused(alpha: float) -> None:
    if 0.0 <= alpha <= 1.0:
        assert fuse_convex({1: 1.0}, {2: 2.0}, alpha=alpha)
    else:
        with pytest.raises(ValueError):
            fuse_convex({1: 1.0}, {2: 2.0}, alpha=alpha)


@props()
@given(score_maps, st.integers(-3, 15))
@example({0: 1.0, 1: 2.0}, -1)
def test_top_k_is_the_k_best_sorted(scores: dict[int, float], k: int) -> None:
    best = top_k(scores, k)
    assert len(best) == min(max(k, 0), len(scores))
    assert [s for _, s in best] == sorted((s for _, s in best), reverse=True)
    if best:
        assert all(s <= best[-1][1] for d, s in scores.items() if d not in dict(best))


@props()
@given(st.lists(st.tuples(st.sampled_from("abcdef"), finite), max_size=20))
def test_maxp_is_the_best_passage(pairs: list[tuple[str, float]]) -> None:
    docs = aggregate_max(pairs)
    assert docs == {d: max(s for e, s in pairs if e == d) for d, _ in pairs}


@st.composite
def mmr_inputs(draw: Callable[..., Any]) -> tuple[np.ndarray, np.ndarray, list[float]]:
    n = draw(st.integers(0, 10))
    dim = draw(st.integers(1, 5))
    raw = np.array(draw(st.lists(st.floats(-1, 1), min_size=n * dim, max_size=n * dim)), dtype=np.float64)
    vectors = raw.reshape(n, dim)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.where(norms > 0, vectors / np.where(norms > 0, norms, 1.0), 0.0)
    relevance = draw(st.lists(finite | st.sampled_from([0.0, 1.0]), min_size=n, max_size=n))
    return np.ones(dim) / math.sqrt(dim), vectors, relevance


@props(150)
@given(mmr_inputs(), st.integers(-2, 12), st.floats(0.0, 1.0))
@example((np.ones(1), np.ones((2, 1)), [1e308, -1e308]), 2, 0.5)
@example((np.ones(1), np.ones((3, 1)), [0.0, 1.0, 0.5]), 1, 0.0)
@example((np.ones(1), np.ones((3, 1)), [0.6, 1.0, 0.5]), 2, 5e-324)
@example((np.ones(1), np.zeros((3, 1)), [0.0, 1.0, -9007199254740992.0]), 1, 0.0)
@example((np.ones(1), np.zeros((4, 1)), [0.0, -1.0, -9007199254740996.0, 0.0]), 2, 1.0)
def test_mmr_picks_distinct_items_best_first(
    inputs: tuple[np.ndarray, np.ndarray, list[float]], k: int, lambda_: float
) -> None:
    query, vectors, relevance = inputs
    picked = mmr(query, vectors, relevance, k, lambda_)
    assert len(picked) == min(max(k, 0), len(relevance))
    assert len(set(picked)) == len(picked) and all(0 <= i < len(relevance) for i in picked)
    if picked:
        assert relevance[picked[0]] == max(relevance)
    if lambda_ == 1.0:  # pure relevance: the relevance order (as min-max normalization resolves it)
        norm = normalize_min_max(dict(enumerate(relevance)))
        assert [norm[i] for i in picked] == sorted(norm.values(), reverse=True)[: len(picked)]


@props(40)
@given(st.sampled_from([-0.5, 1.5, math.nan, math.inf]), st.sampled_from([[1.0, math.nan], [1.0, math.inf], [1.0]]))
def test_mmr_refuses_bad_lambda_and_relevance(lambda_: float, relevance: list[float]) -> None:
    with pytest.raises(ValueError):
        mmr(np.ones(1), np.ones((2, 1)), relevance, 2, lambda_)
    with pytest.raises(ValueError):
        mmr(np.ones(1), np.ones((2, 1)), relevance if len(relevance) != 2 else [1.0], 2, 0.5)


@st.composite
def rocchio_inputs(draw: Callable[..., Any]) -> tuple[np.ndarray, np.ndarray]:
    dim = draw(st.integers(1, 6))
    n = draw(st.integers(0, 5))
    values = st.floats(-1e3, 1e3)
    query = np.array(draw(st.lists(values, min_size=dim, max_size=dim)))
    feedback = np.array(draw(st.lists(values, min_size=n * dim, max_size=n * dim))).reshape(n, dim)
    return query, feedback


@props(150)
@given(rocchio_inputs(), st.floats(-10, 10))
@example((np.array([1.0, 0.0]), np.array([[-1.0, 0.0]])), 1.0)
@example((np.array([5e-324, 0.0]), np.array([[5e-324, 0.0]])), 1.0)
def test_rocchio_is_finite_and_unit_length(inputs: tuple[np.ndarray, np.ndarray], beta: float) -> None:
    query, feedback = inputs
    moved = rocchio(query, feedback, beta)
    assert moved.dtype == np.float32 and moved.shape == query.shape
    assert np.all(np.isfinite(moved))
    if np.array_equal(moved, query.astype(np.float32)):
        return  # nothing to move by (no feedback, beta 0, or a centroid that cancels the query)
    assert np.linalg.norm(moved) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("beta", [math.nan, math.inf, -math.inf])
def test_rocchio_refuses_a_non_finite_weight(beta: float) -> None:
    with pytest.raises(ValueError):
        rocchio(np.array([1.0, 0.0]), np.array([[0.0, 1.0]]), beta)


# --------------------------------------------------------------------------- priors


@props(150)
@given(json_values | st.integers(min_value=10**308) | st.integers(max_value=-(10**308)))
@example(10**400)
@example(-(10**400))
@example(math.nan)
def test_evidence_prior_is_bounded(level: Any) -> None:
    prior = evidence_prior({"evidence_level": level})
    assert isinstance(prior, float) and 0.0 <= prior <= 1.0


@props()
@given(st.text(max_size=60) | vocab_text, json_values)
def test_phase_prior_is_bounded(question: str, phase: Any) -> None:
    wanted = query_phases(question)
    assert wanted <= {"acute", "chronic", "recurrent", "prevention"}
    doc = document_phase({"lbp_phase": phase})
    assert isinstance(doc, str) and doc == doc.strip()
    assert phase_match(wanted, doc) in (0.0, MIXED_MATCH, 1.0)
