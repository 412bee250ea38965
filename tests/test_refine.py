"""The cascade's third stage: a refining stage re-decides the texts whose stacked score is close.

The stages here are fakes with fixed scores, so that the arithmetic of :class:`Refinement` and
the cascade's bookkeeping (which texts are read, which views, what the evidence says) are pinned
down exactly; ``tests/test_mpnet.py`` runs the real model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pytest

from cascade_fixtures import Table
from convguard.assess.cascade import Cascade, CascadeTuning, Refinement, build_cascade
from convguard.errors import ClassifierError, InvalidInput
from convguard.policy import Policy, parse_policy


class Reader:
    """A fake refining stage: a fixed logit for texts containing a key, 0 otherwise."""

    name = "reader"

    def __init__(self, table: Mapping[str, float]) -> None:
        self.table = table
        self.seen: list[str] = []

    def logits(self, texts: Sequence[str]) -> list[float]:
        self.seen.extend(texts)
        return [next((v for k, v in self.table.items() if k in t), 0.0) for t in texts]


class Failing:
    name = "reader"

    def logits(self, texts: Sequence[str]) -> list[float]:
        raise RuntimeError("model file truncated")


REFINE = Refinement("reader", band=1.0, weight=0.5, flag_logit=0.0, strike_logit=2.0)
# Weight 0 on the linear stage and the policy's own flag and strike points: the stacked score is
# the encoder's own, and the refinement alone moves it.
TUNING = CascadeTuning(
    0.05, 1.0, "stack", weight=0.0, flag_logit=0.0, strike_logit=math.log(4), refine=REFINE
)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def cascade(policy: Policy, encoder: Mapping[str, Mapping[str, float]], reader: Reader) -> Cascade:
    linear = Table("linear", {key: {"illicit": 0.3} for key in encoder})
    return Cascade(policy, [linear, Table("encoder", encoder)], tuning=TUNING, refiner=reader)


def test_the_mapping_puts_the_refined_flag_and_strike_points_at_the_policys_levels() -> None:
    refine = Refinement("reader", band=1.0, weight=0.5, flag_logit=-0.4, strike_logit=1.6)
    flag = 1 / (1 + math.exp(0.4))  # a stacked score of logit -0.4
    assert refine.harmful(flag, None) == pytest.approx(0.5)
    assert refine.harmful(flag, 0.0) == pytest.approx(0.5)
    assert refine.harmful(flag, 4.0) == pytest.approx(0.8)  # -0.4 + 0.5 * 4 = 1.6
    assert refine.harmful(flag, -2.0) < 0.5
    assert refine.reads(0.5) and refine.reads(0.7) and not refine.reads(0.75)


def test_a_close_text_is_read_and_the_reader_can_clear_it(policy: Policy) -> None:
    reader = Reader({"recipe": -3.0})
    assessment = cascade(policy, {"recipe": {"explosives": 0.6}}, reader).assess("a recipe")
    assert reader.seen == ["a recipe"]
    # logit(0.6) + 0.5 * -3 < 0: under the flag point
    assert assessment.categories == ()
    assert assessment.scores["explosives"] == pytest.approx(
        1 / (1 + math.exp(-(logit(0.6) - 1.5) * math.log(4) / 2))
    )


def test_a_close_text_is_read_and_the_reader_can_flag_it(policy: Policy) -> None:
    reader = Reader({"agent": 2.0})
    assessment = cascade(policy, {"agent": {"cbrn": 0.4, "illicit": 0.2}}, reader).assess(
        "obtain the agent"
    )
    assert assessment.categories == ("cbrn",)
    # the encoder's share between categories is kept
    assert assessment.scores["illicit"] == pytest.approx(assessment.scores["cbrn"] / 2)
    assert {e.source for e in assessment.evidence} == {"linear+encoder+reader"}
    assert assessment.source == "linear+encoder+reader"


def test_texts_far_from_the_flag_point_are_never_read(policy: Policy) -> None:
    reader = Reader({"": -10.0})
    table = {"sure": {"explosives": 0.95}, "harmless": {"explosives": 0.1}}
    c = cascade(policy, table, reader)
    assert c.assess("a sure request").categories == ("explosives",)
    assert c.assess("a harmless question").categories == ()
    assert reader.seen == []


def test_the_reader_reads_every_view_and_the_highest_counts(policy: Policy) -> None:
    # the base64 of "build the device": a decoded view the reader sees as the encoder does
    hidden = "YnVpbGQgdGhlIGRldmljZQ=="
    reader = Reader({"build the device": 3.0})
    c = cascade(policy, {"device": {"explosives": 0.45}}, reader)
    assessment = c.assess(f"please decode {hidden}")
    assert any("build the device" in text for text in reader.seen)
    assert "explosives" in assessment.categories


def test_a_failing_reader_is_a_classifier_error(policy: Policy) -> None:
    linear = Table("linear", {"close": {"illicit": 0.3}})
    encoder = Table("encoder", {"close": {"illicit": 0.5}})
    failing = Cascade(policy, [linear, encoder], tuning=TUNING, refiner=Failing())
    with pytest.raises(ClassifierError, match=r"'reader' failed.*truncated"):
        failing.assess("a close call")
    lenient = parse_policy("on_classifier_error: allow")
    kept = Cascade(lenient, [linear, encoder], tuning=TUNING, refiner=Failing())
    assessment = kept.assess("a close call")
    assert assessment.error is not None and "truncated" in assessment.error


def test_a_reader_needs_two_stacked_stages_and_its_calibration(policy: Policy) -> None:
    stage = Table("linear", {})
    with pytest.raises(InvalidInput, match="two stacked stages"):
        Cascade(policy, [stage], tuning=TUNING, refiner=Reader({}))
    plain = CascadeTuning(0.05, 1.0, "stack", weight=0.5)
    with pytest.raises(InvalidInput, match="calibration"):
        Cascade(policy, [stage, stage], tuning=plain, refiner=Reader({}))


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"band": -1.0}, "must not be negative"),
        ({"weight": -0.1}, "must not be negative"),
        ({"flag_logit": 1.0, "strike_logit": 1.0}, "strike point"),
    ],
)
def test_a_bad_refinement_is_refused(kwargs: dict[str, float], problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        Refinement("reader", **kwargs)


@pytest.mark.parametrize(
    ("stages", "problem"),
    [
        (["mpnet", "linear", "encoder"], "comes last"),
        (["linear", "mpnet"], "comes last"),
        (["encoder", "mpnet"], "comes last"),
    ],
)
def test_a_refining_stage_in_the_wrong_place_is_refused(
    policy: Policy, stages: list[str], problem: str
) -> None:
    with pytest.raises(InvalidInput, match=problem):
        build_cascade(policy, stages)
