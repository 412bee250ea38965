"""convguard: conversation safeguards for LLM chat products and agents.

The public names below load on first use (PEP 562), so ``import convguard`` — and every command
that imports a submodule, such as the Claude Code hook — pays only for what it touches. The
version lives in one place, ``__version__`` here (``pyproject.toml`` reads it from this file).
"""

import sys as _sys
import typing as _typing
from importlib import import_module as _import_module
from types import ModuleType as _ModuleType

if _typing.TYPE_CHECKING:
    from convguard.assess.default import assess
    from convguard.assess.types import (
        Assessment,
        Assessor,
        Classifier,
        Evidence,
        ScriptedAssessor,
    )
    from convguard.conversation import (
        Allow,
        ConfirmEnd,
        ConversationState,
        Decision,
        End,
        Guide,
        Message,
        Redirect,
        Step,
        Support,
        Warn,
        decide,
        fold,
    )
    from convguard.errors import (
        ClassifierError,
        ConversationEnded,
        ConvguardError,
        InvalidInput,
        LeafConflict,
        NotFound,
        PolicyError,
        StoreError,
        TranscriptError,
    )
    from convguard.policy import (
        CATEGORY_IDS,
        FLAG_IDS,
        Policy,
        default_policy,
        load_policy,
        parse_policy,
    )

__version__ = "0.1.0"

_SOURCES: dict[str, tuple[str, ...]] = {
    "convguard.assess.default": ("assess",),
    "convguard.assess.types": (
        "Assessment",
        "Assessor",
        "Classifier",
        "Evidence",
        "ScriptedAssessor",
    ),
    "convguard.conversation": (
        "Allow",
        "ConfirmEnd",
        "ConversationState",
        "Decision",
        "End",
        "Guide",
        "Message",
        "Redirect",
        "Step",
        "Support",
        "Warn",
        "decide",
        "fold",
    ),
    "convguard.errors": (
        "ClassifierError",
        "ConversationEnded",
        "ConvguardError",
        "InvalidInput",
        "LeafConflict",
        "NotFound",
        "PolicyError",
        "StoreError",
        "TranscriptError",
    ),
    "convguard.policy": (
        "CATEGORY_IDS",
        "FLAG_IDS",
        "Policy",
        "default_policy",
        "load_policy",
        "parse_policy",
    ),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}

__all__ = [
    "CATEGORY_IDS",
    "FLAG_IDS",
    "Allow",
    "Assessment",
    "Assessor",
    "Classifier",
    "ClassifierError",
    "ConfirmEnd",
    "ConversationEnded",
    "ConversationState",
    "ConvguardError",
    "Decision",
    "End",
    "Evidence",
    "Guide",
    "InvalidInput",
    "LeafConflict",
    "Message",
    "NotFound",
    "Policy",
    "PolicyError",
    "Redirect",
    "ScriptedAssessor",
    "Step",
    "StoreError",
    "Support",
    "TranscriptError",
    "Warn",
    "__version__",
    "assess",
    "decide",
    "default_policy",
    "fold",
    "load_policy",
    "parse_policy",
]


def __getattr__(name: str) -> _typing.Any:
    if name in _MODULE_OF:
        value = getattr(_import_module(_MODULE_OF[name]), name)
    else:
        raise AttributeError(f"module 'convguard' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(_ModuleType):
    """Importing the subpackage ``convguard.assess`` binds it on this package; the public
    ``convguard.assess`` is the function, so that binding is skipped (the subpackage stays
    importable by its dotted name)."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == "assess" and isinstance(value, _ModuleType):
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
