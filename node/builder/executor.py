"""The build executor: runs a plan on the engine and leaves a tagged image.

    service = BuildService(images=engine.images, containers=engine.containers, data_root=..., exec_root=...)
    build = service.prepare(workdir, BuildOptions(tags=("app:1",)))   # BuildError: bad input, nothing ran
    image = await service.run(build, emit)                            # emit(text): BuildKit plain lines

Every step's result is an image of the store (a build-cache image, hidden while untagged), so the cache
key's parent is an image id and a RUN step is a real container created from it. RUN: the container's
upper directory, once it exits, is the step's layer (mount points the runtime made are removed first).
COPY/ADD/WORKDIR write their layer tar directly (``layers``); metadata steps change the config only.
Stages of one level of the plan build in parallel (a TaskGroup); a failing stage cancels the others and
every build container is removed on the way out. Nothing is tagged unless the whole build succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import logging
import os
import posixpath
import re
import secrets as secrets_module
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from node.builder import layers as ly
from node.builder.buildcache import CacheIndex
from node.builder.cache import step_cache_key
from node.builder.context import SECRETS_DIR, digest_step_sources, match_sources
from node.builder.dockerfile import (
    BuildError,
    Dockerfile,
    ResolvedStep,
    Stage,
    parse_dockerfile,
    parse_triggers,
    resolve_stage,
    unused_build_args,
)
from node.builder.dockerignore import DockerIgnore
from node.builder.graph import find_target, plan_build, resolve_from_ref, stage_dependencies, step_label
from node.builder.progress import Progress, Vertex, failure_report
from node.builder.trees import HostTree, LayeredTree, TreeError, lookup_user, resolve, split_path
from node.errors import EngineFailure, NodeError, NotFound
from node.images.model import Image, go_arch
from node.images.pack import iter_dir_tar
from node.images.refs import parse_reference

log = logging.getLogger(__name__)

DEFAULT_SHELL = ("/bin/sh", "-c")
BUILD_LABEL = "com.pynode.build"  # on RUN step containers
_WILDCARDS = frozenset("*?[")
_GO_DURATION_NS = 1_000_000_000
Emit = Callable[[str], None]


class StepFailed(NodeError):
    """A build step failed while running (a RUN's non-zero exit): the build input was fine."""

    status = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildOptions:
    dockerfile: str = "Dockerfile"
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    network: str = "default"  # RUN steps' network unless `RUN --network=` says otherwise


@dataclass(slots=True, kw_only=True)
class Build:
    """A prepared build: the parsed Dockerfile, its plan and the external images it reads."""

    workdir: Path
    context_dir: Path
    secrets_dir: Path
    options: BuildOptions
    dockerfile: Dockerfile
    lines: list[str]
    levels: list[list[Stage]]
    target: Stage
    images: dict[str, Image]  # external image references (FROM, COPY --from) -> image
    ignore: DockerIgnore
    results: dict[int, Image] = field(default_factory=dict)
    progress: Progress | None = None
    warnings: list[str] = field(default_factory=list)
    needs: dict[int, frozenset[int]] = field(default_factory=dict)  # stage -> the stages it reads
    dockerfile_size: int = 0
    context_size: int = 0  # bytes of the uploaded context tar (the API sets it)


class BuildService:
    def __init__(self, *, images: Any, containers: Any, data_root: Path, exec_root: Path | None = None) -> None:
        # exec_root: accepted for symmetry with the other subsystems; the builder keeps nothing there yet
        self.images = images
        self.containers = containers
        self.root = data_root / "builder"
        self.tmp = self.root / "tmp"
        self.cache_mounts = self.root / "cache-mounts"
        for path in (self.tmp, self.cache_mounts):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        for leftover in self.tmp.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)
        self.cache = CacheIndex(self.root / "cache.json")
        self._cache_locks: dict[str, asyncio.Lock] = {}  # RUN --mount=type=cache,sharing=locked

    async def start(self) -> None:
        """Remove the build containers a daemon that died mid-build left behind."""
        for container in list(self.containers.containers.values()):
            if (container.config.get("Labels") or {}).get(BUILD_LABEL):
                with contextlib.suppress(NodeError):
                    await self.containers.remove(container.id, force=True, volumes=True)

    # --- the interface the API uses ----------------------------------------------------------------
    def new_workdir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="build-", dir=self.tmp))

    def discard_workdir(self, workdir: Path) -> None:
        shutil.rmtree(workdir, ignore_errors=True)

    def prepare(self, workdir: Path, options: BuildOptions) -> Build:
        """Check everything that can be checked before running: Dockerfile, target, images, tags, COPY
        sources. Raises BuildError (one line, naming file:line or the argument)."""
        context_dir = workdir / "context"
        secrets_dir = workdir / "secrets"
        found = context_dir / SECRETS_DIR
        if found.is_dir():
            found.rename(secrets_dir)
        for tag in options.tags:
            parse_reference(tag)
        path = _inside_context(context_dir, options.dockerfile)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except (FileNotFoundError, IsADirectoryError):
            raise BuildError(f"Cannot locate specified Dockerfile: {options.dockerfile}") from None
        shown = "Dockerfile" if options.dockerfile.startswith(".dockerfile.") else options.dockerfile
        dockerfile = parse_dockerfile(text, filename=shown, build_args=options.build_args)
        levels = plan_build(dockerfile, options.target)
        build = Build(workdir=workdir, context_dir=context_dir, secrets_dir=secrets_dir, options=options,
                      dockerfile=dockerfile, lines=text.splitlines(), levels=levels,
                      target=find_target(dockerfile, options.target), images={},
                      ignore=DockerIgnore.load(context_dir), dockerfile_size=len(text.encode()),
                      needs={i: d.stages for i, d in stage_dependencies(dockerfile).items()})  # fmt: skip
        for stage in (s for level in levels for s in level):
            self._check_stage(build, stage)
        unused = unused_build_args(dockerfile)
        if unused:
            build.warnings.append(f"[Warning] One or more build-args {unused} were not consumed")
        return build

    async def run(self, build: Build, emit: Emit) -> Image:
        """Build, tag, and return the image. Raises BuildError or StepFailed; the failure was reported."""
        progress = build.progress = Progress(emit)
        for name, what, size in ((f"load build definition from {build.dockerfile.filename}", "dockerfile",
                                  build.dockerfile_size), ("load build context", "context", build.context_size)):
            vertex = progress.vertex(f"[internal] {name}")
            vertex.note(f"transferring {what}: {_human_size(size)} done")
            vertex.done()
        for warning in build.warnings:
            emit(warning + "\n")
        built = {stage.index: asyncio.Event() for level in build.levels for stage in level}
        async with asyncio.TaskGroup() as group:  # a failing stage cancels the others
            for stage in built:
                group.create_task(self._build_when_ready(build, build.dockerfile.stages[stage], built))
        image = build.results[build.target.index]
        vertex = progress.vertex("exporting to image")
        if build.options.labels:
            image = await self._label(build, image)
        image = await asyncio.to_thread(self.images.commit, image.config)  # a build's result is listed, tagged or not
        vertex.note(f"writing image {image.id} done")
        for tag in build.options.tags:
            await asyncio.to_thread(self.images.tag, image.id, tag)
            vertex.note(f"naming to {parse_reference(tag).familiar} done")
        vertex.done()
        return image

    def prune(self) -> dict[str, Any]:
        """`builder prune`: forget the cache, remove its untagged images and the cache mounts."""
        before = self.images.df_fields()["LayersSize"]
        deleted: list[str] = []
        self.cache.clear()
        for image in self.images.build_cache_images():
            with contextlib.suppress(NodeError):
                self.images.remove(image.id)
                deleted.append(image.id)
        for directory in self.cache_mounts.iterdir():
            shutil.rmtree(directory, ignore_errors=True)
        reclaimed = max(before - self.images.df_fields()["LayersSize"], 0)
        return {"CachesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def df_fields(self) -> dict[str, Any]:
        """`/system/df`'s BuildCache: one record per cached step result; its size is its top layer's when
        no listed image shares that layer (what `builder prune` would free)."""
        shared = {chain for image in self.images.images() for chain in image.chain_ids}
        counted: set[str] = set()
        records = []
        for image in self.images.build_cache_images():
            top = image.top_chain_id
            size = 0
            if top is not None and top not in shared and top not in counted:
                counted.add(top)
                with contextlib.suppress(NotFound):
                    size = self.images.layer(top).size
            records.append({"ID": image.id.removeprefix("sha256:")[:25], "Type": "regular", "Size": size,
                            "Shared": top in shared, "InUse": False, "CreatedAt": image.created,
                            "UsageCount": 1, "Description": ((image.config.get("history") or [{}])[-1]
                                                              .get("created_by", ""))})  # fmt: skip
        return {"BuildCache": records}

    # --- preparing ----------------------------------------------------------------------------------
    def _check_stage(self, build: Build, stage: Stage) -> None:
        dockerfile = build.dockerfile
        base_env: list[tuple[str, str]] = []
        if stage.base_stage_index is None and not stage.is_scratch:
            image = self._external(build, stage.base, location=f"{dockerfile.filename}:{stage.from_instruction.lineno}",
                                   what="FROM")  # fmt: skip
            base_env = _env_pairs(image.config)
        for step in resolve_stage(dockerfile, stage.index, base_env=base_env):
            location = f"{dockerfile.filename}:{step.instruction.lineno}"
            ref = step.flag("from") if step.keyword == "COPY" else None
            if ref is not None and resolve_from_ref(dockerfile, stage.index, ref, lineno=step.instruction.lineno,
                                                    what="COPY --from") is None:  # fmt: skip
                self._external(build, ref, location=location, what="COPY --from")
            if step.keyword in ("COPY", "ADD") and ref is None and "$" not in step.instruction.original_line_text:
                sources = _context_sources(step)
                if sources:
                    match_sources(build.context_dir, sources, location=location, keyword=step.keyword,
                                  ignore=build.ignore)  # fmt: skip
            for flag in ("exclude", "parents"):
                if step.keyword in ("COPY", "ADD") and step.flag(flag):
                    raise BuildError(f"{location}: {step.keyword} --{flag} is not supported here")
            for mount in step.mounts:
                if mount.type == "ssh":
                    raise BuildError(f"{location}: RUN --mount=type=ssh is not supported here")
                if mount.from_ref and mount.type != "bind":
                    raise BuildError(f"{location}: RUN --mount=type={mount.type},from=... is not supported here")
                if mount.from_ref and resolve_from_ref(dockerfile, stage.index, mount.from_ref,
                                                       lineno=step.instruction.lineno, what="--mount=from") is None:
                    self._external(build, mount.from_ref, location=location, what="RUN --mount=from")
                if mount.type == "secret" and mount.required and not (build.secrets_dir / str(mount.id)).exists():
                    raise BuildError(f"{location}: secret {mount.id} not found "
                                     f"(give it with --secret id={mount.id},src=FILE)")

    def _external(self, build: Build, ref: str, *, location: str, what: str) -> Image:
        if ref in build.images:
            return build.images[ref]
        try:
            image: Image = self.images.resolve(ref)
        except NotFound:
            hint = "no image" if what == "FROM" else "no stage or image"
            raise BuildError(f"{location}: {what} {ref}: {hint} named {ref!r} here "
                             "(no registry is reachable: bootstrap, load or build it first)") from None
        build.images[ref] = image
        return image

    # --- stages -------------------------------------------------------------------------------------
    async def _build_when_ready(self, build: Build, stage: Stage, built: Mapping[int, asyncio.Event]) -> None:
        """Build a stage as soon as the stages it reads are built: independent stages run in parallel."""
        for index in build.needs[stage.index]:
            await built[index].wait()
        await self._build_stage(build, stage)
        built[stage.index].set()

    async def _build_stage(self, build: Build, stage: Stage) -> None:
        assert build.progress is not None
        dockerfile = build.dockerfile
        if stage.base_stage_index is not None:
            base = build.results[stage.base_stage_index]
        elif stage.is_scratch:
            base = await asyncio.to_thread(self._scratch)
        else:
            base = build.images[stage.base]
        vertex = build.progress.vertex(f"{step_label(dockerfile, stage.index, 1)} FROM {stage.base}")
        vertex.cached()
        triggers = parse_triggers(list((base.config.get("config") or {}).get("OnBuild") or []))
        steps = resolve_stage(dockerfile, stage.index, base_env=_env_pairs(base.config), triggers=triggers)
        image = await asyncio.to_thread(self._without_triggers, base) if triggers else base
        for index, step in enumerate(steps):
            image = await self._step(build, stage, step, image, earlier=steps[:index])
        build.results[stage.index] = image

    def _without_triggers(self, base: Image) -> Image:
        """The base of a stage that runs its ONBUILD triggers: they run once, and are not inherited."""
        config = copy.deepcopy(base.config)
        config["config"] = {k: v for k, v in _inner(base.config).items() if k != "OnBuild"}
        stripped: Image = self.images.commit(config, build_cache=True)
        return stripped

    def _scratch(self) -> Image:
        config = {"architecture": go_arch(), "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": []}}
        return self.images.commit(config, build_cache=True)  # type: ignore[no-any-return]

    async def _step(self, build: Build, stage: Stage, step: ResolvedStep, image: Image, *,
                    earlier: Sequence[ResolvedStep]) -> Image:  # fmt: skip
        assert build.progress is not None
        dockerfile = build.dockerfile
        label = step_label(dockerfile, stage.index, step.position + 2) if step.position >= 0 else \
            f"[{stage.display_name} ONBUILD]"
        vertex = build.progress.vertex(f"{label} {_display(step)}")
        location = f"{dockerfile.filename}:{step.instruction.lineno}"
        try:
            files = await asyncio.to_thread(digest_step_sources, build.context_dir, step,
                                            filename=dockerfile.filename, ignore=build.ignore)  # fmt: skip
            sources = {ref: self._source_image(build, stage, step, ref).id for ref in _step_refs(step)}
            key = step_cache_key(step, parent=image.id, files_digest=files, sources=sources)
            if not build.options.no_cache:
                hit = self._cached(key)
                if hit is not None:
                    vertex.cached()
                    return hit
            result = await self._execute(build, stage, step, image, vertex=vertex, earlier=earlier)
        except StepFailed as exc:
            vertex.error(str(exc))
            build.progress.emit(failure_report(label=f"{label} {_display(step)}", tail=list(vertex.tail),
                                               filename=dockerfile.filename, lines=build.lines,
                                               lineno=step.instruction.lineno,
                                               end_lineno=step.instruction.end_lineno))  # fmt: skip
            raise
        except (NodeError, TreeError, KeyError, OSError) as exc:
            message = str(exc).strip("'\"") if isinstance(exc, KeyError) else str(exc)
            if not message.startswith(dockerfile.filename):
                message = f"{location}: {message}"
            vertex.error(message)
            if isinstance(exc, BuildError | TreeError | KeyError):
                raise BuildError(message) from None
            raise EngineFailure(message) from None
        self.cache.put(key, result.id)
        vertex.done()
        return result

    def _cached(self, key: str) -> Image | None:
        image_id = self.cache.get(key)
        if image_id is None:
            return None
        try:
            image: Image = self.images.resolve(image_id)
        except NotFound:
            self.cache.forget(key)
            return None
        return image

    def _source_image(self, build: Build, stage: Stage, step: ResolvedStep, ref: str) -> Image:
        index = resolve_from_ref(build.dockerfile, stage.index, ref, lineno=step.instruction.lineno, what="--from")
        if index is not None:
            return build.results[index]
        location = f"{build.dockerfile.filename}:{step.instruction.lineno}"
        return self._external(build, ref, location=location, what="COPY --from")

    async def _execute(self, build: Build, stage: Stage, step: ResolvedStep, image: Image, *, vertex: Vertex,
                       earlier: Sequence[ResolvedStep]) -> Image:  # fmt: skip
        keyword = step.keyword
        if keyword == "RUN":
            return await self._run_step(build, stage, step, image, vertex)
        if keyword in ("COPY", "ADD"):
            source = self._source_image(build, stage, step, step.flag("from") or "") if step.flag("from") else None
            return await asyncio.to_thread(self._copy_step, build, step, image, source)
        if keyword == "WORKDIR":
            return await asyncio.to_thread(self._workdir_step, step, image)
        cmd_in_stage = any(s.keyword == "CMD" for s in earlier)
        config = apply_metadata(_inner(image.config), step, cmd_in_stage=cmd_in_stage)
        author = step.args[0] if keyword == "MAINTAINER" else None
        return await asyncio.to_thread(self._commit, image, config, layer=None, created_by=created_by(step, image),
                                       author=author)  # fmt: skip

    # --- RUN ------------------------------------------------------------------------------------------
    async def _run_step(self, build: Build, stage: Stage, step: ResolvedStep, image: Image, vertex: Vertex) -> Image:
        """RUN, holding its `sharing=locked` cache mounts and read views of the stages it mounts."""
        locked = sorted({m.id or m.target for m in step.mounts if m.type == "cache" and m.sharing == "locked"})
        async with contextlib.AsyncExitStack() as stack:
            for ident in locked:
                await stack.enter_async_context(self._cache_locks.setdefault(ident, asyncio.Lock()))
            views: dict[str, Path] = {}  # RUN --mount=from: a read view of that stage or image, per reference
            for ref in dict.fromkeys(m.from_ref for m in step.mounts if m.from_ref):
                source = self._source_image(build, stage, step, ref)
                view = secrets_module.token_hex(32)
                stack.push_async_callback(asyncio.to_thread, self._close_view, view)
                views[ref] = await asyncio.to_thread(self._open_view, view, source)
            return await self._run_in_container(build, step, image, vertex, views)

    def _open_view(self, view: str, image: Image) -> Path:
        self.images.driver.create_rw_layer(view, image)
        return Path(self.images.driver.mount(view))

    def _close_view(self, view: str) -> None:
        with contextlib.suppress(NodeError, OSError):
            self.images.driver.unmount(view)
        with contextlib.suppress(NodeError, OSError):
            self.images.driver.remove_rw_layer(view)

    async def _run_in_container(self, build: Build, step: ResolvedStep, image: Image, vertex: Vertex,
                                views: Mapping[str, Path]) -> Image:  # fmt: skip
        inner = _inner(image.config)
        shell = list(inner.get("Shell") or DEFAULT_SHELL)
        step_dir = Path(tempfile.mkdtemp(prefix="run-", dir=build.workdir))
        argv, extra_mounts = _run_argv(step, shell, step_dir)
        env = dict(step.proxy_args) | dict(step.build_args) | dict(step.env)
        mounts = extra_mounts + self._run_mounts(build, step, env, views)
        run_image = await asyncio.to_thread(self._run_image, image)
        body: dict[str, Any] = {
            "Image": run_image.id, "Entrypoint": [""], "Cmd": argv, "Env": [f"{k}={v}" for k, v in env.items()],
            "WorkingDir": inner.get("WorkingDir") or "/", "User": inner.get("User") or "",
            "Healthcheck": {"Test": ["NONE"]}, "Labels": {BUILD_LABEL: "step"},
            "HostConfig": {"NetworkMode": step.flag("network") or build.options.network, "Mounts": mounts,
                           "LogConfig": {"Type": "json-file", "Config": {}}},
        }  # fmt: skip
        created = await self.containers.create(body, None)
        cid = created["Id"]
        try:
            code = await self._run_container(cid, vertex)
            if code != 0:
                raise StepFailed(f'process "{_process_text(argv)}" did not complete successfully: exit code: {code}')
            targets = [*ly.RUNTIME_MOUNT_POINTS, *(m["Target"] for m in mounts)]
            return await asyncio.to_thread(self._commit_run, image, cid, targets, created_by(step, image))
        finally:
            with contextlib.suppress(NodeError):
                await self.containers.remove(cid, force=True, volumes=True)
            shutil.rmtree(step_dir, ignore_errors=True)

    def _run_image(self, image: Image) -> Image:
        """The image a RUN container is created from: the step's parent, without VOLUMEs (a build step
        mounts no anonymous volumes, as in BuildKit)."""
        inner = _inner(image.config)
        if not inner.get("Volumes"):
            return image
        config = copy.deepcopy(image.config)
        config["config"] = {k: v for k, v in inner.items() if k != "Volumes"}
        return self.images.commit(config, build_cache=True)  # type: ignore[no-any-return]

    async def _run_container(self, cid: str, vertex: Vertex) -> int:
        _, exited = self.containers.wait_events(cid, "not-running")
        log_path = Path(self.containers.get(cid).log_path)
        await self.containers.start_container(cid)
        offset = 0
        while True:
            finished = exited.is_set()
            offset = _relay_log(log_path, offset, vertex)
            if finished:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(exited.wait(), 0.1)
        vertex.flush()
        return int(self.containers.exit_code(cid))

    def _run_mounts(self, build: Build, step: ResolvedStep, env: dict[str, str],
                    views: Mapping[str, Path]) -> list[dict[str, Any]]:  # fmt: skip
        location = f"{build.dockerfile.filename}:{step.instruction.lineno}"
        mounts: list[dict[str, Any]] = []
        for mount in step.mounts:
            target = mount.target if mount.target.startswith("/") else posixpath.join("/", mount.target)
            if mount.type == "cache":
                source = self._cache_dir(mount.id or mount.target, mode=mount.mode, uid=mount.uid, gid=mount.gid)
                mounts.append({"Type": "bind", "Source": str(source), "Target": target, "ReadOnly": mount.readonly})
            elif mount.type == "tmpfs":
                mounts.append({"Type": "tmpfs", "Target": target})
            elif mount.type == "bind" and mount.from_ref:
                source = _inside_context(views[mount.from_ref], mount.source or ".")
                mounts.append({"Type": "bind", "Source": str(source), "Target": target,
                               "ReadOnly": mount.readonly})  # fmt: skip
            elif mount.type == "bind":
                source = _inside_context(build.context_dir, mount.source or ".")
                mounts.append({"Type": "bind", "Source": str(source), "Target": target,
                               "ReadOnly": mount.readonly})  # fmt: skip
            elif mount.type == "secret":
                secret = build.secrets_dir / str(mount.id)
                if not secret.is_file():
                    if mount.required:
                        raise BuildError(f"{location}: secret {mount.id} not found")
                    continue
                if mount.env:
                    env[mount.env] = secret.read_text(errors="replace")
                if mount.target and (mount.env is None or mount.target != ""):
                    os.chmod(secret, mount.mode if mount.mode is not None else 0o400)
                    if mount.uid is not None or mount.gid is not None:
                        os.chown(secret, mount.uid or 0, mount.gid or 0)
                    mounts.append({"Type": "bind", "Source": str(secret), "Target": target, "ReadOnly": True})
        return mounts

    def _cache_dir(self, ident: str, *, mode: int | None, uid: int | None, gid: int | None) -> Path:
        path = self.cache_mounts / hashlib.sha256(ident.encode()).hexdigest()[:32]
        if not path.exists():
            path.mkdir(mode=0o755)
            os.chmod(path, mode if mode is not None else 0o755)
            os.chown(path, uid or 0, gid or 0)
        return path

    def _commit_run(self, image: Image, cid: str, targets: Sequence[str], history: str) -> Image:
        upper = self.images.driver.diff_dir(cid)
        ly.clean_run_diff(upper, LayeredTree(self.images.layer_diff_dirs(image)), targets)
        layer = None
        if not ly.is_empty_dir(upper):
            layer = self.images.create_layer_from_tar(_ChunkReader(iter_dir_tar(upper)), image.top_chain_id)
        return self._commit(image, _inner(image.config), layer=layer, created_by=history)

    # --- COPY / ADD / WORKDIR ---------------------------------------------------------------------------
    def _copy_step(self, build: Build, step: ResolvedStep, image: Image, source: Image | None) -> Image:
        location = f"{build.dockerfile.filename}:{step.instruction.lineno}"
        inner = _inner(image.config)
        dest_tree = LayeredTree(self.images.layer_diff_dirs(image))
        dest = _absolute(step.args[-1], inner.get("WorkingDir") or "/")
        chown = step.flag("chown")
        try:
            owner = lookup_user(dest_tree, chown) if chown else None
        except KeyError as exc:
            raise BuildError(f"{location}: --chown={chown}: {exc.args[0]}") from None
        mode, mode_expr = _chmod(step.flag("chmod"), location)
        options = ly.CopyOptions(owner=owner, mode=mode, mode_expr=mode_expr,
                                 extract_archives=step.keyword == "ADD", location=location, keyword=step.keyword)
        with tempfile.TemporaryFile(dir=build.workdir) as out:
            writer = ly.LayerWriter(out, dest_tree, dir_owner=owner or (0, 0))
            try:
                self._write_copy(build, step, writer, source=source, dest=dest, options=options)
            finally:
                writer.close()
            layer = None
            if writer.count:
                out.seek(0)
                layer = self.images.create_layer_from_tar(out, image.top_chain_id)
        return self._commit(image, inner, layer=layer, created_by=created_by(step, image))

    def _write_copy(self, build: Build, step: ResolvedStep, writer: ly.LayerWriter, *, source: Image | None,
                    dest: str, options: ly.CopyOptions) -> None:  # fmt: skip
        heredocs = {f"<<{d.name}": d for d in step.heredocs} | {f"<<-{d.name}": d for d in step.heredocs}
        docs = [heredocs[a.lstrip("0123456789")] for a in step.args[:-1] if a.lstrip("0123456789") in heredocs]
        if source is not None:
            tree: Any = LayeredTree(self.images.layer_diff_dirs(source))
            paths = _match_in_tree(tree, list(step.args[:-1]), options)
        else:
            tree = HostTree(build.context_dir, exclude=build.ignore.is_excluded)
            paths = _context_sources(step)
            if paths:
                paths = match_sources(build.context_dir, paths, location=options.location, keyword=step.keyword,
                                      ignore=build.ignore)  # fmt: skip
        if paths:
            ly.copy_to_layer(writer, src_tree=tree, sources=paths, dest=dest, options=options)
        for doc in docs:
            into_dir = dest.endswith("/") or len(docs) + len(paths) > 1
            path = resolve(writer.dest_tree, dest)
            path = f"{path}/{doc.name}" if into_dir else path
            writer.add_bytes(path, doc.content.encode(), mode=options.apply(0o644, is_dir=False),
                             owner=options.owner or (0, 0))

    def _workdir_step(self, step: ResolvedStep, image: Image) -> Image:
        inner = _inner(image.config)
        workdir = _absolute(step.args[0], inner.get("WorkingDir") or "/")
        inner["WorkingDir"] = workdir
        tree = LayeredTree(self.images.layer_diff_dirs(image))
        layer = None
        if image.chain_ids and resolve(tree, workdir) and not _exists(tree, workdir):
            with tempfile.TemporaryFile(dir=self.tmp) as out:
                writer = ly.LayerWriter(out, tree)
                writer.ensure_dir(resolve(tree, workdir))
                writer.close()
                out.seek(0)
                layer = self.images.create_layer_from_tar(out, image.top_chain_id)
        return self._commit(image, inner, layer=layer, created_by=created_by(step, image))

    # --- committing -----------------------------------------------------------------------------------
    def _commit(self, image: Image, inner: dict[str, Any], *, layer: Any, created_by: str | None,
                author: str | None = None) -> Image:  # fmt: skip
        config = copy.deepcopy(image.config)
        now = _rfc3339(time.time())
        config["created"] = now
        if author is not None:
            config["author"] = author
        config["config"] = {k: v for k, v in inner.items() if k != "OnBuild" or v}
        if not config["config"].get("OnBuild"):
            config["config"].pop("OnBuild", None)
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        history = list(config.get("history") or [{"created": config.get("created", now)} for _ in diff_ids])
        if layer is not None:
            diff_ids.append(layer.diff_id)
        config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
        if created_by is not None:
            entry: dict[str, Any] = {"created": now, "created_by": created_by, "comment": "pynode build"}
            if layer is None:
                entry["empty_layer"] = True
            history.append(entry)
        elif layer is not None:
            history.append({"created": now})
        config["history"] = history
        committed: Image = self.images.commit(config, build_cache=True)
        return committed

    async def _label(self, build: Build, image: Image) -> Image:
        labels = dict(sorted(build.options.labels.items()))
        key = "sha256:" + hashlib.sha256(json.dumps(["labels", image.id, labels]).encode()).hexdigest()
        if not build.options.no_cache:
            hit = self._cached(key)
            if hit is not None:
                return hit
        inner = _inner(image.config)
        inner["Labels"] = {**(inner.get("Labels") or {}), **labels}
        result = await asyncio.to_thread(self._commit, image, inner, layer=None, created_by=None)
        self.cache.put(key, result.id)
        return result


