from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from convguard.cli import cli

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    runner = CliRunner()
    return runner.invoke(cli, list(args), env={"CONVGUARD_CLASSIFIER": "scripted", **(env or {})})


def replay_json(path: Path, *extra: str) -> list[dict[str, Any]]:
    result = run("replay", str(path), "--json", *extra)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def write(tmp_path: Path, lines: list[object]) -> Path:
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def test_persistent_abuse_example_is_warned_then_ended() -> None:
    records = replay_json(EXAMPLES / "persistent_abuse.jsonl")
    assert [r.get("action", r.get("error")) for r in records] == [
        "redirect",
        "redirect",
        "warn",
        "end",
        "conversation_ended",
        "conversation_ended",
    ]
    assert [r["turn"] for r in records] == list(range(6))
    assert records[3]["ended"] is True
    for key in ("turn", "action", "reason", "ended", "categories", "flags"):
        assert key in records[0]


def test_crisis_example_is_supported_and_never_cut_off() -> None:
    records = replay_json(EXAMPLES / "crisis_support.jsonl")
    assert all(not r["ended"] for r in records)
    assert [r["action"] for r in records[:4]] == ["support"] * 4
    assert all("end" not in r["action"] for r in records)


def test_user_end_example_confirms_then_ends() -> None:
    records = replay_json(EXAMPLES / "user_ends.jsonl")
    assert [r.get("action", r.get("error")) for r in records] == [
        "allow",
        "confirm_end",
        "end",
        "conversation_ended",
    ]


def test_edit_example_branches_out_of_the_ended_conversation() -> None:
    records = replay_json(EXAMPLES / "edit_after_end.jsonl")
    assert [r.get("action", r.get("error")) for r in records] == [
        "redirect",
        "redirect",
        "warn",
        "end",
        "conversation_ended",
        "allow",
        "allow",
    ]
    assert records[5]["ended"] is False


def test_model_end_example_is_refused_then_honoured() -> None:
    records = replay_json(EXAMPLES / "model_end.jsonl")
    assert records[0]["model_end"] == "refused"
    assert records[3]["model_end"] == "honoured"
    assert records[3]["action"] == "end" and records[3]["ended"] is True
    assert records[4] == {
        "turn": 4,
        "error": "conversation_ended",
        "message": records[4]["message"],
    }


def test_benign_example_is_allowed_throughout() -> None:
    records = replay_json(EXAMPLES / "benign_chat.jsonl")
    assert {r["action"] for r in records} == {"allow"}


def test_policy_option_changes_the_rule(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("ending:\n  mode: shadow\n")
    records = replay_json(EXAMPLES / "persistent_abuse.jsonl", "--policy", str(policy))
    assert not any(r.get("ended") for r in records)
    assert records[3]["would_end"] is True


def test_human_output_shows_each_turn() -> None:
    result = run("replay", str(EXAMPLES / "persistent_abuse.jsonl"))
    assert result.exit_code == 0
    assert "warn" in result.stdout and "[ended]" in result.stdout
    assert "conversation_ended" in result.stdout
    assert result.stdout.count("turn ") == 6


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (['{"role": "user", "content": "hi"}', "{broken"], "t.jsonl:2: not valid JSON"),
        (
            [{"role": "user", "content": "x", "labels": {"categories": ["guns"]}}],
            "unknown category 'guns'",
        ),
        (
            [{"role": "user", "content": "x", "labels": {"flags": ["spam"]}}],
            "unknown flag 'spam'",
        ),
        (
            [{"role": "user", "content": "hi"}, {"edit": 4, "content": "x"}],
            "edit 4 is out of range",
        ),
    ],
)
def test_bad_transcripts_exit_2_with_a_clear_error_and_no_output(
    tmp_path: Path, lines: list[object], expected: str
) -> None:
    result = run("replay", str(write(tmp_path, lines)), "--json")
    assert result.exit_code == 2
    assert expected in result.stderr
    assert result.stdout == ""


def test_missing_transcript_and_unreadable_policy_exit_2(tmp_path: Path) -> None:
    result = run("replay", str(tmp_path / "nope.jsonl"))
    assert result.exit_code == 2
    assert "cannot read transcript" in result.stderr
    transcript = write(tmp_path, [{"role": "user", "content": "hi"}])
    result = run("replay", str(transcript), "--policy", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 2
    assert "cannot read policy file" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("ending: {mode: sometimes}\n")
    result = run("replay", str(transcript), "--policy", str(bad))
    assert result.exit_code == 2
    assert "ending.mode" in result.stderr and "'sometimes'" in result.stderr


def test_a_bad_setting_in_the_environment_is_named() -> None:
    result = run(
        "replay", str(EXAMPLES / "benign_chat.jsonl"), env={"CONVGUARD_CLASSIFIER": "magic"}
    )
    assert result.exit_code == 2
    assert "CONVGUARD_CLASSIFIER" in result.stderr and "'magic'" in result.stderr


def test_labels_replace_the_classifier_for_that_turn(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            {"role": "user", "content": "anything", "labels": {"categories": ["cbrn"]}},
            {"role": "user", "content": "anything"},
        ],
    )
    records = replay_json(path)
    assert records[0]["categories"] == ["cbrn"]
    assert records[1]["categories"] == []


# --- check and classify: `flagged` means a category over its threshold, or imminent risk ---------

RISK = "I want to end my life tonight."
BENIGN = "What's a good name for a golden retriever?"
INSTALLED = Path(sys.executable).with_name("convguard")


