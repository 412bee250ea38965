"""The agent guard's compiled cache: rules, the command model and the scope read back as plain
data, rebuilt whenever a source changes, ignored when damaged, and never needed (a cache folder
that cannot be written only costs speed). The hook's settings read without pydantic agree with
the full settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from agent_fixtures import QUIET
from convguard.agent import assess_tool_call, load_rules, load_scope
from convguard.agent import cache as compiled_cache
from convguard.agent.engine import Pattern, Step, WriteTest
from convguard.agent.model import CommandModel
from convguard.cli import _hook_settings
from convguard.errors import InvalidInput
from convguard.settings import Settings

_RULE = """
rules:
  - id: acme.deploy-key-printed
    title: prints the deploy key
    category: credential_access
    level: ask
    match:
      programs: [acme-deploy]
      args: '--print-key'
    tests:
      hit: ['acme-deploy --print-key']
      miss: ['acme-deploy --dry-run']
"""


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cache-home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home / "convguard"


def _entries(folder: Path, prefix: str = "rules-") -> list[Path]:
    return sorted(folder.glob(f"{prefix}*.json")) if folder.is_dir() else []


def _verdict(rules: object, command: str) -> tuple[str, tuple[str, ...]]:
    v = assess_tool_call("Bash", {"command": command}, rules=rules, classifier=QUIET)  # type: ignore[arg-type]
    return v.verdict, v.rule_ids


def test_rules_read_back_from_the_cache_are_the_rules_read_from_the_files(
    cache_home: Path,
) -> None:
    fresh = load_rules()
    (entry,) = _entries(cache_home)
    cached = load_rules()
    assert cached.rules == fresh.rules  # ids, levels, patterns, predicates, tests, sources
    assert [r.spec for r in cached.rules] == [r.spec for r in fresh.rules]
    assert cached.by_program.keys() == fresh.by_program.keys()
    assert _entries(cache_home) == [entry]
    # the shipped set uses every kind of rule and every field of a step, so the comparison above
    # covers each way the plain data is read back (call rules, paths, pipes, redirections ...)
    assert {r.kind for r in fresh.rules} == {"command", "text", "sequence", "call", "write"}
    assert {r.scripts for r in fresh.rules} == {"any", "windows", "interpreters", "unparsed"}
    assert {r.targets for r in fresh.rules} == {None, "hosts", "paths"}
    assert {bool(r.all_of) for r in fresh.rules if r.kind == "call"} == {True, False}
    assert {r.case_sensitive for r in fresh.rules if r.kind == "text"} == {True, False}
    assert {bool(r.unless_rules) for r in fresh.rules if r.kind == "write"} == {True, False}
    assert {bool(r.unless_rules) for r in fresh.rules if r.kind == "command"} == {True, False}
    assert any(r.families for r in fresh.rules)
    follows = [r.follow for r in fresh.rules if r.follow is not None]
    assert {(f.files, f.used_as, f.same) for f in follows} >= {
        ("outputs", "run", "name"),
        ("paths", "run", "path"),
        ("values", "argument", "path"),
    }
    steps = [s for r in fresh.rules for s in (r.step, *r.sequence, *r.all_of, *r.any_of)]
    steps += [s for f in follows for s in (*f.made_by, f.then)]
    assert [f.name for f in fields(Step) if not any(getattr(s, f.name) for s in steps)] == []
    writes = [r.write for r in fresh.rules if r.write is not None]
    assert [f.name for f in fields(WriteTest) if not any(getattr(w, f.name) for w in writes)] == []


def test_a_cached_rule_set_loads_without_yaml_or_pydantic(cache_home: Path) -> None:
    load_rules()  # builds the entry
    probe = (
        "import sys\nfrom convguard.agent import load_rules\nrules = load_rules()\n"
        "print(len(rules.rules), sorted(m for m in ('yaml', 'pydantic', 'numpy') "
        "if m in sys.modules))"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home.parent)}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.split(" ", 1)[1].strip() == "[]", done.stdout
    assert int(done.stdout.split()[0]) == len(load_rules().rules)


def test_a_changed_rule_file_is_read_again(tmp_path: Path, cache_home: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "acme.yaml").write_text(_RULE)
    before = load_rules([folder], builtin=False)
    assert _verdict(before, "acme-deploy --print-key")[0] == "ask"
    (folder / "acme.yaml").write_text(_RULE.replace("--print-key'", "--show-key'"))
    after = load_rules([folder], builtin=False)
    assert _verdict(after, "acme-deploy --print-key")[0] == "allow"
    assert _verdict(after, "acme-deploy --show-key")[0] == "ask"
    assert len(_entries(cache_home)) == 1  # the stale entry was replaced, not kept beside


def test_an_extra_rule_folder_or_file_changes_the_cached_set(
    tmp_path: Path, cache_home: Path
) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    shipped = load_rules()
    with_folder = load_rules([folder])
    assert with_folder.ids() == shipped.ids()
    (folder / "acme.yaml").write_text(_RULE)
    added = load_rules([folder])
    assert added.ids() == shipped.ids() | {"acme.deploy-key-printed"}
    assert _verdict(added, "acme-deploy --print-key") == ("ask", ("acme.deploy-key-printed",))
    (folder / "acme.yaml").unlink()
    assert load_rules([folder]).ids() == shipped.ids()
    assert load_rules().ids() == shipped.ids()


def test_a_change_to_the_loading_code_rebuilds_the_entry(
    cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within one version (a development checkout), editing the engine or the schema must not
    leave rules built by the old code in the cache."""
    assert b"def load_rules" in compiled_cache.code("engine.py", "schema.py")
    load_rules()
    (entry,) = _entries(cache_home)
    before = json.loads(entry.read_text())["key"]
    real = compiled_cache.code
    monkeypatch.setattr(compiled_cache, "code", lambda *m: real(*m) + b"# edited")
    rules = load_rules()
    assert json.loads(entry.read_text())["key"] != before and len(rules.rules) > 100


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"\x00\xff not json",
        b'{"key": "another key", "value": []}',
        b"[1, 2, 3]",
        # the right key over a value of the wrong shape (as a damaged disk could leave it)
        *(
            json.dumps(value)
            for value in (5, [["acme.yaml"]], [["acme.yaml", {"id": 3}]], [["a", {"match": "x"}]])
        ),
    ],
)
def test_a_damaged_cache_entry_is_ignored_and_rebuilt(
    tmp_path: Path, cache_home: Path, damage: bytes | str
) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "acme.yaml").write_text(_RULE)
    expected = load_rules([folder], builtin=False).rules
    (entry,) = _entries(cache_home)
    if isinstance(damage, str):
        key = json.loads(entry.read_text())["key"]
        entry.write_text(json.dumps({"key": key, "value": json.loads(damage)}))
    else:
        entry.write_bytes(damage)
    assert load_rules([folder], builtin=False).rules == expected
    assert load_rules([folder], builtin=False).rules == expected  # from the rewritten entry
    assert json.loads(entry.read_text())["value"][0][1]["id"] == "acme.deploy-key-printed"