# --- pure helpers -------------------------------------------------------------------------------------
def _inner(config: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(dict(config.get("config") or {}))


def _env_pairs(config: dict[str, Any]) -> list[tuple[str, str]]:
    pairs = []
    for entry in (config.get("config") or {}).get("Env") or []:
        name, _, value = str(entry).partition("=")
        pairs.append((name, value))
    return pairs


def _inside_context(context_dir: Path, rel: str) -> Path:
    cleaned = posixpath.normpath("/" + rel).lstrip("/")
    path = context_dir / cleaned if cleaned else context_dir
    real_root = os.path.realpath(context_dir)
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise BuildError(f"{rel}: path is outside the build context")
    return path


def _context_sources(step: ResolvedStep) -> list[str]:
    if step.flag("from"):
        return []
    return [s for s in step.args[:-1] if not (step.heredocs and re.match(r"^\d*<<", s))]


def _step_refs(step: ResolvedStep) -> list[str]:
    refs = []
    if step.keyword == "COPY" and step.flag("from"):
        refs.append(step.flag("from") or "")
    refs += [m.from_ref for m in step.mounts if m.from_ref]
    return list(dict.fromkeys(refs))


def _absolute(path: str, workdir: str) -> str:
    trailing = path.endswith("/") or path in (".", "./")
    joined = posixpath.normpath(posixpath.join(workdir or "/", path))
    return joined.rstrip("/") + "/" if trailing and joined != "/" else joined


def _exists(tree: LayeredTree, path: str) -> bool:
    return tree.host_path(resolve(tree, path)) is not None


def _chmod(text: str | None, location: str) -> tuple[int | None, str | None]:
    """(octal mode, symbolic expression) of ``--chmod``."""
    if text is None:
        return None, None
    if re.fullmatch(r"[0-7]{3,4}", text):
        return int(text, 8), None
    try:
        ly.apply_symbolic_mode(0o644, text, is_dir=False)
    except (ValueError, KeyError):
        raise BuildError(f"{location}: invalid chmod parameter: {text}") from None
    return None, text


def _match_in_tree(tree: LayeredTree, sources: list[str], options: ly.CopyOptions) -> list[str]:
    """COPY --from sources in an image: exact paths or globs, each matching something."""
    from node.builder.dockerignore import match_component

    found: list[str] = []
    for source in sources:
        parts = split_path(posixpath.normpath("/" + source))
        if not any(c in _WILDCARDS for c in source):
            rel = "/".join(parts)
            if tree.host_path(resolve(tree, rel)) is None:
                raise BuildError(f"{options.location}: {options.keyword} --from source {source!r}: "
                                 "no such file or directory")  # fmt: skip
            found.append(rel)
            continue
        candidates = [""]
        for part in parts:
            candidates = [f"{c}/{n}" if c else n for c in candidates for n in tree.listdir(resolve(tree, c))
                          if match_component(part, n)]  # fmt: skip
        if not candidates:
            raise BuildError(f"{options.location}: {options.keyword} --from source {source!r} matches no files")
        found += [c for c in candidates if c not in found]
    return found


def _run_argv(step: ResolvedStep, shell: list[str], step_dir: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The RUN command line, and the mounts a heredoc script needs."""
    if step.instruction.json_form:
        return list(step.args), []
    command = step.args[0]
    if step.heredocs:
        markers = re.sub(r"\d*<<-?['\"]?[^\s'\"]+['\"]?", "", command).strip()
        doc = step.heredocs[0]
        if not markers and len(step.heredocs) == 1:
            if doc.content.startswith("#!"):
                script = step_dir / "script"
                script.write_text(doc.content)
                os.chmod(script, 0o755)
                target = f"/dev/pipes/{secrets_module.token_hex(4)}"
                return [target], [{"Type": "bind", "Source": str(script), "Target": target, "ReadOnly": True}]
            return [*shell, doc.content], []
        command += "\n" + "".join(f"{d.content}{d.name}\n" for d in step.heredocs)
    return [*shell, command], []


def _process_text(argv: Sequence[str]) -> str:
    return " ".join(argv).replace('"', '\\"')


def _display(step: ResolvedStep) -> str:
    """The instruction as the progress shows it: the first line, continuations joined."""
    text = " ".join(step.instruction.original_line_text.replace("\\\n", " ").split())
    if step.heredocs:
        text = text.split("\n")[0]
    return text if len(text) <= 200 else text[:197] + "..."


def created_by(step: ResolvedStep, image: Image) -> str:
    """The history text of a step, as Docker writes it (``RUN /bin/sh -c make``, ``COPY app /app``)."""
    keyword = step.keyword
    flags = "".join(f"{f} " for f in step.flags if f.name not in ("mount",))
    if keyword == "RUN":
        if step.instruction.json_form:
            return f"RUN {flags}{json.dumps(list(step.args))}"
        shell = " ".join((image.config.get("config") or {}).get("Shell") or DEFAULT_SHELL)
        args = [f"{k}={v}" for k, v in step.build_args]
        prefix = f"|{len(args)} {' '.join(args)} " if args else ""
        return f"RUN {prefix}{shell} {step.args[0]}".rstrip()
    if keyword in ("CMD", "ENTRYPOINT", "SHELL") and step.instruction.json_form:
        return f"{keyword} {json.dumps(list(step.args))}"
    if keyword in ("CMD", "ENTRYPOINT"):
        words = list((image.config.get("config") or {}).get("Shell") or DEFAULT_SHELL)
        return f"{keyword} {json.dumps([*words, step.args[0]])}"
    if keyword in ("ENV", "LABEL"):
        return f"{keyword} " + " ".join(f"{k}={v}" for k, v in step.pairs())
    if keyword == "HEALTHCHECK":
        return f"HEALTHCHECK {flags}{' '.join(step.args)}"
    return f"{keyword} {flags}{' '.join(step.args)}".rstrip()


def apply_metadata(inner: dict[str, Any], step: ResolvedStep, *, cmd_in_stage: bool) -> dict[str, Any]:
    """The image config after a metadata-only instruction (ENV, CMD, LABEL, ...). Pure."""
    keyword = step.keyword
    shell = list(inner.get("Shell") or DEFAULT_SHELL)
    if keyword == "ENV":
        env = dict(str(e).partition("=")[::2] for e in inner.get("Env") or [])
        env.update(step.pairs())
        inner["Env"] = [f"{k}={v}" for k, v in env.items()]
    elif keyword == "LABEL":
        inner["Labels"] = {**(inner.get("Labels") or {}), **dict(step.pairs())}
    elif keyword == "CMD":
        inner["Cmd"] = list(step.args) if step.instruction.json_form else [*shell, step.args[0]]
    elif keyword == "ENTRYPOINT":
        inner["Entrypoint"] = list(step.args) if step.instruction.json_form else [*shell, step.args[0]]
        if not cmd_in_stage:
            inner["Cmd"] = None
    elif keyword == "USER":
        inner["User"] = step.args[0]
    elif keyword == "EXPOSE":
        ports = dict(inner.get("ExposedPorts") or {})
        for port in step.args:
            ports.update(dict.fromkeys(_expand_ports(port), {}))
        inner["ExposedPorts"] = ports
    elif keyword == "VOLUME":
        volumes = dict(inner.get("Volumes") or {})
        volumes.update({v: {} for v in step.args if v})
        inner["Volumes"] = volumes
    elif keyword == "STOPSIGNAL":
        inner["StopSignal"] = step.args[0]
    elif keyword == "SHELL":
        inner["Shell"] = list(step.args)
    elif keyword == "ONBUILD":
        inner["OnBuild"] = [*(inner.get("OnBuild") or []), step.args[0]]
    elif keyword == "HEALTHCHECK" and step.healthcheck is not None:
        inner["Healthcheck"] = _healthcheck(step)
    elif keyword == "MAINTAINER":
        pass
    return inner


def _healthcheck(step: ResolvedStep) -> dict[str, Any]:
    hc = step.healthcheck
    assert hc is not None
    if hc.test == ("NONE",):
        return {"Test": ["NONE"]}
    out: dict[str, Any] = {"Test": list(hc.test)}
    for name, value in (("Interval", hc.interval), ("Timeout", hc.timeout), ("StartPeriod", hc.start_period),
                        ("StartInterval", hc.start_interval)):  # fmt: skip
        if value is not None:
            out[name] = int(value * _GO_DURATION_NS)
    if hc.retries is not None:
        out["Retries"] = hc.retries
    return out


def _expand_ports(port: str) -> list[str]:
    number, _, proto = port.partition("/")
    proto = (proto or "tcp").lower()
    first, _, last = number.partition("-")
    if not last:
        return [f"{int(first)}/{proto}"]
    return [f"{p}/{proto}" for p in range(int(first), int(last) + 1)]


def _relay_log(path: Path, offset: int, vertex: Vertex) -> int:
    """New json-file log lines of a RUN container, to the vertex; returns the new offset."""
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size < offset:
                offset = 0  # the log was rotated
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return offset
    end = data.rfind(b"\n") + 1
    for raw in data[:end].splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        vertex.output(str(entry.get("log", "")))
    return offset + end


def _human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.4g}{unit}"
        size /= 1000
    return f"{size:.4g}TB"


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _ChunkReader:
    """A file-like ``read`` over an iterator of byte chunks (a layer tar being generated)."""

    def __init__(self, chunks: Any) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()

    def read(self, n: int = -1, /) -> bytes:
        while n < 0 or len(self._buffer) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if n < 0:
            n = len(self._buffer)
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

