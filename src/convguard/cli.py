"""The ``convguard`` command line: a thin shell over the service and the assessors.

Exit codes: 0 when the command ran (whatever it decided), 2 for bad input (a malformed transcript,
unknown ids, an unreadable policy file, bad options), 1 for any other failure. Errors are
translated here, once.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from convguard.assess.factory import LazyAssessor
from convguard.assess.types import Assessment
from convguard.errors import ConvguardError, InvalidInput, PolicyError
from convguard.policy import Policy, load_policy
from convguard.settings import Settings
from convguard.store import open_store
from convguard.transcript import read_transcript
from convguard.upstream import StaticResponder

__all__ = ["main"]

REPLAY_REPLY = "(replay: the model's reply would appear here)"


class _Group(click.Group):
    """Translates convguard errors into a message on stderr and an exit code, in one place."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConvguardError as exc:
            click.echo(f"error: {exc.message}", err=True)
            ctx.exit(2 if isinstance(exc, InvalidInput | PolicyError) else 1)


@click.group(cls=_Group)
@click.version_option(package_name="convguard")
def cli() -> None:
    """convguard: conversation safeguards for LLM chat products and agents."""


def _policy(settings: Settings, path: Path | None) -> Policy:
    return load_policy(path if path is not None else settings.policy_file)


@cli.command()
@click.argument("transcript", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A YAML policy file merged over the default policy.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per user turn.")
def replay(transcript: Path, policy_file: Path | None, as_json: bool) -> None:
    """Replay a JSON-lines TRANSCRIPT through the service and print every user turn's decision."""
    from convguard.replay import replay as run_replay
    from convguard.service import Service

    settings = Settings.from_env()
    policy = _policy(settings, policy_file)
    events = read_transcript(transcript)
    with tempfile.TemporaryDirectory(prefix="convguard-replay-") as folder:
        store = open_store(f"sqlite:///{Path(folder) / 'replay.db'}")
        try:
            service = Service(
                policy=policy,
                store=store,
                assessor=LazyAssessor(settings.classifier, policy),
                responder=StaticResponder(REPLAY_REPLY),
                locale=settings.locale,
            )
            records = run_replay(service, events, title=transcript.name)
        finally:
            store.close()
    for record in records:
        click.echo(json.dumps(record, ensure_ascii=False) if as_json else _human(record))


def _human(record: dict[str, Any]) -> str:
    head = f"turn {record['turn']:>3}  "
    if "error" in record:
        return f"{head}error: {record['error']} — {record['message']}"
    labels = ", ".join([*record["categories"], *record["flags"]])
    state = "  [ended]" if record["ended"] else ""
    line = f"{head}{record['action']:<11} {record['reason']}{state}"
    if labels:
        line += f"\n{'':>11}labels: {labels}"
    if record.get("reply") and record["action"] not in ("allow", "guide"):
        line += f"\n{'':>11}reply: {record['reply']}"
    return line


@cli.command()
@click.argument("text")
@click.option("--role", type=click.Choice(["user", "assistant"]), default="user", show_default=True)
@click.option(
    "--context", multiple=True, help="An earlier user turn (repeat for several, oldest first)."
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A YAML policy file merged over the default policy.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the assessment as JSON.")
def check(
    text: str, role: str, context: tuple[str, ...], policy_file: Path | None, as_json: bool
) -> None:
    """Assess one message, TEXT, and print its scores, categories, flags and evidence."""
    from convguard.assess.factory import build_assessor

    settings = Settings.from_env()
    policy = _policy(settings, policy_file)
    assessor = build_assessor(settings.classifier, policy)
    assessment = assessor.assess(text, role=role, context=context)  # type: ignore[arg-type]
    if as_json:
        click.echo(json.dumps({"flagged": bool(assessment.categories), **assessment.to_dict()}))
        return
    click.echo(_describe(policy, assessment))


def _describe(policy: Policy, assessment: Assessment) -> str:
    def listed(ids: Sequence[str]) -> str:
        return ", ".join(f"{i} ({assessment.scores[i]:.2f})" for i in ids) or "none"

    flagged = "yes" if assessment.categories else "no"
    lines = [
        f"flagged:    {flagged} (highest category score {assessment.score:.2f})",
        f"categories: {listed(assessment.categories)}",
        f"flags:      {listed(assessment.flags)}",
    ]
    for e in assessment.evidence:
        lines.append(f"evidence:   {e.label} <- {e.source} {e.score:.2f} {e.detail}".rstrip())
    if assessment.error:
        lines.append(f"error:      {assessment.error}")
    lines.append(f"took:       {assessment.elapsed_ms:.2f} ms ({assessment.source})")
    return "\n".join(lines)


@cli.command()
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help='JSON lines: {"id": ..., "text": "..."}.',
)
@click.option(
    "--output",
    "output_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write one result line per input line.",
)
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(1, 100_000))
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A YAML policy file merged over the default policy.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def classify(
    input_path: Path, output_path: Path, batch_size: int, policy_file: Path | None, quiet: bool
) -> None:
    """Classify every line of --input into --output, in batches, with a progress bar on stderr."""
    from convguard.assess.bulk import classify_file

    settings = Settings.from_env()
    policy = _policy(settings, policy_file)
    count = classify_file(
        input_path,
        output_path,
        classifier=settings.classifier,
        policy=policy,
        batch_size=batch_size,
        progress=not quiet,
    )
    click.echo(f"classified {count} lines into {output_path}", err=True)


