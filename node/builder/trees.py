"""Read-only views of file trees the builder copies from and checks against, without mounting anything.

``LayeredTree`` is an image's filesystem seen through its layer ``diff`` directories (overlay rules:
whiteouts are 0/0 character devices, ``trusted.overlay.opaque=y`` hides lower layers' entries of a
directory). ``HostTree`` is a plain directory (the build context). Both resolve symlinks inside the tree,
never to the host: ``resolve("/usr/local/bin")`` walks the image's own links, clamped at its root.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

_OPAQUE_XATTR = "trusted.overlay.opaque"
_MAX_LINKS = 40


class TreeError(Exception):
    """A path cannot be resolved: too many links."""


class Tree(Protocol):
    def host_path(self, rel: str) -> Path | None: ...
    def listdir(self, rel: str) -> list[str]: ...


def split_path(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def resolve(tree: Tree, path: str, *, follow_last: bool = True) -> str:
    """The canonical relative path (no symlink components, no ``..``) of ``path`` inside ``tree``.
    Components that do not exist are kept as written."""
    todo = split_path(path)
    done: list[str] = []
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = "/".join([*done, part])
        host = tree.host_path(candidate)
        if host is not None and os.path.islink(host) and (todo or follow_last):
            hops += 1
            if hops > _MAX_LINKS:
                raise TreeError(f"{path}: too many levels of symbolic links")
            target = os.readlink(host)
            if target.startswith("/"):
                done = []
            todo = split_path(target) + todo
            continue
        done.append(part)
    return "/".join(done)


def lstat_in(tree: Tree, rel: str) -> os.stat_result | None:
    host = tree.host_path(rel)
    return os.lstat(host) if host is not None else None


def is_dir_in(tree: Tree, path: str) -> bool:
    """Whether ``path`` (symlinks followed) is a directory of the tree."""
    st = lstat_in(tree, resolve(tree, path))
    return st is not None and stat.S_ISDIR(st.st_mode)


def exists_in(tree: Tree, path: str, *, follow_last: bool = False) -> bool:
    return lstat_in(tree, resolve(tree, path, follow_last=follow_last)) is not None


def walk(tree: Tree, rel: str) -> Iterator[str]:
    """Relative paths under the directory ``rel`` (not followed through links), sorted, parents first."""
    for name in sorted(tree.listdir(rel)):
        child = f"{rel}/{name}" if rel else name
        yield child
        st = lstat_in(tree, child)
        if st is not None and stat.S_ISDIR(st.st_mode):
            yield from walk(tree, child)


class HostTree:
    """A directory of the host (the build context). ``exclude(rel)`` hides files (the Dockerfile and
    .dockerignore travel with the context even when .dockerignore names them; COPY must not see them)."""

    def __init__(self, root: Path, *, exclude: Callable[[str], bool] | None = None) -> None:
        self.root = Path(root)
        self.exclude = exclude

    def host_path(self, rel: str) -> Path | None:
        path = self.root / rel if rel else self.root
        return path if os.path.lexists(path) else None

    def listdir(self, rel: str) -> list[str]:
        path = self.root / rel if rel else self.root
        if not path.is_dir() or path.is_symlink():
            return []
        names = sorted(os.listdir(path))
        if self.exclude is None:
            return names
        return [n for n in names if (path / n).is_dir() or not self.exclude(f"{rel}/{n}" if rel else n)]


class LayeredTree:
    """An image's filesystem from its layers' diff directories (given bottom layer first)."""

    def __init__(self, diff_dirs: Sequence[Path]) -> None:
        self.layers = [Path(d) for d in reversed(diff_dirs)]  # top first

    def _visible_layers(self, rel: str) -> Iterator[Path]:
        """The layers where ``rel`` may be found, top first: lower ones are cut off by a whiteout, an
        opaque directory or a non-directory at ``rel`` or one of its parents."""
        parts = split_path(rel)
        for layer in self.layers:
            yield layer
            if _blocks_below(layer, parts):
                return

    def host_path(self, rel: str) -> Path | None:
        if not split_path(rel):
            return self.layers[0] if self.layers else None
        for layer in self._visible_layers(rel):
            path = layer / rel
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            except NotADirectoryError:
                return None
            return None if _is_whiteout(st) else path
        return None

    def listdir(self, rel: str) -> list[str]:
        seen: dict[str, bool] = {}
        for layer in self._visible_layers(rel):
            directory = layer / rel if rel else layer
            if not directory.is_dir() or directory.is_symlink():
                if os.path.lexists(directory):
                    break
                continue
            for name in os.listdir(directory):
                if name not in seen:
                    seen[name] = not _is_whiteout(os.lstat(directory / name))
            if _is_opaque(directory):
                break
        return sorted(name for name, visible in seen.items() if visible)


def _blocks_below(layer: Path, parts: list[str]) -> bool:
    for depth in range(1, len(parts) + 1):
        path = layer.joinpath(*parts[:depth])
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        if _is_whiteout(st) or not stat.S_ISDIR(st.st_mode) or _is_opaque(path):
            return True
    return False


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, _OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def read_text_in(tree: Tree, path: str) -> str | None:
    """A text file of the tree (``/etc/passwd``), or None."""
    host = tree.host_path(resolve(tree, path))
    if host is None or not host.is_file():
        return None
    try:
        return host.read_text(errors="replace")
    except OSError:
        return None


def lookup_user(tree: Tree, user: str) -> tuple[int, int]:
    """``--chown=user[:group]`` as (uid, gid): names from the tree's /etc/passwd and /etc/group, numbers as
    they are; a user alone takes its primary group. KeyError(name) when a name is unknown."""
    name, _, group = user.partition(":")
    passwd = _db(read_text_in(tree, "/etc/passwd"))
    if name.isdigit():
        uid = int(name)
        primary = next((int(e[3]) for e in passwd if len(e) > 3 and e[2] == name and e[3].isdigit()), uid)
    else:
        entry = next((e for e in passwd if e[0] == name and len(e) > 3), None)
        if entry is None:
            raise KeyError(f"unable to find user {name}: no matching entries in passwd file")
        uid, primary = int(entry[2]), int(entry[3])
    if not group:
        return uid, primary
    if group.isdigit():
        return uid, int(group)
    groups = _db(read_text_in(tree, "/etc/group"))
    found = next((e for e in groups if e[0] == group and len(e) > 2), None)
    if found is None:
        raise KeyError(f"unable to find group {group}: no matching entries in group file")
    return uid, int(found[2])


def _db(text: str | None) -> list[list[str]]:
    return [line.split(":") for line in (text or "").splitlines() if line and not line.startswith("#")]
