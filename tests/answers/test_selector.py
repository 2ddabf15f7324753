"""The learned selector: its trees, its file, its training, and what it changes in an answer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from assistant.answers.selector import (
    FEATURES,
    Example,
    Selector,
    Trees,
    fit_trees,
    load_selector,
    train_selector,
)
from assistant.config import DEFAULT_CORPUS_DIR, DEFAULT_PRECEDENTS, Settings, selector_beside
from assistant.errors import FormatError


def _examples(n: int = 400, seed: int = 0) -> list[Example]:
    """Candidates whose grade follows two features (relevant vote, result similarity) with noise."""
    rng = np.random.default_rng(seed)
    out = []
    vote, similarity = FEATURES.index("relevant_vote"), FEATURES.index("result_similarity")
    for i in range(n):
        x = rng.random(len(FEATURES))
        score = x[vote] + 0.5 * x[similarity] + 0.2 * rng.standard_normal()
        grade = 2 if score > 1.0 else 1 if score > 0.7 else 0
        out.append(Example(f"g{i % 4}", i, f"ref-{i % 9}", tuple(float(v) for v in x), grade))
    return out


def _constant(p: float) -> Trees:
    """Trees with no tree: every candidate gets probability ``p``."""
    return Trees(float(np.log(p / (1 - p))), [])


def test_the_trees_predict_what_scikit_learn_predicts() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from assistant.answers import selector

    examples = _examples()
    x = np.array([e.features for e in examples])
    y = np.array([e.grade >= 1 for e in examples])
    model = HistGradientBoostingClassifier(
        max_iter=selector.TREES,
        learning_rate=selector.LEARNING_RATE,
        max_depth=selector.DEPTH,
        early_stopping=False,
        random_state=0,
    ).fit(x, y)
    trees = fit_trees(x, y)
    assert len(trees.trees) == selector.TREES
    np.testing.assert_allclose(trees.probabilities(x), model.predict_proba(x)[:, 1], atol=1e-12)


def test_a_selector_cites_the_relevant_or_the_essential_and_learns_from_the_grades() -> None:
    selector = train_selector(_examples())
    vote, similarity = FEATURES.index("relevant_vote"), FEATURES.index("result_similarity")
    strong, weak = [0.5] * len(FEATURES), [0.5] * len(FEATURES)
    strong[vote], strong[similarity] = 0.95, 0.9
    weak[vote], weak[similarity] = 0.05, 0.1
    (p_strong, cited_strong), (p_weak, cited_weak) = selector.judge([strong, weak])
    assert p_strong > 0.8 > 0.2 > p_weak and cited_strong and not cited_weak
    # either bar cites: a likely essential study on a lower certainty that it is relevant
    either = Selector(_constant(0.5), _constant(0.5), relevant_at=0.7, essential_at=0.4)
    assert either.judge([weak]) == [(pytest.approx(0.5), True)]
    neither = Selector(_constant(0.5), _constant(0.3), relevant_at=0.7, essential_at=0.4)
    assert neither.judge([weak])[0][1] is False


def test_a_group_left_out_is_not_learned_from() -> None:
    examples = _examples()
    assert train_selector(examples, exclude={"g0"}).meta["examples"] == len(examples) - 100
    with pytest.raises(ValueError, match="needs relevant, essential and irrelevant"):
        train_selector([e for e in examples if e.grade == 0])


def test_the_file_round_trips_and_a_wrong_file_is_named(tmp_path: Path) -> None:
    selector = train_selector(_examples(), meta={"bank": "x.jsonl"})
    path = tmp_path / "x.selector.json"
    selector.save(path)
    again = load_selector(path)
    rows = [e.features for e in _examples(50, seed=1)]
    assert again.judge(rows) == selector.judge(rows)
    assert again.meta["bank"] == "x.jsonl" and again.relevant_at == selector.relevant_at
    with pytest.raises(FileNotFoundError, match="LBP_SELECTOR=off"):
        load_selector(tmp_path / "missing.json")
    data = json.loads(path.read_text())
    data["features"] = data["features"][:-1]
    (tmp_path / "old.json").write_text(json.dumps(data))
    with pytest.raises(FormatError, match=r"old\.json: a selector for other features: train it again"):
        load_selector(tmp_path / "old.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(FormatError, match=r"bad\.json: not a selector file"):
        load_selector(tmp_path / "bad.json")


def test_settings_choose_the_selector_beside_the_bank(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert selector_beside(DEFAULT_PRECEDENTS) == DEFAULT_PRECEDENTS.with_name("broad.selector.json")
    assert Settings(corpus_dir=DEFAULT_CORPUS_DIR).selector_path == selector_beside(DEFAULT_PRECEDENTS)
    assert Settings(corpus_dir=DEFAULT_CORPUS_DIR, selector="off").selector_path is None
    assert Settings(corpus_dir=DEFAULT_CORPUS_DIR, precedents="off").selector_path is None  # it needs the votes
    bank = tmp_path / "mine.jsonl"
    assert Settings(corpus_dir=tmp_path, precedents=str(bank)).selector_path is None  # not trained yet
    selector_beside(bank).write_text("{}")
    assert Settings(corpus_dir=tmp_path, precedents=str(bank)).selector_path == tmp_path / "mine.selector.json"
    monkeypatch.setenv("LBP_SELECTOR", "off")
    assert Settings.from_env(corpus_dir=DEFAULT_CORPUS_DIR).selector_path is None


# ---- with the real model and index


def test_the_shipped_selector_is_for_these_features_and_this_bank(bot) -> None:  # type: ignore[no-untyped-def]
    from assistant.answers.selector import digest

    selector = bot.answerer.gatherer.selector if bot.answerer.precedents is not None else None
    assert selector is not None
    assert selector.meta["bank_digest"] == digest(DEFAULT_PRECEDENTS), "the bank changed: train-selector again"
    assert selector.meta["questions"] == sum(
        json.loads(line).get("split") == "dev" for line in DEFAULT_PRECEDENTS.read_text().splitlines() if line
    )


def test_the_selector_decides_what_is_cited(bot) -> None:  # type: ignore[no-untyped-def]
    """A selector that finds nothing relevant leaves the single most probable study; one that
    finds everything relevant cites up to the bound; the shipped one cites several studies of
    the core evidence."""
    from assistant.answers.synthesis import MAX_STUDIES

    gatherer = bot.answerer.gatherer
    question = "Is exercise therapy effective for chronic nonspecific low back pain?"
    shipped = gatherer.selector
    try:
        gatherer.selector = Selector(_constant(0.01), _constant(0.01))
        assert len({c.n for c in bot.ask(question).citations}) == 1
        gatherer.selector = Selector(_constant(0.99), _constant(0.99))
        assert len({c.n for c in bot.ask(question).citations}) >= MAX_STUDIES - 1
    finally:
        gatherer.selector = shipped
    cited = {c.n for c in bot.ask(question).citations}
    assert {20, 23, 24} <= cited


def test_training_collects_graded_candidates_with_each_batch_out(bot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from assistant.evaluation.selector_training import bank_items, collect_examples, nested_selectors

    rows = [json.loads(line) for line in DEFAULT_PRECEDENTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    dev = [r for r in rows if r["split"] == "dev" and r["mode"] == "clinician"]
    chosen = [r for r in dev if r["batch"] == dev[0]["batch"]][:4] + [r for r in dev if r["batch"] == dev[-1]["batch"]][
        :4
    ]
    bank = tmp_path / "broad.jsonl"
    bank.write_text("".join(json.dumps(r) + "\n" for r in chosen), encoding="utf-8")
    examples = collect_examples(bot, bank_items(bank))
    assert {e.question for e in examples} == set(range(8))
    assert all(len(e.features) == len(FEATURES) for e in examples)
    grades = {(e.question, e.doc_id): e.grade for e in examples}
    for i, item in enumerate(chosen):  # graded by the question's own relevance
        for n, g in item["relevance"].items():
            if (i, f"ref-{n}") in grades:
                assert grades[(i, f"ref-{n}")] == g
    assert bot.answerer.gatherer.examples is None and bot.answerer.gatherer.selector is not None  # restored
    nested = nested_selectors(bot, bank)
    assert set(nested) == {dev[0]["batch"], dev[-1]["batch"]}
    assert {s.meta["examples"] for s in nested.values()} == {sum(e.group != g for e in examples) for g in nested}


def test_a_selector_for_other_features_is_set_aside_with_a_warning(
    bot, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    """An older selector file (other features) does not stop answers: the rules and votes answer
    alone, and the log says to train it again."""
    from assistant.answers.answer import Answerer

    old = tmp_path / "old.selector.json"
    old.write_text(json.dumps({"features": ["route=none"], "relevant": {}, "essential": {}}))
    answerer = Answerer(bot.retriever, bot.settings.with_(selector=str(old)))
    with caplog.at_level("WARNING"):
        assert answerer.precedents is not None
    assert answerer.gatherer.selector is None
    assert "train it again" in caplog.text and "old.selector.json" in caplog.text
    assert answerer.ask("Is yoga effective for chronic back pain?").citations


def test_a_follow_up_is_also_judged_on_its_own_words(bot) -> None:  # type: ignore[no-untyped-def]
    """The question as searched carries the previous question's topic ("And for subacute LBP
    specifically?" after chronic LBP): the selector also reads how close each candidate comes to
    the message's own words. A question that stands alone has no such gap."""
    gatherer = bot.answerer.gatherer
    first = "Is exercise therapy effective for chronic nonspecific low back pain?"
    gatherer.examples = []
    try:
        bot.ask("And for subacute LBP specifically?", history=[{"role": "user", "content": first}])
        follow_up = list(gatherer.examples)
        gatherer.examples = []
        bot.ask(first)
        alone = list(gatherer.examples)
    finally:
        gatherer.examples = None
    flag, gap = FEATURES.index("follow_up"), FEATURES.index("message_gap")
    assert follow_up and all(row[flag] == 1.0 for _, row in follow_up) and any(row[gap] != 0.0 for _, row in follow_up)
    assert alone and all(row[flag] == 0.0 and row[gap] == 0.0 for _, row in alone)
