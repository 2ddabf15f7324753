"""History validation and follow-up rewriting (with the real query encoder)."""

from __future__ import annotations

import pytest

from assistant.answers.conversation import is_follow_up, normalize_history, rewrite_follow_up, standalone_query
from assistant.answers.scope import THRESHOLDS
from assistant.types import Turn


@pytest.fixture(scope="module")
def encode(bot):  # type: ignore[no-untyped-def]
    import numpy as np

    return lambda texts: np.vstack([bot.retriever.encoder.encode_query(t) for t in texts])


def test_normalize_history() -> None:
    turns = normalize_history(
        [
            {"role": "system", "content": "ignored"},
            {"role": "user", "content": [{"type": "text", "text": "Is yoga good?"}, {"type": "image", "url": "x"}]},
            {"role": "assistant", "content": None},
        ]
    )
    assert turns == [Turn("user", "Is yoga good?"), Turn("assistant", "")]
    assert normalize_history(None) == []
    for bad, match in [("text", "list"), ([1], "message 0"), ([{"role": "bot", "content": "x"}], "role"),
                       ([{"role": "user", "content": 3}], "non-text")]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            normalize_history(bad)


@pytest.mark.parametrize(
    ("message", "expected"),
    [("And Pilates?", True), ("What about walking?", True), ("Pilates?", True), ("Does it help?", True),
     ("Is yoga effective for chronic back pain?", False), ("How does walking compare with usual care for chronic back pain?", False)],
)  # fmt: skip
def test_is_follow_up(message: str, expected: bool) -> None:
    assert is_follow_up(message) is expected


def test_rewrites(encode) -> None:  # type: ignore[no-untyped-def]
    assert rewrite_follow_up("And Pilates?", "Is yoga effective for chronic back pain?", encode) == (
        "Is Pilates effective for chronic back pain?"
    )
    assert rewrite_follow_up(
        "What about acute pain?", "Does the McKenzie method help chronic low back pain?", encode
    ) == ("Does the McKenzie method help acute low back pain?")
    pronoun = rewrite_follow_up("Is it safe?", "Is walking good for chronic back pain?", encode)
    assert "walking" in pronoun and "safe" in pronoun
    standalone = "Is walking good for chronic back pain?"
    assert rewrite_follow_up(standalone, "Is yoga effective for chronic back pain?", encode) == standalone
    assert rewrite_follow_up("And Pilates?", "", encode) == "And Pilates?"
    # a word of the previous question stays after a negation: "no exercise" is not "exercise"
    negated = rewrite_follow_up("What about no exercise at all?", "Is core exercise superior?", encode)
    assert "no exercise" in negated
    # a follow-up that compares asks a new question of the same topic: no word is replaced
    previous = "Is it true that core stability exercises are superior to general exercise for low back pain?"
    compared = rewrite_follow_up("What about compared with no exercise at all?", previous, encode)
    assert compared.startswith("compared with no exercise at all") and "core stability" in compared


def test_chain_of_follow_ups(encode) -> None:  # type: ignore[no-untyped-def]
    history = [Turn("user", "Is yoga effective for chronic back pain?"), Turn("assistant", "..."),
               Turn("user", "And Pilates?"), Turn("assistant", "...")]  # fmt: skip
    assert standalone_query("What about walking?", history, encode, min_similarity=THRESHOLDS[True].substitution) == (
        "Is walking effective for chronic back pain?"
    )


def test_a_two_word_opener_is_removed_whole() -> None:
    from assistant.answers.conversation import _FOLLOW_UP_OPENERS

    for message in ("And what about inflammatory cytokines?", "and how about yoga?"):
        assert _FOLLOW_UP_OPENERS.sub("", message).split()[0] in ("inflammatory", "yoga?")


def test_a_message_without_a_topic_of_its_own_takes_the_previous_one(bot) -> None:  # type: ignore[no-untyped-def]
    """ "Does the effect persist ...?" after a question on rodents is about rodents; a new
    question that names its own topic is left alone."""
    answerer = bot.answerer
    history = [Turn("user", "Does regular exercise reduce neuropathic pain behaviour in rodent models?")]
    follow_up = "Does the effect persist after the training stops, or does the hypersensitivity come back?"
    query = standalone_query(follow_up, history, answerer._encode, answerer._needs_context)
    assert query.startswith(follow_up.rstrip("?")) and "rodent" in query
    new_topic = "Is Pilates better than general exercise for chronic low back pain?"
    assert standalone_query(new_topic, history, answerer._encode, answerer._needs_context) == new_topic
    answer = bot.ask(follow_up, history=[{"role": "user", "content": history[0].content}])
    assert answer.citations and all(c.n in range(5, 18) for c in answer.citations)  # the animal studies


def test_a_follow_up_naming_its_own_phase_drops_the_previous_one(encode) -> None:  # type: ignore[no-untyped-def]
    """ "And in chronic LBP, does McKenzie beat strengthening?" after a question on acute LBP
    asks about chronic LBP only: the previous question's "acute" leaves the question as
    searched (it brought the acute trials in); a phase both allow stays."""
    from assistant.answers.conversation import own_phase

    history = [Turn("user", "What's the evidence for the McKenzie method in acute nonspecific LBP?")]
    message = "And in chronic or persistent LBP, does McKenzie beat strengthening?"
    query = standalone_query(message, history, encode)
    assert "chronic" in query and "acute" not in query.lower().split()
    assert own_phase("And for recurrent LBP?", "And for recurrent LBP? chronic exercise") == (
        "And for recurrent LBP? chronic exercise"  # recurrent excludes acute only
    )
    assert own_phase("And for primary prevention?", "And for primary prevention? chronic exercise") == (
        "And for primary prevention? exercise"
    )
    assert own_phase("Is it safe?", "Is it safe? acute exercise") == "Is it safe? acute exercise"  # names none


def test_a_follow_up_s_own_words_bring_their_own_candidates(bot) -> None:  # type: ignore[no-untyped-def]
    """ "And what do the rat studies point to instead?" after a question on strength gains in
    chronic back pain: the question as searched carries the previous topic, whose words
    outnumber the message's, and found no animal study; the best documents of a search on the
    message alone join the candidates, and the answer cites animal studies."""
    history = [
        {
            "role": "user",
            "content": "Is the benefit of exercise in chronic back pain due to stronger muscles and better mobility?",
        }
    ]
    answer = bot.ask("And what do the rat studies point to instead?", history=history)
    designs = {bot.answerer._meta(f"ref-{c.n}").get("design_group") for c in answer.citations}
    assert "animal" in designs


def test_a_follow_up_is_out_of_scope_for_what_it_asks_itself(bot) -> None:  # type: ignore[no-untyped-def]
    """The words an in-scope question leaves in the question as searched ("... from the
    surgery", the GP's practice) do not make its follow-up out of scope; after an out-of-scope
    question, the follow-up stays out of it, and a follow-up asking about a medicine is out."""
    first = "Can I prescribe a home exercise programme from the surgery, or must exercise be supervised to work?"
    history = [{"role": "user", "content": first}]
    assert not bot.ask("And how often should they do it?", history=history).abstained
    epidural = [{"role": "user", "content": "Should I get an epidural steroid injection for my sciatica?"}]
    assert bot.ask("Is it safe?", history=epidural).abstained
    walking = [{"role": "user", "content": "Is walking good for chronic back pain?"}]
    assert bot.ask("And how much ibuprofen should I take?", history=walking).abstained
