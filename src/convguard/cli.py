"""The ``convguard`` command line: a thin shell over the service and the assessors.

Exit codes: 0 when the command ran (whatever it decided), 2 for bad input (a malformed transcript,
unknown ids, an unreadable policy file, bad options), 1 for any other failure. Errors are
translated here, once.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import click

from convguard.assess.factory import LazyAssessor
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


def main() -> None:
    cli(prog_name="convguard")


if __name__ == "__main__":  # pragma: no cover
    main()
