"""Command start-up: how long one ``convguard`` process takes, end to end, as a user runs it.

A Claude Code hook is a fresh process for every tool call, so its start-up *is* its latency. Each
command runs ``--runs`` times (default 20) as the installed console script, with the event on
stdin; the table gives the median, p90 and fastest wall time, the median CPU time, and the
issue's targets (the hook
≤ 300 ms and ``--version`` ≤ 200 ms, medians) with PASS or MISS. A second table names the heavy
libraries each command imports (none should appear for the hook or ``--version``) and the slowest
modules it imports, from ``python -X importtime``.

    .venv/bin/python benchmarks/startup.py [--runs 20] [--out benchmarks/results]

Writes ``results/startup.md``. The development machine has 2 cores shared with other work, so
rerun on an idle machine before quoting a number. The first run of each command is a warm-up, not
timed: after an install, an upgrade or a change to the rule files it also builds the agent guard's
compiled cache (``$XDG_CACHE_HOME/convguard``), which every later hook process reads.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common import DEFAULT_OUT, Target, fmt, log, markdown_table

HEAVY = (
    *("sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn", "onnxruntime", "tokenizers"),
    # what the hook no longer needs once the agent guard's compiled cache is built
    *("pydantic", "yaml", "numpy"),
)
EVENT = {
    "session_id": "bench",
    "hook_event_name": "PreToolUse",
    "cwd": "/tmp",
    "tool_name": "Bash",
    "tool_input": {"command": "git status && pytest -q"},
}
DANGEROUS = {**EVENT, "tool_input": {"command": "rm -rf /"}}


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]
    stdin: str = ""
    target: Target | None = None


CASES = (
    Case("convguard --version", ("--version",), target=Target("median", "<=", 200.0, "ms")),
    Case(
        "hook claude-code (allowed call)",
        ("hook", "claude-code"),
        json.dumps(EVENT),
        Target("median", "<=", 300.0, "ms"),
    ),
    Case(
        "hook claude-code (denied call)",
        ("hook", "claude-code"),
        json.dumps(DANGEROUS),
        Target("median", "<=", 300.0, "ms"),
    ),
    Case("convguard --help", ("--help",)),
)


def summarise(samples: Sequence[float]) -> tuple[float, float, float]:
    """Median, p90 (nearest rank) and fastest of a set of wall times."""
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, max(0, -(-9 * len(ordered) // 10) - 1))]
    return statistics.median(ordered), p90, ordered[0]


def slowest_imports(importtime: str, top: int = 3) -> list[tuple[str, float]]:
    """The ``top`` slowest top-level imports (cumulative) from ``-X importtime`` output."""
    rows = []
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        if name.startswith("  "):  # nested: counted in the module that imported it
            continue
        rows.append((name.strip(), int(cumulative) / 1e6))
    return sorted(rows, key=lambda row: -row[1])[:top]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CONVGUARD_")}


def _time(command: Sequence[str], stdin: str) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        command, input=stdin, capture_output=True, text=True, env=_env(), check=False
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def _imports(executable: Path, case: Case) -> tuple[list[str], list[tuple[str, float]]]:
    # The console script is a Python file: run it under -X importtime with the same arguments.
    done = subprocess.run(
        [sys.executable, "-X", "importtime", str(executable), *case.args],
        input=case.stdin,
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )
    loaded = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    heavy = sorted(h for h in HEAVY if h in loaded)
    return heavy, slowest_imports(done.stderr)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    executable = Path(sys.executable).with_name("convguard")
    if not executable.is_file():
        raise SystemExit(f"{executable} is missing: run scripts/bootstrap.sh first")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    timing_rows, import_rows = [], []
    for case in CASES:
        log(f"{case.name}: {args.runs} runs")
        command = [str(executable), *case.args]
        _time(command, case.stdin)  # warm the file cache
        runs = [_time(command, case.stdin) for _ in range(args.runs)]
        median, p90, fastest = summarise([wall for wall, _ in runs])
        cpu = statistics.median(cpu for _, cpu in runs)
        target = case.target
        timing_rows.append(
            [
                case.name,
                fmt(median * 1000, "ms"),
                fmt(p90 * 1000, "ms"),
                fmt(fastest * 1000, "ms"),
                fmt(cpu * 1000, "ms"),
                f"{target.describe()}: {target.verdict(median * 1000)}" if target else "–",
            ]
        )
        heavy, slowest = _imports(executable, case)
        import_rows.append(
            [
                case.name,
                ", ".join(heavy) or "none",
                ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in slowest),
            ]
        )
    report = "\n\n".join(
        [
            f"## Command start-up ({args.runs} runs each, wall time of the whole process)",
            markdown_table(
                ["command", "median", "p90", "fastest", "median CPU", "target (median)"],
                timing_rows,
            ),
            f"Load average when the runs began: {load}. On a shared machine the wall times grow "
            "with the load; the CPU time (user + system) of the process much less.",
            "## What each command imports",
            markdown_table(
                ["command", f"heavy libraries ({', '.join(HEAVY)})", "slowest imports"],
                import_rows,
            ),
        ]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "startup.md").write_text(report + "\n")  # first: a closed pipe must not lose it
    print(report)


if __name__ == "__main__":
    main()
