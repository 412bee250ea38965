"""Checks of :mod:`convguard.agent` that still need code, beside the YAML rules of
``convguard/agent/rules``: deletes, permission changes, writes and redirections judged by their
targets, secrets among arguments, uploads, services, accounts, and what one call's commands add
up to (droppers, discovery runs, planted files). Import from :mod:`convguard.agent`, not from
here; their findings carry ids starting ``py.``.

Everything here is pure: strings in, parsed commands and findings out; nothing is ever executed.
"""
