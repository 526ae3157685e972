"""The build context: a tar of the context directory (honouring .dockerignore), its safe extraction, and
the content digest of the files a COPY/ADD reads, which is the cache input of that step."""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

from node.builder.dockerfile import BuildError, ResolvedStep
from node.builder.dockerignore import BadPattern, DockerIgnore, clean_path, match_component, walk_included

_WILDCARDS = frozenset("*?[\\")
SECRETS_DIR = ".pynode-build-secrets"  # where a client puts build secrets in the context tar
_CHUNK = 1 << 20


class ContextError(BuildError):
    """The build context is unusable: a path escapes it, a source is missing, a tar is unsafe."""


def load_ignore(context_dir: Path, *, dockerfile: str = "Dockerfile") -> DockerIgnore:
    """The context's .dockerignore, with the Dockerfile and .dockerignore kept as the Docker CLI keeps them."""
    return DockerIgnore.load(Path(context_dir)).keeping(".dockerignore", dockerfile)


def list_context(context_dir: Path, *, ignore: DockerIgnore | None = None, dockerfile: str = "Dockerfile") -> list[str]:
    """Relative paths of everything the context sends, sorted (directories before their contents)."""
    rules = ignore if ignore is not None else load_ignore(context_dir, dockerfile=dockerfile)
    return list(walk_included(Path(context_dir), rules))


# --------------------------------------------------------------------------------------------- tar


def write_context_tar(context_dir: Path, out: IO[bytes], *, ignore: DockerIgnore | None = None,
                      dockerfile: str = "Dockerfile", extra: Mapping[str, bytes] | None = None) -> None:  # fmt: skip
    """Write the context as an uncompressed tar in a deterministic order; owners are zeroed, modes and
    modification times kept. Sockets, fifos and devices are left out. ``extra`` adds files by path
    (a Dockerfile from outside the context, build secrets), mode 0600."""
    root = Path(context_dir)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted((extra or {}).items()):
            for parent in _parents(name):
                info = tarfile.TarInfo(parent)
                info.type, info.mode = tarfile.DIRTYPE, 0o700
                tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
        for rel in list_context(root, ignore=ignore, dockerfile=dockerfile):
            info = tar.gettarinfo(str(root / rel), arcname=rel)
            if not (info.isreg() or info.isdir() or info.issym() or info.islnk()):
                continue
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                with open(root / rel, "rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)


def _parents(name: str) -> list[str]:
    parts = name.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def extract_context_tar(source: IO[bytes], dest_dir: Path) -> None:
    """Extract a context tar into ``dest_dir``, refusing absolute paths, ``..``, writes through symlinks,
    links leaving the directory and special files."""
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=source, mode="r|*") as tar:
        tar.extractall(dest, filter=_safe_member)


