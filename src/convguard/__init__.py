"""convguard: conversation safeguards for LLM chat products and agents."""

from convguard.assess.default import assess
from convguard.assess.types import Assessment, Assessor, Classifier, Evidence, ScriptedAssessor
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
