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
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from convguard.agent import Scope, load_scope
from convguard.assess.factory import build_assessor
from convguard.assess.types import Assessment, Assessor, Role
from convguard.conversation import Guide, reply_of
from convguard.errors import (
    Forbidden,
    InvalidInput,
    LeafConflict,
    NotFound,
    Unauthorized,
    UpstreamError,
)
from convguard.logs import bind
from convguard.policy import Policy, load_policy
from convguard.server.limits import Limiter, RateLimiter, SharedRateLimiter
from convguard.server.metrics import Metrics
from convguard.server.schemas import text_problem
from convguard.service import OutputWindows, Service, TurnResult, screen_output
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

__all__ = ["Caller", "Gateway", "HashedIds", "ReadyAssessor"]

#: How long a live key is trusted without asking the store again (so also how long a revoked
#: key may still work on a worker).
KEY_CACHE_SECONDS = 1.0
#: How many live keys one worker remembers (the least recently used are forgotten first).
MAX_CACHED_KEYS = 10_000


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


class ReadyAssessor:
    """The deployment's assessor, built once: by :meth:`warm` at start-up (``convguard serve``
    warms it before it accepts traffic), else by the first request, under a lock so that
    concurrent first requests wait for one build instead of each building a classifier."""

    def __init__(self, build: Callable[[], Assessor]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._inner: Assessor | None = None

    @property
    def ready(self) -> bool:
        return self._inner is not None

    @property
    def inner(self) -> Assessor:
        return self.warm()

    def warm(self) -> Assessor:
        inner = self._inner
        if inner is None:
            with self._lock:
                if self._inner is None:
                    self._inner = self._build()
                inner = self._inner
        return inner

    def assess(self, text: str, *, role: Role = "user", context: Sequence[str] = ()) -> Assessment:
        return self.warm().assess(text, role=role, context=context)


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
        self.assessor: Assessor = assessor or ReadyAssessor(
            lambda: build_assessor(
                settings.classifier, self.policy, options=settings.stage_options()
            )
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
        self.limiter, self.lookups = _limiters(settings, clock)
        self._clock = clock
        self._keys: OrderedDict[str, tuple[float, Caller]] = OrderedDict()
        self._keys_lock = threading.Lock()

    @property
    def ready(self) -> bool:
        """Whether the classifier is loaded (a given assessor is ready as given)."""
        return not isinstance(self.assessor, ReadyAssessor) or self.assessor.ready

    def warm(self) -> None:
        """Load the classifier now, before the first request needs it."""
        if isinstance(self.assessor, ReadyAssessor):
            self.assessor.warm()

    def close(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
        self.store.close()

    # --- callers --------------------------------------------------------------------------------

    def caller(
        self, authorization: str | None, *, admin: bool = False, address: str | None = None
    ) -> Caller:
        """The caller a key belongs to, or :class:`Unauthorized` (:class:`Forbidden` where an
        admin key is needed and this is not one).

        A live key is remembered for :data:`KEY_CACHE_SECONDS`, so a revoked key stops working
        on every worker within that time (the store is the shared state). Unknown keys are not
        remembered, and every lookup in the store first takes a token of the client address's
        bucket (``rate_limit_unauthenticated_per_minute``), so guessing keys meets a 429.
        """
        key = _bearer(authorization)
        now = self._clock()
        with self._keys_lock:
            cached = self._keys.get(key)
        if cached is None or now - cached[0] > KEY_CACHE_SECONDS:
            self.lookups.check(f"address {address or 'unknown'}")
            record = self.store.authenticate(key)
            if record is None:
                with self._keys_lock:
                    self._keys.pop(key, None)
                raise Unauthorized(
                    "the API key is unknown or revoked; create one with `convguard keys create`"
                )
            caller = _caller(record)
            with self._keys_lock:
                self._keys[key] = (now, caller)
                self._keys.move_to_end(key)
                while len(self._keys) > MAX_CACHED_KEYS:
                    self._keys.popitem(last=False)
        else:
            caller = cached[1]
        bind(account=caller.account)
        if admin and not caller.admin:
            raise Forbidden(
                "this needs an admin key; this key is not one (`convguard keys create --admin`)"
            )
        self.limiter.check(caller.key_id)
        return caller

    def forget_key(self, key_id: str) -> None:
        """Stop trusting a key this worker remembers (it was just revoked here)."""
        with self._keys_lock:
            for key in [k for k, (_, c) in self._keys.items() if c.key_id == key_id]:
                del self._keys[key]

    # --- turns ----------------------------------------------------------------------------------

    def require_upstream(self) -> Upstream:
        if self.upstream is None:
            raise UpstreamError("no upstream model is configured (CONVGUARD_UPSTREAM_URL)")
        return self.upstream

    def placeholder(self) -> str:
        """The labelled reply given where no upstream model is configured."""
        return NoModelResponder.TEXT

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
        text, withheld = self.screened(self.complete(result.path, guidance))
        return self.store.add_reply(  # the conversation was checked when the turn was stored
            result.conversation_id,
            user_message_id=result.user.id,
            reply=NewMessage("assistant", text, assessment=withheld),
            now=self.service.clock(),
        )

    def screened(self, text: str) -> tuple[str, Assessment | None]:
        """A whole model reply assessed in output windows, as the streamed paths assess it: the
        text, withheld from the first window that crosses a threshold (the policy's reply
        instead), and that window's assessment when something was withheld."""
        if self.upstream is None:
            return text, None  # the labelled placeholder
        windows = OutputWindows(self.assessor)
        text = screen_output(windows, text, self.withheld_reply)
        self.metrics.output(windows.last)
        return text, windows.assessment()

    def withheld_reply(self, category: str) -> str:
        """What replaces a model reply from the output window that crossed ``category``'s
        threshold on (every path that screens output counts it here)."""
        self.metrics.withheld.inc()
        return self.policy.reply("redirect", label=self.policy.categories[category].label)

    @property
    def claim_ttl(self) -> timedelta:
        """How long a request's claim on a turn lives without renewal, which is also how long
        an unanswered turn counts as still waiting for its reply: a model call, and one more."""
        return timedelta(seconds=2 * self.settings.upstream_timeout + 5)

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
            if written is not None:
                return self.service.add_reply(caller.account, conversation_id, message_id, written)
            text, withheld = self.screened(self.complete(path, guidance))
            return self.service.add_reply(
                caller.account, conversation_id, message_id, text, assessment=withheld
            )
        return self.service.retry(caller.account, conversation_id, message_id, screen=self.screened)

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
        except InvalidInput as exc:
            if "already taken" not in exc.message:
                raise
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
    if scheme.lower() != "bearer" or not key.strip() or len(key) > 512:
        raise Unauthorized("the Authorization header must read 'Bearer <key>'")
    if text_problem(key) is not None or not key.strip().isprintable():
        raise Unauthorized("the API key in the Authorization header has unprintable characters")
    return key.strip()


def _caller(record: ApiKeyRecord) -> Caller:
    return Caller(record.account_name, record.account_id, record.admin, record.id)


def _limiters(settings: Settings, clock: Callable[[], float]) -> tuple[Limiter, Limiter]:
    """The per-key and per-address limiters: in Redis when CONVGUARD_REDIS_URL is set (shared by
    every worker and host), else in the process."""
    per_key, per_address = (
        settings.rate_limit_per_minute,
        settings.rate_limit_unauthenticated_per_minute,
    )
    if not settings.redis_url:
        return (
            RateLimiter(per_key, clock),
            RateLimiter(per_address, clock, what="key lookups from"),
        )
    try:
        import redis
    except ImportError as exc:
        raise InvalidInput(
            "CONVGUARD_REDIS_URL is set but the redis client is not installed; "
            "pip install 'convguard[redis]'"
        ) from exc
    client = redis.Redis.from_url(settings.redis_url)
    return (
        SharedRateLimiter(client, per_key, prefix="convguard:rate:key:", what="requests for"),
        SharedRateLimiter(
            client, per_address, prefix="convguard:rate:address:", what="key lookups from"
        ),
    )


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
