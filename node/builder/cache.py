"""The build cache key of a step: pure, deterministic, and sensitive to exactly what the step depends on.

key = sha256 over
  - the parent: the parent *image* id (config digest, so ENV/WORKDIR/USER changes count), or "" for scratch
  - the normalised instruction text after substitution (flags sorted, heredoc contents included)
  - for RUN: the declared build ARGs in scope with their values (they are the command's environment);
    for other instructions the substituted text already carries the values they use
  - for COPY/ADD from the context, and RUN with bind mounts of the context: the digest of the files the
    step reads (``context.digest_step_sources``)
  - for ``--from`` / ``--mount=from``: the result id of each source stage or image

Not in the key, as in BuildKit: the contents of cache and secret mounts, and modification times.
Predefined proxy ARGs (HTTP_PROXY...) that are not declared never enter the key, as in Docker; an
undeclared build arg cannot reach any step, so it cannot change a key either.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from node.builder.dockerfile import ResolvedStep

KEY_VERSION = "pynode-build-cache-v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheInput:
    parent: str
    instruction: str
    build_args: tuple[tuple[str, str], ...] = ()
    files_digest: str | None = None
    sources: tuple[tuple[str, str], ...] = ()  # (reference as written, result id)


def compute_cache_key(cache_input: CacheInput) -> str:
    """``sha256:<hex>`` of the canonical JSON of the input; argument order does not matter."""
    document = {
        "version": KEY_VERSION,
        "parent": cache_input.parent,
        "instruction": cache_input.instruction,
        "build_args": sorted([k, v] for k, v in cache_input.build_args),
        "files": cache_input.files_digest,
        "sources": sorted([k, v] for k, v in cache_input.sources),
    }
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def cache_input_for_step(step: ResolvedStep, *, parent: str, files_digest: str | None = None,
                         sources: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> CacheInput:  # fmt: skip
    """The cache input of a resolved step. ``sources`` maps each ``--from`` reference of the step to
    the id of what it resolved to (a stage's result image id, or an image id)."""
    pairs = tuple(sources.items() if isinstance(sources, Mapping) else sources)
    build_args = step.build_args if step.keyword == "RUN" else ()
    return CacheInput(parent=parent, instruction=step.text, build_args=build_args, files_digest=files_digest,
                      sources=pairs)  # fmt: skip


def step_cache_key(step: ResolvedStep, *, parent: str, files_digest: str | None = None,
                   sources: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> str:  # fmt: skip
    return compute_cache_key(cache_input_for_step(step, parent=parent, files_digest=files_digest, sources=sources))
