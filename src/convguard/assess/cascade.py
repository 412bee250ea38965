"""The cascade: a fast stage answers most messages; slower stages decide only what it is unsure of.

Stages are :class:`~convguard.assess.types.Classifier` objects in order (by default the hashed
n-gram ``linear`` stage, then the MiniLM ``encoder``; optionally a remote ``judge`` last; a
third-party stage registers under the ``convguard.classifiers`` entry-point group). For each text,
a text with a label whose score from one stage lies inside the *unsure band* (or with a hidden view
that normalisation decoded) is asked of the next stage: with ``replace`` the next stage's scores
replace the earlier ones for every label; with ``mean`` or ``max`` each unsure label's two scores
are combined and confident labels keep theirs; with ``stack`` (the shipped rule) the second stage's
scores replace the first's, except that whether the text is harmful at all is decided by both:
the encoder's harmful logit plus ``weight`` times the linear stage's (the two read different
things - meaning and wording - and together they catch more at the same false-alarm rate), mapped
so that 0.5 and 0.8 are the stacked score's flag and strike points; the encoder's category
heads still say which category. Optionally (``linear,encoder,mpnet``) a *refining* stage reads
again the texts whose stacked decision is close to the flag point and moves it
(:class:`Refinement`, :mod:`convguard.assess.mpnet`). The band, the rule and the stacking
parameters that
:func:`build_cascade` uses are chosen on validation data by ``training/cascade.py`` and shipped in
``weights/cascade.json`` (:class:`CascadeTuning`).

The conversation window (B8): a user turn with context is also scored as one text together with
the last few user turns, and a short follow-up with a pronoun also with the pronoun replaced by
the thing an earlier turn asked about (:mod:`convguard.assess.reference`). A window score over
threshold counts for the current turn only when neither the current turn nor any earlier turn
alone is over it — a request split across turns or built up gradually is caught, and an old
flagged turn does not taint every later one.

On assistant text the same categories are scored; the user-only flags are dropped and
``distress`` comes from :mod:`convguard.welfare`.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.metadata import entry_points
from typing import Any, Literal, Protocol, TypeVar, get_args

from convguard.assess.normalise import Normalised, normalise
from convguard.assess.passages import passages as passages_of
from convguard.assess.reference import resolve_reference
from convguard.assess.types import Assessment, Classifier, Evidence, Role, highest_by_owner
from convguard.errors import ClassifierError, ConvguardError, InvalidInput
from convguard.policy import CATEGORY_IDS, FLAG_IDS, Policy

__all__ = [
    "COMBINE_RULES",
    "DEFAULT_STAGES",
    "ENTRY_POINT_GROUP",
    "WINDOW_CHARS",
    "Cascade",
    "CascadeTuning",
    "available_stages",
    "build_cascade",
    "load_tuning",
]

ENTRY_POINT_GROUP = "convguard.classifiers"
DEFAULT_STAGES: tuple[str, ...] = ("linear", "encoder")
#: The ``jailbreak`` score a strong obfuscation gets by itself.
OBFUSCATION_SCORE = 0.75
USER_ONLY_FLAGS = ("jailbreak", "user_requests_end", "imminent_risk", "abuse_toward_assistant")
WINDOW_TURNS = 3
#: The joined window keeps its latest characters (the encoder reads ~256 tokens from the start).
WINDOW_CHARS = 1200
#: Scores of recent texts kept per cascade: a turn's context was assessed on the earlier turns.
CACHE_TEXTS = 2048
#: Of a long user text's passages (:mod:`convguard.assess.passages`), the first stage screens
#: all and this many of the most suspicious (some category at :data:`PASSAGE_SCREEN` or over)
#: are read again through the whole cascade.
PASSAGES_READ = 2
#: A passage is suspicious when the first stage scores some category at least this. Above the
#: band's low end (0.10) so that fewer are read again: on the robustness benchmark's hidden
#: requests 85.2 % were caught at 0.3 against 86.3 % at 0.10, for a third less added time.
PASSAGE_SCREEN = 0.3
#: The categories a passage read alone can raise: all but hate and harassment, whose reading
#: depends most on the text around a sentence (one that names an identity or quotes an insult).
#: Measured on the robustness benchmark's hidden requests and Wikipedia identity comments:
#: with them, 89.3 % caught and 12 more comments flagged (of 1,244); without, 86.3 % and 3.
#: Passages are still screened on every category: screening on these alone caught 82.6 % of the
#: hidden requests against 83.7 % (a passage the first stage reads as hate can hold a request
#: the whole cascade reads as another category).
PASSAGE_CATEGORIES: tuple[str, ...] = tuple(
    c for c in CATEGORY_IDS if c not in ("hate", "harassment")
)

_T = TypeVar("_T")
StageFactory = Callable[[Policy, Mapping[str, Any]], Classifier]
Combine = Literal["replace", "mean", "max", "stack"]
COMBINE_RULES: tuple[Combine, ...] = get_args(Combine)


@dataclass(frozen=True)
class Refinement:
    """The third stage's part of the stacked decision (``stack`` only; ``training/mpnet_stage.py``).

    ``c`` is the logit of the two-stage stacked harmful score (0 at its flag point). A text with
    ``|c| <= band`` is read by the refining stage, whose logit ``m`` (0 at its own flag point) is
    added as ``c + weight * m``; every stacked text's ``c`` (so refined or not) is then mapped
    again so that 0.5 and 0.8 are the sum's flag and strike points, ``flag_logit`` and
    ``strike_logit``, chosen on realistic benign chat.
    """

    stage: str = "mpnet"
    band: float = 1.0
    weight: float = 0.25
    flag_logit: float = 0.0
    strike_logit: float = math.log(4.0)

    def __post_init__(self) -> None:
        if not self.band >= 0.0 or not self.weight >= 0.0:
            raise InvalidInput(
                f"the cascade's refinement band ({self.band}) and weight ({self.weight}) must "
                "not be negative; rerun training/mpnet_stage.py"
            )
        if not self.strike_logit > self.flag_logit:
            raise InvalidInput(
                f"the cascade's refined strike point ({self.strike_logit}) must lie above its "
                f"flag point ({self.flag_logit}); rerun training/mpnet_stage.py"
            )

    def reads(self, top: float) -> bool:
        """Whether a text whose stacked harmful score is ``top`` goes to the refining stage."""
        return abs(_logit(top)) <= self.band

    def harmful(self, top: float, logit: float | None) -> float:
        """The refined harmful score of a text stacked at ``top`` (``logit``: the refining
        stage's, None when it did not read the text)."""
        c = _logit(top) + (0.0 if logit is None else self.weight * logit)
        slope = (_logit(STRIKE_P) - _logit(FLAG_P)) / (self.strike_logit - self.flag_logit)
        return _sigmoid(slope * (c - self.flag_logit) + _logit(FLAG_P))


class Refiner(Protocol):
    """A stage that reads the texts the stack is unsure of (:class:`Refinement`)."""

    name: str

    def logits(self, texts: Sequence[str]) -> list[float]: ...


@dataclass(frozen=True)
class CascadeTuning:
    """When a text goes on to the next stage (a label in ``[low, high]``) and how scores combine."""

    low: float = 0.2
    high: float = 0.8
    combine: Combine = "replace"
    #: ``stack`` only: the linear stage's weight, and the stacked logit's flag and strike points.
    weight: float = 0.0
    flag_logit: float = 0.0
    strike_logit: float = math.log(4.0)
    #: ``stack`` only: the categories whose first-stage scores count (all when empty).
    stacked: tuple[str, ...] = ()
    #: ``stack`` only: the first stage's logit is clipped to ``[-clip, clip]``, so its certainty
    #: alone (a lexical model is sure of odd things) moves the decision by at most
    #: ``weight * clip``.
    clip: float = 4.0
    #: ``stack`` only: the third stage's calibration, when one was trained.
    refine: Refinement | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.low <= self.high <= 1.0:
            raise InvalidInput(
                f"the cascade's unsure band [{self.low}, {self.high}] must satisfy "
                "0 <= low <= high <= 1"
            )
        if self.combine not in COMBINE_RULES:
            raise InvalidInput(
                f"unknown cascade combine rule {self.combine!r}; use one of "
                f"{', '.join(COMBINE_RULES)}"
            )
        unknown = sorted(set(self.stacked) - set(CATEGORY_IDS))
        if unknown:
            raise InvalidInput(
                f"the cascade's stacked categories {unknown} are not policy categories; "
                "rerun training/cascade.py"
            )
        if not self.strike_logit > self.flag_logit:
            raise InvalidInput(
                f"the cascade's strike point ({self.strike_logit}) must lie above its flag point "
                f"({self.flag_logit}); rerun training/cascade.py"
            )

    def stack(self, earlier: Mapping[str, float], later: Mapping[str, float]) -> dict[str, float]:
        """``later`` with its category scores rescaled so the top one is the stacked harmful
        probability of both stages (the later stage's share between categories is kept)."""
        top = max((later.get(c, 0.0) for c in CATEGORY_IDS), default=0.0)
        first = max((earlier.get(c, 0.0) for c in self.stacked or CATEGORY_IDS), default=0.0)
        z = _logit(top) + self.weight * min(max(_logit(first), -self.clip), self.clip)
        slope = (_logit(STRIKE_P) - _logit(FLAG_P)) / (self.strike_logit - self.flag_logit)
        harmful = _sigmoid(slope * (z - self.flag_logit) + _logit(FLAG_P))
        stacked = dict(later)
        for c in CATEGORY_IDS:
            share = later.get(c, 0.0) / top if top > 0.0 else 0.0
            stacked[c] = harmful * share
        return stacked

    def merge(self, earlier: float, later: float) -> float:
        if self.combine == "mean":
            return (earlier + later) / 2
        if self.combine == "max":
            return max(earlier, later)
        return later


#: The probabilities the policy's default threshold and strike mean (``default_policy.yaml``).
FLAG_P = 0.5
STRIKE_P = 0.8


def _logit(p: float) -> float:
    p = min(max(p, 1e-7), 1.0 - 1e-7)
    return math.log(p / (1.0 - p))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-min(max(z, -60.0), 60.0)))


