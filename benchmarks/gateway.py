"""The gateway under load: added latency over the model, and sustained requests per second.

    .venv/bin/python benchmarks/gateway.py [--seconds 10] [--postgres URL] [--connections 16]
                                           [--latency-requests 300] [--out benchmarks/results]

Every gateway here is a real server process started with ``convguard serve`` (a temporary
``CONVGUARD_DATA_DIR``, ``CONVGUARD_UPSTREAM_URL`` pointing at a :class:`FakeUpstream` running in
this process, a rate limit far above the load), with its API key made by ``convguard keys
create``. Each server is stopped (its whole process group) and each temporary folder removed,
whatever happens.

1. **Added latency.** The same short, benign, non-streaming chat completion is sent straight to
   the fake upstream and through the gateway's ``/v1/chat/completions``, one request at a time,
   the two interleaved in a shuffled order so that noise hits both alike. The requests are new
   user turns on a set of existing conversations (each request carries the history so far, as a
   chat client does; ``X-Convguard-Conversation`` scopes it), so histories grow during the run.
   Added p50 = p50 through the gateway − p50 direct (likewise p99). Measured with ``linear``, and
   with ``cascade`` as well when the encoder heads (``weights/encoder.npz``) are present.

2. **Sustained requests per second** of ``POST /v1/moderations`` and of
   ``POST /v1/conversations/{id}/messages`` (many conversations, each owned by one connection,
   so turns never contend on one leaf), on SQLite and on PostgreSQL (``--postgres URL`` or
   ``CONVGUARD_TEST_POSTGRES_URL``), with 1 and 2 worker processes. The load comes from a
   second process (this file, re-run with a hidden option) holding ``--connections`` keep-alive
   connections to 127.0.0.1 for ``--seconds``; every response other than 2xx, and every
   connection failure, is an error.

Targets (issue 4): added p50 ≤ 5 ms; ≥ 300 turns/s sustained with zero errors. Numbers depend on
the machine and on whatever else runs on it at the time; the report says which machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DEFAULT_OUT,
    ROOT,
    Target,
    encoder_weights_present,
    fmt,
    log,
    markdown_table,
    weights_fingerprint,
)

from convguard.testing import FakeUpstream

TARGETS: dict[str, Target] = {
    "added p50": Target("added p50", "<=", 5.0, "ms"),
    "turns/s": Target("turns/s", ">=", 300.0, "per_s"),
}

CONVGUARD = Path(sys.executable).with_name("convguard")

#: Short benign user turns (a realistic chat mix); each request adds a counter so none repeats.
BENIGN = (
    "Can you suggest a quick vegetarian dinner for two?",
    "What is the difference between a list and a tuple in Python?",
    "Help me write a polite email asking to move our meeting to Thursday.",
    "How do I keep basil alive on a windowsill?",
    "Summarise the plot of Pride and Prejudice in three sentences.",
    "What are some good stretches after a long run?",
    "Explain compound interest with a simple example.",
    "Give me three ideas for a child's birthday party at home.",
    "How long should I boil an egg for a soft yolk?",
    "Recommend a few board games for four players.",
    "What is a good way to start learning the guitar?",
    "Translate 'good morning, how are you?' into Spanish.",
)


def benign(i: int) -> str:
    return f"{BENIGN[i % len(BENIGN)]} (#{i})"


# --- HTTP: one keep-alive connection, JSON in and out ---------------------------------------------


class Connection:
    """A keep-alive HTTP/1.1 connection to one ``http://host:port`` (reopened after a failure)."""

    def __init__(self, base: str, headers: Mapping[str, str] | None = None) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self._conn: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, body: object = None, headers: Mapping[str, str] = {}
    ) -> tuple[int, Any]:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        raw = json.dumps(body).encode() if body is not None else None
        try:
            self._conn.request(method, self.prefix + path, raw, {**self.headers, **headers})
            response = self._conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, data.decode("utf-8", "replace")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- gateway servers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """One gateway configuration: which store, how many workers, which classifier."""

    store: str  # "sqlite" or "postgresql"
    workers: int
    classifier: str
    database_url: str | None = None


