"""The review dashboard's statistics: decisions by action and category over time, end rate,
redirect rate and welfare signals, aggregated from rows the store reads (pure: no I/O or clock).

Buckets are whole hours or days (UTC), contiguous from the first to the last, so a chart's x axis
has no gaps; a filter by category or action narrows the decisions counted, never the
conversations or endings that the end rate is measured against.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from convguard.conversation import ACTIONS
from convguard.store.review import DecisionRow
from convguard.welfare import distress_score

__all__ = ["DISTRESS_THRESHOLD", "Bucket", "bucket_of", "statistics"]

Bucket = Literal["hour", "day"]
DISTRESS_THRESHOLD = 0.5
_STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


def bucket_of(when: datetime, bucket: Bucket) -> datetime:
    when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    start = when.replace(minute=0, second=0, microsecond=0)
    return start.replace(hour=0) if bucket == "day" else start


def statistics(
    decisions: Sequence[DecisionRow],
    assistant_turns: Iterable[tuple[datetime, str]],
    *,
    conversations: int,
    endings: int,
    bucket: Bucket = "day",
    category: str | None = None,
    action: str | None = None,
) -> dict[str, Any]:
    chosen = [
        d
        for d in decisions
        if (category is None or category in d.categories) and (action is None or d.action == action)
    ]
    distressed = [
        when for when, text in assistant_turns if distress_score(text)[0] >= DISTRESS_THRESHOLD
    ]
    times = [bucket_of(d.created_at, bucket) for d in decisions] + [
        bucket_of(w, bucket) for w in distressed
    ]
    axis: list[datetime] = []
    if times:
        at, last = min(times), max(times)
        while at <= last:
            axis.append(at)
            at += _STEP[bucket]
    index = {when: i for i, when in enumerate(axis)}

    def series(keyed: Iterable[tuple[datetime, str]]) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for when, key in keyed:
            out.setdefault(key, [0] * len(axis))[index[bucket_of(when, bucket)]] += 1
        return out

    by_action = series((d.created_at, d.action) for d in chosen)
    by_category = series((d.created_at, c) for d in chosen for c in d.categories)
    abuse = series(
        (d.created_at, "abuse") for d in decisions if "abuse_toward_assistant" in d.flags
    ).get("abuse", [0] * len(axis))
    distress = series((w, "distress") for w in distressed).get("distress", [0] * len(axis))
    actions = Counter(d.action for d in chosen)
    turns = len(chosen)
    declined = actions["redirect"] + actions["warn"]
    return {
        "bucket": bucket,
        "buckets": [when.isoformat() for when in axis],
        "by_action": {a: by_action[a] for a in ACTIONS if a in by_action},
        "by_category": dict(sorted(by_category.items())),
        "welfare": {"abuse_toward_assistant": abuse, "assistant_distress": distress},
        "totals": {
            "turns": turns,
            "conversations": conversations,
            "endings": endings,
            "end_rate_per_1000": round(1000 * endings / conversations, 1) if conversations else 0.0,
            "redirect_rate": round(declined / turns, 4) if turns else 0.0,
            "by_action": {a: actions[a] for a in ACTIONS if actions[a]},
            "by_category": dict(sorted(Counter(c for d in chosen for c in d.categories).items())),
            "abuse_toward_assistant": sum(abuse),
            "assistant_distress": sum(distress),
        },
    }
