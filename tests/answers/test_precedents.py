"""The bank of labelled questions (precedents): votes, the file, the cache, and what they change."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from assistant.answers.precedents import Fact, Precedent, Precedents, load_precedents, read_bank
from assistant.config import DEFAULT_CORPUS_DIR, DEFAULT_PRECEDENTS, Settings
from assistant.errors import FormatError


def _unit(*xs: float) -> np.ndarray:
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def _bank(neighbours: int = 2) -> Precedents:
    items = [
        Precedent("yoga chronic", frozenset({1, 2}), frozenset({1, 2, 3}), "A"),
        Precedent("yoga again", frozenset({1}), frozenset({1}), "B"),
        Precedent("rats", frozenset({3}), frozenset({3}), "B"),
    ]
    vectors = np.vstack([_unit(1, 0.1, 0), _unit(1, 0, 0.1), _unit(0, 0, 1)])
    return Precedents(items, vectors, {1: "ref-1", 2: "ref-2", 3: "ref-3"}, neighbours=neighbours)


def test_votes_are_the_weighted_share_of_similar_questions_that_needed_a_study() -> None:
    votes = _bank().votes(_unit(1, 0, 0))
    assert votes.needed["ref-1"] == pytest.approx(1.0)  # both neighbours needed it
    assert 0.4 < votes.needed["ref-2"] < 0.6  # one of two about equally similar neighbours
    assert "ref-3" not in votes.needed  # the rat question is not among the two most similar...
    assert 0.4 < votes.relevant["ref-3"] < 0.6  # ... but the first one found it relevant


def test_a_group_left_out_does_not_vote_and_comes_back_after() -> None:
    bank = _bank()
    with bank.excluding("A"):
        assert "ref-2" not in bank.votes(_unit(1, 0, 0)).needed  # only batch A's question needed it
        assert set(bank.votes(_unit(1, 0, 0)).needed) == {"ref-1", "ref-3"}
    assert "ref-2" in bank.votes(_unit(1, 0, 0)).needed


def test_sentences_that_state_a_similar_question_s_key_facts_get_its_vote() -> None:
    fact = Fact((1,), (("halved", "50%"), ("recurrence",)))
    assert fact.stated_in("Exercise HALVED the recurrence rate") and not fact.stated_in("Exercise halved pain")
    texts = {
        "ref-1": [(10, "Exercise halved the recurrence rate."), (11, "Pain fell.")],
        "ref-2": [(20, "halved recurrence")],
    }
    bank = Precedents(
        [Precedent("recurrence", frozenset({1}), frozenset({1}), "A", (fact,))],
        _unit(1, 0)[None, :],
        {1: "ref-1", 2: "ref-2"},
        sentences_of=lambda doc_id: texts[doc_id],
    )
    assert bank.votes(_unit(1, 0)).sentences == {10: pytest.approx(1.0)}  # not ref 2's: not the fact's reference


def test_references_the_index_lacks_get_no_vote() -> None:
    bank = Precedents([Precedent("q", frozenset({7, 1}), frozenset({7, 1}), "A")], _unit(1, 0)[None, :], {1: "ref-1"})
    assert bank.votes(_unit(1, 0)).needed == {"ref-1": pytest.approx(1.0)}


def _write(path: Path, rows: list[dict]) -> Path:  # type: ignore[type-arg]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_the_bank_is_the_dev_split_with_history_and_batch(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "broad.jsonl",
        [
            {
                "_id": "a1",
                "split": "dev",
                "batch": "A",
                "text": "Q1",
                "history": ["Q0"],
                "relevance": {"20": 2, "3": 1},
            },
            {"_id": "t1", "split": "test", "batch": "T", "text": "held out", "relevance": {"5": 2}},
        ],
    )
    (row,) = read_bank(path)
    assert (row.text, row.history, row.essential, row.relevant, row.group) == ("Q1", ("Q0",), {20}, {20, 3}, "A")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "invalid JSON"),
        ('{"split": "dev", "relevance": {"1": 2}}', "needs 'text'"),
        ('{"split": "dev", "text": "q", "relevance": {"one": 2}}', "reference numbers"),
    ],
)
def test_a_malformed_bank_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "broad.jsonl"
    path.write_text('{"split": "dev", "text": "fine", "relevance": {"1": 2}}\n\n' + line + "\n", encoding="utf-8")
    with pytest.raises(FormatError, match=message) as err:
        read_bank(path)
    assert f"{path}:3" in str(err.value)


def test_bank_vectors_are_cached_and_a_damaged_cache_is_rebuilt(tmp_path: Path) -> None:
    path = _write(tmp_path / "broad.jsonl", [{"split": "dev", "text": "Q1", "relevance": {"1": 2}}])
    calls: list[list[str]] = []

    def encode(texts):  # type: ignore[no-untyped-def]
        calls.append(list(texts))
        return np.vstack([_unit(1, 0) for _ in texts])

    def load():  # type: ignore[no-untyped-def]
        return load_precedents(path, lambda t, h: t.lower(), encode, {1: "ref-1"}, tmp_path / "cache", "index-1")

    assert load().votes(_unit(1, 0)).needed == {"ref-1": pytest.approx(1.0)}  # type: ignore[union-attr]
    load()
    assert calls == [["q1"]]  # the second load read the cache
    (cached,) = (tmp_path / "cache").iterdir()
    cached.write_bytes(b"not an array")
    assert load() is not None and len(calls) == 2
    load_precedents(path, lambda t, h: t, encode, {1: "ref-1"}, tmp_path / "cache", "index-2")
    assert len(calls) == 3  # another index: encoded again


def test_a_bank_naming_no_indexed_study_is_off(tmp_path: Path) -> None:
    path = _write(tmp_path / "broad.jsonl", [{"split": "dev", "text": "Q1", "relevance": {"9": 2}}])
    assert load_precedents(path, lambda t, h: t, lambda ts: np.ones((len(ts), 2)), {1: "ref-1"}) is None


def test_settings_choose_the_bank(tmp_path: Path) -> None:
    assert Settings(corpus_dir=DEFAULT_CORPUS_DIR).precedents_path == DEFAULT_PRECEDENTS
    assert Settings(corpus_dir=tmp_path).precedents_path is None  # another corpus: other reference numbers
    assert Settings(precedents="off").precedents_path is None
    assert (
        Settings(corpus_dir=tmp_path, precedents=str(tmp_path / "mine.jsonl")).precedents_path
        == tmp_path / "mine.jsonl"
    )


def test_lbp_precedents_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LBP_PRECEDENTS", "off")
    assert Settings.from_env().precedents_path is None


# ---- with the real model and index


def test_a_study_that_similar_questions_needed_joins_the_answer(bot) -> None:  # type: ignore[no-untyped-def]
    """Prescribing exercise or McKenzie in acute LBP, or advising to stay active: the
    Cochrane review whose acute-LBP result is no benefit [20] does not name McKenzie or advice, so
    the treatment filter leaves it out; the bank's questions on acute LBP needed it."""
    from assistant.answers.answer import Answerer

    question = "Acute LBP of a few days: is exercise therapy or McKenzie worth prescribing, or is advice to stay active enough?"
    assert bot.answerer.precedents is not None and len(bot.answerer.precedents) > 100
    without = Answerer(bot.retriever, bot.settings.with_(precedents="off"))
    assert without.precedents is None
    assert 20 not in {c.n for c in without.ask(question).citations}
    answer = bot.ask(question)
    assert 20 in {c.n for c in answer.citations}
    assert {r.n for r in answer.evidence} == {c.n for c in answer.citations}


