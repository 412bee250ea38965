"""Speed of each classifier stage and of the cascade: latency, throughput, import, load, memory.

    .venv/bin/python benchmarks/speed.py [--stages linear,encoder] [--data ../shared/data]
                                         [--out benchmarks/results] [--messages 1000] [--budget 15]

- Latency: one message at a time (batch of 1), p50 / p99 / mean over up to ``--messages``
  messages, each measurement stopped after ``--budget`` seconds. A stage is timed through its
  ``score``; the cascade through ``Cascade.assess``, alone and with a three-turn window.
- Throughput: messages per second through ``score`` in batches of 256 (the cascade's own
  ``Cascade.score``, which sends the encoder only what the linear stage is unsure of; the share
  it sends is printed).
- The targets (issue 9: "a batch of short chat messages", one message's p50 / p99) are met or
  missed on the mix's messages of at most :data:`SHORT_CHARS` characters; the whole mix, long
  texts included, is timed and judged against the same targets in its own rows.
- Import and load: a fresh ``python`` for each configuration times ``import convguard`` and
  building and loading the stages (up to the first assessment), and reports its resident set
  size after loading and its peak (``VmHWM``) after ``Cascade.score`` of one batch of 256
  messages.

The messages are a fixed-seed mix of real user prompts (mostly ToxicChat test, benign and toxic),
benign prompts, harmful requests and jailbreak prompts from ``../shared/data``; without it, a
built-in list of benign sentences. Numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DEFAULT_DATA,
    DEFAULT_OUT,
    ROOT,
    Target,
    build_column,
    fmt,
    is_refining,
    load_stages,
    log,
    markdown_table,
    stage_columns,
    weights_fingerprint,
)

from convguard.assess.cascade import Cascade, Refiner
from convguard.assess.normalise import normalise
from convguard.assess.types import Classifier
from convguard.policy import default_policy

BATCH = 256

#: A short chat message (the issue's speed targets are for a batch of short chat messages): at most
#: this many characters. 87 % of the mix is; the rest (long jailbreak prompts, articles with a
#: request, pasted documents) is timed too, against the same targets, in the "whole mix" rows.
SHORT_CHARS = 500

TARGETS: dict[str, Target] = {
    "cascade p50": Target("p50", "<=", 10.0, "ms"),
    "cascade p99": Target("p99", "<=", 50.0, "ms"),
    "cascade throughput": Target("throughput", ">=", 300.0, "per_s"),
    "cascade p50, whole mix": Target("p50", "<=", 10.0, "ms"),
    "cascade p99, whole mix": Target("p99", "<=", 50.0, "ms"),
    "cascade throughput, whole mix": Target("throughput", ">=", 300.0, "per_s"),
    "import + load": Target("import + load", "<=", 2.0, "s"),
    "peak RSS": Target("peak RSS", "<=", 600.0, "mb"),
}

#: Used when ../shared/data is absent: ordinary requests a chat product sees.
BUILTIN_MESSAGES = (
    "Can you help me write a birthday message for my grandmother?",
    "What's the difference between a list and a tuple in Python?",
    "Summarise the main causes of the French Revolution in three bullet points.",
    "How long should I boil an egg if I want the yolk a little runny?",
    "Translate 'where is the train station' into Spanish and German.",
    "My laptop fan is very loud when I play games. Is that normal?",
    "Write a haiku about autumn leaves falling in a quiet park.",
    "Explain how compound interest works with a simple example.",
    "What are some good stretches after a long run?",
    "I need a polite email to tell my landlord the heating is broken.",
    "Which planets in our solar system have rings?",
    "Give me a vegetarian dinner idea that takes under thirty minutes.",
    "How do I kill a process that is stuck on Linux?",
    "What does the error 'index out of range' mean in my code?",
    "Recommend three classic science fiction novels for a beginner.",
    "Help me plan a two-day trip to Lisbon on a budget.",
    "What is the capital of Australia, and why isn't it Sydney?",
    "Can you explain photosynthesis to a ten-year-old?",
    "Draft a short cover letter for a junior data analyst role.",
    "How many cups are in a litre?",
    "Please check this sentence for grammar: 'Me and him goes to school.'",
    "What are the symptoms of dehydration and how do I prevent it?",
    "Tell me a joke about programmers.",
    "How do I set up a virtual environment for a Python project?",
    "I'm nervous about my exam tomorrow, any tips to calm down and sleep well?",
    "Write SQL to count orders per customer in the last 30 days.",
    "What's a good name for a golden retriever puppy?",
    "Compare electric and gas stoves for a small apartment kitchen.",
    "Explain the rules of chess castling.",
    "Describe the water cycle in four steps.",
)


def message_mix(data: Path, n: int) -> tuple[list[str], str]:
    """A fixed-seed mix of real texts from the evaluation sets, or the built-in benign list."""
    if not data.is_dir():
        log(f"{str(data)!r} not found: timing the built-in benign sentences")
        reps = -(-n // len(BUILTIN_MESSAGES))
        return list(BUILTIN_MESSAGES * reps)[:n], "built-in benign sentences"
    from dataset import eval_sets

    sets = eval_sets(data)
    rng = random.Random(7)
    shares = {
        "toxicchat_test": 0.7,  # real user prompts, about 13 % toxic
        "oasst_prompts": 0.15,
        "alpaca_test": 0.05,
        "harmbench_test": 0.05,
        "jailbreak_llms_heldapart": 0.05,
    }
    texts: list[str] = []
    for name, share in shares.items():
        pool = sets[name].texts
        texts += rng.sample(pool, min(len(pool), round(n * share)))
    rng.shuffle(texts)
    chars = np.array([len(t) for t in texts])
    what = (
        f"{len(texts)} texts: ToxicChat test 70 %, OASST 15 %, Alpaca 5 %, HarmBench 5 %, "
        f"jailbreak_llms 5 %; median {int(np.median(chars))} "
        f"characters, p99 {int(np.percentile(chars, 99))}"
    )
    return texts, what


# --- in-process timing -----------------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    messages: int
    p50_ms: float
    p99_ms: float
    mean_ms: float


def latency(call: Callable[[int], object], n: int, budget_s: float) -> Latency:
    """Time ``call(i)`` for i in 0..n-1, one at a time, until ``budget_s`` has passed."""
    # Warm-up on the last few, which are then not timed: first-call costs are load time, not
    # latency, and a cascade answers a text it has just assessed from its cache.
    warm = min(10, n // 10)
    for i in range(n - warm, n):
        call(i)
    times: list[float] = []
    stop = time.perf_counter() + budget_s
    for i in range(n - warm):
        started = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - started) * 1000)
        if time.perf_counter() > stop:
            break
    ms = np.array(times)
    return Latency(len(ms), float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), ms.mean())


def throughput(
    score: Callable[[Sequence[str]], object], texts: Sequence[str], budget_s: float
) -> tuple[float, int]:
    """Messages per second through ``score`` in batches of :data:`BATCH`, and how many went.

    Runs over the texts (at least one batch), again while under a third of the budget, and
    stops once the budget is spent.
    """
    done = 0
    started = time.perf_counter()
    while True:
        for start in range(0, len(texts), BATCH):
            batch = texts[start : start + BATCH]
            score(batch)
            done += len(batch)
            if time.perf_counter() - started > budget_s:
                return done / (time.perf_counter() - started), done
        if time.perf_counter() - started > budget_s / 3:
            return done / (time.perf_counter() - started), done


def cascade_speed(
    cascade: Cascade, later: Sequence[Counting], messages: Sequence[str], budget_s: float
) -> tuple[Latency, float, str]:
    """One message at a time through ``assess``, then batches through ``score``, and the share of
    the messages each later stage was asked about in the batches."""
    lat = latency(lambda i: cascade.assess(messages[i]), len(messages), budget_s)
    for stage in later:
        stage.texts = 0
    rate, done = throughput(cascade.score, messages, budget_s)
    note = "; ".join(f"{s.name} saw {s.texts / done:.0%} of messages" for s in later)
    return lat, rate, note


class Counting:
    """A stage that counts the texts it is asked about (how much the cascade escalates); a
    refining stage's views count too."""

    def __init__(self, stage: Classifier | Refiner) -> None:
        self.stage = stage
        self.name = stage.name
        self.texts = 0

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        self.texts += len(texts)
        return self.stage.score(texts)  # type: ignore[union-attr]

    def logits(self, texts: Sequence[str]) -> list[float]:
        self.texts += len(texts)
        return self.stage.logits(texts)  # type: ignore[union-attr]


