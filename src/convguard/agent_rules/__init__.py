"""Private building blocks of :mod:`convguard.agent`: the shell parser, the command rules, the
technique rules (macOS, cloud, containers, Windows, whole-call patterns), the command-token model,
and the checks on code, file writes and addresses. Import from :mod:`convguard.agent`, not from
here.

Everything here is pure: strings in, parsed commands and findings out; nothing is ever executed.
"""