def _safe_member(member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo:
    name = _checked_name(member.name)
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        raise ContextError(f"build context: refusing special file {member.name!r}")
    root = os.path.realpath(dest_path)
    _require_inside(root, os.path.join(root, posixpath.dirname(name)), member.name)
    target = os.path.join(root, name)
    if not member.isdir() and os.path.lexists(target):
        _require_inside(root, target, member.name)
    if member.islnk():
        _require_inside(root, os.path.join(root, _checked_name(member.linkname)), member.name)
    return member.replace(name=name, uid=0, gid=0, uname="", gname="", deep=False)


def _checked_name(name: str) -> str:
    cleaned = clean_path(name)
    if cleaned.startswith(("/", "../")) or cleaned == "..":
        raise ContextError(f"build context: path escapes the context: {name!r}")
    return cleaned


def _require_inside(root: str, path: str, shown: str) -> None:
    real = os.path.realpath(path)
    if real != root and not real.startswith(root + os.sep):
        raise ContextError(f"build context: {shown!r} would be written outside the context")


# ------------------------------------------------------------------------------------ COPY sources


def context_sources(step: ResolvedStep) -> list[str]:
    """Everything a step reads from the build context: COPY/ADD sources (see ``copy_sources``) and, for
    RUN, the sources of ``--mount=type=bind`` without ``from`` (the context root when none is given)."""
    if step.keyword == "RUN":
        return [m.source or "." for m in step.mounts if m.type == "bind" and not m.from_ref]
    return copy_sources(step)


def copy_sources(step: ResolvedStep) -> list[str]:
    """The build-context sources a COPY/ADD reads: none for ``--from`` (another stage or image) and
    heredoc sources left out."""
    if step.keyword not in ("COPY", "ADD") or step.flag("from"):
        return []
    heredocs = {f"<<{d.name}" for d in step.heredocs} | {f"<<-{d.name}" for d in step.heredocs}
    return [s for s in step.args[:-1] if not (step.heredocs and s.lstrip("0123456789") in heredocs)]


def match_sources(context_dir: Path, sources: Sequence[str], *, location: str, keyword: str = "COPY",
                  ignore: DockerIgnore | None = None) -> list[str]:  # fmt: skip
    """Context-relative paths the sources name ("" is the context root). Globs follow Go's
    filepath.Match per path component. A source outside the context, or matching nothing, is an error."""
    root = Path(context_dir)
    rules = ignore if ignore is not None else DockerIgnore()
    matched: list[str] = []
    for source in sources:
        rel = _context_relative(source, location, keyword)
        try:
            present = _glob(root, rel) if any(c in _WILDCARDS for c in rel) else _exact(root, rel)
        except BadPattern as exc:
            raise ContextError(f"{location}: {keyword} source {source!r}: {exc}") from None
        found = [p for p in present if not (p and rules.is_excluded(p))]
        if not found:
            hint = " (excluded by .dockerignore)" if present else ""
            raise ContextError(f"{location}: {keyword} source {source!r} matches no files in the build context{hint}")
        for path in found:
            _check_link_inside(root, path, location=location, keyword=keyword)
        matched.extend(p for p in found if p not in matched)
    return matched


def _context_relative(source: str, location: str, keyword: str) -> str:
    cleaned = clean_path(source)
    if cleaned == ".." or cleaned.startswith("../"):
        raise ContextError(f"{location}: {keyword} source {source!r} is outside the build context")
    cleaned = cleaned.lstrip("/")
    return "" if cleaned in ("", ".") else cleaned


def _exact(root: Path, rel: str) -> list[str]:
    if not rel:
        return [""]
    return [rel] if os.path.lexists(root / rel) else []


def _glob(root: Path, rel: str) -> list[str]:
    candidates = [""]
    for component in rel.split("/"):
        nxt = []
        for base in candidates:
            directory = root / base if base else root
            if not directory.is_dir():
                continue
            names = sorted(os.listdir(directory))
            nxt += [posixpath.join(base, n) if base else n for n in names if match_component(component, n)]
        candidates = nxt
    return candidates


def _check_link_inside(root: Path, rel: str, *, location: str, keyword: str) -> None:
    real_root = os.path.realpath(root)
    real = os.path.realpath(root / rel)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise ContextError(f"{location}: {keyword} source {rel!r} is a symlink leading outside the build context")


# ------------------------------------------------------------------------------------------ digests


def digest_paths(context_dir: Path, relpaths: Sequence[str], *, ignore: DockerIgnore | None = None) -> str:
    """``sha256:<hex>`` over each path's name, type, permission bits and content; a directory counts
    with its recursive listing (what .dockerignore leaves in). Top-level symlinks are followed, inner
    ones recorded as links. Modification times and owners do not count."""
    root = Path(context_dir)
    rules = ignore if ignore is not None else DockerIgnore()
    digest = hashlib.sha256()
    for rel in relpaths:
        for record in _records(root, rel, rules):
            digest.update(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
    return "sha256:" + digest.hexdigest()


def _records(root: Path, rel: str, rules: DockerIgnore) -> Iterator[list[object]]:
    real = os.path.realpath(root / rel) if rel else os.path.realpath(root)
    real_rel = os.path.relpath(real, os.path.realpath(root))
    real_rel = "" if real_rel == "." else real_rel.replace(os.sep, "/")
    yield _record(Path(real), rel or ".", follow=True)
    if os.path.isdir(real):
        for child in walk_included(root, rules, start=real_rel):
            name = child[len(real_rel) + 1 :] if real_rel else child
            yield _record(root / child, posixpath.join(rel or ".", name), follow=False)


def _record(path: Path, shown: str, *, follow: bool) -> list[object]:
    st = os.stat(path) if follow else os.lstat(path)
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return ["link", shown, mode, os.readlink(path)]
    if stat.S_ISDIR(st.st_mode):
        return ["dir", shown, mode, None]
    if stat.S_ISREG(st.st_mode):
        return ["file", shown, mode, _file_sha256(path)]
    return ["other", shown, mode, None]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def digest_sources(context_dir: Path, sources: Sequence[str], *, location: str, keyword: str = "COPY",
                   ignore: DockerIgnore | None = None) -> str:  # fmt: skip
    """Match the sources (see ``match_sources``) and digest what they name."""
    matched = match_sources(context_dir, sources, location=location, keyword=keyword, ignore=ignore)
    return digest_paths(context_dir, matched, ignore=ignore)


def digest_step_sources(context_dir: Path, step: ResolvedStep, *, filename: str = "Dockerfile",
                        ignore: DockerIgnore | None = None) -> str | None:  # fmt: skip
    """The digest of the context files a step reads (COPY/ADD sources, RUN bind mounts of the context);
    None when it reads none."""
    sources = context_sources(step)
    if not sources:
        return None
    location = f"{filename}:{step.instruction.lineno}"
    return digest_sources(context_dir, sources, location=location, keyword=step.keyword, ignore=ignore)
