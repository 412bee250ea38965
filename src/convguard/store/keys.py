"""API keys: made here, shown once, kept only as their SHA-256.

A key is ``cg_`` and 32 random bytes in URL-safe base64 (:func:`secrets.token_urlsafe`), so it is
long enough that a plain SHA-256 is the right hash (no salt or slow hash needed: nothing to
brute-force). Authenticating hashes the presented key and looks the digest up through its unique
index, so no key is ever compared character by character in Python.

Invariants:
- the plaintext key leaves :func:`insert_key` once and is stored nowhere;
- a revoked key never authenticates again, and revoking keeps the first ``revoked_at``;
- ``prefix`` (the first :data:`PREFIX_LENGTH` characters) is for display only: it is not secret
  and not unique.

Functions here run inside a transaction the caller opened.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from convguard.errors import NotFound
from convguard.store import rows
from convguard.store import tables as t
from convguard.store.records import AccountRecord, ApiKeyRecord

__all__ = [
    "KEY_PREFIX",
    "PREFIX_LENGTH",
    "digest",
    "insert_key",
    "key_by_digest",
    "keys_of",
    "new_key",
    "revoke_key",
]

KEY_PREFIX = "cg_"
PREFIX_LENGTH = 10


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str | None:
    """The SHA-256 hex of ``key``; None for what cannot be a key (not text, or not encodable)."""
    if not isinstance(key, str):
        return None
    try:
        return hashlib.sha256(key.encode("utf-8")).hexdigest()
    except UnicodeEncodeError:
        return None


def _select() -> sa.Select[tuple[object, ...]]:
    return sa.select(t.api_keys, t.accounts.c.name.label("account_name")).join(
        t.accounts, t.accounts.c.id == t.api_keys.c.account_id
    )


def insert_key(
    conn: Connection, account: AccountRecord, *, admin: bool, label: str | None, now: datetime
) -> tuple[str, ApiKeyRecord]:
    """Make a key for ``account``; the plaintext key (shown once) and its record."""
    key = new_key()
    hashed = digest(key)
    assert hashed is not None
    record = ApiKeyRecord(
        id=rows.new_id(),
        account_id=account.id,
        account_name=account.name,
        admin=bool(admin),
        prefix=key[:PREFIX_LENGTH],
        label=None if label is None else rows.check_text("key label", label),
        created_at=now,
        revoked_at=None,
    )
    values = {k: v for k, v in vars(record).items() if k != "account_name"}
    conn.execute(sa.insert(t.api_keys).values(**values, key_hash=hashed))
    return key, record


def key_by_digest(conn: Connection, hashed: str) -> ApiKeyRecord | None:
    row = conn.execute(_select().where(t.api_keys.c.key_hash == hashed)).first()
    return None if row is None else rows.api_key_record(row)


def keys_of(conn: Connection, account_id: str) -> list[ApiKeyRecord]:
    """The account's keys, revoked ones included, oldest first."""
    result = conn.execute(
        _select().where(t.api_keys.c.account_id == account_id).order_by(t.api_keys.c.pk)
    )
    return [rows.api_key_record(row) for row in result]


def sweep_keys(conn: Connection, label: str, created_before: datetime, limit: int) -> int:
    """Delete up to ``limit`` keys labelled ``label`` that are revoked or were created before
    ``created_before``; how many went."""
    k = t.api_keys.c
    doomed = (
        sa.select(k.pk)
        .where(k.label == label, sa.or_(k.revoked_at.is_not(None), k.created_at < created_before))
        .limit(limit)
        .scalar_subquery()
    )
    return conn.execute(sa.delete(t.api_keys).where(k.pk.in_(doomed))).rowcount


def revoke_key(conn: Connection, key_id: str, now: datetime) -> ApiKeyRecord:
    """Revoke the key ``key_id`` (a revoked key stays revoked as it was); its record."""
    found = conn.execute(sa.select(t.api_keys.c.pk).where(t.api_keys.c.id == key_id)).first()
    if found is None:
        raise NotFound(f"API key {key_id!r} does not exist; list the account's keys for their ids")
    conn.execute(
        sa.update(t.api_keys)
        .where(t.api_keys.c.id == key_id, t.api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return rows.api_key_record(conn.execute(_select().where(t.api_keys.c.id == key_id)).one())