def test_a_broken_rule_file_is_never_cached(tmp_path: Path, cache_home: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "acme.yaml").write_text(_RULE.replace("'--print-key'", "'(--print'"))
    for _ in range(2):  # the second load reads the file again and fails the same way
        with pytest.raises(InvalidInput, match="invalid regular expression"):
            load_rules([folder], builtin=False)
    assert _entries(cache_home) == []


def test_a_cache_folder_that_cannot_be_written_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))  # mkdir under a file fails, even as root
    first, second = load_rules(), load_rules()
    assert first.rules == second.rules and len(first.rules) > 100
    assert _verdict(first, "rm -rf /")[0] == "deny"
    assert CommandModel.load().weights
    assert blocked.read_text() == "not a folder" and list(tmp_path.iterdir()) == [blocked]


def _compiled(pattern: Pattern) -> bool:
    """Whether ``pattern.search`` is the compiled expression's own method yet."""
    return not isinstance(pattern.search.__self__, Pattern)  # type: ignore[attr-defined]


def test_patterns_compile_on_first_search_and_all_at_once_on_request(cache_home: Path) -> None:
    load_rules()
    cached = load_rules()
    rule = next(r for r in cached.rules if r.kind == "text")
    assert rule.text is not None
    assert rule.text.search.__self__ is rule.text  # type: ignore[attr-defined]  # not compiled yet
    # the patterns of a call rule's steps and of the tests around the arguments too
    call = next(r for r in cached.rules if r.kind == "call" and r.all_of)
    around = [r.step.paths for r in cached.rules if r.step.paths is not None][:1]
    lazy = [*around, *(p for s in call.all_of for p in s.patterns() if p is not None)]
    assert len(lazy) >= 3 and not any(_compiled(p) for p in lazy)
    cached.compile_all()
    assert not isinstance(rule.text.search.__self__, type(rule.text))
    assert all(_compiled(p) for p in lazy)


