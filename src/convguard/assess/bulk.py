"""Classifying a JSON-lines file in batches: streamed, so a million lines never sit in memory.

Input lines are ``{"id": ..., "text": "..."}``; each output line is ``{"id", "flagged", "score",
"categories", "flags", "scores"}`` where ``score`` is the highest unsafe-category score, and
``categories`` / ``flags`` the ids over the policy's thresholds. Output goes to a temporary file
beside the target, renamed into place only when every line succeeded: a bad line (named by its
number) leaves no half-written output. ``"-"`` reads stdin or writes stdout (each batch is flushed
as it is done, so a pipeline sees results while the input still streams in).
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
        "flagged": assessment.flagged,
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


STDIO = "-"


def classify_file(
    input_path: Path | str,
    output_path: Path | str,
    *,
    classifier: str,
    policy: Policy,
    batch_size: int = 256,
    progress: bool = True,
) -> int:
    """Classify ``input_path`` into ``output_path`` (``"-"``: stdin / stdout), one JSON line per
    input line; returns how many lines were classified."""
    if str(input_path) == STDIO:
        stream, total, source = sys.stdin.buffer, 0, "<stdin>"
    else:
        try:
            stream = Path(input_path).open("rb")  # noqa: SIM115 - closed by `with stream` below
        except OSError as exc:
            raise InvalidInput(f"cannot read {str(input_path)!r}: {exc}") from exc
        total, source = os.fstat(stream.fileno()).st_size, str(input_path)
    with stream:
        if str(output_path) == STDIO:
            assessor = build_assessor(classifier, policy)
            return _classify(
                stream, sys.stdout, assessor, policy, batch_size, source, total, progress
            )
        target = Path(output_path)
        folder = target.resolve().parent
        if not folder.is_dir():
            raise InvalidInput(f"the output folder {str(folder)!r} does not exist; create it first")
        assessor = build_assessor(classifier, policy)
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                count = _classify(
                    stream, out, assessor, policy, batch_size, source, total, progress
                )
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    return count


def _classify(
    stream: IO[bytes],
    out: IO[str],
    assessor: Any,
    policy: Policy,
    batch_size: int,
    source: str,
    total: int,
    progress: bool,
) -> int:
    count = 0
    # A pipe has no length to show progress against.
    with click.progressbar(
        length=max(total, 1), label="classifying", file=sys.stderr, hidden=not (progress and total)
    ) as bar:
        for consumed, batch in _batches(stream, batch_size, source):
            results = _assess_batch(assessor, policy, [text for _, text in batch])
            for (item_id, _), assessment in zip(batch, results, strict=True):
                out.write(json.dumps(result_line(item_id, assessment), ensure_ascii=False) + "\n")
            out.flush()
            count += len(batch)
            bar.update(consumed)
    return count
