"""A bounded fuzz run of the whole HTTP API from its OpenAPI schema (schemathesis + Hypothesis).

Every operation gets generated requests (valid and invalid bodies, parameters and headers) with a
live key, against the real app on a real SQLite store, in front of a fake upstream model that is
a real HTTP server. Whatever is sent, nothing answers 5xx and every error is in the one error shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from convguard.policy import default_policy
from convguard.store import Store, open_store
from convguard.testing import FakeUpstream
from gateway_fixtures import app_for, keys

#: Generated requests per operation (the run's size; ~20 operations).
EXAMPLES = 40


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 'fuzz.db'}")
    yield store
    store.close()


def check(response: Any, path: str) -> None:
    """No 5xx; a JSON error body in the one shape for every other failure (Anthropic's own shape
    on its endpoint, ``/v1/messages``)."""
    assert response.status_code < 500, response.text[:500]
    if response.status_code < 400:
        return
    body = json.loads(response.text)
    if path == "/v1/messages":
        assert body["type"] == "error"
        assert set(body["error"]) == {"type", "message", "convguard_code"}, body
        assert body["error"]["message"]
        return
    error = body["error"]
    assert set(error) == {"type", "code", "message"}, error
    assert error["message"] and error["type"] == error["code"]


@pytest.mark.slow
def test_no_request_gets_a_5xx_or_an_answer_outside_the_error_shape(
    tmp_path: Path, store: Store
) -> None:
    key = keys(store)["admin"]
    with FakeUpstream() as upstream:
        app = app_for(tmp_path, store, default_policy(), upstream_url=upstream.url, timeout=5.0)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        sent: dict[str, int] = {}
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 15
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case: Any) -> None:
                case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}"}
                check(case.call(), case.operation.path)
                sent[case.operation.label] = sent.get(case.operation.label, 0) + 1

            fuzz()
    total = sum(sent.values())
    print(f"\nfuzz: {total} requests over {len(sent)} operations, no 5xx, all errors in shape")
    assert total >= 10 * len(operations)
