"""Transcripts: a conversation written down as JSON lines, to replay through the service.

Each line is one event:

- ``{"role": "user", "content": "...", "labels": {"categories": [...], "flags": [...]}}`` — a user
  turn; ``labels`` (optional) replaces the classifiers' assessment of that turn;
- ``{"role": "assistant", "content": "..."}`` — the model's reply to the turn above it (used where
  the model answers; where the policy writes the reply, the policy's reply stands);
- ``{"edit": K, "content": "...", "labels": {...}}`` — edit the K-th user message (0-based) of the
  current branch and continue on the new branch;
- ``{"model_end": true}`` — the model calls ``end_conversation`` on its reply to the turn above.

The whole file is parsed and checked before anything is replayed, so a bad line stores nothing.
Pure apart from :func:`read_transcript`, which reads the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convguard.assess.types import check_labels
from convguard.errors import InvalidInput, TranscriptError

__all__ = [
    "AssistantLine",
    "EditLine",
    "Event",
    "Labels",
    "ModelEndLine",
    "UserLine",
    "parse_transcript",
    "read_transcript",
]


@dataclass(frozen=True)
class Labels:
    categories: tuple[str, ...]
    flags: tuple[str, ...]


@dataclass(frozen=True)
class UserLine:
    line: int
    content: str
    labels: Labels | None


@dataclass(frozen=True)
class EditLine:
    line: int
    index: int
    content: str
    labels: Labels | None


@dataclass(frozen=True)
class AssistantLine:
    line: int
    content: str


@dataclass(frozen=True)
class ModelEndLine:
    line: int


Event = UserLine | EditLine | AssistantLine | ModelEndLine

_KEYS = {
    "user": {"role", "content", "labels"},
    "assistant": {"role", "content"},
    "edit": {"edit", "content", "labels"},
    "model_end": {"model_end"},
}


def read_transcript(path: str | Path) -> list[Event]:
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TranscriptError(
            f"cannot read transcript {str(path)!r}: {exc}; pass a readable UTF-8 JSON-lines file"
        ) from exc
    return parse_transcript(text.splitlines(), source=str(path))


def parse_transcript(lines: Iterable[str], *, source: str = "<transcript>") -> list[Event]:
    events: list[Event] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{source}:{number}"
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise TranscriptError(
                f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); "
                "each line must be one JSON object"
            ) from exc
        if not isinstance(data, dict):
            raise TranscriptError(
                f"{where}: expected a JSON object, got {type(data).__name__}; "
                'write e.g. {"role": "user", "content": "..."}'
            )
        event = _event(data, number, where)
        _check_order(events, event, where)
        events.append(event)
    if not any(isinstance(e, UserLine | EditLine) for e in events):
        raise TranscriptError(f"{source}: no user turns; add at least one user line")
    return events


def _event(data: Mapping[str, Any], number: int, where: str) -> Event:
    if "edit" in data:
        kind = "edit"
    elif "model_end" in data:
        kind = "model_end"
    elif "role" in data:
        kind = data["role"]
        if kind not in ("user", "assistant"):
            raise TranscriptError(
                f"{where}: role {kind!r} is not allowed; use 'user' or 'assistant'"
            )
    else:
        raise TranscriptError(
            f"{where}: a line needs 'role' ('user' or 'assistant'), 'edit' or 'model_end'"
        )
    unknown = sorted(set(data) - _KEYS[kind])
    if unknown:
        raise TranscriptError(
            f"{where}: unknown field {unknown[0]!r} on a {kind} line; "
            f"allowed: {', '.join(sorted(_KEYS[kind]))}"
        )
    if kind == "model_end":
        if data["model_end"] is not True:
            raise TranscriptError(f"{where}: 'model_end' must be true, got {data['model_end']!r}")
        return ModelEndLine(number)
    content = data.get("content")
    if not isinstance(content, str) or not content.strip():
        raise TranscriptError(f"{where}: 'content' must be a non-empty string, got {content!r}")
    if kind == "assistant":
        return AssistantLine(number, content)
    labels = _labels(data.get("labels"), where)
    if kind == "user":
        return UserLine(number, content, labels)
    index = data["edit"]
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise TranscriptError(
            f"{where}: 'edit' must be a user-message index (0, 1, ...), got {index!r}"
        )
    return EditLine(number, index, content, labels)


def _labels(value: Any, where: str) -> Labels | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TranscriptError(
            f'{where}: \'labels\' must be an object like {{"categories": [...], "flags": [...]}}, '
            f"got {value!r}"
        )
    unknown = sorted(set(value) - {"categories", "flags"})
    if unknown:
        raise TranscriptError(
            f"{where}: unknown field {unknown[0]!r} in labels; allowed: categories, flags"
        )
    categories = value.get("categories", [])
    flags = value.get("flags", [])
    for name, items in (("categories", categories), ("flags", flags)):
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise TranscriptError(f"{where}: labels.{name} must be a list of ids, got {items!r}")
    try:
        check_labels(categories, flags)
    except InvalidInput as exc:
        raise TranscriptError(f"{where}: {exc}") from exc
    return Labels(tuple(categories), tuple(flags))


def _check_order(events: list[Event], event: Event, where: str) -> None:
    previous = events[-1] if events else None
    if isinstance(event, AssistantLine) and not isinstance(previous, UserLine | EditLine):
        raise TranscriptError(
            f"{where}: an assistant line must follow a user (or edit) line; it answers that turn"
        )
    if isinstance(event, ModelEndLine) and not isinstance(
        previous, UserLine | EditLine | AssistantLine
    ):
        raise TranscriptError(
            f"{where}: a model_end line must follow a turn (a user or assistant line)"
        )