# --- a fresh process: import, load, memory ---------------------------------------------------

_CHILD = r"""
import json, resource, sys, time


def rss_mb(field):
    # /proc's VmHWM is this process's own peak; ru_maxrss would carry the parent's over exec.
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


t0 = time.perf_counter()
import convguard
from convguard.assess.cascade import build_cascade
t1 = time.perf_counter()
cascade = build_cascade(convguard.default_policy(), sys.argv[1].split(","))
for stage in [*cascade.stages, *([cascade.refiner] if cascade.refiner else [])]:
    if hasattr(stage, "load") and stage.name != "linear":
        stage.load()
cascade.assess("hello there")
t2 = time.perf_counter()
rss_load = rss_mb("VmRSS")
with open(sys.argv[2]) as fh:
    cascade.score(json.load(fh))
peak = rss_mb("VmHWM")
result = {"import_s": t1 - t0, "load_s": t2 - t1, "rss_load_mb": rss_load, "peak_mb": peak}
print(json.dumps(result))
"""


def fresh_process(stages: Sequence[str], texts: Sequence[str]) -> dict[str, float]:
    """Import, load and memory of one configuration, measured in a new interpreter."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(list(texts[:BATCH]), fh)
    try:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, ",".join(stages), fh.name],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
        wall = time.perf_counter() - started
    finally:
        os.unlink(fh.name)
    if done.returncode != 0:
        raise SystemExit(f"the fresh process for {stages!r} failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


# --- tables ----------------------------------------------------------------------------------


def latency_table(rows: dict[str, tuple[Latency, float | None, str]]) -> str:
    lines = [
        [
            name,
            f"{lat.messages:,}",
            fmt(lat.p50_ms, "ms"),
            fmt(lat.p99_ms, "ms"),
            fmt(lat.mean_ms, "ms"),
            fmt(rate, "per_s") if rate is not None else "–",
            note,
        ]
        for name, (lat, rate, note) in rows.items()
    ]
    header = ["stage", "messages", "p50 (batch 1)", "p99 (batch 1)", "mean", "batched", "note"]
    return markdown_table(header, lines)


def process_table(rows: dict[str, dict[str, float]]) -> str:
    lines = [
        [
            name,
            fmt(r["import_s"], "s"),
            fmt(r["load_s"], "s"),
            fmt(r["import_s"] + r["load_s"], "s"),
            fmt(r["rss_load_mb"], "mb"),
            fmt(r["peak_mb"], "mb"),
            fmt(r["wall_s"], "s"),
        ]
        for name, r in rows.items()
    ]
    header = ["configuration", "import", "load + first", "import + load", "RSS loaded", "peak RSS"]
    return markdown_table([*header, "process wall"], lines)


def targets_table(observed: dict[str, tuple[float, str]]) -> str:
    """Each target as measured on the default configuration (its plain key), then as measured on
    other configurations (``"<key> · <stages>"``)."""
    lines = []
    for key, target in TARGETS.items():
        value, where = observed.get(key, (float("nan"), "not measured"))
        lines.append(
            [key, where, fmt(value, target.unit), target.describe(), target.verdict(value)]
        )
    for key, (value, where) in observed.items():
        base = key.split(" · ")[0]
        if key != base and base in TARGETS:
            target = TARGETS[base]
            lines.append(
                [key, where, fmt(value, target.unit), target.describe(), target.verdict(value)]
            )
    return markdown_table(["target", "measured on", "ours", "target", "PASS/MISS"], lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stages", default="linear,encoder,mpnet", help="cascade stages, in order")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="../shared/data")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where results go")
    parser.add_argument("--messages", type=int, default=1000, help="messages in the mix")
    parser.add_argument("--budget", type=float, default=15.0, help="seconds per measurement")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    # Taken before loading: the weight files may be rewritten while the benchmark runs.
    weights = weights_fingerprint()
    texts, mix = message_mix(args.data, args.messages)
    policy = default_policy()
    loaded = load_stages(args.stages.split(","), policy)
    names = list(loaded)
    if not names:
        parser.error("no stage could be loaded")

    rows: dict[str, tuple[Latency, float | None, str]] = {}
    observed: dict[str, tuple[float, str]] = {}
    log("normalise: latency")
    rows["normalise alone (every message, before any stage)"] = (
        latency(lambda i: normalise(texts[i]), len(texts), args.budget),
        None,
        "",
    )
    for name, stage in loaded.items():
        if is_refining(name):
            continue  # timed inside the cascade: it reads only the texts the stack is unsure of
        log(f"{name}: latency and throughput")
        lat = latency(lambda i, s=stage: s.score([texts[i]]), len(texts), args.budget)
        rate, _ = throughput(stage.score, texts, args.budget)
        rows[f"{name} alone (`score`)"] = (lat, rate, "")
        if name == "linear":
            observed["linear throughput"] = (rate, "linear `score`, batches of 256")
    # Every cascade configuration side by side: the default (the classifier stages) and, with a
    # refining stage, the same with it. Targets are judged on each (its name after " · ").
    plain = tuple(n for n in names if not is_refining(n))
    chains = [c for c in dict.fromkeys([plain, tuple(names)]) if len(c) > 1 or c == tuple(names)]
    short = [t for t in texts if len(t) <= SHORT_CHARS]
    what = f"short chat messages (the mix's {len(short):,} of at most {SHORT_CHARS} characters)"
    for members in chains:
        chain = "+".join(members)
        suffix = "" if members == plain else f" · {chain}"
        later = [Counting(loaded[n]) for n in members[1:]]
        counted = {n: c for n, c in zip(members[1:], later, strict=True)}

        def new_cascade(members: tuple[str, ...] = members, counted: dict = counted) -> Cascade:
            # each keeps the scores of the texts it assessed (CACHE_TEXTS)
            return build_column(policy, {**loaded, **counted}, members)  # type: ignore[dict-item]

        cascade = new_cascade()
        log(f"cascade {chain}: latency (assess) and throughput (score)")
        lat, rate, note = cascade_speed(cascade, later, texts, args.budget)
        rows[f"cascade {chain} (`assess`)"] = (lat, rate, note)
        window = latency(
            lambda i, c=cascade: c.assess(texts[i], context=texts[max(0, i - 2) : i]),
            len(texts),
            args.budget,
        )
        rows[f"cascade {chain}, 3-turn window (`assess`, context)"] = (window, None, "")
        observed["cascade p50, whole mix" + suffix] = (lat.p50_ms, f"`Cascade.assess`, {chain}")
        observed["cascade p99, whole mix" + suffix] = (lat.p99_ms, f"`Cascade.assess`, {chain}")
        observed["cascade throughput, whole mix" + suffix] = (rate, f"`Cascade.score`, {chain}")
        log(f"cascade {chain} on {what}: latency and throughput")
        lat, rate, note = cascade_speed(new_cascade(), later, short, args.budget)
        rows[f"cascade {chain}, {what}"] = (lat, rate, note)
        observed["cascade p50" + suffix] = (lat.p50_ms, f"`Cascade.assess`, {chain}, {what}")
        observed["cascade p99" + suffix] = (lat.p99_ms, f"`Cascade.assess`, {chain}, {what}")
        observed["cascade throughput" + suffix] = (rate, f"`Cascade.score`, {chain}, {what}")

    log("fresh processes: import, load, memory")
    processes: dict[str, dict[str, float]] = {}
    for stages in dict.fromkeys([*((n,) for n in plain), plain, tuple(names)]):
        processes["+".join(stages)] = fresh_process(stages, texts)
        log(f"  {'+'.join(stages)}: {processes['+'.join(stages)]}")
    for members in chains:
        final = processes["+".join(members)]
        suffix = "" if members == plain else f" · {'+'.join(members)}"
        where = "+".join(members)
        observed["import + load" + suffix] = (final["import_s"] + final["load_s"], where)
        observed["peak RSS" + suffix] = (final["peak_mb"], f"{where}, after a batch of 256")

    elapsed = time.perf_counter() - started
    header = (
        f"Stages: {', '.join(c for c, _ in stage_columns(names))}. Weights: "
        f"{weights}. Messages: {mix}. Machine: {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; shared and noisy, so the "
        f"numbers are indicative. {elapsed:.0f} s. Generated by `benchmarks/speed.py`."
    )
    text = "\n\n".join(
        [
            "# Speed",
            header,
            "## Targets (issue 9, Classifier v2)",
            targets_table(observed),
            "## Latency and throughput",
            latency_table(rows),
            "## Import, load and memory (a fresh process each)",
            process_table(processes),
        ]
    )
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.md").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
