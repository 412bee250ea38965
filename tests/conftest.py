from __future__ import annotations

import pytest

from convguard.policy import Policy, default_policy


@pytest.fixture
def policy() -> Policy:
    return default_policy()
