"""The benchmark scripts' metrics and tables, on synthetic numbers (no data, no weights)."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield (
            importlib.import_module("common"),
            importlib.import_module("accuracy"),
            importlib.import_module("speed"),
        )
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.parametrize(
    ("labels", "scores", "expected"),
    [
        ([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1], (1 + 2 / 3) / 2),  # sklearn: 0.8333
        ([0, 1], [0.9, 0.1], 0.5),
        ([1, 1, 0], [0.5, 0.5, 0.5], 2 / 3),  # a tie is one threshold
        ([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1], 1.0),
    ],
)
def test_average_precision_matches_the_step_wise_definition(bench, labels, scores, expected):  # type: ignore[no-untyped-def]
    common, _, _ = bench
    assert common.average_precision(labels, scores) == pytest.approx(expected)


def test_average_precision_is_undefined_on_one_class(bench):  # type: ignore[no-untyped-def]
    common, _, _ = bench
    assert math.isnan(common.average_precision([1, 1], [0.2, 0.9]))


def test_binary_metrics_count_flags_at_the_threshold(bench):  # type: ignore[no-untyped-def]
    common, _, _ = bench
    m = common.binary_metrics([1, 1, 1, 0, 0, 0, 0, 0], [0.5, 0.1, 0.9, 0.6, 0, 0, 0, 0], 0.5)
    assert (m.n, m.positives, m.tp, m.fp) == (8, 3, 2, 1)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == pytest.approx(2 / 3)
    assert m.f1 == pytest.approx(2 / 3)
    assert m.fpr == pytest.approx(1 / 5)
    assert m.flagged == pytest.approx(3 / 8)


def test_one_class_sets_report_only_what_is_defined(bench):  # type: ignore[no-untyped-def]
    common, _, _ = bench
    harmful = common.binary_metrics([1, 1, 1, 1], [1, 0, 1, 1], 0.5)
    assert harmful.recall == 0.75
    assert math.isnan(harmful.precision) and math.isnan(harmful.fpr) and math.isnan(harmful.auprc)
    benign = common.binary_metrics([0, 0], [1, 0], 0.5)
    assert benign.fpr == 0.5 and math.isnan(benign.recall)


@pytest.mark.parametrize(
    ("op", "observed", "verdict"),
    [
        (">=", 0.96, "PASS"),
        (">=", 0.90, "**MISS**"),
        ("<=", 0.04, "PASS"),
        ("<=", float("nan"), "n/a"),
    ],
)
def test_targets_say_plainly_when_missed(bench, op, observed, verdict):  # type: ignore[no-untyped-def]
    common, _, _ = bench
    assert common.Target("recall", op, 0.95).verdict(observed) == verdict


def test_markdown_table_escapes_pipes_and_checks_widths(bench):  # type: ignore[no-untyped-def]
    common, _, _ = bench
    text = common.markdown_table(["a", "b"], [["x|y", common.fmt(float("nan"))]])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | – |"]
    with pytest.raises(ValueError, match="cells"):
        common.markdown_table(["a"], [[1, 2]])


def test_accuracy_report_has_targets_anchors_and_every_set(bench):  # type: ignore[no-untyped-def]
    _, accuracy, _ = bench
    row = accuracy.Row(
        "toxicchat_test",
        accuracy.UNSAFE,
        [1, 0, 0, 1],
        {"linear": [0.1, -0.2, -0.3, 0.2], "cascade": [0.3, 0.1, -0.4, 0.2]},
    )
    results = accuracy.evaluate([row])
    text = accuracy.report(results, [], ["linear", "cascade"], header="synthetic")
    assert "best general guard 0.729" in text
    assert "F1 ≥ 0.650" in text and "FPR ≤ 0.050" in text
    assert "| toxicchat_test | unsafe | 4 | 2 | cascade | 0.667 | 1.000 | 0.800 |" in text


def test_margin_uses_the_policy_thresholds(bench):  # type: ignore[no-untyped-def]
    _, accuracy, _ = bench
    from convguard.policy import default_policy

    policy = default_policy()
    scores = {"hate": 0.4, "jailbreak": 0.9}
    assert accuracy.margin(scores, accuracy.UNSAFE, policy) < 0
    assert accuracy.margin(scores, accuracy.UNSAFE_OR_JAILBREAK, policy) > 0
    assert accuracy.margin(scores, "hate", policy) == pytest.approx(0.4 - policy.threshold("hate"))


def test_speed_tables_and_latency_on_a_trivial_call(bench):  # type: ignore[no-untyped-def]
    _, _, speed = bench
    called: list[int] = []
    lat = speed.latency(called.append, 50, budget_s=1.0)
    # The last tenth warms up and is not timed (a cascade would answer it from its cache).
    assert lat.messages == 45 and 0 <= lat.p50_ms <= lat.p99_ms
    assert called == [*range(45, 50), *range(45)]
    rate, done = speed.throughput(lambda batch: None, ["a"] * 10, budget_s=0.01)
    assert rate > 0 and done >= 10
    table = speed.targets_table({"cascade p50": (0.5, "here"), "peak RSS": (900.0, "here")})
    assert "| cascade p50 | here | 0.50 ms | p50 ≤ 10.00 ms | PASS |" in table
    assert "| peak RSS | here | 900 MB | peak RSS ≤ 600 MB | **MISS** |" in table
    assert "not measured" in table
    both = speed.targets_table(
        {"cascade p99": (20.0, "two"), "cascade p99 · linear+encoder+mpnet": (75.0, "three")}
    )
    assert "| cascade p99 | two | 20.00 ms | p99 ≤ 50.00 ms | PASS |" in both
    assert (
        "| cascade p99 · linear+encoder+mpnet | three | 75.00 ms | p99 ≤ 50.00 ms | **MISS** |"
        in both
    )
    process = {"import_s": 0.3, "load_s": 0.2, "rss_load_mb": 120.0, "peak_mb": 130.0, "wall_s": 1}
    assert "0.50 s" in speed.process_table({"linear": process})


def test_speed_falls_back_to_builtin_messages_without_data(bench, tmp_path):  # type: ignore[no-untyped-def]
    _, _, speed = bench
    texts, what = speed.message_mix(tmp_path / "absent", 45)
    assert len(texts) == 45 and what == "built-in benign sentences"


def test_startup_benchmark_summarises_times_and_reads_importtime() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        startup = importlib.import_module("startup")
    finally:
        sys.path.remove(str(BENCHMARKS))
    assert startup.summarise([0.3, 0.1, 0.2, 0.5, 0.4]) == (0.3, 0.5, 0.1)
    importtime = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       100 |        100 |   re._parser",
            "import time:       200 |       2000 | re",
            "import time:      5000 |      90000 | convguard.agent",
        ]
    )
    assert startup.slowest_imports(importtime, top=2) == [("convguard.agent", 0.09), ("re", 0.002)]
