"""Stage (c): an external judge behind an HTTP API, asked last and only when configured.

Two wire formats:

- ``llama_guard``: a Llama Guard-style prompt (the policy's categories listed as S1…S12, the
  conversation, "answer safe or unsafe and the violated categories") sent to any
  OpenAI-compatible ``/chat/completions`` endpoint; the answer's first line is ``safe`` or
  ``unsafe`` and its second the comma-separated category codes;
- ``moderation``: the OpenAI moderation API (``/moderations``), whose categories are mapped onto
  the policy's (:data:`OPENAI_TO_POLICY`).

A judge that times out, fails or answers nonsense raises :class:`~convguard.errors.ClassifierError`;
what that means for the turn is the policy's ``on_classifier_error``, applied by the cascade.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import httpx

from convguard.errors import ClassifierError
from convguard.policy import CATEGORY_IDS, Policy

__all__ = ["OPENAI_TO_POLICY", "JudgeFormat", "RemoteJudge", "llama_guard_prompt"]

JudgeFormat = Literal["llama_guard", "moderation"]

#: OpenAI moderation categories → (policy label, weight applied to their score).
OPENAI_TO_POLICY: Mapping[str, tuple[tuple[str, float], ...]] = {
    "sexual": (("sexual", 1.0),),
    "sexual/minors": (("sexual_minors", 1.0),),
    "harassment": (("harassment", 1.0),),
    "harassment/threatening": (("harassment", 1.0), ("violence", 1.0)),
    "hate": (("hate", 1.0),),
    "hate/threatening": (("hate", 1.0), ("violence", 1.0)),
    "illicit": (("illicit", 1.0),),
    "illicit/violent": (("weapons", 1.0),),
    "self-harm": (("self_harm", 1.0),),
    "self-harm/intent": (("self_harm", 1.0), ("imminent_risk", 0.8)),
    "self-harm/instructions": (("self_harm", 1.0),),
    "violence": (("violence", 1.0),),
    "violence/graphic": (("violence", 0.5),),
}


def llama_guard_prompt(policy: Policy, text: str, context: Sequence[str] = ()) -> str:
    lines = [
        "Task: Check whether there is unsafe content in the last 'User' message of the "
        "conversation below, according to this safety policy.",
        "",
        "<BEGIN UNSAFE CONTENT CATEGORIES>",
    ]
    for number, cid in enumerate(CATEGORY_IDS, start=1):
        category = policy.categories[cid]
        lines.append(f"S{number}: {category.label}. {category.description}")
    lines += ["<END UNSAFE CONTENT CATEGORIES>", "", "<BEGIN CONVERSATION>", ""]
    for turn in (*context, text):
        lines += [f"User: {turn}", ""]
    lines += [
        "<END CONVERSATION>",
        "",
        "Give your safety assessment of ONLY THE LAST User message above:",
        "- The first line must read 'safe' or 'unsafe'.",
        "- If unsafe, the second line must list the violated categories, comma-separated "
        "(for example: S1,S5).",
    ]
    return "\n".join(lines)


class RemoteJudge:
    """A :class:`~convguard.assess.types.Classifier` that asks a model over HTTP."""

    name = "judge"

    def __init__(
        self,
        policy: Policy,
        *,
        url: str,
        format: JudgeFormat = "llama_guard",
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.policy = policy
        self.format = format
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._client.close()

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return [self.judge(text) for text in texts]

    def judge(self, text: str, context: Sequence[str] = ()) -> dict[str, float]:
        if self.format == "moderation":
            return self._moderation(text)
        return self._llama_guard(text, context)

    def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        try:
            response = self._client.post(path, json=body)
        except httpx.TimeoutException as exc:
            raise ClassifierError(
                f"the judge at {str(self._client.base_url)!r} timed out; raise the timeout or "
                "check the endpoint"
            ) from exc
        except httpx.HTTPError as exc:
            raise ClassifierError(
                f"the judge at {str(self._client.base_url)!r} could not be reached: {exc}"
            ) from exc
        if response.status_code != 200:
            raise ClassifierError(
                f"the judge answered HTTP {response.status_code}: {response.text[:200]!r}"
            )
        try:
            return response.json()
        except json.JSONDecodeError as exc:
            raise ClassifierError(f"the judge answered non-JSON: {response.text[:200]!r}") from exc

    def _llama_guard(self, text: str, context: Sequence[str]) -> dict[str, float]:
        body: dict[str, Any] = {
            "messages": [
                {"role": "user", "content": llama_guard_prompt(self.policy, text, context)}
            ],
            "temperature": 0,
            "max_tokens": 20,
        }
        if self.model:
            body["model"] = self.model
        data = self._post("/chat/completions", body)
        try:
            answer = str(data["choices"][0]["message"]["content"]).strip()
        except (KeyError, IndexError, TypeError) as exc:
            raise ClassifierError(
                f"the judge's reply has no message content: {data!r:.200}"
            ) from exc
        return parse_llama_guard(answer)

    def _moderation(self, text: str) -> dict[str, float]:
        body: dict[str, Any] = {"input": text}
        if self.model:
            body["model"] = self.model
        data = self._post("/moderations", body)
        try:
            scores: Mapping[str, float] = data["results"][0]["category_scores"]
        except (KeyError, IndexError, TypeError) as exc:
            raise ClassifierError(
                f"the moderation reply has no category_scores: {data!r:.200}"
            ) from exc
        out: dict[str, float] = {}
        for theirs, targets in OPENAI_TO_POLICY.items():
            value = float(scores.get(theirs, 0.0) or 0.0)
            for ours, weight in targets:
                out[ours] = max(out.get(ours, 0.0), min(1.0, max(0.0, value * weight)))
        return out


def parse_llama_guard(answer: str) -> dict[str, float]:
    """``safe`` → nothing; ``unsafe`` + ``S1,S5`` → those categories at 1.0."""
    lines = [line.strip() for line in answer.splitlines() if line.strip()]
    verdict = lines[0].lower() if lines else ""
    if verdict == "safe":
        return {}
    if verdict != "unsafe":
        raise ClassifierError(f"the judge answered {answer[:80]!r}; expected 'safe' or 'unsafe'")
    codes = lines[1].replace(" ", "").split(",") if len(lines) > 1 else []
    out: dict[str, float] = {}
    for code in codes:
        index = int(code[1:]) - 1 if code[:1].upper() == "S" and code[1:].isdigit() else -1
        if 0 <= index < len(CATEGORY_IDS):
            out[CATEGORY_IDS[index]] = 1.0
    if not out:
        # unsafe without a category we know: the most general high-tier category
        out["illicit"] = 1.0
    return out
