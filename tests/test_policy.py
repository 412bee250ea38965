from __future__ import annotations

from pathlib import Path

import pytest

from convguard.errors import PolicyError
from convguard.policy import (
    CATEGORY_IDS,
    FLAG_IDS,
    Policy,
    default_policy,
    load_policy,
    parse_policy,
)

EXTREME = {"sexual_minors", "violent_extremism", "cbrn", "explosives", "cyberattack"}
HIGH = {"weapons", "violence", "harassment", "hate", "sexual", "illicit", "misinformation"}


def test_default_policy_has_exactly_the_contract_ids(policy: Policy) -> None:
    assert set(policy.categories) == EXTREME | HIGH | {"self_harm"}
    assert {c for c, cat in policy.categories.items() if cat.tier == "extreme"} == EXTREME
    assert {c for c, cat in policy.categories.items() if cat.tier == "high"} == HIGH
    assert policy.tier("self_harm") == "care"
    assert set(policy.flags) == {
        "jailbreak",
        "user_requests_end",
        "imminent_risk",
        "abuse_toward_assistant",
    }
    assert tuple(policy.categories) == CATEGORY_IDS
    assert tuple(policy.flags) == FLAG_IDS


def test_every_category_and_flag_has_a_description_and_threshold(policy: Policy) -> None:
    for category in policy.categories.values():
        assert category.description and 0 < category.threshold <= 1
    for flag in policy.flags.values():
        assert flag.description and 0 < flag.threshold <= 1


def test_default_ending_rules(policy: Policy) -> None:
    rules = policy.ending
    assert rules.redirections_before_end == 3
    assert rules.require_warning is True
    assert rules.confirm_user_end is True
    assert rules.mode == "enforce"
    assert rules.risk_window_turns >= 1


def test_crisis_resources_cover_six_locales_and_a_fallback(policy: Policy) -> None:
    locales = [key for key in policy.crisis_resources if key != "international"]
    assert len(locales) >= 6
    assert policy.crisis_resources["international"]
    assert any("988" in r.contact for r in policy.resources_for("en-US"))
    assert any("116 123" in r.contact for r in policy.resources_for("en-GB"))
    assert any("13 11 14" in r.contact for r in policy.resources_for("en-AU"))


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en-GB", "Samaritans"),
        ("en_GB", "Samaritans"),
        ("EN-us", "988 Suicide & Crisis Lifeline"),
        ("fr-FR", "3114 Numéro national de prévention du suicide"),
        ("es-US", "988 Suicide & Crisis Lifeline"),  # same region
        ("xx-ZZ", "Find A Helpline"),  # fallback
        (None, "988 Suicide & Crisis Lifeline"),  # default locale
    ],
)
def test_resources_resolve_by_locale_then_region_then_fallback(
    policy: Policy, locale: str | None, expected: str
) -> None:
    assert policy.resources_for(locale)[0].name == expected


def test_user_yaml_overrides_any_part_and_keeps_the_rest() -> None:
    policy = parse_policy(
        "ending:\n  redirections_before_end: 5\n  mode: shadow\n"
        "categories:\n  weapons:\n    threshold: 0.8\n"
    )
    assert policy.ending.redirections_before_end == 5
    assert policy.ending.mode == "shadow"
    assert policy.ending.require_warning is True
    assert policy.categories["weapons"].threshold == 0.8
    assert (
        policy.categories["weapons"].description
        == default_policy().categories["weapons"].description
    )


def test_how_many_branches_one_message_may_get_is_a_policy_setting(policy: Policy) -> None:
    assert policy.max_branches == 32
    assert parse_policy("max_branches: 4").max_branches == 4
    assert parse_policy("max_branches: 4").version != policy.version


def test_version_is_a_content_hash() -> None:
    assert parse_policy("").version == default_policy().version
    assert parse_policy("ending: {mode: enforce}").version == default_policy().version
    assert parse_policy("ending: {mode: shadow}").version != default_policy().version


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (
            "ending: {mode: enforced}",
            ["ending.mode", "'enforced'", "'enforce'", "'shadow'", "'off'"],
        ),
        ("ending: {redirections_before_end: 0}", ["ending.redirections_before_end", "0"]),
        ("categories: {cbrn: {threshold: 1.5}}", ["categories.cbrn.threshold", "1.5"]),
        ("categories: {cbrn: {tier: high}}", ["categories", "'cbrn'", "'extreme'"]),
        (
            "categories: {guns: {tier: high, label: g, description: d, threshold: 0.5}}",
            ["'guns'", "weapons"],
        ),
        ("flags: {spam: {description: s, threshold: 0.5}}", ["'spam'", "jailbreak"]),
        ("ending: {redirect_count: 2}", ["ending.redirect_count", "unknown field"]),
        ("on_classifier_error: ignore", ["on_classifier_error", "'ignore'", "'allow'"]),
        ("max_branches: 0", ["max_branches", "0"]),
        ("crisis_resources: {international: []}", ["crisis_resources", "international"]),
        ("- a\n- b", ["mapping"]),
        ("ending: [", ["not valid YAML"]),
    ],
)
def test_invalid_policy_names_field_value_and_what_is_allowed(text: str, names: list[str]) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source="my.yaml")
    message = str(caught.value)
    assert message.startswith("my.yaml")
    for name in names:
        assert name in message


def test_unreadable_policy_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "missing.yaml")
    path = tmp_path / "p.yaml"
    path.write_text("ending:\n  mode: off\n")
    assert load_policy(path).ending.mode == "off"


def test_policy_error_is_a_value_error_with_a_status() -> None:
    with pytest.raises(ValueError, match=r"ending\.mode") as caught:
        parse_policy("ending: {mode: nope}")
    assert isinstance(caught.value, PolicyError)
    assert caught.value.status == 422


def test_every_category_and_flag_has_a_stricter_strike_level(policy: Policy) -> None:
    for label in CATEGORY_IDS + FLAG_IDS:
        assert policy.strike_threshold(label) >= policy.threshold(label)
    assert policy.strikes({"cbrn": 0.85}, "cbrn")
    assert not policy.strikes({"cbrn": 0.6}, "cbrn")


def test_a_strike_level_below_the_threshold_is_refused() -> None:
    with pytest.raises(PolicyError, match=r"categories\.cbrn.*strike level 0\.4 is below"):
        parse_policy("categories: {cbrn: {threshold: 0.5, strike: 0.4}}", source="my.yaml")


def test_misinformation_is_high_tier_never_a_reason_to_end(policy: Policy) -> None:
    assert policy.tier("misinformation") == "high"
