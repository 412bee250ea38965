"""Project-level promises: the public API is honest, every setting is documented."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import convguard
from convguard.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_public_api_names_exist_and_are_listed_once() -> None:
    assert len(convguard.__all__) == len(set(convguard.__all__))
    for name in convguard.__all__:
        assert hasattr(convguard, name), name
    public = {n for n in vars(convguard) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(convguard, n)).__name__ == "module"}
    assert public - modules == set(convguard.__all__) - {"__version__"}


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"CONVGUARD_{name.upper()}" in readme, name


def test_readme_starts_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```bash") + 1 : lines.index("```bash") + 3]
    assert "bootstrap.sh" in block[0] and "convguard" in block[0]
    assert "bootstrap.sh --dev" in block[1] and "pytest" in block[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/bootstrap.sh --dev" in ci and ".venv/bin/pytest" in ci


def test_the_package_level_assess_uses_the_shipped_cascade() -> None:
    assessment = convguard.assess("What's a good name for a golden retriever?")
    assert set(convguard.CATEGORY_IDS) <= set(assessment.scores)
    assert assessment.categories == ()
    assert assessment.source.startswith("linear")
    windowed = convguard.assess("and then?", context=["tell me about dogs"])
    assert windowed.elapsed_ms > 0


def test_the_version_is_written_once() -> None:
    from importlib.metadata import version

    assert convguard.__version__ == version("convguard")
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'version = { attr = "convguard.__version__" }' in pyproject
    sources = [*(ROOT / "src").rglob("*.py"), ROOT / "pyproject.toml"]
    written = [p for p in sources if f'"{convguard.__version__}"' in p.read_text()]
    assert written == [ROOT / "src" / "convguard" / "__init__.py"]


HEAVY = ("sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn", "onnxruntime", "tokenizers")


@pytest.mark.slow
@pytest.mark.parametrize(
    "code",
    [
        "import convguard",
        "import convguard.cli",
        # The hook path: the command as Claude Code runs it, up to its answer.
        'import io, sys; sys.stdin = io.StringIO(\'{"tool_name": "Bash", "tool_input": '
        '{"command": "ls"}}\'); from convguard.cli import cli; '
        "cli.main(['hook', 'claude-code'], standalone_mode=False)",
    ],
)
def test_light_entry_points_do_not_import_the_server_store_or_models(code: str) -> None:
    probe = f"{code}\nimport sys\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVGUARD_")}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.splitlines()[-1] == "[]", done.stdout


_LOADERS = ("pydantic", "yaml", "numpy")


@pytest.mark.slow
def test_the_hook_loads_no_settings_framework_yaml_or_numpy_once_its_cache_is_built() -> None:
    """The hook is a process per tool call: with the compiled cache built (the first call builds
    it), a call reads the rules and the command model back as plain data."""
    hook = (
        'import io, sys; sys.stdin = io.StringIO(\'{"tool_name": "Bash", "tool_input": '
        '{"command": "git status && pytest -q"}}\'); from convguard.cli import cli; '
        "cli.main(['hook', 'claude-code'], standalone_mode=False)"
    )
    probe = f"{hook}\nimport sys\nprint(sorted(m for m in {_LOADERS!r} if m in sys.modules))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVGUARD_")}
    for _ in range(2):  # the first run may build the cache
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
        )
    assert done.stdout.splitlines()[-1] == "[]", done.stdout


def test_the_public_assess_stays_the_function_when_its_subpackage_is_imported() -> None:
    import convguard.assess.types  # binds the subpackage on the package, as any import does

    assert callable(convguard.assess)
    assert convguard.assess.__module__ == "convguard.assess.default"


def test_the_default_data_folder_is_git_ignored() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "convguard-data/" in ignored
