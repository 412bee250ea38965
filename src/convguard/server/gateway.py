"""The gateway's app object: everything one server needs, built once from :class:`Settings`.

Routes receive the :class:`Gateway` through ``request.app.state.gateway`` and call its methods;
there is no module-level state. The gateway owns the store, the policy, the assessor, the service,
the optional upstream model, the metrics and the rate limiter, and closes what it opened.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from convguard.agent import Scope, load_scope
from convguard.assess.factory import LazyAssessor
from convguard.assess.types import Assessor
from convguard.conversation import Guide, reply_of
from convguard.errors import InvalidInput, LeafConflict, NotFound, Unauthorized
from convguard.logs import bind
from convguard.policy import Policy, load_policy
from convguard.server.limits import RateLimiter
from convguard.server.metrics import Metrics
from convguard.service import Service, TurnResult
from convguard.settings import Settings
from convguard.store import (
    ApiKeyRecord,
    ConversationRecord,
    MessageRecord,
    NewMessage,
    Store,
    open_store,
)
from convguard.upstream import (
    AnthropicUpstream,
    NoModelResponder,
    OpenAIUpstream,
    Upstream,
    UpstreamResponder,
)

__all__ = ["Caller", "Gateway", "HashedIds"]

KEY_CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class Caller:
    account: str
    account_id: str
    admin: bool
    key_id: str


class HashedIds:
    """Message ids from content: each message hashed with its parent, within one conversation.

    A client that resends the whole history maps onto the same messages; a changed message (an
    edit) hashes differently and so starts a new branch.
    """

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id

    def _hash(self, parent_id: str | None, role: str, content: str) -> str:
        digest = hashlib.sha256()
        for part in (self.conversation_id, parent_id or "", role, content):
            digest.update(part.encode("utf-8", "surrogatepass"))
            digest.update(b"\x00")
        return digest.hexdigest()[:32]

    def user(self, parent_id: str | None, content: str) -> str:
        return self._hash(parent_id, "user", content)

    def reply(self, user_id: str, content: str) -> str:
        return self._hash(user_id, "assistant", content)


class Gateway:
    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        upstream: Upstream | None = None,
        assessor: Assessor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.policy: Policy = load_policy(settings.policy_file)
        self.store = store or open_store(settings.store_url)
        self.assessor: Assessor = assessor or LazyAssessor(
            settings.classifier, self.policy, options=settings.stage_options()
        )
        self.upstream = upstream if upstream is not None else _build_upstream(settings)
        self.service = Service(
            policy=self.policy,
            store=self.store,
            assessor=self.assessor,
            responder=UpstreamResponder(self.upstream) if self.upstream else NoModelResponder(),
            locale=settings.locale,
        )
        self.metrics = Metrics()
        self.scope: Scope | None = (
            load_scope(settings.agent_scope) if settings.agent_scope else None
        )
        self.limiter = RateLimiter(settings.rate_limit_per_minute, clock)
        self._clock = clock
        self._keys: dict[str, tuple[float, Caller | None]] = {}
        self._keys_lock = threading.Lock()

    def close(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
        self.store.close()

    # --- callers --------------------------------------------------------------------------------

    def caller(self, authorization: str | None, *, admin: bool = False) -> Caller:
        key = _bearer(authorization)
        now = self._clock()
        with self._keys_lock:
            cached = self._keys.get(key)
        if cached is None or now - cached[0] > KEY_CACHE_SECONDS:
            record = self.store.authenticate(key)
            caller = _caller(record) if record else None
            with self._keys_lock:
                self._keys[key] = (now, caller)
        else:
            caller = cached[1]
        if caller is None:
            raise Unauthorized(
                "the API key is unknown or revoked; create one with `convguard keys create`"
            )
        if admin and not caller.admin:
            raise Unauthorized("this needs an admin key (`convguard keys create --admin`)")
        bind(account=caller.account)
        self.limiter.check(caller.key_id)
        return caller

    # --- turns ----------------------------------------------------------------------------------

    def record(self, result: TurnResult) -> None:
        self.metrics.decision(result.decision, result.assessment)

    def model_messages(
        self, path: Sequence[MessageRecord], guidance: str | None, system: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """The messages sent upstream: the client's system prompts, guidance, then the branch."""
        messages: list[dict[str, Any]] = [{"role": "system", "content": s} for s in system]
        if guidance:
            messages.append({"role": "system", "content": guidance})
        messages += [{"role": m.role, "content": m.content} for m in path]
        return messages

    def answer(self, caller: Caller, result: TurnResult) -> MessageRecord:
        """The reply to a turn stored with a deferred reply: the model's, or the placeholder."""
        if result.reply is not None:
            return result.reply
        guidance = result.decision.guidance if isinstance(result.decision, Guide) else None
        text = self.complete(result.path, guidance)
        return self.store.add_reply(  # the conversation was checked when the turn was stored
            result.conversation_id,
            user_message_id=result.user.id,
            reply=NewMessage("assistant", text),
            now=self.service.clock(),
        )

    def complete(self, path: Sequence[MessageRecord], guidance: str | None) -> str:
        if self.upstream is None:
            return NoModelResponder.TEXT
        started = time.perf_counter()
        try:
            return self.upstream.complete(self.model_messages(path, guidance)).content
        finally:
            self.metrics.upstream.observe(time.perf_counter() - started)

    def send(
        self,
        caller: Caller,
        conversation_id: str,
        content: str,
        *,
        parent_id: str | None = None,
        edit_of: str | None = None,
    ) -> tuple[TurnResult, MessageRecord]:
        """A REST turn: on the newest branch, under ``parent_id``, or as an edit of ``edit_of``."""
        result = self.turn(caller, conversation_id, content, parent_id=parent_id, edit_of=edit_of)
        return result, self.answer(caller, result)

    def turn(
        self,
        caller: Caller,
        conversation_id: str,
        content: str,
        *,
        parent_id: str | None = None,
        edit_of: str | None = None,
    ) -> TurnResult:
        """The user's turn of :meth:`send`, decided and stored; the model's reply is deferred."""
        if parent_id is not None and edit_of is not None:
            raise InvalidInput("give either 'parent_id' or 'edit_of', not both")
        if edit_of is not None:
            result = self.service.edit(
                caller.account, conversation_id, edit_of, content, defer_model_reply=True
            )
        elif parent_id is not None:
            self.service.conversation(caller.account, conversation_id)  # before reading its tree
            parent = self.store.message(conversation_id, parent_id)
            if parent.role != "assistant":
                raise InvalidInput(
                    f"parent {parent_id!r} is a user message; a new message answers an assistant "
                    "reply (to replace a user message, use 'edit_of')"
                )
            siblings = [
                m for m in self.store.children(conversation_id, parent_id) if m.role == "user"
            ]
            if siblings:
                result = self.service.edit(
                    caller.account, conversation_id, siblings[0].id, content, defer_model_reply=True
                )
            else:
                result = self.service.send(
                    caller.account,
                    conversation_id,
                    content,
                    leaf_id=parent_id,
                    defer_model_reply=True,
                )
        else:
            result = self.service.send(
                caller.account, conversation_id, content, defer_model_reply=True
            )
        self.record(result)
        return result

    def retry(self, caller: Caller, conversation_id: str, message_id: str) -> MessageRecord:
        self.service.conversation(caller.account, conversation_id)
        message = self.store.message(conversation_id, message_id)
        if message.role == "user":
            if self.store.children(conversation_id, message_id):
                raise LeafConflict(
                    f"message {message_id!r} already has a reply; retry that reply instead"
                )
            path = self.store.path(conversation_id, message_id)
            decision = message.decision
            written = reply_of(decision) if decision else None
            guidance = decision.guidance if isinstance(decision, Guide) else None
            text = written if written is not None else self.complete(path, guidance)
            return self.service.add_reply(caller.account, conversation_id, message_id, text)
        return self.service.retry(caller.account, conversation_id, message_id)

    def get_or_create_conversation(
        self,
        caller: Caller,
        conversation_id: str,
        *,
        title: str | None = None,
        locale: str | None = None,
    ) -> ConversationRecord:
        """``locale``: the request's own (stored when it creates the conversation; for this
        request, it overrides the one stored)."""
        found = self._get_or_create_conversation(caller, conversation_id, title, locale)
        return found if locale in (None, found.locale) else replace(found, locale=locale)

    def _get_or_create_conversation(
        self, caller: Caller, conversation_id: str, title: str | None, locale: str | None
    ) -> ConversationRecord:
        try:
            return self.store.conversation(caller.account_id, conversation_id)
        except NotFound:
            pass
        try:
            return self.store.create_conversation(
                caller.account_id,
                now=self.service.clock(),
                title=title,
                conversation_id=conversation_id,
                locale=locale,
            )
        except InvalidInput:
            # created meanwhile by a concurrent request (or owned by another account: NotFound)
            return self.store.conversation(caller.account_id, conversation_id)


