"""Base images without a registry: busybox from the host's static busybox, Debian through mmdebstrap.

`build(kind, tag, tar_path, result)` writes the root filesystem tar and yields progress lines; the store
turns the tar into a layer and `result.config` into the image config. The busybox tar is deterministic
(sorted entries, the host binary's mtime everywhere), so bootstrapping twice gives the same image ID.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from node.errors import EngineFailure, InvalidArgument
from node.images.model import go_arch

KINDS = ("busybox", "debian")
BUSYBOX = Path("/bin/busybox")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
_GROUP = "root:x:0:\nnobody:x:65534:\n"
_BUSYBOX_DIRS = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o555, "root": 0o700,
                 "sys": 0o555, "tmp": 0o1777, "usr": 0o755, "usr/sbin": 0o755, "var": 0o755,
                 "var/www": 0o755}
_APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"), Path("/etc/apt/apt.conf.d"))


@dataclass
class Result:
    """Filled by `build`: the image config without `rootfs` (the store adds it)."""

    config: dict[str, Any] = field(default_factory=dict)


def build(kind: str, tag: str, tar_path: Path, result: Result) -> Iterator[str]:
    if kind == "busybox":
        yield from _build_busybox(tar_path, result)
    elif kind == "debian":
        yield from _build_debian(tag, tar_path, result)
    else:
        raise InvalidArgument(f"cannot bootstrap {kind!r}: known bases are {', '.join(KINDS)}")


# --- busybox --------------------------------------------------------------------------------------
def _build_busybox(tar_path: Path, result: Result) -> Iterator[str]:
    if not BUSYBOX.exists():
        raise EngineFailure(f"{BUSYBOX} not found: install busybox-static")
    version = _busybox_version()
    applets = _busybox_applets()
    mtime = int(BUSYBOX.stat().st_mtime)
    yield f"Building busybox root filesystem from {BUSYBOX} ({version}, {len(applets)} applets)"
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, mode in sorted(_BUSYBOX_DIRS.items()):
            tar.addfile(_info(name, mtime, mode=mode, kind=tarfile.DIRTYPE))
            if name == "bin":
                with open(BUSYBOX, "rb") as fh:
                    tar.addfile(_info("bin/busybox", mtime, mode=0o755, size=BUSYBOX.stat().st_size), fh)
                for applet in applets:
                    tar.addfile(_info(f"bin/{applet}", mtime, mode=0o755, kind=tarfile.LNKTYPE,
                                      linkname="bin/busybox"))
            if name == "etc":
                for file_name, text in (("etc/group", _GROUP), ("etc/passwd", _PASSWD)):
                    data = text.encode()
                    tar.addfile(_info(file_name, mtime, mode=0o644, size=len(data)), io.BytesIO(data))
    created = _rfc3339(mtime)
    result.config = {
        "architecture": go_arch(), "os": "linux", "created": created,
        "config": {"Env": [PATH_ENV], "Cmd": ["sh"]},
        "history": [{"created": created, "created_by": f"pynode image bootstrap busybox ({version})"}],
    }


def _busybox_applets() -> list[str]:
    out = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout
    return sorted({a for a in out.split() if a and "/" not in a and a != "busybox"})


def _busybox_version() -> str:
    out = subprocess.run([str(BUSYBOX)], capture_output=True, text=True, check=False).stdout
    first = out.splitlines()[0] if out else "BusyBox"
    return first.split(" multi-call")[0].strip()


def _info(name: str, mtime: int, *, mode: int, size: int = 0, kind: bytes = tarfile.REGTYPE,
          linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime, info.linkname = kind, mode, size, mtime, linkname
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


# --- debian ---------------------------------------------------------------------------------------
def _build_debian(suite: str, tar_path: Path, result: Result) -> Iterator[str]:
    if suite == "latest":
        suite = "bookworm"
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise EngineFailure("cannot bootstrap debian: mmdebstrap is not installed (apt-get install mmdebstrap)")
    argv = [mmdebstrap, "--variant=minbase", "--skip=output/dev", *_apt_hooks(), suite, str(tar_path)]
    yield f"Running {' '.join(argv[:2])} {suite} (about a minute)"
    last: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                          text=True, errors="replace", bufsize=1) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            line = line.rstrip()
            if line:
                last = (last + [line])[-5:]
                yield line
        code = proc.wait()
    if code != 0:
        detail = next((x for x in reversed(last) if x.startswith("E:")), last[-1] if last else "")
        raise EngineFailure(f"mmdebstrap {suite} failed (exit {code}; is the Debian mirror reachable?): {detail}")
    created = _rfc3339(datetime.now(UTC).timestamp())
    result.config = {
        "architecture": go_arch(), "os": "linux", "created": created,
        "config": {"Env": [PATH_ENV], "Cmd": ["bash"]},
        "history": [{"created": created, "created_by": f"pynode image bootstrap debian:{suite} (mmdebstrap minbase)"}],
    }


def _apt_hooks() -> list[str]:
    """Replace the image's apt sources with the host's (the default security mirror is unreachable here)."""
    present = [p for p in _APT_SOURCES if p.exists()]
    if not present:
        return []
    commands = ['rm -f "$1"/etc/apt/sources.list "$1"/etc/apt/sources.list.d/*']
    for path in present:
        if path.is_dir():
            commands.append(f'mkdir -p "$1"{path} && cp -a {path}/. "$1"{path}/')
        else:
            commands.append(f'cp -a {path} "$1"{path}')
    return [f"--customize-hook={cmd}" for cmd in commands]


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def host_has(path: str) -> bool:
    return os.path.exists(path)
