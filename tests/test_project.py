"""Project-level promises: the public API is honest, every setting is documented."""

from __future__ import annotations

from pathlib import Path

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
