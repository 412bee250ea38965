"""Classifying a JSON-lines file in batches: streamed, so a million lines never sit in memory.

Input lines are ``{"id": ..., "text": "..."}``; each output line is ``{"id", "flagged", "score",
"categories", "flags", "scores"}`` where ``score`` is the highest unsafe-category score, and
``categories`` / ``flags`` the ids over the policy's thresholds. Output goes to a temporary file
beside the target, renamed into place only when every line succeeded: a bad line (named by its
number) leaves no half-written output.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import click

from convguard.assess.cascade import Cascade
from convguard.assess.factory import build_assessor
from convguard.assess.types import Assessment
from convguard.errors import InvalidInput
from convguard.policy import Policy

__all__ = ["classify_file", "result_line"]


def result_line(item_id: Any, assessment: Assessment) -> dict[str, Any]:
    return {
        "id": item_id,
        "flagged": bool(assessment.categories),
        "score": round(assessment.score, 6),
        "categories": list(assessment.categories),
        "flags": list(assessment.flags),
        "scores": {k: round(v, 6) for k, v in assessment.scores.items()},
    }


def _batches(
    stream: IO[bytes], size: int, source: str
) -> Iterator[tuple[int, list[tuple[Any, str]]]]:
    batch: list[tuple[Any, str]] = []
    consumed = 0
    for number, raw in enumerate(stream, start=1):
        consumed += len(raw)
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(
                f"{source}:{number}: not valid JSON ({exc}); each line must be "
                '{"id": ..., "text": "..."}'
            ) from exc
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise InvalidInput(
                f"{source}:{number}: each line needs a string 'text' (and an 'id'); "
                f"got {raw[:80]!r}"
            )
        batch.append((data.get("id", number), data["text"]))
        if len(batch) >= size:
            yield consumed, batch
            batch, consumed = [], 0
    if batch:
        yield consumed, batch


def _assess_batch(assessor: Any, policy: Policy, texts: Sequence[str]) -> list[Assessment]:
    if isinstance(assessor, Cascade):
        scores, evidence = assessor.score(texts)
        return [
            Assessment.from_scores(policy, s, evidence=e, source="cascade")
            for s, e in zip(scores, evidence, strict=True)
        ]
    return [assessor.assess(text) for text in texts]


def classify_file(
    input_path: Path,
    output_path: Path,
    *,
    classifier: str,
    policy: Policy,
    batch_size: int = 256,
    progress: bool = True,
) -> int:
    try:
        stream = input_path.open("rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read {str(input_path)!r}: {exc}") from exc
    assessor = build_assessor(classifier, policy)
    total = os.fstat(stream.fileno()).st_size
    folder = output_path.resolve().parent
    if not folder.is_dir():
        stream.close()
        raise InvalidInput(f"the output folder {str(folder)!r} does not exist; create it first")
    handle, temporary = tempfile.mkstemp(prefix=f".{output_path.name}.", dir=folder)
    count = 0
    try:
        with (
            stream,
            os.fdopen(handle, "w", encoding="utf-8") as out,
            click.progressbar(
                length=total, label="classifying", file=sys.stderr, hidden=not progress
            ) as bar,
        ):
            for consumed, batch in _batches(stream, batch_size, str(input_path)):
                results = _assess_batch(assessor, policy, [text for _, text in batch])
                for (item_id, _), assessment in zip(batch, results, strict=True):
                    out.write(json.dumps(result_line(item_id, assessment), ensure_ascii=False))
                    out.write("\\n")
                count += len(batch)
                bar.update(consumed)
        os.replace(temporary, output_path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return count
