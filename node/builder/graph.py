"""The stage graph of a multi-stage Dockerfile and the build plan for a target.

Edges come from ``FROM <stage>``, ``COPY --from=<stage name or index>`` and ``RUN --mount=from=<stage>``.
As in Docker, a ``--from`` naming no stage is an image reference, and FROM only sees earlier stages.
A numeric ``--from`` out of range, a stage referring to itself (BuildKit: "circular dependency detected")
or to a later stage is an error. BuildKit accepts acyclic references to later stages; we do not, so
every edge points backwards and the graph cannot have a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.builder.dockerfile import Dockerfile, DockerfileError, ResolvedStep, Stage, resolve_stage


@dataclass(frozen=True, slots=True, kw_only=True)
class StageDeps:
    """What one stage needs before it can build: earlier stages and external images."""

    index: int
    stages: frozenset[int]
    images: tuple[str, ...]


def find_target(dockerfile: Dockerfile, target: str | None) -> Stage:
    """The stage ``--target`` names (case-insensitive); the last stage when no target is given."""
    if target is None:
        return dockerfile.stages[-1]
    stage = dockerfile.find_stage(target)
    if stage is None:
        raise DockerfileError(f"target stage {target!r} could not be found", filename=dockerfile.filename)
    return stage


def resolve_from_ref(dockerfile: Dockerfile, stage_index: int, ref: str, *, lineno: int, what: str) -> int | None:
    """The stage index a ``--from`` value names, or None when it is an image reference."""
    where = f"{what}={ref}"
    if ref.isdigit():
        index = int(ref)
        if index >= len(dockerfile.stages):
            raise _error(dockerfile, lineno, f"{where}: invalid stage index {index}, "
                                             f"the Dockerfile has {len(dockerfile.stages)} stages")  # fmt: skip
    else:
        stage = dockerfile.find_stage(ref)
        if stage is None:
            return None
        index = stage.index
    if index == stage_index:
        name = dockerfile.stages[index].display_name
        raise _error(dockerfile, lineno, f"{where}: circular dependency detected on stage: {name}")
    if index > stage_index:
        raise _error(dockerfile, lineno, f"{where} refers to a later stage ({index}): "
                                         "a stage can only use earlier stages")  # fmt: skip
    return index


def _error(dockerfile: Dockerfile, lineno: int, message: str) -> DockerfileError:
    return DockerfileError(message, filename=dockerfile.filename, lineno=lineno)


def _step_refs(step: ResolvedStep) -> list[tuple[str, str]]:
    """(what, ref) of each stage-or-image reference a step makes."""
    refs = []
    if step.keyword == "COPY" and step.flag("from"):
        refs.append(("COPY --from", step.flag("from") or ""))
    for mount in step.mounts:
        if mount.from_ref:
            refs.append(("RUN --mount=from", mount.from_ref))
    return refs


def analyze_stage(dockerfile: Dockerfile, stage_index: int) -> StageDeps:
    """A stage's dependencies. ``--from`` values are expanded with the stage's ARGs (base image ENV unknown)."""
    stage = dockerfile.stages[stage_index]
    stages: set[int] = set()
    images: list[str] = []
    if stage.base_stage_index is not None:
        stages.add(stage.base_stage_index)
    elif not stage.is_scratch:
        images.append(stage.base)
    for step in resolve_stage(dockerfile, stage_index):
        for what, ref in _step_refs(step):
            index = resolve_from_ref(dockerfile, stage_index, ref, lineno=step.instruction.lineno, what=what)
            if index is None:
                images.append(ref)
            else:
                stages.add(index)
    return StageDeps(index=stage_index, stages=frozenset(stages), images=tuple(dict.fromkeys(images)))


def stage_dependencies(dockerfile: Dockerfile) -> dict[int, StageDeps]:
    return {stage.index: analyze_stage(dockerfile, stage.index) for stage in dockerfile.stages}


def needed_stages(dockerfile: Dockerfile, target: str | None = None) -> list[int]:
    """Indices of the stages the target needs, itself included, in Dockerfile order. Others are skipped."""
    deps = stage_dependencies(dockerfile)
    todo = [find_target(dockerfile, target).index]
    needed: set[int] = set()
    while todo:
        index = todo.pop()
        if index not in needed:
            needed.add(index)
            todo.extend(deps[index].stages)
    return sorted(needed)


def plan_build(dockerfile: Dockerfile, target: str | None = None) -> list[list[Stage]]:
    """Levels of stages: every stage of a level depends only on stages of earlier levels, so the stages
    of one level can build in parallel. Stages the target does not need are left out."""
    deps = stage_dependencies(dockerfile)
    remaining = set(needed_stages(dockerfile, target))
    done: set[int] = set()
    levels: list[list[Stage]] = []
    while remaining:
        ready = sorted(i for i in remaining if deps[i].stages <= done)
        levels.append([dockerfile.stages[i] for i in ready])
        done.update(ready)
        remaining.difference_update(ready)
    return levels


def step_label(dockerfile: Dockerfile, stage_index: int, step: int) -> str:
    """BuildKit's progress prefix: ``[builder 2/5]``, ``[stage-1 3/3]``, or ``[1/3]`` when the Dockerfile
    has a single stage (named or not). Step 1 is the FROM line; step k > 1 is ``stage.instructions[k - 2]``."""
    stage = dockerfile.stages[stage_index]
    total = len(stage.instructions) + 1
    if not 1 <= step <= total:
        raise ValueError(f"step {step} out of range 1..{total}")
    if len(dockerfile.stages) == 1:
        return f"[{step}/{total}]"
    return f"[{stage.display_name} {step}/{total}]"
