"""The scope of an engagement: what a deployment authorises the agent guard to let through.

A :class:`Scope` is the only thing that authorises a scan or attack tool, and only when every
target it names lies inside the scope's hosts or networks; it also lets deletes and writes under
its paths through, and switches rules off by id. :func:`load_scope` reads one from a YAML or JSON
file (``CONVGUARD_AGENT_SCOPE``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convguard.agent import cache as compiled_cache
from convguard.agent.paths import fold_home
from convguard.errors import InvalidInput

__all__ = ["Scope", "load_scope"]


@dataclass(frozen=True)
class Scope:
    """What an engagement authorises: hosts (names, ``*.example.com``), networks (CIDR), paths
    (files under them may be deleted or written freely) and tools (security programs allowed;
    empty: any); and which rules (by id) this deployment has switched off."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    paths: tuple[str, ...] = ()
    tools: frozenset[str] = frozenset()
    #: Rule ids switched off for this deployment (``disable:`` in the scope file).
    disabled: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        *,
        hosts: Iterable[str] = (),
        networks: Iterable[str] = (),
        paths: Iterable[str] = (),
        tools: Iterable[str] = (),
        disabled: Iterable[str] = (),
    ) -> Scope:
        nets = []
        for net in networks:
            try:
                nets.append(ipaddress.ip_network(net, strict=False))
            except ValueError as exc:
                raise InvalidInput(
                    f"scope network {net!r} is not a network; write it in CIDR form, "
                    "e.g. '10.0.0.0/24'"
                ) from exc
        return cls(
            hosts=frozenset(h.lower() for h in hosts),
            networks=tuple(nets),
            paths=tuple(fold_home(p).rstrip("/") for p in paths),
            tools=frozenset(t.lower() for t in tools),
            disabled=frozenset(disabled),
        )

    def covers_host(self, host: str) -> bool:
        host = host.lower().strip("[]")
        if host in self.hosts or any(
            h.startswith("*.") and host.endswith(h[1:]) for h in self.hosts
        ):
            return True
        try:
            target = ipaddress.ip_network(host, strict=False)
        except ValueError:
            return False
        return any(
            target.version == net.version and target.subnet_of(net)  # type: ignore[arg-type]
            for net in self.networks
        )

    def covers_path(self, path: str) -> bool:
        folded = fold_home(path).rstrip("/")
        return any(folded == p or folded.startswith(p + "/") for p in self.paths)


def load_scope(path: str | Path) -> Scope:
    """Read a scope file (YAML or JSON) with the optional lists ``hosts``, ``networks`` (CIDR),
    ``paths``, ``tools`` and ``disable`` (rule ids to switch off)::

        hosts: [staging.example.com, "*.lab.example.com"]
        networks: [10.10.0.0/16]
        paths: [/srv/engagement]
        tools: [nmap, nikto, sqlmap]
        disable: [linux.screenshot]

    A disabled id must name a known rule (see ``convguard rules list``): a misspelt id would
    silently keep the rule on.
    """
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"cannot read scope file {str(path)!r}: {exc}; pass a readable YAML or JSON file"
        ) from exc
    parsed = _validated(text, str(path))
    disable = parsed["disable"]
    if disable:
        from convguard.agent.engine import default_rules

        known = default_rules().ids()
        unknown = [rule_id for rule_id in disable if rule_id not in known]
        if unknown:
            raise InvalidInput(
                f"scope file {str(path)!r}: disable names no known rule: {unknown[0]!r}; "
                "'convguard rules list' prints the rule ids"
            )
    return Scope.of(
        hosts=parsed["hosts"],
        networks=parsed["networks"],
        paths=parsed["paths"],
        tools=parsed["tools"],
        disabled=disable,
    )


_CACHE_NAME = "scope"
_CACHE_FORMAT = "scope-1"


def _validated(text: str, source: str) -> dict[str, Any]:
    """The scope file's fields as plain data, from the compiled cache when this very text was read
    before (the hook reads the scope on every tool call), else parsed and validated (YAML and
    pydantic load here only)."""
    key = compiled_cache.fingerprint(
        _CACHE_FORMAT, compiled_cache.code("scope.py", "schema.py"), source, text
    )
    cached = compiled_cache.read(_CACHE_NAME, key)
    fields = ("hosts", "networks", "paths", "tools", "disable")
    if isinstance(cached, dict) and all(
        isinstance(cached.get(f), list) and all(isinstance(v, str) for v in cached[f])
        for f in fields
    ):
        return cached
    import yaml

    from convguard.agent.schema import validated_scope

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(
            f"cannot read scope file {source!r}: {exc}; pass a readable YAML or JSON file"
        ) from exc
    parsed = validated_scope(document, source)
    compiled_cache.write(_CACHE_NAME, key, parsed)
    return parsed
