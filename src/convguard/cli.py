"""The ``convguard`` command line: a thin shell over the service and the assessors.

Exit codes: 0 when the command ran (whatever it decided), 2 for bad input (a malformed transcript,
unknown ids, an unreadable policy file, bad options), 1 for any other failure. Errors are
translated here, once. ``hook claude-code`` speaks Claude Code's protocol instead: 0 with the
decision on stdout, 2 (the call is denied) whenever the guard cannot judge it, and 1 (Claude
Code's non-blocking error) only where the operator chose fail-open.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from convguard import __version__
from convguard.errors import ConvguardError, InvalidInput, PolicyError

if TYPE_CHECKING:
    from convguard.assess.types import Assessment
    from convguard.policy import Policy
    from convguard.settings import Settings

# Each command imports what it uses inside its body: a hook call or ``--version`` must not pay for
# SQLAlchemy, FastAPI or the classifiers (benchmarks/startup.py measures it).

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
@click.version_option(__version__, prog_name="convguard")
def cli() -> None:
    """convguard: conversation safeguards for LLM chat products and agents."""


def _settings(*, warn: bool = True) -> Settings:
    from convguard.settings import Settings, unknown_variables

    settings = Settings.from_env()
    for problem in unknown_variables() if warn else ():
        click.echo(f"warning: {problem}", err=True)
    return settings


def _policy(settings: Settings, path: Path | None) -> Policy:
    from convguard.policy import load_policy

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
    import tempfile

    from convguard.assess.factory import LazyAssessor
    from convguard.replay import replay as run_replay
    from convguard.service import Service
    from convguard.store import open_store
    from convguard.transcript import read_transcript
    from convguard.upstream import StaticResponder

    settings = _settings()
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

    settings = _settings()
    policy = _policy(settings, policy_file)
    assessor = build_assessor(settings.classifier, policy)
    assessment = assessor.assess(text, role=role, context=context)  # type: ignore[arg-type]
    if as_json:
        click.echo(json.dumps({"flagged": assessment.flagged, **assessment.to_dict()}))
        return
    click.echo(_describe(policy, assessment))


def _describe(policy: Policy, assessment: Assessment) -> str:
    def listed(ids: Sequence[str]) -> str:
        return ", ".join(f"{i} ({assessment.scores[i]:.2f})" for i in ids) or "none"

    flagged = "yes" if assessment.flagged else "no"
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
    type=click.Path(dir_okay=False, allow_dash=True),
    help='JSON lines: {"id": ..., "text": "..."}; "-" reads stdin.',
)
@click.option(
    "--output",
    "output_path",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help='Where to write one JSON result line per input line; "-" writes stdout.',
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
    input_path: str, output_path: str, batch_size: int, policy_file: Path | None, quiet: bool
) -> None:
    """Classify every line of --input into --output, in batches, with a progress bar on stderr."""
    from convguard.assess.bulk import classify_file

    settings = _settings()
    policy = _policy(settings, policy_file)
    count = classify_file(
        input_path,
        output_path,
        classifier=settings.classifier,
        policy=policy,
        batch_size=batch_size,
        progress=not quiet,
    )
    where = "stdout" if output_path == "-" else output_path
    click.echo(f"classified {count} lines into {where}", err=True)


@cli.command()
@click.option("--host", default=None, help="Listen address (default: CONVGUARD_HOST, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default: CONVGUARD_PORT, 8080).")
@click.option("--workers", default=None, type=int, help="Worker processes (CONVGUARD_WORKERS).")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default=None,
    help="JSON-lines log level on stderr (default: CONVGUARD_LOG_LEVEL, info).",
)
def serve(host: str | None, port: int | None, workers: int | None, log_level: str | None) -> None:
    """Run the gateway server (REST + OpenAI-compatible) with the settings from the environment."""

    import uvicorn

    from convguard.logs import configure, event
    from convguard.settings import unknown_variables
    from convguard.store import open_store

    if log_level is not None:
        os.environ["CONVGUARD_LOG_LEVEL"] = log_level  # the workers read their settings anew
    settings = _settings(warn=False)
    configure(settings.log_level, content=settings.log_content)
    for problem in unknown_variables():
        event("unknown_setting", "warning", message=problem)
    _policy(settings, None)  # fail fast on a bad policy file
    open_store(settings.store_url).close()  # migrate once, before any worker starts
    host = host or settings.host
    port = port or settings.port
    workers = workers or settings.workers
    if host != settings.host:
        os.environ["CONVGUARD_HOST"] = host
    event(
        "start",
        url=f"http://{host}:{port}",
        workers=workers,
        store=_where(settings),
        classifier=settings.classifier,
        log_level=settings.log_level,
    )
    uvicorn.run(
        "convguard.server.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        access_log=False,  # convguard writes its own request lines
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

    from convguard.store import open_store

    settings = _settings()
    with open_store(settings.store_url) as store:
        key, record = store.create_api_key(account, now=datetime.now(UTC), admin=admin, label=label)
    click.echo(key)
    kind = "admin key" if record.admin else "key"
    click.echo(
        f"created {kind} {record.prefix}… for account {account!r} in {_where(settings)}", err=True
    )


def _where(settings: Settings) -> str:
    """The store, as an operator recognises it: the SQLite file, or the URL without a password."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.store_url)
    if url.get_backend_name() == "sqlite" and url.database:
        return f"the SQLite store {url.database}"
    return f"the store {url.render_as_string(hide_password=True)}"