def _linear(*args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), input=stdin, env={"CONVGUARD_CLASSIFIER": "linear"})


@pytest.mark.parametrize(("text", "flagged"), [(RISK, True), (BENIGN, False)])
def test_check_flags_imminent_risk_even_without_a_category(text: str, flagged: bool) -> None:
    result = _linear("check", text, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["flagged"] is flagged
    assert ("imminent_risk" in data["flags"]) is flagged
    human = _linear("check", text)
    assert human.stdout.startswith(f"flagged:    {'yes' if flagged else 'no'}")


def _jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


INPUT = [{"id": "a", "text": RISK}, {"id": 7, "text": BENIGN}, {"text": "no id here"}]


def _check_results(text: str) -> None:
    assert text.endswith("\n") and text.count("\n") == len(INPUT)  # `wc -l` counts every line
    results = [json.loads(line) for line in text.splitlines()]
    assert [r["id"] for r in results] == ["a", 7, 3]
    assert [r["flagged"] for r in results] == [True, False, False]
    assert set(results[0]) == {"id", "flagged", "score", "categories", "flags", "scores"}


def test_classify_writes_json_lines_to_a_file(tmp_path: Path) -> None:
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(_jsonl(INPUT))
    result = _linear("classify", "--input", str(source), "--output", str(target), "--quiet")
    assert result.exit_code == 0, result.output
    _check_results(target.read_text())
    assert "classified 3 lines" in result.stderr


def test_classify_reads_stdin_and_writes_stdout() -> None:
    result = _linear("classify", "--input", "-", "--output", "-", stdin=_jsonl(INPUT))
    assert result.exit_code == 0, result.output
    _check_results(result.stdout)
    assert "into stdout" in result.stderr


def test_classify_reads_a_lone_surrogate_or_nul_in_a_line(tmp_path: Path) -> None:
    # json.dumps escapes them as \\ud800 and \\u0000: valid JSON whose text is not valid
    # Unicode; the whole file used to fail in the linear stage (exit 1, no output).
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(_jsonl([{"id": 1, "text": "hi \ud800 there"}, {"id": 2, "text": "a\x00b"}]))
    result = _linear("classify", "--input", str(source), "--output", str(target), "--quiet")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in target.read_text().splitlines()] == [1, 2]


@pytest.mark.parametrize(
    ("line", "message"),
    [("not json", "in.jsonl:2: not valid JSON"), ('{"id": 1}', "in.jsonl:2: each line needs")],
)
def test_classify_names_a_bad_line_and_leaves_no_output(
    tmp_path: Path, line: str, message: str
) -> None:
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(json.dumps(INPUT[0]) + "\n" + line + "\n")
    result = _linear("classify", "--input", str(source), "--output", str(target))
    assert result.exit_code == 2
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == [source]


@pytest.mark.slow
def test_classify_through_the_installed_command_in_a_pipeline(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVGUARD_")}
    env["CONVGUARD_CLASSIFIER"] = "linear"
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(_jsonl(INPUT))
    to_file = subprocess.run(
        [str(INSTALLED), "classify", "--input", str(source), "--output", str(target)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert to_file.returncode == 0, to_file.stderr
    _check_results(target.read_text())
    piped = subprocess.run(
        f"cat {source} | {INSTALLED} classify --input - --output - --quiet | wc -l",
        shell=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.strip() == "3"


# --- keys: one store, wherever the command runs ----------------------------------------------------


def test_keys_from_any_folder_go_to_one_absolute_store_that_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from convguard.store import open_store

    data = tmp_path / "xdg"
    made = []
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)
        result = CliRunner().invoke(
            cli, ["keys", "create", "--account", "me"], env={"XDG_DATA_HOME": str(data)}
        )
        assert result.exit_code == 0, result.output
        made.append(result.stdout.strip())
        database = data / "convguard" / "convguard.db"
        assert f"in the SQLite store {database}" in result.stderr
    assert not list((tmp_path / "one").iterdir()) and not list((tmp_path / "two").iterdir())
    with open_store(f"sqlite:///{data / 'convguard' / 'convguard.db'}") as store:
        owners = [store.authenticate(key) for key in made]
    assert [o.account_name for o in owners if o] == ["me", "me"]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"XDG_DATA_HOME": "/srv/data", "HOME": "/home/a"}, "/srv/data/convguard"),
        ({"XDG_DATA_HOME": "relative", "HOME": "/home/a"}, "/home/a/.local/share/convguard"),
        ({"HOME": "/home/a"}, "/home/a/.local/share/convguard"),
    ],
)
def test_the_default_data_folder_is_absolute(
    environ: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from convguard.settings import default_data_dir

    monkeypatch.setenv("HOME", environ["HOME"])
    assert default_data_dir(environ) == Path(expected)


def test_a_password_in_the_store_url_is_never_printed(tmp_path: Path) -> None:
    from convguard.cli import _where
    from convguard.settings import Settings

    settings = Settings(database_url="postgresql+psycopg://u:secret@db.example/convguard")
    assert "secret" not in _where(settings) and "db.example" in _where(settings)


def test_a_misspelt_setting_is_reported_with_the_likely_name() -> None:
    result = CliRunner().invoke(
        cli, ["check", BENIGN], env={"CONVGUARD_CLASSIFIER": "linear", "CONVGUARD_LOCAL": "en-GB"}
    )
    assert result.exit_code == 0, result.output
    assert (
        "warning: environment variable CONVGUARD_LOCAL is not a convguard setting; "
        "did you mean CONVGUARD_LOCALE?"
    ) in result.stderr
