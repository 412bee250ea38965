"""Private building blocks of :mod:`convguard.agent`: the shell parser, the command rules, and the
checks on code, file writes and addresses. Import from :mod:`convguard.agent`, not from here.

Everything here is pure: strings in, parsed commands and findings out; nothing is ever executed.
"""