@keys.command("list")
@click.option("--account", required=True, help="The account whose keys to list.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key.")
def keys_list(account: str, as_json: bool) -> None:
    """List ACCOUNT's keys (never the keys themselves), revoked ones included."""
    from convguard.store import open_store

    settings = _settings()
    with open_store(settings.store_url) as store:
        records = store.list_api_keys(account)
    for record in records:
        data = record.to_dict()
        if as_json:
            click.echo(json.dumps(data))
        else:
            state = f"revoked {data['revoked_at']}" if data["revoked_at"] else "live"
            kind = "admin" if record.admin else "user"
            click.echo(f"{record.id}  {record.prefix}…  {kind}  {state}  {record.label or ''}")


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke the key KEY_ID (from `keys list`): every server refuses it within a second."""
    from datetime import UTC, datetime

    from convguard.store import open_store

    settings = _settings()
    with open_store(settings.store_url) as store:
        record = store.revoke_api_key(key_id, now=datetime.now(UTC))
    click.echo(f"revoked key {record.prefix}… of account {record.account_name!r}", err=True)


@cli.group()
def db() -> None:
    """Manage the store's database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database named by the settings to the newest schema."""
    from convguard.store import current_revision, open_store

    settings = _settings()
    with open_store(settings.store_url) as store, store.engine.connect() as connection:
        revision = current_revision(connection)
    click.echo(f"{_where(settings)} is at revision {revision}", err=True)


@cli.group()
def hook() -> None:
    """Guard an agent's tool calls before they run."""


HOOK_MATCHER = "Bash|Write|Edit|MultiEdit|NotebookEdit|WebFetch|Read"


@hook.command("claude-code")
@click.option(
    "--defer-allow",
    is_flag=True,
    help="Give no decision for allowed calls, so Claude Code's own permission rules still apply.",
)
@click.option(
    "--fail-open",
    is_flag=True,
    help=(
        "When the guard cannot run (a bad scope file or setting, a malformed event), let the call "
        "go ahead (exit 1) instead of denying it (exit 2). Also CONVGUARD_HOOK_FAIL_OPEN=true."
    ),
)
@click.option(
    "--print-settings",
    is_flag=True,
    help="Print a .claude/settings.json block that runs this hook by its absolute path, and exit.",
)
@click.pass_context
def hook_claude_code(
    ctx: click.Context, defer_allow: bool, fail_open: bool, print_settings: bool
) -> None:
    """Claude Code PreToolUse hook: the event JSON on stdin, the decision JSON on stdout.

    Scope: the YAML/JSON file named by CONVGUARD_AGENT_SCOPE (hosts, networks, paths, tools).
    The guard fails closed: if it cannot judge a call, the call is denied (exit 2, the reason on
    stderr, which Claude Code shows the model) unless the operator opted into --fail-open.
    """
    flags = [f for f, on in (("--defer-allow", defer_allow), ("--fail-open", fail_open)) if on]
    if print_settings:
        click.echo(json.dumps(claude_code_settings(flags), indent=2))
        return
    try:
        scope_file, fail_open_setting = _hook_settings()
        fail_open = fail_open or fail_open_setting
        answer = _claude_code_answer(sys.stdin.read(), scope_file, defer_allow)
    except Exception as exc:  # a hook that crashes would switch the guard off without a word
        reason = exc.message if isinstance(exc, ConvguardError) else f"{type(exc).__name__}: {exc}"
        if fail_open:
            click.echo(f"convguard hook error (fail-open: the call goes ahead): {reason}", err=True)
            ctx.exit(1)
        click.echo(
            f"convguard denied this tool call because the guard cannot run: {reason}. "
            "Fix the hook's configuration; to let calls through while it is broken, add "
            "--fail-open or set CONVGUARD_HOOK_FAIL_OPEN=true.",
            err=True,
        )
        ctx.exit(2)
    click.echo(json.dumps(answer))


