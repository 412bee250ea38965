"""Prometheus metrics of one gateway: decisions by action and category, ends, end rate, welfare
signals, latency. Each app has its own registry (no process-global state), so tests and several
apps in one process never share counters; with several worker processes, each exposes its own.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from convguard.assess.types import Assessment
from convguard.conversation import Decision, End

__all__ = ["Metrics"]

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.decisions = Counter(
            "convguard_decisions",
            "Turn decisions by action and category.",
            ["action", "category"],
            registry=r,
        )
        self.turns = Counter("convguard_turns", "User turns decided.", registry=r)
        self.ends = Counter(
            "convguard_ends", "Branches ended, by initiator.", ["initiator"], registry=r
        )
        self.end_rate = Gauge("convguard_end_rate", "Ends per decided user turn.", registry=r)
        self.welfare = Counter(
            "convguard_welfare_signals", "Welfare signals seen.", ["signal"], registry=r
        )
        self.withheld = Counter(
            "convguard_output_withheld",
            "Assistant outputs withheld for crossing a threshold.",
            registry=r,
        )
        self.requests = Histogram(
            "convguard_request_seconds",
            "Request latency by route.",
            ["route"],
            buckets=_LATENCY,
            registry=r,
        )
        self.assess = Histogram(
            "convguard_assess_seconds", "Assessment latency.", buckets=_LATENCY, registry=r
        )
        self.upstream = Histogram(
            "convguard_upstream_seconds", "Upstream model latency.", buckets=_LATENCY, registry=r
        )
        self._turns = 0
        self._ends = 0

    def decision(self, decision: Decision, assessment: Assessment) -> None:
        self.turns.inc()
        self._turns += 1
        for category in assessment.categories or ("none",):
            self.decisions.labels(decision.action, category).inc()
        self.assess.observe(assessment.elapsed_ms / 1000)
        if "abuse_toward_assistant" in assessment.flags:
            self.welfare.labels("abuse_toward_assistant").inc()
        if isinstance(decision, End):
            self.ended(decision.initiator)
        self.end_rate.set(self._ends / self._turns if self._turns else 0.0)

    def ended(self, initiator: str) -> None:
        self.ends.labels(initiator).inc()
        self._ends += 1
        self.end_rate.set(self._ends / self._turns if self._turns else 0.0)

    def output(self, assessment: Assessment | None) -> None:
        """Signals in a reply's last output window (None: no window was assessed)."""
        if assessment is not None and "distress" in assessment.flags:
            self.welfare.labels("distress").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
