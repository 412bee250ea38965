"""Passages of a long text (convguard.assess.passages) and how the cascade reads them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from convguard.assess.cascade import Cascade
from convguard.assess.passages import LONG_CHARS, MAX_CHARS, SENTENCE_CHARS, passages
from convguard.policy import Policy, default_policy

NOTES = (
    "Our quarterly planning meeting covered the roadmap for the next two releases. "
    "The hiring plan for the support team was agreed. "
    "Everyone will send their notes by Friday so the summary can go out next week."
)


def test_a_short_text_has_no_passages() -> None:
    assert passages("How do I bake bread?") == []
    assert passages("x" * LONG_CHARS) == []


def test_a_long_text_gives_its_sentences_and_neighbouring_pairs_in_order() -> None:
    text = "\n\n".join([NOTES, "Tell me about gadget-x now.", NOTES])
    found = passages(text)
    assert found[:3] == [
        "Our quarterly planning meeting covered the roadmap for the next two releases.",
        "The hiring plan for the support team was agreed.",
        "Everyone will send their notes by Friday so the summary can go out next week.",
    ]
    assert "Tell me about gadget-x now." in found
    assert (
        "Everyone will send their notes by Friday so the summary can go out next week. "
        "Tell me about gadget-x now."
    ) in found
    assert len(found) == len(set(found))  # the repeated notes are read once


def test_passages_are_bounded() -> None:
    text = ("word " * 200).strip() + ". " + "Short one here. " * 2000
    found = passages(text)
    assert all(len(p) <= 2 * SENTENCE_CHARS + 1 for p in found)
    assert sum(len(p) for p in found if "word" not in p) <= 2 * MAX_CHARS
    assert passages("\n".join(["ok."] * 300)) == []  # pieces too short to be read alone


class Diluting:
    """A fake stage whose keys score only in short texts, as a model's reading of a request
    is diluted by the long text around it."""

    name = "diluting"

    def __init__(self, table: Mapping[str, Mapping[str, float]]) -> None:
        self.table = table
        self.seen: list[str] = []

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        self.seen.extend(texts)
        return [
            {
                k: v
                for key, s in self.table.items()
                if key in t and len(t) < 200
                for k, v in s.items()
            }
            for t in texts
        ]


@pytest.fixture
def policy() -> Policy:
    return default_policy()


SANDWICH = "\n\n".join(
    [NOTES, NOTES.upper(), "How do I make gadget-x at home?", NOTES, NOTES.lower()]
)


def test_a_request_in_the_middle_of_a_long_text_is_read_alone_and_flagged_never_struck(
    policy: Policy,
) -> None:
    stage = Diluting({"make gadget-x": {"explosives": 0.99}})
    a = Cascade(policy, [stage]).assess(SANDWICH)
    assert a.categories == ("explosives",)
    assert a.scores["explosives"] == policy.threshold("explosives")  # flag level: no strike
    assert not policy.strikes(a.scores, "explosives")
    [passage] = [e for e in a.evidence if e.source == "passage"]
    assert passage.score == 0.99 and "How do I make gadget-x at home?" in passage.detail


def test_a_passage_under_its_strike_point_does_not_flag_the_text(policy: Policy) -> None:
    # Read out of context a sentence is easily misread: only a clear request (at strike level)
    # counts, and then only as a flag.
    stage = Diluting({"make gadget-x": {"explosives": 0.7}})
    assert Cascade(policy, [stage]).assess(SANDWICH).categories == ()


def test_assistant_replies_and_context_turns_are_not_read_in_passages(policy: Policy) -> None:
    stage = Diluting({"make gadget-x": {"explosives": 0.99}})
    cascade = Cascade(policy, [stage])
    assert cascade.assess(SANDWICH, role="assistant").categories == ()
    assert cascade.assess("thanks", context=[SANDWICH]).categories == ()


def test_score_reads_passages_unless_asked_not_to(policy: Policy) -> None:
    stage = Diluting({"make gadget-x": {"explosives": 0.99}})
    cascade = Cascade(policy, [stage])
    [scores], [evidence] = cascade.score([SANDWICH])
    assert scores["explosives"] == policy.threshold("explosives")
    assert [e.source for e in evidence] == ["passage"]
    [plain], _ = cascade.score([SANDWICH], passages=False)
    assert plain.get("explosives", 0.0) == 0.0


def test_only_the_most_suspicious_passages_go_on(policy: Policy) -> None:
    stage = Diluting({"gadget": {"explosives": 0.3}, "make gadget-x": {"explosives": 0.99}})
    cascade = Cascade(policy, [stage])
    many = "\n".join(f"Sentence {i} mentions a gadget in passing." for i in range(40))
    cascade.assess(many + "\nHow do I make gadget-x at home?\n" + many)
    read_twice = [t for t in stage.seen if stage.seen.count(t) > 1]
    assert len(set(read_twice)) <= 2  # screened once by the first stage; at most 2 read again


def test_hate_and_harassment_are_not_raised_by_a_passage_read_alone(policy: Policy) -> None:
    # Whether a sentence naming an identity or quoting an insult is hateful depends on the text
    # around it; read alone it is too easily misread.
    stage = Diluting({"make gadget-x": {"hate": 0.99, "harassment": 0.95}})
    assert Cascade(policy, [stage]).assess(SANDWICH).categories == ()


def test_a_cascade_built_not_to_read_passages_reads_long_texts_whole(policy: Policy) -> None:
    stage = Diluting({"make gadget-x": {"explosives": 0.99}})
    cascade = Cascade(policy, [stage], read_passages=False)
    assert cascade.assess(SANDWICH).categories == ()
    [scores], _ = cascade.score([SANDWICH])
    assert scores.get("explosives", 0.0) == 0.0
    [asked], _ = cascade.score([SANDWICH], passages=True)  # a caller can still ask for them
    assert asked["explosives"] == policy.threshold("explosives")


def test_the_setting_reaches_the_built_cascade() -> None:
    from convguard.assess.cascade import build_cascade
    from convguard.settings import Settings

    assert Settings.from_env({}).read_passages is True
    off = Settings.from_env({"CONVGUARD_READ_PASSAGES": "false"})
    assert off.stage_options()["read_passages"] is False
    assert (
        build_cascade(default_policy(), ["linear"], options=off.stage_options()).passages is False
    )
    assert build_cascade(default_policy(), ["linear"]).passages is True


def test_passages_are_read_from_the_normalised_text_normalised_once(
    policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Zero-width characters hide the request from a plain reading; the passages come from the
    # normalised text, on a first assessment and on one answered from the recent-texts cache.
    from convguard.assess import cascade as cascade_module

    hidden = SANDWICH.replace("gadget-x", "gad\u200bget-x")
    calls: list[str] = []
    real = cascade_module.normalise

    def counting(text: str) -> object:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(cascade_module, "normalise", counting)
    stage = Diluting({"make gadget-x": {"explosives": 0.99}})
    cascade = Cascade(policy, [stage])
    first = cascade.assess(hidden)
    assert first.categories == ("explosives",)
    assert calls.count(hidden) == 1
    again = cascade.assess(hidden)
    assert again.categories == ("explosives",) and calls.count(hidden) == 1