#: The variables the hook reads (the rule folders are read by the rule engine), and the values
#: of a flag as :class:`~convguard.settings.Settings` reads them (lax booleans, any case).
_HOOK_VARIABLES = frozenset({"CONVGUARD_AGENT_SCOPE", "CONVGUARD_HOOK_FAIL_OPEN"})
_HOOK_READ_ELSEWHERE = frozenset({"CONVGUARD_AGENT_RULES"})
_FLAG_VALUES = {
    **dict.fromkeys(("1", "true", "yes", "on", "t", "y"), True),
    **dict.fromkeys(("0", "false", "no", "off", "f", "n"), False),
}


def _hook_settings() -> tuple[Path | None, bool]:
    """The hook's settings: the scope file (``agent_scope``) and ``hook_fail_open``.

    The hook is one process per tool call, so it builds :class:`~convguard.settings.Settings`
    (and loads pydantic) only when it must: when no ``CONVGUARD_*`` variable is set but these
    (and the rule folders) and the flag's value is one :class:`Settings` accepts, it reads them
    itself, as :class:`Settings` would (a test compares the two). Anything else — another
    setting, a misspelt variable, a value it does not know — goes through the full settings,
    which validate every variable and warn about unknown ones, so a bad configuration is still
    reported, and the call denied, exactly as before.
    """
    env = os.environ
    ours = [v for v in env if v.startswith("CONVGUARD_") and not v.startswith("CONVGUARD_TEST_")]
    flag = env.get("CONVGUARD_HOOK_FAIL_OPEN")
    if set(ours) <= _HOOK_VARIABLES | _HOOK_READ_ELSEWHERE and (
        flag is None or flag.lower() in _FLAG_VALUES
    ):
        scope = env.get("CONVGUARD_AGENT_SCOPE")
        return (
            Path(scope) if scope is not None else None,
            _FLAG_VALUES[flag.lower()] if flag is not None else False,
        )
    settings = _settings()
    return settings.agent_scope, settings.hook_fail_open


def _claude_code_answer(raw: str, scope_file: Path | None, defer_allow: bool) -> dict[str, Any]:
    from convguard.agent import claude_code_decision, load_scope

    try:
        event = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"the hook event on stdin is not JSON ({exc}); got {raw[:80]!r}"
        ) from exc
    scope = load_scope(scope_file) if scope_file is not None else None
    return claude_code_decision(event, scope=scope, defer_allow=defer_allow)


def claude_code_settings(flags: Sequence[str] = ()) -> dict[str, Any]:
    """The ``.claude/settings.json`` block that runs this installation's hook by absolute path
    (a bare ``convguard`` is often not on the PATH Claude Code runs hooks with)."""
    import shlex

    command = shlex.join([*_installed_command(), "hook", "claude-code", *flags])
    scope = os.environ.get("CONVGUARD_AGENT_SCOPE")
    if scope:
        command = f"CONVGUARD_AGENT_SCOPE={shlex.quote(str(Path(scope).absolute()))} {command}"
    return {
        "hooks": {
            "PreToolUse": [
                {
                    "matcher": HOOK_MATCHER,
                    "hooks": [{"type": "command", "command": command, "timeout": 10}],
                }
            ]
        }
    }


def _installed_command() -> list[str]:
    script = Path(sys.argv[0])
    if script.name == "convguard" and script.is_file():
        return [str(script.absolute())]
    beside = Path(sys.executable).with_name("convguard")
    if beside.is_file():
        return [str(beside.absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "convguard.cli"]


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
