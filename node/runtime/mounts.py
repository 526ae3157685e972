"""mount(2) and umount2(2) through libc, and the mount points of this process's namespace: what the storage
driver (overlay rootfs) and the in-memory files driver (tmpfs) share. A mount(8) process per container start
would cost several milliseconds."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
from pathlib import Path

from node.errors import EngineFailure

MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8
MNT_DETACH = 0x2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def mount(fstype: str, target: Path, *, options: str, flags: int = 0) -> None:
    if _libc.mount(fstype.encode(), os.fsencode(target), fstype.encode(), flags, options.encode()) != 0:
        err = ctypes.get_errno()
        raise EngineFailure(f"mount {fstype} at {target}: {os.strerror(err)}")


def umount(target: Path, *, lazy_if_busy: bool = False) -> None:
    """Plain umount. `lazy_if_busy`: detach when busy, and a target that is no (longer a) mount point is fine."""
    for flags in (0, MNT_DETACH) if lazy_if_busy else (0,):
        if _libc.umount2(os.fsencode(target), flags) == 0:
            return
        err = ctypes.get_errno()
        if lazy_if_busy and err in (errno.EINVAL, errno.ENOENT):
            return
        if err != errno.EBUSY:
            break
    raise EngineFailure(f"umount {target}: {os.strerror(err)}")


def mount_points() -> set[str]:
    with open("/proc/self/mountinfo") as fh:
        return {unescape(line.split()[4]) for line in fh}


def unescape(text: str) -> str:
    """A mountinfo path field: octal escapes (`\\040` for a space) back to characters."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)