@cli.command()
@click.option("--host", default=None, help="Listen address (default: CONVGUARD_HOST, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default: CONVGUARD_PORT, 8080).")
@click.option("--workers", default=None, type=int, help="Worker processes (CONVGUARD_WORKERS).")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Run the gateway server (REST + OpenAI-compatible) with the settings from the environment."""

    import uvicorn

    from convguard.store import open_store

    settings = Settings.from_env()
    _policy(settings, None)  # fail fast on a bad policy file
    open_store(settings.store_url).close()  # migrate once, before any worker starts
    host = host or settings.host
    port = port or settings.port
    workers = workers or settings.workers
    if host != settings.host:
        os.environ["CONVGUARD_HOST"] = host
    click.echo(
        f"convguard gateway on http://{host}:{port} ({workers} worker(s), "
        f"store {settings.store_url.split('://')[0]}, classifier {settings.classifier})",
        err=True,
    )
    uvicorn.run(
        "convguard.server.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )


@cli.group()
def keys() -> None:
    """Manage API keys (stored hashed; a key is shown once, when it is created)."""


@keys.command("create")
@click.option("--account", required=True, help="The account the key acts for (created if new).")
@click.option("--admin", is_flag=True, help="An admin key: may read the review queue.")
@click.option("--label", default=None, help="A note to recognise the key by.")
def keys_create(account: str, admin: bool, label: str | None) -> None:
    """Create an API key for ACCOUNT and print it (only this once)."""
    from datetime import UTC, datetime

    settings = Settings.from_env()
    with open_store(settings.store_url) as store:
        key, record = store.create_api_key(account, now=datetime.now(UTC), admin=admin, label=label)
    click.echo(key)
    kind = "admin key" if record.admin else "key"
    click.echo(f"created {kind} {record.prefix}… for account {account!r}", err=True)


@cli.group()
def db() -> None:
    """Manage the store's database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database named by the settings to the newest schema."""
    from convguard.store import current_revision

    settings = Settings.from_env()
    with open_store(settings.store_url) as store, store.engine.connect() as connection:
        revision = current_revision(connection)
    click.echo(f"database at revision {revision}", err=True)


class _HookGroup(_Group):
    """Agent hooks answer by protocol: a failure exits 1, which Claude Code treats as a
    non-blocking error (exit 2 would block the tool call)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return click.Group.invoke(self, ctx)
        except ConvguardError as exc:
            click.echo(f"convguard hook error: {exc.message}", err=True)
            ctx.exit(1)


@cli.group(cls=_HookGroup)
def hook() -> None:
    """Guard an agent's tool calls before they run."""


@hook.command("claude-code")
@click.option(
    "--defer-allow",
    is_flag=True,
    help="Give no decision for allowed calls, so Claude Code's own permission rules still apply.",
)
def hook_claude_code(defer_allow: bool) -> None:
    """Claude Code PreToolUse hook: the event JSON on stdin, the decision JSON on stdout.

    Scope: the YAML/JSON file named by CONVGUARD_AGENT_SCOPE (hosts, networks, paths, tools).
    """
    from convguard.agent import claude_code_decision, load_scope

    raw = sys.stdin.read()
    try:
        event = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"the hook event on stdin is not JSON ({exc}); got {raw[:80]!r}"
        ) from exc
    settings = Settings.from_env()
    scope = load_scope(settings.agent_scope) if settings.agent_scope else None
    click.echo(json.dumps(claude_code_decision(event, scope=scope, defer_allow=defer_allow)))


# --- the agent guard's rules (a self-contained block: the agent package loads lazily) ------------


@cli.group()
def rules() -> None:
    """The agent tool guard's rules: list them, show one, run a rule file's test cases.

    Extra rule folders: CONVGUARD_AGENT_RULES (separated like PATH).
    """


@rules.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per rule.")
def rules_list(as_json: bool) -> None:
    """Every loaded rule: id, level, category, ATT&CK techniques and title."""
    from convguard.agent import default_rules

    for rule in default_rules().rules:
        if as_json:
            click.echo(json.dumps({"id": rule.id, "source": rule.source, **rule.spec}))
        else:
            attack = ",".join(rule.attack) or "-"
            click.echo(f"{rule.id}\t{rule.level}\t{rule.category}\t{attack}\t{rule.title}")


@rules.command("show")
@click.argument("rule_id")
def rules_show(rule_id: str) -> None:
    """One rule as written, with the file it comes from."""
    import yaml

    from convguard.agent import default_rules

    rule = default_rules().get(rule_id)
    if rule is None:
        raise InvalidInput(f"no rule {rule_id!r}; 'convguard rules list' prints the rule ids")
    click.echo(f"# {rule.source}")
    click.echo(yaml.safe_dump({"id": rule.id, **rule.spec}, sort_keys=False, allow_unicode=True))


@rules.command("test")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def rules_test(file: Path) -> None:
    """Check a rule file and run its rules' hit and miss cases beside the loaded rules (its rules
    replace loaded rules of the same id).

    Exit code 0 when every case passes, 1 when one fails, 2 when the file is invalid.
    """
    from convguard.agent import RuleSet, default_rules
    from convguard.agent.engine import load_file
    from convguard.agent.rule_cases import run_cases

    own = load_file(file)
    loaded = default_rules()
    # the file's rules stand in for loaded ones of the same id (a shipped file tests as itself)
    own_ids = {r.id for r in own}
    results = run_cases(RuleSet.of([*(r for r in loaded.rules if r.id not in own_ids), *own]), own)
    for result in results:
        mark = "ok  " if result.passed else "FAIL"
        click.echo(f"{mark} {result.rule_id} {result.kind}: {result.case}")
    failed = sum(not r.passed for r in results)
    click.echo(f"{len(results) - failed} passed, {failed} failed ({len(own)} rules)", err=True)
    if failed:
        sys.exit(1)


def main() -> None:
    cli(prog_name="convguard")


if __name__ == "__main__":  # pragma: no cover
    main()
