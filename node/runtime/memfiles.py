"""Files placed in a container from its create request, held in memory only: what cluster secrets and
configs need (Docker Swarm's /run/secrets/<name> on tmpfs, configs at their target).

The request (`HostConfig.Files`, parsed by node.containers.options.parse_files) lists
`{"Target": "/run/secrets/db_password", "Data": "<base64>", "UID": "0", "GID": "0", "Mode": 292}`.
This driver mounts one small tmpfs per container at `<data-root>/containers/<id>/files` (mode 0700,
nosuid,nodev,noexec, `size` and `nr_inodes` just what the content needs), writes file `i` of the list
there as `<i>` with the owner and mode asked, and `mount_requests` binds each one read-only at its
target in the OCI spec (the runtime makes the parent directories and an empty mountpoint in the
rootfs, as for every bind; a read-only rootfs is made read-only after the mounts). The content never
reaches a disk: config.v2.json and inspect keep Target/UID/GID/Mode only, config.json names the
tmpfs paths, the writable layer holds the empty mountpoints.

The driver owns its mounts: `remove()` unmounts one and removes its directory (idempotent). The tmpfs
lives in the host's mount namespace, so it outlives a daemon restart (even SIGKILL): a container that kept
running under conmon keeps its files, a restart binds them again, and a later `rm` still removes them.
After a host reboot it is gone; starting such a container then fails and says so.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from node.errors import EngineFailure
from node.runtime import mounts as mnt
from node.runtime.spec import MountRequest

FILES_DIR = "files"  # under a container's directory
MAX_FILE_BYTES = 1 << 20  # the cluster caps secrets and configs at 500 KB
MAX_TOTAL_BYTES = 16 << 20
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryFile:
    target: str  # absolute, normalised, inside the container
    data: bytes = field(repr=False)  # never in a repr, a log line or a traceback's locals
    uid: int = 0
    gid: int = 0
    mode: int = 0o444


# --- pure -------------------------------------------------------------------------------------------
def tmpfs_options(files: Sequence[MemoryFile]) -> str:
    """Sized to the content: whole pages per file (at least one in all), one inode per file plus the root."""
    pages = sum(-(-len(f.data) // _PAGE) for f in files)
    return f"mode=0700,size={max(pages, 1) * _PAGE},nr_inodes={len(files) + 1}"


def mount_requests(directory: Path, targets: Sequence[str]) -> list[MountRequest]:
    """Read-only binds of the placed files, in request order (they go after every other mount)."""
    return [MountRequest(destination=target, source=str(directory / str(index)),
                         options=("bind", "ro", "nosuid", "nodev", "noexec", "rprivate"))
            for index, target in enumerate(targets)]


# --- the driver -------------------------------------------------------------------------------------
class MemoryFiles:
    name = "memfiles"

    def __init__(self, root: Path) -> None:
        self.root = root  # where the containers' directories are

    def place(self, directory: Path, files: Sequence[MemoryFile]) -> None:
        """Mount a tmpfs at `directory` (made here) and write `files` into it; on failure nothing is left."""
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            raise EngineFailure(f"{directory} already exists") from None
        try:
            mnt.mount("tmpfs", directory, options=tmpfs_options(files),
                         flags=mnt.MS_NOSUID | mnt.MS_NODEV | mnt.MS_NOEXEC)
            for index, f in enumerate(files):
                _write(directory / str(index), f)
        except BaseException:
            self.remove(directory)
            raise

    def remove(self, directory: Path) -> None:
        """Unmount (lazily if something still holds it) and remove `directory`; nothing there is fine."""
        for _ in range(8):  # a stacked mount would be an error elsewhere; take them all off
            if not self.is_mounted(directory):
                break
            mnt.umount(directory, lazy_if_busy=True)
        else:
            raise EngineFailure(f"umount {directory}: still mounted")
        if directory.exists():
            shutil.rmtree(directory)  # only the empty mountpoint (the content went with the tmpfs)

    def is_mounted(self, directory: Path) -> bool:
        return os.path.realpath(directory) in mnt.mount_points()


def _write(path: Path, f: MemoryFile) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(f.data)
        while view:
            view = view[os.write(fd, view):]
        os.fchown(fd, f.uid, f.gid)
        os.fchmod(fd, f.mode)  # after chown, which clears set-id bits
    except OSError as exc:
        raise EngineFailure(f"writing {f.target} into {path.parent}: {exc.strerror}") from None
    finally:
        os.close(fd)