_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8}){0,3}")


def request_locale(header: str | None, extra: Mapping[str, Any] | None) -> str | None:
    """The locale a chat request names: the ``X-Convguard-Locale`` header, else
    ``metadata.locale`` (OpenAI's free-form request metadata); ``None`` when neither does."""
    metadata = (extra or {}).get("metadata")
    given = header if header is not None else (metadata or {}).get("locale")
    where = "header X-Convguard-Locale" if header is not None else "metadata.locale"
    if given is None:
        return None
    if not isinstance(given, str) or not _LOCALE.fullmatch(given):
        raise InvalidInput(f"{where} is {given!r}; send a language tag such as 'en-GB' or 'de-DE'")
    return given.replace("_", "-")


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized(
            "no API key; send 'Authorization: Bearer <key>' (create one with "
            "`convguard keys create --account NAME`)"
        )
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("the Authorization header must read 'Bearer <key>'")
    return key.strip()


def _caller(record: ApiKeyRecord) -> Caller:
    return Caller(record.account_name, record.account_id, record.admin, record.id)


def _build_upstream(settings: Settings) -> Upstream | None:
    if not settings.upstream_url:
        return None
    if settings.upstream_kind == "anthropic":
        return AnthropicUpstream(
            url=settings.upstream_url,
            model=settings.upstream_model,
            api_key=settings.upstream_api_key,
            timeout=settings.upstream_timeout,
        )
    return OpenAIUpstream(
        url=settings.upstream_url,
        model=settings.upstream_model,
        api_key=settings.upstream_api_key,
        timeout=settings.upstream_timeout,
    )


def conversation_key(account_id: str, scope: str) -> str:
    """The conversation id of an OpenAI-style client's scope (header, user or first message)."""
    return hashlib.sha256(f"{account_id}\x00{scope}".encode()).hexdigest()[:32]