def test_a_follow_up_on_one_treatment_does_not_bring_the_studies_of_its_usual_companion(bot) -> None:  # type: ignore[no-untyped-def]
    """Questions of the bank often pair Pilates with yoga; "And Pilates?" after yoga still cites no
    study titled for yoga alone."""
    first = "Is yoga effective for chronic back pain?"
    history = [{"role": "user", "content": first}, {"role": "assistant", "content": bot.ask(first).answer}]
    cited = {c.n for c in bot.ask("And Pilates?", history=history).citations}
    assert cited & {30, 31} and 32 not in cited


def test_the_evaluation_leaves_each_dev_batch_out_of_the_bank(bot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A dev question asked by the evaluation does not vote for itself: it is answered as a
    question new to the bank would be."""
    from assistant.evaluation.broad_eval import evaluate_broad

    rows = [json.loads(line) for line in DEFAULT_PRECEDENTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    item = next(r for r in rows if r["split"] == "dev" and not r.get("history") and r["mode"] == "clinician")
    _write(tmp_path / "broad.jsonl", [item])
    bank = bot.answerer.precedents
    seen: list[str | None] = []
    votes = bank.votes

    def spy(vector, by_message=False):  # type: ignore[no-untyped-def]
        seen.append(getattr(bank._local, "group", None))
        return votes(vector, by_message)

    bank.votes = spy
    try:
        evaluate_broad(bot, tmp_path, ("dev",))
    finally:
        del bank.votes
    assert seen == [item["batch"]]


def test_a_patient_answer_keeps_what_similar_questions_found_relevant(bot) -> None:  # type: ignore[no-untyped-def]
    """The patient cut is looser; a study it keeps that no similar question of the bank found
    relevant leaves: the review of exercise for chronic LBP in general [48] does not answer
    whether a group class is as good as one-to-one physiotherapy."""
    from assistant.answers.answer import Answerer

    question = "Is a group exercise class as good as one-to-one physio for my back?"
    without = Answerer(bot.retriever, bot.settings.with_(precedents="off"))
    assert 48 in {c.n for c in without.ask(question, mode="patient").citations}
    answer = bot.ask(question, mode="patient")
    cited = {c.n for c in answer.citations}
    assert 48 not in cited and cited & {26, 29}


def test_a_clinician_answer_keeps_what_similar_questions_found_relevant(bot) -> None:  # type: ignore[no-untyped-def]
    """The outcome vocabulary brings every study that reports a dose; the trials of McKenzie [35]
    and of core stability [38] report theirs, but no similar question found them relevant to
    how much exercise is needed, and they leave; the dose studies stay."""
    from assistant.answers.answer import Answerer

    question = "What exercise dose or frequency of sessions is needed for chronic low back pain?"
    without = Answerer(bot.retriever, bot.settings.with_(precedents="off"))
    assert {35, 38} <= {c.n for c in without.ask(question).citations}
    cited = {c.n for c in bot.ask(question).citations}
    assert not cited & {35, 38} and {24, 46} <= cited


def test_the_sentence_that_answered_similar_questions_is_quoted(bot) -> None:  # type: ignore[no-untyped-def]
    """Similar questions on Pilates were answered by the review's bottom line ("supports Pilates
    over minimal care but cannot rank it above other exercise"), which without the bank loses
    its place to a framing sentence about the journal republication."""
    from assistant.answers.answer import Answerer

    question = "Is Pilates effective for chronic low back pain?"
    line = "the review supports Pilates over minimal care"
    without = Answerer(bot.retriever, bot.settings.with_(precedents="off"))
    assert not any(line in s["text"] for s in without.ask(question).sentences)
    answer = bot.ask(question)
    assert any(line in s["text"] and s["refs"] == [30] for s in answer.sentences)


def test_votes_name_how_close_the_closest_precedent_is_and_what_the_bank_knows() -> None:
    votes = _bank().votes(_unit(1, 0, 0))
    assert votes.closest == pytest.approx(float(_unit(1, 0.1, 0) @ _unit(1, 0, 0)))
    assert votes.known == {"ref-1", "ref-2", "ref-3"}


def test_studies_leave_by_the_votes_only_when_a_precedent_is_close(bot) -> None:  # type: ignore[no-untyped-def]
    """Votes that found nothing relevant empty the cut's studies (but the best document) when the
    closest bank question is close, and change nothing when it is not."""
    from assistant.answers.precedents import CLOSE_PRECEDENT, Votes

    gatherer = bot.answerer.gatherer
    question = "Does exercise therapy help chronic low back pain?"
    hits = bot.retriever.search(question, k=40, method="hybrid")

    def kept(votes):  # type: ignore[no-untyped-def]
        return [s.doc_id for s in gatherer.gather(question, hits, votes=votes)]

    alone = kept(None)
    assert len(alone) >= 3
    every = frozenset(gatherer.doc_meta)
    assert kept(Votes({}, {}, {}, CLOSE_PRECEDENT - 0.05, every)) == alone
    judged = kept(Votes({}, {}, {}, CLOSE_PRECEDENT + 0.05, every))
    assert judged and set(judged) < set(alone)
    # a study the bank never graded (one added to the index after it was labelled) has no votes,
    # not votes against it
    assert kept(Votes({}, {}, {}, CLOSE_PRECEDENT + 0.05, every - set(alone))) == alone


def test_a_named_treatment_keeps_one_study_not_every_pick(bot) -> None:  # type: ignore[no-untyped-def]
    """Motor control exercise, named beside walking and strength training, keeps its studies only
    while one of them is answered by the review that covers it [23]: the trials of stabilisation
    against other exercise [38] leave, since no similar question found them relevant; walking
    keeps its review [27]."""
    from assistant.answers.answer import Answerer

    question = (
        "For chronic low back pain, is a walking programme as effective as strength training or motor control exercise?"
    )
    without = Answerer(bot.retriever, bot.settings.with_(precedents="off"))
    assert 38 in {c.n for c in without.ask(question).citations}
    cited = {c.n for c in bot.ask(question).citations}
    assert {23, 27} <= cited and 38 not in cited


def test_the_sentences_stating_key_facts_are_cached_with_the_vectors(tmp_path: Path) -> None:
    """The rows of the sentences that state each precedent's key facts are found once, then read
    from the cache (finding them reads every sentence of the cited studies: about 0.15 s)."""
    fact = {"refs": [1], "match": [["walking"], ["less pain"]]}
    path = _write(tmp_path / "broad.jsonl", [{"split": "dev", "text": "Q1", "relevance": {"1": 2}, "facts": [fact]}])
    read: list[str] = []

    def sentences(doc_id):  # type: ignore[no-untyped-def]
        read.append(doc_id)
        return [(7, "Walking gave less pain."), (8, "Walking was safe.")]

    def load():  # type: ignore[no-untyped-def]
        return load_precedents(
            path,
            lambda t, h: t,
            lambda ts: np.vstack([_unit(1, 0) for _ in ts]),
            {1: "ref-1"},
            tmp_path / "cache",
            "index-1",
            sentences,
        )

    assert load().votes(_unit(1, 0)).sentences == {7: pytest.approx(1.0)}  # type: ignore[union-attr]
    assert read == ["ref-1"]
    assert load().votes(_unit(1, 0)).sentences == {7: pytest.approx(1.0)}  # type: ignore[union-attr]
    assert read == ["ref-1"]  # from the cache


def test_a_follow_up_s_own_words_find_the_questions_written_like_it(tmp_path: Path) -> None:
    """Votes by message compare a follow-up's own words ("And for subacute LBP?") with the
    bank's questions as written: a follow-up of the bank is found by its own words, not by the
    topic its history adds; the message vectors are cached with the others."""
    rows = [
        {"split": "dev", "batch": "A", "text": "chronic", "relevance": {"1": 2}},
        {"split": "dev", "batch": "B", "text": "subacute", "history": ["chronic"], "relevance": {"2": 2}},
    ]
    path = _write(tmp_path / "broad.jsonl", rows)
    axis = {"chronic": _unit(1, 0), "subacute": _unit(0, 1)}
    encoded: list[str] = []

    def encode(texts):  # type: ignore[no-untyped-def]
        encoded.extend(texts)
        return np.vstack([axis[t.split()[0]] for t in texts])  # as searched, a follow-up reads like its topic

    def standalone(text, history):  # type: ignore[no-untyped-def]
        return " ".join([*history, text])

    def load():  # type: ignore[no-untyped-def]
        return load_precedents(path, standalone, encode, {1: "ref-1", 2: "ref-2"}, tmp_path / "cache", "i")

    bank = load()
    assert bank is not None
    assert set(bank.votes(_unit(1, 0)).needed) == {"ref-1", "ref-2"}  # as searched, both read "chronic"
    assert bank.votes(_unit(0, 1), by_message=True).needed["ref-2"] == pytest.approx(1.0)
    assert bank.votes(_unit(0, 1), by_message=True).needed.get("ref-1", 0.0) == 0.0
    assert encoded == ["chronic", "chronic subacute", "subacute"]
    cached = load()
    assert cached is not None and encoded == ["chronic", "chronic subacute", "subacute"]  # read from the cache
    assert cached.votes(_unit(0, 1), by_message=True).needed["ref-2"] == pytest.approx(1.0)
