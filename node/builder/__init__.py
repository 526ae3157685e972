"""The builder: Dockerfile parsing, .dockerignore, build context, stage graph and cache key (pure, exported
here), and the executor that runs a plan on the engine (``executor.BuildService``, ``engine.builder``):

    build = engine.builder.prepare(workdir, BuildOptions(tags=("app:1",)))   # BuildError: bad input
    image = await engine.builder.run(build, emit)                            # BuildKit plain lines to emit
    engine.builder.prune()                                                   # `builder prune`

``trees`` reads an image's files through its layer directories, ``layers`` writes COPY/ADD layer tars and
cleans RUN diffs, ``buildcache`` persists the step cache index, ``progress`` formats the output.
Clients use ``EngineClient.build(context_dir, tags=..., ...)`` (``POST /build``).
"""

from node.builder.cache import CacheInput, cache_input_for_step, compute_cache_key, step_cache_key
from node.builder.context import (
    ContextError,
    context_sources,
    copy_sources,
    digest_paths,
    digest_sources,
    digest_step_sources,
    extract_context_tar,
    list_context,
    load_ignore,
    match_sources,
    write_context_tar,
)
from node.builder.dockerfile import (
    BuildError,
    Dockerfile,
    DockerfileError,
    Flag,
    Healthcheck,
    Heredoc,
    Instruction,
    Mount,
    ResolvedStep,
    ShellLex,
    Stage,
    global_arg_values,
    host_platform,
    parse_dockerfile,
    parse_healthcheck,
    parse_mount,
    parse_triggers,
    platform_args,
    resolve_stage,
    unused_build_args,
)
from node.builder.dockerignore import DockerIgnore, walk_included
from node.builder.graph import (
    StageDeps,
    find_target,
    needed_stages,
    plan_build,
    stage_dependencies,
    step_label,
)

__all__ = [
    "BuildError", "CacheInput", "ContextError", "DockerIgnore", "Dockerfile", "DockerfileError", "Flag",
    "Healthcheck", "Heredoc", "Instruction", "Mount", "ResolvedStep", "ShellLex", "Stage", "StageDeps",
    "cache_input_for_step", "compute_cache_key", "context_sources", "copy_sources", "digest_paths", "digest_sources",
    "digest_step_sources", "extract_context_tar", "find_target", "global_arg_values", "host_platform", "list_context",
    "load_ignore", "match_sources", "needed_stages", "parse_dockerfile", "parse_healthcheck", "parse_mount",
    "parse_triggers", "plan_build", "platform_args", "resolve_stage",
    "stage_dependencies", "step_cache_key", "step_label", "unused_build_args", "walk_included",
    "write_context_tar",
]  # fmt: skip