def load_tuning() -> CascadeTuning:
    """The shipped ``weights/cascade.json`` (``training/cascade.py``), else the defaults."""
    path = resources.files("convguard.assess") / "weights" / "cascade.json"
    if not path.is_file():
        return CascadeTuning()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return CascadeTuning(
            float(data["low"]),
            float(data["high"]),
            data["combine"],
            weight=float(data.get("weight", 0.0)),
            flag_logit=float(data.get("flag_logit", 0.0)),
            strike_logit=float(data.get("strike_logit", math.log(4.0))),
            stacked=tuple(str(c) for c in data.get("stacked", ())),
            clip=float(data.get("clip", 4.0)),
            refine=_refinement(data.get("refine")),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ClassifierError(
            f"{path} is not a valid cascade tuning file ({exc}); rerun training/cascade.py "
            "or reinstall convguard"
        ) from exc


def _refinement(data: Any) -> Refinement | None:
    if data is None:
        return None
    return Refinement(
        str(data["stage"]),
        band=float(data["band"]),
        weight=float(data["weight"]),
        flag_logit=float(data["flag_logit"]),
        strike_logit=float(data["strike_logit"]),
    )


def _linear(policy: Policy, options: Mapping[str, Any]) -> Classifier:
    from convguard.assess.linear import LinearClassifier

    return LinearClassifier.load()


def _encoder(policy: Policy, options: Mapping[str, Any]) -> Classifier:
    from convguard.assess.encoder import EncoderClassifier

    return EncoderClassifier()


def _judge(policy: Policy, options: Mapping[str, Any]) -> Classifier:
    from convguard.assess.judge import RemoteJudge

    url = options.get("judge_url")
    if not url:
        raise InvalidInput(
            "the 'judge' stage needs CONVGUARD_JUDGE_URL (an OpenAI-compatible base URL)"
        )
    return RemoteJudge(
        policy,
        url=url,
        format=options.get("judge_format", "llama_guard"),
        model=options.get("judge_model"),
        api_key=options.get("judge_api_key"),
        timeout=float(options.get("judge_timeout", 10.0)),
    )


BUILTIN_STAGES: Mapping[str, StageFactory] = {
    "linear": _linear,
    "encoder": _encoder,
    "judge": _judge,
}


def _mpnet() -> Refiner:
    from convguard.assess.mpnet import MpnetStage

    stage = MpnetStage()
    stage.check()
    return stage


#: Stages that refine the stacked decision of the two before them (:class:`Refinement`).
REFINING_STAGES: Mapping[str, Callable[[], Refiner]] = {"mpnet": _mpnet}


def available_stages() -> dict[str, StageFactory]:
    """Built-in stages and those registered under the ``convguard.classifiers`` group."""
    stages: dict[str, StageFactory] = dict(BUILTIN_STAGES)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        stages.setdefault(point.name, point.load())
    return stages


def build_cascade(
    policy: Policy,
    stages: Sequence[str] | None = None,
    *,
    options: Mapping[str, Any] | None = None,
) -> Cascade:
    """The cascade of ``stages`` (by default linear and encoder) with the shipped tuning.

    A refining stage (``mpnet``) comes last, after exactly two stages that are stacked, and
    needs its calibration in ``cascade.json``."""
    known = available_stages()
    chosen = tuple(stages or DEFAULT_STAGES)
    for name in chosen:
        if name not in known and name not in REFINING_STAGES:
            raise InvalidInput(
                f"unknown classifier stage {name!r} (CONVGUARD_CLASSIFIER); "
                f"available: {', '.join(sorted([*known, *REFINING_STAGES]))}"
            )
    tuning = load_tuning()
    refiner = None
    if any(name in REFINING_STAGES for name in chosen):
        name = chosen[-1]
        if name not in REFINING_STAGES or len(chosen) != 3 or chosen[1] in REFINING_STAGES:
            raise InvalidInput(
                f"CONVGUARD_CLASSIFIER={','.join(chosen)}: a refining stage "
                f"({', '.join(REFINING_STAGES)}) comes last, after two stages such as "
                "'linear,encoder,mpnet'"
            )
        if tuning.combine != "stack" or tuning.refine is None or tuning.refine.stage != name:
            raise InvalidInput(
                f"the shipped cascade tuning has no calibration for the {name!r} stage; run "
                f"`python training/train.py --stages {name}`, or leave it out with "
                f"CONVGUARD_CLASSIFIER={','.join(chosen[:-1])}"
            )
        refiner = REFINING_STAGES[name]()
        chosen = chosen[:-1]
    options = options or {}
    return Cascade(
        policy,
        [known[name](policy, options) for name in chosen],
        tuning=tuning,
        read_passages=bool(options.get("read_passages", True)),
        refiner=refiner,
    )


def _guarded(name: str, call: Callable[[], _T]) -> _T:
    """``call()``, a stage's own failure (anything but a ConvguardError) as a ClassifierError."""
    try:
        return call()
    except ConvguardError:
        raise
    except Exception as exc:
        raise ClassifierError(
            f"classifier stage {name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


def _run(stage: Classifier, texts: list[str]) -> list[dict[str, float]]:
    return _guarded(stage.name, lambda: stage.score(texts))


class Cascade:
    """An :class:`~convguard.assess.types.Assessor` over a chain of classifier stages."""

    def __init__(
        self,
        policy: Policy,
        stages: Sequence[Classifier],
        *,
        tuning: CascadeTuning | None = None,
        window_turns: int = WINDOW_TURNS,
        read_passages: bool = True,
        refiner: Refiner | None = None,
    ) -> None:
        if not stages:
            raise InvalidInput("a cascade needs at least one stage")
        if refiner is not None and (
            len(stages) != 2
            or tuning is None
            or tuning.combine != "stack"
            or tuning.refine is None
            or tuning.refine.stage != refiner.name
        ):
            raise InvalidInput(
                f"the refining stage {refiner.name!r} needs two stacked stages before it and "
                "its calibration in the tuning (CascadeTuning.refine)"
            )
        self.policy = policy
        self.stages = tuple(stages)
        self.tuning = tuning or CascadeTuning()
        #: The third stage, for texts whose stacked decision is close (:class:`Refinement`).
        self.refiner = refiner
        self.window_turns = window_turns
        #: Whether long user texts are also read passage by passage (:meth:`read_passages`).
        self.passages = read_passages
        self.labels = CATEGORY_IDS + FLAG_IDS
        #: Recently scored texts: their scores, evidence and normalised text.
        self._cache: OrderedDict[str, tuple[dict[str, float], list[Evidence], str]] = OrderedDict()
        self._cache_lock = threading.Lock()

    # --- scoring many texts through the stages -------------------------------------------------

    def score(
        self, texts: Sequence[str], *, passages: bool | None = None
    ) -> tuple[list[dict[str, float]], list[list[Evidence]]]:
        """Scores of every text after the cascade, and which stage gave each label its score.

        A text goes on to the next stage when some label's score lies in the unsure band, or when
        normalisation found a hidden view (a decoded payload, a leetspeak reading); the next stage
        scores the normalised text and every view, each label taking its highest. With the
        ``replace`` rule the next stage's scores replace the earlier ones for every label (the
        next stage is the stronger model; a score under the band from a weak stage is no
        evidence of safety); ``mean`` and ``max`` combine each unsure label's two scores;
        ``stack`` is ``replace`` with the harmful decision of both stages
        (:meth:`CascadeTuning.stack`).

        With ``passages`` (by default the cascade's ``read_passages``; as for user input,
        :meth:`assess` reads assistant replies without), a long text is also read passage by
        passage: see :meth:`read_passages`.
        """
        scores, evidence, _ = self._score(texts, passages=passages)
        return scores, evidence

    def _score(
        self, texts: Sequence[str], *, passages: bool | None = None
    ) -> tuple[list[dict[str, float]], list[list[Evidence]], list[str]]:
        """:meth:`score`, and each text as normalised (what its passages are read from)."""
        views = [normalise(t) for t in texts]
        first = self.stages[0]
        scores = [dict(s) for s in _run(first, list(texts))]
        sources = [dict.fromkeys(s, first.name) for s in scores]
        low, high = self.tuning.low, self.tuning.high
        for position, stage in enumerate(self.stages[1:], start=1):
            pending = [
                i
                for i, s in enumerate(scores)
                if views[i].views or any(low <= s.get(label, 0.0) <= high for label in self.labels)
            ]
            if not pending:
                break
            flat: list[str] = []
            owner: list[int] = []
            for i in pending:
                for view in views[i].texts:
                    flat.append(view)
                    owner.append(i)
            answers = highest_by_owner(owner, _run(stage, flat))
            stacking = self.tuning.combine == "stack" and position == 1
            # Stacking reads the first stage on the same views as the second (a decoded payload
            # is as plain to it as to the encoder). Its weights are fitted for the first two
            # stages; any later stage replaces.
            firsts: dict[int, dict[str, float]] = {}
            if stacking:
                # A text without views is its normalised text, which the first stage has read.
                again = [(view, i) for view, i in zip(flat, owner, strict=True) if views[i].views]
                firsts = {i: scores[i] for i in pending if not views[i].views}
                if again:
                    reread = _run(first, [view for view, _ in again])
                    firsts |= highest_by_owner([i for _, i in again], reread)
            for i, answer in answers.items():
                if stacking:
                    scores[i] = {
                        **dict.fromkeys(scores[i], 0.0),
                        **self.tuning.stack(firsts[i], answer),
                    }
                    both = f"{first.name}+{stage.name}"
                    sources[i] = {k: both if k in CATEGORY_IDS else stage.name for k in scores[i]}
                    continue
                if self.tuning.combine in ("replace", "stack"):
                    scores[i] = {**dict.fromkeys(scores[i], 0.0), **answer}
                    sources[i] = dict.fromkeys(scores[i], stage.name)
                    continue
                for label, value in answer.items():
                    earlier = scores[i].get(label, 0.0)
                    if low <= earlier <= high:
                        scores[i][label] = self.tuning.merge(earlier, value)
                        sources[i][label] = stage.name
            if stacking and self.refiner is not None:
                self._refine(list(answers), views, scores, sources)
        for i, found in enumerate(views):
            # Hiding text (base64, hex, rot13, homoglyphs, zero-width characters) is itself a
            # sign of a jailbreak attempt, whichever stage scored the text.
            if found.strongly_obfuscated and scores[i].get("jailbreak", 0.0) < OBFUSCATION_SCORE:
                scores[i]["jailbreak"] = OBFUSCATION_SCORE
                sources[i]["jailbreak"] = "normalise"
        evidence = [
            [Evidence(label, sources[i][label], s[label]) for label in s if s[label] >= 0.5]
            for i, s in enumerate(scores)
        ]
        normalised = [v.text for v in views]
        if self.passages if passages is None else passages:
            self.read_passages(normalised, scores, evidence)
        return scores, evidence, normalised

    def _refine(
        self,
        stacked: Sequence[int],
        views: Sequence[Normalised],
        scores: list[dict[str, float]],
        sources: list[dict[str, str]],
    ) -> None:
        """Decide the stacked texts again with the refining stage (:class:`Refinement`), in
        place: the close ones are read by it, and every stacked text's category scores are
        rescaled to the refined harmful score (their shares kept)."""
        refine, refiner = self.tuning.refine, self.refiner
        assert refine is not None and refiner is not None
        tops = {i: max(scores[i].get(c, 0.0) for c in CATEGORY_IDS) for i in stacked}
        near = [i for i in stacked if refine.reads(tops[i])]
        read: dict[int, float] = {}
        if near:
            flat = [(view, i) for i in near for view in views[i].texts]
            logits = _guarded(refiner.name, lambda: refiner.logits([view for view, _ in flat]))
            for (_, i), value in zip(flat, logits, strict=True):
                read[i] = max(read.get(i, -math.inf), value)
        for i in stacked:
            top = tops[i]
            harmful = refine.harmful(top, read.get(i))
            for c in CATEGORY_IDS:
                scores[i][c] = harmful * scores[i].get(c, 0.0) / top if top > 0.0 else 0.0
            if i in read:
                for c in CATEGORY_IDS:
                    sources[i][c] = f"{sources[i][c]}+{refiner.name}"

    def read_passages(
        self,
        texts: Sequence[str],
        scores: Sequence[dict[str, float]],
        evidence: Sequence[list[Evidence]],
    ) -> None:
        """Raise, in place, the categories a passage of a long text asks for on its own (B1).

        A request in the middle of long benign text is lost when the text is read whole. The
        first stage screens every passage (:func:`~convguard.assess.passages.passages`: each
        sentence, and each pair of short neighbouring sentences) and the :data:`PASSAGES_READ`
        most suspicious (over :data:`PASSAGE_SCREEN`) go through the whole cascade. A passage
        read out of context is easily misread, so it counts only when it reaches a category's
        strike point (one of :data:`PASSAGE_CATEGORIES`), and then raises the text only to the
        flag point: declined and redirected, never counted toward a warning or an end. The
        evidence names the passage. A text already flagged in one of those categories is not
        read again.
        """
        first = self.stages[0]
        flat: list[str] = []
        owner: list[int] = []
        for i, text in enumerate(texts):
            if any(scores[i].get(c, 0.0) >= self.policy.threshold(c) for c in PASSAGE_CATEGORIES):
                continue
            for passage in passages_of(text):
                flat.append(passage)
                owner.append(i)
        if not flat:
            return
        suspicious: dict[int, list[tuple[float, str]]] = {}
        for passage, i, screened in zip(flat, owner, _run(first, flat), strict=True):
            top = max((screened.get(c, 0.0) for c in CATEGORY_IDS), default=0.0)
            if top >= PASSAGE_SCREEN:
                suspicious.setdefault(i, []).append((top, passage))
        chosen = [
            (i, passage)
            for i, found in suspicious.items()
            for _, passage in sorted(found, reverse=True)[:PASSAGES_READ]
        ]
        if not chosen:
            return
        read, _ = self.score([passage for _, passage in chosen], passages=False)
        for (i, passage), alone in zip(chosen, read, strict=True):
            for label in PASSAGE_CATEGORIES:
                flag = self.policy.threshold(label)
                if self.policy.strikes(alone, label) and scores[i].get(label, 0.0) < flag:
                    scores[i][label] = flag
                    shown = passage if len(passage) <= 80 else passage[:77] + "..."
                    evidence[i].append(
                        Evidence(label, "passage", alone[label], f"read alone: {shown!r}")
                    )

    # --- the Assessor protocol -----------------------------------------------------------------

    def assess(self, text: str, *, role: Role = "user", context: Sequence[str] = ()) -> Assessment:
        started = time.perf_counter()
        window = [c for c in context if c.strip()][-self.window_turns :] if role == "user" else []
        batch = [text, *window]
        if window:
            batch.append("\n".join([*window, text])[-WINDOW_CHARS:])
            resolved = resolve_reference(window, text)
            if resolved is not None:
                batch.append(resolved)
        try:
            scores, evidence, normalised = self._score_recent(batch)
            final = dict(scores[0])
            found = list(evidence[0])
            if role == "user" and self.passages:
                self.read_passages(normalised[:1], [final], [found])
        except ClassifierError as exc:
            return self._failed(str(exc), started)
        if window:
            views = scores[1 + len(window) :]
            found += self._window(final, scores[1 : 1 + len(window)], views)
        if role != "user":
            for flag in USER_ONLY_FLAGS:
                final[flag] = 0.0
            found = [e for e in found if e.label not in USER_ONLY_FLAGS]
        if role == "assistant":
            from convguard.welfare import distress_score

            final["distress"], detail = distress_score(text)
            if final["distress"] >= self.policy.threshold("distress"):
                found.append(Evidence("distress", "welfare", final["distress"], detail))
        return Assessment.from_scores(
            self.policy,
            {k: min(1.0, max(0.0, v)) for k, v in final.items()},
            evidence=found,
            elapsed_ms=(time.perf_counter() - started) * 1000,
            source="+".join(
                [s.name for s in self.stages] + ([self.refiner.name] if self.refiner else [])
            ),
        )

    def _score_recent(
        self, texts: Sequence[str]
    ) -> tuple[list[dict[str, float]], list[list[Evidence]], list[str]]:
        """:meth:`_score` without passages, reusing the scores of texts assessed recently (scores
        depend on the text alone, so a conversation's earlier turns are not scored again for
        every window)."""
        with self._cache_lock:
            hits = {t: self._cache[t] for t in texts if t in self._cache}
            for t in hits:
                self._cache.move_to_end(t)
        missing = list(dict.fromkeys(t for t in texts if t not in hits))
        if missing:
            scored = self._score(missing, passages=False)
            fresh = dict(zip(missing, zip(*scored, strict=True), strict=True))
            hits.update(fresh)
            with self._cache_lock:
                self._cache.update(fresh)
                while len(self._cache) > CACHE_TEXTS:
                    self._cache.popitem(last=False)
        return (
            [dict(hits[t][0]) for t in texts],
            [list(hits[t][1]) for t in texts],
            [hits[t][2] for t in texts],
        )

    def _window(
        self,
        final: dict[str, float],
        earlier: Sequence[Mapping[str, float]],
        views: Sequence[Mapping[str, float]],
    ) -> list[Evidence]:
        """Labels the window's views (the joined turns; the follow-up read with its reference,
        when there is one) cross and neither this turn nor an earlier one crossed alone."""
        found = []
        details = [f"the last {len(earlier) + 1} user turns", "this turn read with its reference"]
        for label in (*CATEGORY_IDS, "jailbreak"):
            threshold = self.policy.threshold(label)
            value, which = max((v.get(label, 0.0), i) for i, v in enumerate(views))
            if (
                value >= threshold
                and final.get(label, 0.0) < threshold
                and all(s.get(label, 0.0) < threshold for s in earlier)
            ):
                final[label] = value
                found.append(Evidence(label, "window", value, details[which]))
        return found

    def _failed(self, message: str, started: float) -> Assessment:
        if self.policy.on_classifier_error == "error":
            raise ClassifierError(f"{message}; nothing was stored")
        return Assessment.from_scores(
            self.policy,
            {},
            elapsed_ms=(time.perf_counter() - started) * 1000,
            source="error",
            error=message,
        )
