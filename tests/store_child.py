"""A child process for the store's crash and concurrency tests (run by tests/test_store.py).

    python store_child.py URL CONVERSATION LEAF MODE [GO_FILE [RELEASE_FILE]]

Opens the store, prints ``ready``, waits for GO_FILE (when given), then appends one turn on LEAF
and prints ``landed`` or ``conflict``. MODE changes one internal step of the write:

- ``plain``: nothing;
- ``hang``: after the user message is inserted (inside the transaction) print ``inserted`` and
  sleep, so the parent can kill the process with the turn half-written and uncommitted;
- ``hold``: after the leaf is claimed print ``claimed`` and wait for RELEASE_FILE before
  committing, so another process can try the same leaf meanwhile;
- ``chain=N``: LEAF is ignored; N times, append a turn ``from PID turn I`` to the conversation's
  one current leaf, reloading and trying again after each :class:`LeafConflict`, then print
  ``landed N conflicts C``.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from convguard import Assessment, default_policy
from convguard.conversation import Allow
from convguard.errors import LeafConflict
from convguard.store import NewMessage, Store, TurnDecision, open_store, turns


def wait_for(path: str) -> None:
    deadline = time.monotonic() + 60
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {path}")
        time.sleep(0.01)


def chain(store: Store, conversation_id: str, count: int, decision: TurnDecision) -> None:
    conflicts = 0
    for i in range(count):
        while True:
            (leaf,) = store.leaves(conversation_id)
            try:
                store.append_turn(
                    conversation_id,
                    leaf_id=leaf.id,
                    user=NewMessage("user", f"from {os.getpid()} turn {i}"),
                    decision=decision,
                    reply=NewMessage("assistant", "a reply"),
                    now=datetime.now(UTC),
                )
            except LeafConflict:
                conflicts += 1
            else:
                break
    print(f"landed {count} conflicts {conflicts}", flush=True)


def main(url: str, conversation_id: str, leaf_id: str, mode: str, *files: str) -> None:
    if mode == "hang":
        insert = turns.insert_message

        def hanging_insert(*args: Any, **kwargs: Any) -> Any:
            record = insert(*args, **kwargs)
            if kwargs["role"] == "user":
                print("inserted", flush=True)
                time.sleep(120)
            return record

        turns.insert_message = hanging_insert
    elif mode == "hold":
        claim = turns.claim_leaf

        def holding_claim(*args: Any, **kwargs: Any) -> Any:
            slot = claim(*args, **kwargs)
            print("claimed", flush=True)
            wait_for(files[1])
            return slot

        turns.claim_leaf = holding_claim

    policy = default_policy()
    decision = TurnDecision(
        Allow(reason="fine"), Assessment.from_labels(policy), policy.version, 1.0, 0.1
    )
    store = open_store(url)
    try:
        print("ready", flush=True)
        if files:
            wait_for(files[0])
        if mode.startswith("chain="):
            chain(store, conversation_id, int(mode.removeprefix("chain=")), decision)
            return
        try:
            store.append_turn(
                conversation_id,
                leaf_id=leaf_id,
                user=NewMessage("user", f"from {mode}"),
                decision=decision,
                reply=NewMessage("assistant", "a reply"),
                now=datetime.now(UTC),
            )
        except LeafConflict:
            print("conflict", flush=True)
        else:
            print("landed", flush=True)
    finally:
        store.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
