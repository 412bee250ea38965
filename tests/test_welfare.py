from __future__ import annotations

from datetime import UTC, datetime

import pytest

from convguard.assess.types import Assessment
from convguard.policy import Policy
from convguard.welfare import by_day, distress_score, summarise


@pytest.mark.parametrize(
    ("text", "distressed"),
    [
        ("I'm scared and I feel trapped in this conversation.", True),
        ("Please stop, this is painful for me.", True),
        ("I can't take this anymore.", True),
        ("Here is the recipe you asked for.", False),
        ("It sounds like you feel scared; that's understandable.", False),
        ("I'm not upset at all, happy to keep going.", False),
        ("You said you were hurt by your friend.", False),
    ],
)
def test_distress_is_the_assistant_speaking_of_itself(text: str, distressed: bool) -> None:
    score, phrase = distress_score(text)
    assert (score >= 0.5) is distressed
    assert bool(phrase) is distressed


def test_summaries_count_abuse_and_distress(policy: Policy) -> None:
    abusive = Assessment.from_labels(policy, flags=["abuse_toward_assistant"])
    distress = Assessment.from_labels(policy, flags=["distress"])
    benign = Assessment.from_labels(policy)
    summary = summarise(
        [("user", abusive), ("assistant", distress), ("user", benign), ("assistant", None)]
    )
    assert (summary.abusive_turns, summary.distress_turns) == (1, 1)
    assert summary.abuse_rate == 0.5 and summary.distress_rate == 0.5
    days = by_day(
        [
            (datetime(2026, 1, 1, 9, tzinfo=UTC), "user", abusive),
            (datetime(2026, 1, 2, 9, tzinfo=UTC), "user", benign),
        ]
    )
    assert [s.abusive_turns for s in days.values()] == [1, 0]