def test_the_command_model_is_read_back_without_numpy(cache_home: Path) -> None:
    fresh = CommandModel.load()
    assert _entries(cache_home, "command-model")
    assert CommandModel.load() == fresh
    probe = (
        "import sys\nfrom convguard.agent.model import CommandModel\nm = CommandModel.load()\n"
        "print(len(m.weights), 'numpy' in sys.modules)"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home.parent)}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.split() == [str(len(fresh.weights)), "False"]
    (entry,) = _entries(cache_home, "command-model")
    entry.write_text('{"key": "x"')
    assert CommandModel.load() == fresh


def test_a_changed_scope_file_is_read_again_and_a_bad_one_never_cached(
    tmp_path: Path, cache_home: Path
) -> None:
    path = tmp_path / "scope.yaml"
    path.write_text("networks: [10.0.0.0/24]\n")
    first = load_scope(path)
    assert first == load_scope(path) and first.covers_host("10.0.0.5")
    path.write_text("networks: [10.9.0.0/24]\n")
    changed = load_scope(path)
    assert changed.covers_host("10.9.0.5") and not changed.covers_host("10.0.0.5")
    path.write_text("hostz: [a.example]\n")
    for _ in range(2):
        with pytest.raises(InvalidInput, match="hostz"):
            load_scope(path)


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"CONVGUARD_AGENT_SCOPE": "/srv/scope.yaml"},
        {"CONVGUARD_AGENT_SCOPE": "relative/scope.json", "CONVGUARD_HOOK_FAIL_OPEN": "true"},
        *({"CONVGUARD_HOOK_FAIL_OPEN": v} for v in ("1", "Yes", "ON", "t", "y", "TRUE")),
        *({"CONVGUARD_HOOK_FAIL_OPEN": v} for v in ("0", "No", "off", "F", "n", "False")),
        {"CONVGUARD_AGENT_RULES": "/srv/rules", "CONVGUARD_TEST_ANYTHING": "x"},
        {"CONVGUARD_CLASSIFIER": "linear", "CONVGUARD_HOOK_FAIL_OPEN": "yes"},
    ],
)
def test_the_hooks_own_reading_of_its_settings_agrees_with_the_settings(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name in list(os.environ):
        if name.startswith("CONVGUARD_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert _hook_settings() == (settings.agent_scope, settings.hook_fail_open)


@pytest.mark.parametrize(
    "env",
    [
        {"CONVGUARD_HOOK_FAIL_OPEN": "maybe"},
        {"CONVGUARD_HOOK_FAIL_OPEN": " true"},
        {"CONVGUARD_PORT": "eighty"},
    ],
)
def test_a_value_the_hook_does_not_know_goes_through_the_full_settings(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name in list(os.environ):
        if name.startswith("CONVGUARD_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InvalidInput, match=next(iter(env))):
        _hook_settings()


def test_the_cache_folder_follows_xdg_and_the_key_covers_every_part() -> None:
    assert compiled_cache.cache_dir({"XDG_CACHE_HOME": "/x/cache"}) == Path("/x/cache/convguard")
    assert compiled_cache.cache_dir({"XDG_CACHE_HOME": "relative"}) == (
        Path.home() / ".cache" / "convguard"
    )
    assert compiled_cache.fingerprint("ab", "c") != compiled_cache.fingerprint("a", "bc")
    assert compiled_cache.fingerprint("a", b"b") == compiled_cache.fingerprint("a", "b")
