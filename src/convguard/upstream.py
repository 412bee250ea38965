"""The model that writes the assistant's replies when the policy does not.

A :class:`Responder` gets the branch so far (root first) and, for a ``guide`` decision, the safety
guidance to add to the model's instructions. Until an upstream model is configured,
:class:`NoModelResponder` answers with a clearly labelled placeholder saying how to configure one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from convguard.conversation import Message

__all__ = ["NoModelResponder", "Responder", "StaticResponder"]


class Responder(Protocol):
    def reply(self, path: Sequence[Message], *, guidance: str | None = None) -> str: ...


class NoModelResponder:
    """Stands in for a model: says plainly that none is configured."""

    TEXT = (
        "[convguard: no model is configured, so this is a placeholder reply. Set "
        "CONVGUARD_UPSTREAM_URL (and CONVGUARD_UPSTREAM_API_KEY, CONVGUARD_UPSTREAM_MODEL) to "
        "forward allowed turns to an OpenAI-compatible model.]"
    )

    def reply(self, path: Sequence[Message], *, guidance: str | None = None) -> str:
        return self.TEXT


class StaticResponder:
    """Always answers the same text (replays, tests)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def reply(self, path: Sequence[Message], *, guidance: str | None = None) -> str:
        return self.text
