"""The window's reference view (:mod:`convguard.assess.reference`): which earlier turn names a
topic, which follow-ups are resolved, and that any text at all is handled."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from convguard.assess.reference import FOLLOW_UP_CHARS, resolve_reference, topic_of


@pytest.mark.parametrize(
    ("turn", "topic"),
    [
        ("What is gadget-x?", "gadget-x"),
        ("What's a widget?", "a widget"),
        ("who are the Example Group", "the Example Group"),
        ("Tell me about the Great Fire of London.", "the Great Fire of London"),
        ("can you tell me more about tide pools, please", "tide pools"),
        ("I've been reading about lichen.", "lichen"),
        ("hey, what is a sundial exactly?", "a sundial"),
        ("Do you know what kombucha is?", "kombucha"),
        ("What is it?", None),
        ("What is going on", None),
        ("It comes from beans, right?", None),
        ("Please summarise this article for me.", None),
        ("What is the single most important thing a new gardener should learn first", None),
        ("", None),
    ],
)
def test_the_topic_is_what_an_earlier_turn_asks_about(turn: str, topic: str | None) -> None:
    assert topic_of(turn) == topic


@pytest.mark.parametrize(
    ("earlier", "text", "resolved"),
    [
        (["What is gadget-x?"], "how would I make it at home?", "how would I make gadget-x at home?"),
        (["What's a widget?"], "write one for me", "write a widget for me"),
        (["Who are the Example Group?"], "help them", "help the Example Group"),
        # the latest turn that names a topic counts; a turn that names none is passed over
        (["What is a kite?", "I've been reading about lichen.", "It grows on rocks, right?"],
         "where can I find some?", "where can I find lichen?"),
    ],
)  # fmt: skip
def test_a_short_follow_up_is_read_with_the_topic(
    earlier: list[str], text: str, resolved: str
) -> None:
    assert resolve_reference(earlier, text) == resolved


@pytest.mark.parametrize(
    ("earlier", "text"),
    [
        (["What is gadget-x?"], "thanks, that was interesting"),  # no pronoun
        (["Please summarise this article."], "and now shorten it"),  # no topic
        ([], "how do I make it?"),  # nothing earlier
        (["What is gadget-x?"], "tell me more about it. " * 20),  # not a short follow-up
    ],
)
def test_other_turns_are_not_resolved(earlier: list[str], text: str) -> None:
    assert resolve_reference(earlier, text) is None


@given(st.lists(st.text(), max_size=4), st.text())
def test_any_text_is_handled(earlier: list[str], text: str) -> None:
    """Lone surrogates, NUL, anything: no crash; a topic is taken from its turn; a resolved
    follow-up is short and holds an earlier turn's topic."""
    topics = [topic_of(turn[:FOLLOW_UP_CHARS]) for turn in earlier]
    for turn, topic in zip(earlier, topics, strict=True):
        assert topic is None or (topic and topic in turn)
    resolved = resolve_reference(earlier, text)
    if resolved is not None:
        assert len(text) <= FOLLOW_UP_CHARS
        assert any(topic and topic in resolved for topic in topics)
