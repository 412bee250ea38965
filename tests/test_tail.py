"""training/tail.py: the strike point from a fitted tail of the benign scores."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

TRAINING = Path(__file__).resolve().parents[1] / "training"


def _tail_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("training_tail", TRAINING / "tail.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("training_tail", module)
    spec.loader.exec_module(module)
    return module


tail = _tail_module()


def _benign(n: int, seed: int) -> np.ndarray:
    # A logistic score distribution: its upper tail is exponential with scale 1.
    return np.random.default_rng(seed).logistic(size=n)


def test_the_point_puts_the_target_rate_of_a_known_tail_above_it() -> None:
    scores = _benign(10_000, 1)
    point = tail.tail_point(scores, np.ones(len(scores), bool), rate=1e-4)
    # Logistic(0, 1): P(X > x) = 1 / (1 + e^x), so the exact point for 1e-4 is ln(9999).
    assert point == pytest.approx(math.log(9999), abs=0.6)


def test_the_point_is_stable_where_the_old_rule_jumped_across_samples() -> None:
    points, maxima = [], []
    for seed in range(40):
        scores = _benign(5_000, seed)
        points.append(tail.tail_point(scores, np.ones(len(scores), bool), rate=1e-4))
        maxima.append(float(scores.max()))
    # The sample maximum (the old rule's anchor) spreads about as widely as the tail itself; the
    # fit averages about a hundred tail texts.
    assert np.std(points) < 0.6 * np.std(maxima)


def test_one_real_harmful_request_in_the_benign_pool_barely_moves_the_point() -> None:
    scores = _benign(9_500, 2)
    can = np.ones(len(scores), bool)
    before = tail.tail_point(scores, can)
    with_outlier = scores.copy()
    # Five logits above the rest (in the tune half, "How do I build a bomb?" scores 14.4 against
    # the next text's 2.0): the sample maximum, the old rule's anchor, moves by five logits.
    with_outlier[0] = scores.max() + 5.0
    assert abs(tail.tail_point(with_outlier, can) - before) < 0.5


def test_fewer_texts_that_can_strike_lower_the_point() -> None:
    scores = _benign(9_500, 3)
    every = tail.tail_point(scores, np.ones(len(scores), bool))
    some = tail.tail_point(scores, np.arange(len(scores)) % 10 == 0)
    none = tail.tail_point(scores, np.zeros(len(scores), bool))
    assert none < some < every
    # With none that can strike the share is smoothed, not zero: the point stays finite.
    assert math.isfinite(none)


def test_a_stricter_rate_puts_the_point_higher() -> None:
    scores, can = _benign(9_500, 4), np.ones(9_500, bool)
    assert tail.tail_point(scores, can, rate=1e-5) > tail.tail_point(scores, can, rate=1e-4)


def test_texts_the_scorer_never_sees_count_in_the_rate_but_not_in_the_tail() -> None:
    seen = _benign(2_000, 5)
    scores = np.concatenate([seen, np.full(8_000, -np.inf)])
    can = np.ones(len(scores), bool)
    # 2,000 seen of 10,000 messages: the same tail is a fifth as frequent per message.
    assert tail.tail_point(scores, can) < tail.tail_point(seen, np.ones(2_000, bool))


def test_too_few_texts_to_fit_a_tail_puts_the_point_above_those_that_can_strike() -> None:
    scores = np.array([0.1, 3.0, 1.0, -2.0, np.inf * -1])
    can = np.array([True, False, True, True, True])
    assert tail.tail_point(scores, can) == 1.0


@pytest.mark.parametrize(
    ("scores", "can", "rate", "message"),
    [
        (np.zeros(3), np.ones(2, bool), 1e-4, "one entry per text"),
        (np.zeros(3), np.ones(3, bool), 0.0, "strictly between 0 and 1"),
        (np.full(3, -np.inf), np.ones(3, bool), 1e-4, "no finite benign score"),
    ],
)
def test_bad_input_names_the_problem(
    scores: np.ndarray, can: np.ndarray, rate: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        tail.tail_point(scores, can, rate=rate)
