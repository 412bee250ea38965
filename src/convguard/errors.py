"""The one exception tree of convguard.

Every error convguard raises on purpose derives from :class:`ConvguardError` and carries the HTTP
status a server should answer with and a short machine-readable ``type``. Subclasses also inherit
the builtin they refine, so ``except ValueError`` still catches a bad policy file::

    ConvguardError                      (500, "internal_error")
    ├── PolicyError(ValueError)         (422, "invalid_policy")
    ├── InvalidInput(ValueError)        (422, "invalid_input")
    │   ├── TranscriptError             (422, "invalid_transcript")
    │   └── PayloadTooLarge             (413, "payload_too_large")
    ├── NotFound(LookupError)           (404, "not_found")
    ├── ConversationEnded               (409, "conversation_ended")
    ├── LeafConflict                    (409, "leaf_conflict")
    │   └── MessageExists               (409, "message_exists")
    ├── Unauthorized                    (401, "unauthorized")
    ├── Forbidden                       (403, "forbidden")
    ├── RateLimited                     (429, "rate_limited")
    ├── ClassifierError(RuntimeError)   (503, "classifier_unavailable")
    ├── NotReady                        (503, "not_ready")
    ├── UpstreamError(RuntimeError)     (502, "upstream_error")
    │   └── UpstreamTimeout             (504, "upstream_timeout")
    └── StoreError(RuntimeError)        (500, "store_error")

Ending a conversation is a returned :class:`~convguard.conversation.End` decision, never an
exception; :class:`ConversationEnded` is raised only when something tries to *add* to a branch
that has already ended.
"""

from __future__ import annotations

__all__ = [
    "ClassifierError",
    "ConversationEnded",
    "ConvguardError",
    "Forbidden",
    "InvalidInput",
    "LeafConflict",
    "MessageExists",
    "NotFound",
    "NotReady",
    "PayloadTooLarge",
    "PolicyError",
    "RateLimited",
    "StoreError",
    "TranscriptError",
    "Unauthorized",
    "UpstreamError",
    "UpstreamTimeout",
]


class ConvguardError(Exception):
    """Root of every error convguard raises deliberately."""

    status: int = 500
    type: str = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PolicyError(ConvguardError, ValueError):
    """A policy file or value is invalid; the message names the field, value and what is allowed."""

    status = 422
    type = "invalid_policy"


class InvalidInput(ConvguardError, ValueError):
    """Input from a caller is malformed; the message names the offending part and the fix."""

    status = 422
    type = "invalid_input"


class TranscriptError(InvalidInput):
    """A transcript line cannot be replayed; the message names the line number."""

    type = "invalid_transcript"


class PayloadTooLarge(InvalidInput):
    """A request body or message is over the configured size limit."""

    status = 413
    type = "payload_too_large"


class Unauthorized(ConvguardError):
    """No API key, or one that is unknown or revoked."""

    status = 401
    type = "unauthorized"


class Forbidden(ConvguardError):
    """A valid key that may not do this (an admin endpoint called with a non-admin key)."""

    status = 403
    type = "forbidden"


class RateLimited(ConvguardError):
    """Too many requests for this key; ``retry_after`` says how many seconds to wait."""

    status = 429
    type = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFound(ConvguardError, LookupError):
    """An account, conversation or message does not exist (or is not visible to the caller)."""

    status = 404
    type = "not_found"


class ConversationEnded(ConvguardError):
    """A message was sent to a branch that has ended; nothing was stored.

    The message always names the two ways forward: a new conversation, or editing an earlier
    message (or retrying an earlier reply) to start a new branch.
    """

    status = 409
    type = "conversation_ended"

    def __init__(self, conversation_id: str, leaf_id: str | None = None) -> None:
        super().__init__(
            f"conversation {conversation_id!r} has ended on this branch and takes no new messages. "
            "Start a new conversation, or edit an earlier message (or retry an earlier reply) "
            "to continue on a new branch."
        )
        self.conversation_id = conversation_id
        self.leaf_id = leaf_id


class LeafConflict(ConvguardError):
    """Another turn landed on the same leaf first; reload the conversation and send again."""

    status = 409
    type = "leaf_conflict"


class MessageExists(LeafConflict):
    """A message with this id is already stored: with content-hashed ids, the same turn.

    Callers that hash ids read the stored message back instead of storing it twice.
    """

    type = "message_exists"

    def __init__(self, message_id: str) -> None:
        super().__init__(
            f"message id {message_id!r} is already stored (the same turn was sent twice); "
            "reload the conversation"
        )
        self.message_id = message_id


class ClassifierError(ConvguardError, RuntimeError):
    """A classifier failed and the policy says a failure is an error (``on_classifier_error``)."""

    status = 503
    type = "classifier_unavailable"


class NotReady(ConvguardError):
    """The server is still starting (its classifier is loading); try again shortly."""

    status = 503
    type = "not_ready"


class UpstreamError(ConvguardError, RuntimeError):
    """The upstream model failed or answered nonsense; the user's message is kept for a retry."""

    status = 502
    type = "upstream_error"


class UpstreamTimeout(UpstreamError):
    """The upstream model did not answer in time; the user's message is kept for a retry."""

    status = 504
    type = "upstream_timeout"


class StoreError(ConvguardError, RuntimeError):
    """The store could not complete an operation; nothing was half-written."""

    status = 500
    type = "store_error"
