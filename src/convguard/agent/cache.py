"""The compiled cache: what is slow to rebuild from its sources, kept as plain JSON between runs.

The Claude Code hook is a fresh process for every tool call, so whatever the agent guard builds at
start-up it builds again for every call: the rules parsed from YAML and validated, the command
model's weights read with numpy. Both are kept here, as plain data (JSON, never pickle), in the
user's cache folder (``$XDG_CACHE_HOME/convguard``, by default ``~/.cache/convguard``), one file
per ``name``, each holding the key it was built for.

Invariants:
- the key is a hash of every source's content, of the code that builds the entry (:func:`code`:
  a change to the loader rebuilds entries even within one version), and of the cache format,
  convguard's version and the Python version (see :func:`fingerprint`), so an entry is only ever
  used for exactly the sources and code it was built from; anything changed, added or removed
  gives a new key, and the entry is rebuilt and replaced;
- an entry that cannot be read, is not JSON or holds another key counts as missing: the caller
  rebuilds from the sources, which stay the truth;
- entries are written atomically (a temporary file in the same folder, then a rename), so a
  reader never sees half an entry, even with many hooks running at once;
- a cache folder that cannot be created or written only costs speed: every call then rebuilds
  from the sources, and nothing fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from convguard import __version__

__all__ = ["cache_dir", "code", "fingerprint", "read", "write"]

#: Raised to change the layout of every entry at once (each caller also hashes its own format).
FORMAT = 1


def cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """``$XDG_CACHE_HOME/convguard``, else ``~/.cache/convguard``; ``None`` without a home."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME")
    if base and Path(base).is_absolute():
        return Path(base) / "convguard"
    try:
        return Path.home() / ".cache" / "convguard"
    except RuntimeError:  # no home folder: nowhere to keep a cache
        return None


def fingerprint(*parts: str | bytes) -> str:
    """A hash of ``parts`` (each length-prefixed, so no two lists of parts collide), the cache
    format, convguard's version and the Python version."""
    digest = hashlib.sha256()
    for part in (str(FORMAT), __version__, sys.version, *parts):
        data = part.encode("utf-8") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def code(*modules: str) -> bytes:
    """The source of these modules of :mod:`convguard.agent` (``"engine.py"``), for a key: what
    they build is what is cached. A module shipped without its source counts as empty (the
    version in the key still changes with every release)."""
    here = Path(__file__).parent
    out = b""
    for module in modules:
        try:
            out += (here / module).read_bytes()
        except OSError:
            continue
    return out


def _path(name: str) -> Path | None:
    folder = cache_dir()
    return None if folder is None else folder / f"{name}.json"


def read(name: str, key: str) -> Any | None:
    """The value stored under ``name`` for ``key``; ``None`` when there is none, it was built for
    another key, or the entry is unreadable or corrupt."""
    path = _path(name)
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            entry = json.load(handle)
    except (OSError, ValueError):  # missing, unreadable, not UTF-8 or not JSON: rebuilt
        return None
    if not isinstance(entry, dict) or entry.get("key") != key or "value" not in entry:
        return None
    return entry["value"]


def write(name: str, key: str, value: Any) -> None:
    """Store ``value`` (plain JSON data) under ``name`` for ``key``, atomically; a folder that
    cannot be written leaves the cache as it was (the next run rebuilds again)."""
    path = _path(name)
    if path is None:
        return
    data = json.dumps({"key": key, "value": value}, ensure_ascii=False).encode("utf-8")
    temporary: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
        temporary = None
    except OSError:  # read-only or full: only speed is lost, the sources stay the truth
        pass
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