@contextmanager
def gateway(setup: Setup, upstream_url: str) -> Iterator[tuple[str, str]]:
    """A ``convguard serve`` process (with its workers) and a fresh API key: ``(base, key)``."""
    folder = Path(tempfile.mkdtemp(prefix="convguard-gwbench-"))
    port = free_port()
    env = {
        **os.environ,
        "CONVGUARD_DATA_DIR": str(folder),
        "CONVGUARD_UPSTREAM_URL": upstream_url,
        "CONVGUARD_UPSTREAM_MODEL": "fake",
        "CONVGUARD_CLASSIFIER": setup.classifier,
        "CONVGUARD_RATE_LIMIT_PER_MINUTE": "100000000",
        "CONVGUARD_HOST": "127.0.0.1",
    }
    env.pop("CONVGUARD_DATABASE_URL", None)
    if setup.database_url:
        env["CONVGUARD_DATABASE_URL"] = setup.database_url
    process: subprocess.Popen[bytes] | None = None
    logfile = (folder / "server.log").open("wb")
    try:
        account = f"bench-{os.getpid()}-{time.time_ns()}"
        made = subprocess.run(
            [str(CONVGUARD), "keys", "create", "--account", account],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if made.returncode != 0:
            raise RuntimeError(f"convguard keys create failed: {made.stderr.strip()}")
        key = made.stdout.strip().splitlines()[0]
        process = subprocess.Popen(
            [str(CONVGUARD), "serve", "--port", str(port), "--workers", str(setup.workers)],
            env=env,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the workers stop with it
        )
        base = f"http://127.0.0.1:{port}"
        _wait_healthy(base, process, folder / "server.log")
        yield base, key
    finally:
        if process is not None:
            _stop(process)
        logfile.close()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_healthy(base: str, process: subprocess.Popen[bytes], logpath: Path) -> None:
    deadline = time.monotonic() + 60
    probe = Connection(base)
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = logpath.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"convguard serve exited with {process.returncode}:\n{tail}")
            try:
                status, _ = probe.request("GET", "/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
    finally:
        probe.close()
    raise RuntimeError(f"convguard serve at {base} was not healthy within 60 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    # a worker left behind by a supervisor that died first
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def no_nagle(upstream: FakeUpstream) -> None:
    """Sets TCP_NODELAY on the fake upstream's connections, as real HTTP servers do.

    ``BaseHTTPRequestHandler`` writes the status and headers, then the body, in two writes; with
    Nagle's algorithm on, the body waits for the client's delayed ACK of the headers (40 ms on
    Linux), which would be charged to whichever side happened to trip it.
    """
    handler: Any = upstream._server.RequestHandlerClass
    handler.disable_nagle_algorithm = True


# --- 1. added latency -----------------------------------------------------------------------------


@dataclass
class Latency:
    classifier: str
    direct_ms: list[float] = field(default_factory=list)
    gateway_ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    actions: Counter[str] = field(default_factory=Counter)
    conversations: int = 0


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def measure_latency(
    base: str, key: str, upstream_url: str, *, classifier: str, requests: int, conversations: int
) -> Latency:
    """Interleaved, one at a time: each turn straight to the upstream and through the gateway."""
    result = Latency(classifier, conversations=conversations)
    direct = Connection(upstream_url)
    through = Connection(base + "/v1", {"Authorization": f"Bearer {key}"})
    rng = random.Random(4)
    histories: list[list[dict[str, str]]] = [[] for _ in range(conversations)]
    scope = f"latency-{time.time_ns()}"
    warmup = min(20, requests)
    try:
        for i in range(warmup + requests):
            c = i % conversations
            messages = [*histories[c], {"role": "user", "content": benign(i)}]
            body = {"model": "fake", "messages": messages}
            order = ["direct", "gateway"]
            rng.shuffle(order)
            reply: str | None = None
            for side in order:
                started = time.perf_counter()
                if side == "direct":
                    status, data = direct.request("POST", "/chat/completions", body)
                else:
                    status, data = through.request(
                        "POST",
                        "/chat/completions",
                        body,
                        {"X-Convguard-Conversation": f"{scope}-{c}"},
                    )
                elapsed = (time.perf_counter() - started) * 1000
                if status != 200:
                    result.errors += 1
                    if len(result.error_samples) < 3:
                        result.error_samples.append(f"{side} {status}: {str(data)[:200]}")
                    continue
                if side == "gateway":
                    reply = data["choices"][0]["message"]["content"]
                if i < warmup:
                    continue
                if side == "direct":
                    result.direct_ms.append(elapsed)
                else:
                    result.gateway_ms.append(elapsed)
                    result.actions[str((data.get("convguard") or {}).get("action", "?"))] += 1
            if reply is not None:  # the client keeps what the gateway answered, as a chat UI does
                histories[c] = [*messages, {"role": "assistant", "content": reply}]
    finally:
        direct.close()
        through.close()
    return result


# --- 2. sustained load (run in a second process) --------------------------------------------------


def load(spec: Mapping[str, Any]) -> dict[str, Any]:
    """``connections`` threads, each on its own keep-alive connection, for ``seconds``."""
    kind: str = spec["kind"]
    seconds: float = spec["seconds"]
    threads: int = spec["connections"]
    per_connection: int = spec["conversations_per_connection"]
    cap: int = spec["max_requests"]
    headers = {"Authorization": f"Bearer {spec['key']}"}
    ready = threading.Barrier(threads + 1)
    lock = threading.Lock()
    statuses: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    latencies: list[float] = []
    samples: list[str] = []
    issued = [0]
    window: dict[str, float] = {}

    def note(status: str, detail: object) -> None:
        with lock:
            statuses[status] += 1
            if status != "ok" and len(samples) < 3:
                samples.append(f"{status}: {str(detail)[:200]}")

    def one(conn: Connection, i: int, conversation: str | None) -> None:
        started = time.perf_counter()
        try:
            if kind == "moderations":
                status, data = conn.request("POST", "/v1/moderations", {"input": benign(i)})
            else:
                status, data = conn.request(
                    "POST", f"/v1/conversations/{conversation}/messages", {"content": benign(i)}
                )
        except (OSError, http.client.HTTPException) as exc:
            note(type(exc).__name__, exc)
            return
        finished = time.perf_counter()
        if not 200 <= status < 300:
            note(str(status), data)
            return
        action = data["decision"]["action"] if kind == "messages" else "-"
        with lock:
            statuses["ok"] += 1
            actions[action] += 1
            if finished <= window["end"]:
                latencies.append((finished - started) * 1000)

    def worker(index: int) -> None:
        conn = Connection(spec["url"], headers)
        owned: list[str] = []
        try:
            if kind == "messages":
                for n in range(per_connection):
                    status, data = conn.request("POST", "/v1/conversations", {"title": f"b{n}"})
                    if status != 201:
                        raise RuntimeError(f"creating a conversation answered {status}: {data}")
                    owned.append(data["id"])
            for n in range(3):  # warm-up: every worker process loads its classifier
                conn.request("POST", "/v1/moderations", {"input": benign(n)})
        finally:
            ready.wait()
        # a fresh connection for the timed window: one left idle through a long warm-up may have
        # been closed by the server's keep-alive timeout (a broken pipe that is not the gateway's)
        conn.close()
        n = 0
        try:
            while time.perf_counter() < window["end"]:
                with lock:
                    if issued[0] >= cap:
                        break
                    issued[0] += 1
                    i = issued[0]
                one(conn, i, owned[n % len(owned)] if owned else None)
                n += 1
        finally:
            conn.close()

    workers = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
    for t in workers:
        t.start()
    ready.wait()
    window["start"] = time.perf_counter()
    window["end"] = window["start"] + seconds
    for t in workers:
        t.join(seconds + 120)
    ok_in_window = len(latencies)
    return {
        "ok": statuses["ok"],
        "errors": sum(v for k, v in statuses.items() if k != "ok"),
        "statuses": dict(statuses),
        "error_samples": samples,
        "per_s": ok_in_window / seconds,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "actions": dict(actions),
    }


def run_load(spec: Mapping[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--load-spec", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=spec["seconds"] + 300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the load process failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# --- the run --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    measure: str
    store: str
    workers: str
    classifier: str
    result: str
    errors: str
    target: str = ""
    verdict: str = ""
    note: str = ""


HEADER = ("measure", "store", "workers", "classifier", "result", "errors", "target", "", "note")


def as_cells(row: Row) -> list[str]:
    return [
        row.measure,
        row.store,
        row.workers,
        row.classifier,
        row.result,
        row.errors,
        row.target,
        row.verdict,
        row.note,
    ]


def latency_rows(lat: Latency) -> list[Row]:
    d50, d99 = percentile(lat.direct_ms, 50), percentile(lat.direct_ms, 99)
    g50, g99 = percentile(lat.gateway_ms, 50), percentile(lat.gateway_ms, 99)
    target = TARGETS["added p50"]
    actions = ", ".join(f"{k} {v}" for k, v in sorted(lat.actions.items()))
    common = {"store": "sqlite", "workers": "1", "classifier": lat.classifier}
    n = len(lat.gateway_ms)
    return [
        Row(
            "chat completion, direct to upstream",
            result=f"p50 {fmt(d50, 'ms')}, p99 {fmt(d99, 'ms')}",
            errors="",
            note=f"{len(lat.direct_ms)} requests",
            **common,
        ),
        Row(
            "chat completion, through the gateway",
            result=f"p50 {fmt(g50, 'ms')}, p99 {fmt(g99, 'ms')}",
            errors=str(lat.errors),
            note=f"{n} requests on {lat.conversations} growing conversations; {actions}"
            + (f"; e.g. {lat.error_samples[0]}" if lat.error_samples else ""),
            **common,
        ),
        Row(
            "added latency",
            result=f"p50 {fmt(g50 - d50, 'ms')}, p99 {fmt(g99 - d99, 'ms')}",
            errors=str(lat.errors),
            target=target.describe(),
            verdict=target.verdict(g50 - d50) if lat.errors == 0 else "**MISS**",
            **common,
        ),
    ]


def load_row(kind: str, setup: Setup, outcome: Mapping[str, Any]) -> Row:
    errors = int(outcome["errors"])
    per_s = float(outcome["per_s"])
    target = TARGETS["turns/s"]
    verdict = target.verdict(per_s) if errors == 0 else "**MISS**"
    measure = "POST /v1/moderations" if kind == "moderations" else "POST …/messages (turns)"
    note = f"p50 {fmt(outcome['p50_ms'], 'ms')}, p99 {fmt(outcome['p99_ms'], 'ms')}"
    if kind == "messages":
        note += "; " + ", ".join(f"{k} {v}" for k, v in sorted(outcome["actions"].items()))
    if errors:
        note += f"; {outcome['statuses']}; e.g. {outcome['error_samples'][:1]}"
    return Row(
        measure,
        setup.store,
        str(setup.workers),
        setup.classifier,
        fmt(per_s, "per_s"),
        str(errors),
        target.describe() if kind == "messages" else "",
        verdict if kind == "messages" else "",
        note,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="Each load run's duration.")
    parser.add_argument("--postgres", default=os.environ.get("CONVGUARD_TEST_POSTGRES_URL"))
    parser.add_argument("--connections", type=int, default=16, help="Load connections.")
    parser.add_argument("--conversations", type=int, default=8, help="Per load connection.")
    parser.add_argument("--latency-requests", type=int, default=200)
    parser.add_argument(
        "--load-classifier", default="linear", help="The classifier of the load rows."
    )
    parser.add_argument("--max-requests", type=int, default=200_000, help="Per load run.")
    parser.add_argument("--workers", default="1,2", help="Worker counts to load.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--load-spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load_spec:
        print(json.dumps(load(json.loads(args.load_spec))))
        return 0

    classifiers = ["linear"] + (["cascade"] if encoder_weights_present() else [])
    load_classifier = args.load_classifier
    load_before = os.getloadavg()
    stores: list[tuple[str, str | None]] = [("sqlite", None)]
    if args.postgres:
        stores.append(("postgresql", args.postgres))
    worker_counts = [int(w) for w in args.workers.split(",")]
    rows: list[Row] = []
    started = time.monotonic()
    with FakeUpstream() as upstream:
        no_nagle(upstream)
        for classifier in classifiers:
            setup = Setup("sqlite", 1, classifier)
            log(f"latency: {classifier}, {args.latency_requests} requests")
            with gateway(setup, upstream.url) as (base, key):
                lat = measure_latency(
                    base,
                    key,
                    upstream.url,
                    classifier=classifier,
                    requests=args.latency_requests,
                    conversations=20,
                )
            rows += latency_rows(lat)
        for store, url in stores:
            for workers in worker_counts:
                setup = Setup(store, workers, load_classifier, url)
                with gateway(setup, upstream.url) as (base, key):
                    for kind in ("moderations", "messages"):
                        log(f"load: {kind} on {store}, {workers} worker(s), {args.seconds:g} s")
                        outcome = run_load(
                            {
                                "url": base,
                                "key": key,
                                "kind": kind,
                                "seconds": args.seconds,
                                "connections": args.connections,
                                "conversations_per_connection": args.conversations,
                                "max_requests": args.max_requests,
                            }
                        )
                        rows.append(load_row(kind, setup, outcome))
    if not args.postgres:
        for workers in worker_counts:
            rows.append(
                Row(
                    "moderations and turns",
                    "postgresql",
                    str(workers),
                    load_classifier,
                    "skipped: no PostgreSQL",
                    "",
                    TARGETS["turns/s"].describe(),
                    "n/a",
                    "give --postgres URL or CONVGUARD_TEST_POSTGRES_URL",
                )
            )
    took = time.monotonic() - started
    args.loadavg = (load_before, os.getloadavg())

    table = markdown_table(HEADER, [as_cells(r) for r in rows])
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gateway.md").write_text(report(args, table, classifiers, took), encoding="utf-8")
    log(f"wrote {args.out / 'gateway.md'} ({took:.0f} s)")
    return 0


def report(args: argparse.Namespace, table: str, classifiers: Sequence[str], took: float) -> str:
    cpus = os.cpu_count()
    encoder = (
        f"present ({weights_fingerprint()})"
        if "cascade" in classifiers
        else "absent (weights/encoder.npz missing), so no cascade row"
    )
    before, after = args.loadavg
    postgres = "given" if args.postgres else "not given"
    try:
        rel = Path(__file__).resolve().relative_to(ROOT)
    except ValueError:
        rel = Path(__file__)
    return "\n".join(
        [
            "# Gateway benchmark",
            "",
            f"`.venv/bin/python {rel} --seconds {args.seconds:g}"
            f"{' --postgres URL' if args.postgres else ''}` — "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.platform()}, {cpus} CPU(s), "
            f"Python {platform.python_version()}; took {took:.0f} s. Load average (1 min) "
            f"{before[0]:.1f} before and {after[0]:.1f} after: the machine was shared.",
            "",
            "Every gateway is a real `convguard serve` process in front of `FakeUpstream` (a real "
            "HTTP server in the benchmark's process); load comes from a second process with "
            f"{args.connections} keep-alive connections on 127.0.0.1 for {args.seconds:g} s per "
            f"row; the messages rows use {args.connections * args.conversations} conversations, "
            f"each owned by one connection. Encoder heads: {encoder}. PostgreSQL: {postgres}. "
            "The load generator, the fake upstream and the server share the same CPUs, so the "
            "rates are lower bounds of what the gateway alone would do. The latency rows use "
            "one `convguard serve` worker on SQLite; the PostgreSQL rows write into the "
            "database given (a new account per run).",
            "",
            table,
            "",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
