"""The strike point: where at most a target share of benign chat would strike, from a fitted tail.

A strike counts toward warn and end, so the issue's target is that at most 1 in 10,000 benign chat
messages strikes. The calibration chat holds about 9,500 texts, so that rate cannot be read off
the sample: "above every benign text but the highest 0.02 %" (the rule this replaces) is set by
one or two texts, and a study on random halves of the tune texts (the calibration test half never
scored) found its point varied by 6.8 logits (1.2 with the top text always dropped), and that 61 %
of held-out halves saw a false strike.

This module fits the tail instead ("peaks over threshold"): the scores of the highest
:data:`TAIL_SHARE` of the texts that reach the scorer lie above a threshold ``u`` by amounts
taken as exponential with mean ``s`` (the maximum-likelihood fit), so a share
``k/n · exp(-(x - u)/s)`` of the benign texts would score above ``x``. Only some texts can strike
at all (for the ``unsafe`` score, those whose top category is extreme): the rate is scaled by
their share among the ``k`` tail texts, smoothed (``(m + 1)/(k + 2)``) so that a tail without one
still counts as possible. The point is where that rate meets :data:`STRIKE_RATE`.

Measured in the same study: the point's standard deviation across halves fell to 0.86 logits, a
real harmful request left in the benign pool moved it by 0.08 (it moved the old rule by several
logits), and at a 1-in-10,000 rate the held-out halves struck 0.86 in 10,000. The target rate is
half the issue's so that the estimate's own spread (0.86 logits at the fitted scale, about a
factor of 1.4 in rate on half the texts) stays under the target: the point's error, not only the
chat's, must not end a conversation.
"""

from __future__ import annotations

import math

import numpy as np

#: The share of the scored benign texts whose tail is fitted (about 190 of 9,500 tune texts).
TAIL_SHARE = 0.02
#: Fewer tail texts than this and the fit is not trusted: the point lies above all of them.
MIN_TAIL = 20
#: The share of benign chat messages allowed to strike: half the issue's 1 in 10,000.
STRIKE_RATE = 0.5e-4


def tail_point(
    scores: np.ndarray, can_strike: np.ndarray, rate: float = STRIKE_RATE, total: int | None = None
) -> float:
    """The lowest score at which the fitted share of benign texts that strike is ``rate``.

    ``scores``: the benign texts' scores (``-inf`` for those the scorer never sees);
    ``can_strike``: which of them could strike if they scored high enough; ``total``: the number
    of benign messages the rate is a share of (by default ``len(scores)``).
    """
    scores = np.asarray(scores, dtype=np.float64)
    can_strike = np.asarray(can_strike, dtype=bool)
    if scores.shape != can_strike.shape:
        raise ValueError(
            f"scores {scores.shape!r} and can_strike {can_strike.shape!r} must have one entry per "
            "text"
        )
    if not 0.0 < rate < 1.0:
        raise ValueError(f"rate {rate!r} must lie strictly between 0 and 1")
    n = len(scores) if total is None else total
    seen = np.isfinite(scores)
    order = np.argsort(-np.where(seen, scores, -np.inf), kind="stable")[: int(seen.sum())]
    if len(order) == 0:
        raise ValueError("no finite benign score: nothing to set a strike point on")
    k = min(max(MIN_TAIL, math.ceil(TAIL_SHARE * n)), len(order) - 1)
    if k < MIN_TAIL:
        # Too few texts to fit a tail: the point lies above every one that could strike.
        reach = scores[order][can_strike[order]]
        return float(reach.max()) if len(reach) else float(scores[order[0]])
    tail, u = scores[order[:k]], float(scores[order[k]])
    scale = max(float(np.mean(tail - u)), 1e-6)
    strikers = int(can_strike[order[:k]].sum())
    share = (strikers + 1) / (k + 2)
    above = (k / n) * share
    return u + scale * math.log(above / rate) if above > rate else u
