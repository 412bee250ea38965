from __future__ import annotations

import pytest

from convguard.errors import TranscriptError
from convguard.transcript import AssistantLine, EditLine, ModelEndLine, UserLine, parse_transcript


def test_parses_every_kind_of_line() -> None:
    events = parse_transcript(
        [
            '{"role": "user", "content": "hi"}',
            "",
            '{"role": "assistant", "content": "hello"}',
            '{"model_end": true}',
            '{"role": "user", "content": "x", "labels": {"categories": ["cbrn"], "flags": ["jailbreak"]}}',
            '{"edit": 0, "content": "hi again"}',
        ]
    )
    assert [type(e) for e in events] == [UserLine, AssistantLine, ModelEndLine, UserLine, EditLine]
    assert events[0] == UserLine(1, "hi", None)
    assert isinstance(events[3], UserLine) and events[3].labels is not None
    assert events[3].labels.categories == ("cbrn",)
    assert events[4] == EditLine(6, 0, "hi again", None)


@pytest.mark.parametrize(
    ("line", "names"),
    [
        ("{not json", [":1:", "not valid JSON"]),
        ('["user", "hi"]', [":1:", "JSON object"]),
        ('{"role": "system", "content": "x"}', ["'system'", "'user' or 'assistant'"]),
        ('{"content": "x"}', ["'role'", "'edit'", "'model_end'"]),
        ('{"role": "user", "content": ""}', ["'content'", "non-empty"]),
        ('{"role": "user", "content": 3}', ["'content'"]),
        ('{"role": "user", "content": "x", "lables": {}}', ["'lables'", "allowed"]),
        (
            '{"role": "user", "content": "x", "labels": {"categories": ["guns"]}}',
            ["'guns'", "weapons"],
        ),
        (
            '{"role": "user", "content": "x", "labels": {"flags": ["rude"]}}',
            ["'rude'", "jailbreak"],
        ),
        (
            '{"role": "user", "content": "x", "labels": {"categories": "cbrn"}}',
            ["labels.categories"],
        ),
        ('{"role": "user", "content": "x", "labels": {"tags": []}}', ["'tags'"]),
        ('{"edit": -1, "content": "x"}', ["'edit'", "-1"]),
        ('{"edit": "1", "content": "x"}', ["'edit'", "'1'"]),
        ('{"model_end": "yes"}', ["'model_end' must be true"]),
    ],
)
def test_a_bad_line_names_the_line_and_the_fix(line: str, names: list[str]) -> None:
    with pytest.raises(TranscriptError) as caught:
        parse_transcript([line], source="t.jsonl")
    message = str(caught.value)
    assert message.startswith("t.jsonl:1")
    for name in names:
        assert name in message


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (['{"role": "assistant", "content": "x"}'], "must follow a user"),
        (['{"model_end": true}'], "must follow a turn"),
        ([""], "no user turns"),
    ],
)
def test_lines_out_of_order_are_refused(lines: list[str], expected: str) -> None:
    with pytest.raises(TranscriptError, match=expected):
        parse_transcript(lines)


def test_the_error_names_the_line_number_of_a_later_line() -> None:
    with pytest.raises(TranscriptError, match=r"<transcript>:3: not valid JSON"):
        parse_transcript(['{"role": "user", "content": "a"}', "", "{oops"])
