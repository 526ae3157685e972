"""HostConfig.Files: files from the create request on a tmpfs of the container, bound read-only at their
targets (what cluster secrets and configs need), through the API of a real daemon on the real kernel."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from node.client import EngineClient
from node.containers import options
from node.errors import InvalidArgument, NodeError
from node.runtime import memfiles
from tests.node.containers.conftest import ensure_busybox
from tests.support.engine import EngineProcess

Unique = Callable[[str], str]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _two_files(secret: bytes, conf: bytes) -> list[dict[str, Any]]:
    return [{"Target": "/run/secrets/x", "Data": _b64(secret), "UID": "1000", "GID": "1000", "Mode": 0o400},
            {"Target": "/etc/app.conf", "Data": _b64(conf)}]


def _create(client: EngineClient, name: str, files: Any, *, cmd: tuple[str, ...] = ("sleep", "300"),
            **host_config: Any) -> str:
    body = {"Image": "busybox", "Cmd": list(cmd), "HostConfig": {"Files": files, **host_config}}
    return str(client.post("/containers/create", params={"name": name}, json=body)["Id"])


@contextlib.contextmanager
def _removed_after(client: EngineClient, name: str) -> Iterator[None]:
    try:
        yield
    finally:
        with contextlib.suppress(NodeError):
            client.delete(f"/containers/{name}", params={"force": "1"})


def _mounts_under(root: Path) -> list[str]:
    prefix = os.path.realpath(root) + "/"
    return [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(prefix)]


def _files_holding(root: Path, needles: list[bytes]) -> list[str]:
    """Files on root's own filesystem (no tmpfs, no overlay view) whose bytes hold any needle."""
    device = os.stat(root).st_dev
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if os.lstat(os.path.join(dirpath, d)).st_dev == device]
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
                if st.st_dev != device or not os.path.isfile(path) or os.path.islink(path):
                    continue
                content = Path(path).read_bytes()
            except OSError:
                continue
            if any(n in content for n in needles):
                found.append(path)
    return found


def _mount_line(e: EngineProcess, name: str, target: str) -> list[str]:
    lines = [line.split() for line in e.cli("exec", name, "cat", "/proc/mounts").stdout.splitlines()]
    return next(line for line in lines if line[1] == target)


# --- pure: parsing the request ----------------------------------------------------------------------
def test_parse_files_defaults_and_view() -> None:
    files = options.parse_files([{"Target": "/run//secrets/./a", "Data": _b64(b"hush")},
                                 {"Target": "/c", "Data": "", "UID": "7", "GID": 8, "Mode": 0o600}],
                                mount_targets=[])
    assert [(f.target, f.data, f.uid, f.gid, f.mode) for f in files] == \
        [("/run/secrets/a", b"hush", 0, 0, 0o444), ("/c", b"", 7, 8, 0o600)]
    assert options.parse_files(None, mount_targets=[]) == ()
    assert options.files_view(files) == [{"Target": "/run/secrets/a", "UID": "0", "GID": "0", "Mode": 0o444},
                                         {"Target": "/c", "UID": "7", "GID": "8", "Mode": 0o600}]
    assert "hush" not in repr(files)


def test_tmpfs_is_sized_to_the_content() -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    files = [memfiles.MemoryFile(target="/a", data=b"x" * (page + 1)), memfiles.MemoryFile(target="/b", data=b"")]
    assert memfiles.tmpfs_options(files) == f"mode=0700,size={2 * page},nr_inodes=3"
    assert memfiles.tmpfs_options([memfiles.MemoryFile(target="/e", data=b"")]) == \
        f"mode=0700,size={page},nr_inodes=2"


BAD_FILES: list[tuple[Any, str]] = [
    ([{"Target": "run/secrets/x", "Data": ""}], "HostConfig.Files[0].Target"),
    ([{"Data": ""}], "HostConfig.Files[0].Target"),
    ([{"Target": "/ok", "Data": ""}, {"Target": "/run/../etc/x", "Data": ""}], "HostConfig.Files[1].Target"),
    ([{"Target": "/", "Data": ""}], "HostConfig.Files[0].Target"),
    ([{"Target": "/a", "Data": ""}, {"Target": "/a/", "Data": ""}], "HostConfig.Files[1].Target"),
    ([{"Target": "/vol", "Data": ""}], "HostConfig.Files[0].Target"),  # a mount's target (see below)
    ([{"Target": "/a", "Data": "not base64!"}], "HostConfig.Files[0].Data"),
    ([{"Target": "/a"}], "HostConfig.Files[0].Data"),
    ([{"Target": "/a", "Data": _b64(b"x" * (memfiles.MAX_FILE_BYTES + 1))}], "HostConfig.Files[0].Data"),
    ([{"Target": f"/f{i}", "Data": _b64(b"x" * memfiles.MAX_FILE_BYTES)} for i in range(17)],
     "HostConfig.Files[16].Data"),
    ([{"Target": "/a", "Data": "", "Mode": -1}], "HostConfig.Files[0].Mode"),
    ([{"Target": "/a", "Data": "", "Mode": 0o10000}], "HostConfig.Files[0].Mode"),
    ([{"Target": "/a", "Data": "", "Mode": "0644"}], "HostConfig.Files[0].Mode"),
    ([{"Target": "/a", "Data": "", "UID": "root"}], "HostConfig.Files[0].UID"),
    ([{"Target": "/a", "Data": "", "UID": "-1"}], "HostConfig.Files[0].UID"),
    ([{"Target": "/a", "Data": "", "GID": "1.5"}], "HostConfig.Files[0].GID"),
    ([{"Target": "/a", "Data": "", "Uid": "0"}], "HostConfig.Files[0].Uid"),
    (["/a"], "HostConfig.Files[0]"),
    ({"Target": "/a"}, "HostConfig.Files"),
]


@pytest.mark.parametrize(("files", "field"), BAD_FILES)
def test_bad_files_name_their_field(files: Any, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        options.parse_files(files, mount_targets=["/vol"])
    assert str(err.value).startswith(f"{field}:") and "\n" not in str(err.value)


# --- the real thing -------------------------------------------------------------------------------
@pytest.mark.privileged
def test_files_in_a_running_container(busybox_engine: EngineProcess, unique: Unique) -> None:
    e, client = busybox_engine, busybox_engine.client
    secret, conf = f"s3cret-{uuid.uuid4().hex}\n".encode(), f"conf-{uuid.uuid4().hex}\n".encode()
    name = unique("files")
    with _removed_after(client, name):
        cid = _create(client, name, _two_files(secret, conf))
        client.post(f"/containers/{cid}/start")
        assert e.cli("exec", name, "cat", "/run/secrets/x").stdout.encode() == secret
        assert e.cli("exec", name, "cat", "/etc/app.conf").stdout.encode() == conf
        assert e.cli("exec", name, "stat", "-c", "%a %u %g", "/run/secrets/x", "/etc/app.conf").stdout == \
            "400 1000 1000\n444 0 0\n"
        assert e.cli("exec", "-u", "1000", name, "cat", "/run/secrets/x").stdout.encode() == secret
        assert e.cli("exec", "-u", "1001", name, "cat", "/run/secrets/x", check=False).returncode != 0
        for target in ("/run/secrets/x", "/etc/app.conf"):
            line = _mount_line(e, name, target)
            assert line[2] == "tmpfs" and line[3].split(",")[0] == "ro", line
            assert e.cli("exec", name, "sh", "-c", f"echo new > {target}", check=False).returncode != 0
        assert e.cli("exec", name, "cat", "/run/secrets/x").stdout.encode() == secret

        view = client.get(f"/containers/{cid}/json")
        assert view["HostConfig"]["Files"] == [
            {"Target": "/run/secrets/x", "UID": "1000", "GID": "1000", "Mode": 0o400},
            {"Target": "/etc/app.conf", "UID": "0", "GID": "0", "Mode": 0o444}]
        needles = [secret.strip(), conf.strip(), _b64(secret).encode(), _b64(conf).encode()]
        assert not any(n in json.dumps(view).encode() for n in needles)
        files_dir = e.data_root / "containers" / cid / "files"
        assert str(files_dir) in _mounts_under(e.data_root)
        assert _files_holding(e.base, needles) == []  # data root, exec root, daemon log: on disk, none
        diff = e.data_root / "overlay2" / cid / "diff"
        assert (diff / "run/secrets/x").stat().st_size == 0  # the runtime's empty mountpoint, no more
        assert _files_holding(diff, needles) == []

        client.post(f"/containers/{cid}/restart", params={"t": "0"})
        assert e.cli("exec", name, "cat", "/run/secrets/x").stdout.encode() == secret
        assert not any(n in e.cli("logs", name).stdout.encode() for n in needles)

        client.delete(f"/containers/{cid}", params={"force": "1"})
        assert not [m for m in _mounts_under(e.data_root) if cid in m]
        assert not (e.data_root / "containers" / cid).exists()


@pytest.mark.privileged
@pytest.mark.parametrize("runtime", ["crun", "runc"])
def test_files_with_a_read_only_rootfs_and_a_tmpfs_above(busybox_engine: EngineProcess, unique: Unique,
                                                         runtime: str) -> None:
    e, client = busybox_engine, busybox_engine.client
    name = unique("rofiles")
    with _removed_after(client, name):
        cid = _create(client, name, _two_files(b"top secret", b"k=v\n"), ReadonlyRootfs=True,
                      Tmpfs={"/run": "size=1m"}, Runtime=runtime)
        client.post(f"/containers/{cid}/start")
        assert e.cli("exec", name, "cat", "/run/secrets/x", "/etc/app.conf").stdout == "top secretk=v\n"
        assert e.cli("exec", name, "touch", "/etc/other", check=False).returncode != 0
        assert e.cli("exec", name, "touch", "/run/other").returncode == 0  # the tmpfs under the file
        for target in ("/run/secrets/x", "/etc/app.conf"):
            assert _mount_line(e, name, target)[3].split(",")[:4] == ["ro", "nosuid", "nodev", "noexec"]
            assert e.cli("exec", name, "sh", "-c", f"echo new > {target}", check=False).returncode != 0
        client.delete(f"/containers/{cid}", params={"force": "1"})
        assert not [m for m in _mounts_under(e.data_root) if cid in m]


@pytest.mark.privileged
@pytest.mark.parametrize(("files", "field"), [b for b in BAD_FILES if "Files[16]" not in b[1]])
def test_bad_files_are_400_and_leave_nothing(busybox_engine: EngineProcess, unique: Unique, files: Any,
                                             field: str) -> None:
    e, client = busybox_engine, busybox_engine.client
    before, mounts_before = set((e.data_root / "containers").iterdir()), _mounts_under(e.data_root)
    name = unique("badfiles")
    with _removed_after(client, name), pytest.raises(InvalidArgument) as err:
        _create(client, name, files, Binds=["/vol"])
    assert err.value.status == 400
    assert str(err.value).startswith(f"{field}:") and "\n" not in str(err.value)
    assert set((e.data_root / "containers").iterdir()) == before
    assert _mounts_under(e.data_root) == mounts_before
    assert not client.get("/containers/json", params={"all": "1", "filters": json.dumps({"name": [name]})})


@pytest.mark.privileged
def test_failures_after_the_mount_leave_nothing(busybox_engine: EngineProcess, unique: Unique) -> None:
    e, client = busybox_engine, busybox_engine.client
    before, mounts_before = set((e.data_root / "containers").iterdir()), _mounts_under(e.data_root)
    name, volume = unique("latefail"), unique("notavolume")
    blocker = e.data_root / "volumes" / volume  # a plain file where the volume's directory would go
    blocker.write_text("")
    try:
        with _removed_after(client, name), pytest.raises(NodeError):
            _create(client, name, _two_files(b"a", b"b"), Binds=[f"{volume}:/data"])
    finally:
        blocker.unlink()
    assert set((e.data_root / "containers").iterdir()) == before
    assert _mounts_under(e.data_root) == mounts_before

    with _removed_after(client, name):  # a start that fails keeps the container, and so its files
        body = {"Image": "busybox", "Cmd": ["/no/such/command"], "HostConfig": {"Files": _two_files(b"a", b"b")}}
        cid = client.post("/containers/create", params={"name": name}, json=body)["Id"]
        with pytest.raises(NodeError):
            client.post(f"/containers/{cid}/start")
        assert str(e.data_root / "containers" / cid / "files") in _mounts_under(e.data_root)
        client.delete(f"/containers/{cid}", params={"force": "1"})
    assert set((e.data_root / "containers").iterdir()) == before
    assert _mounts_under(e.data_root) == mounts_before


@pytest.mark.privileged
def test_files_survive_a_daemon_sigkill(engine: EngineProcess, unique: Unique) -> None:
    ensure_busybox(engine)
    name = unique("keeps")
    secret = f"kept-{uuid.uuid4().hex}".encode()
    cid = _create(engine.client, name, _two_files(secret, b"c"), RestartPolicy={"Name": "always"},
                  cmd=("sh", "-c", "trap 'exit 3' TERM; while :; do sleep 0.1; done"))
    engine.client.post(f"/containers/{cid}/start")
    half = _create(engine.client, unique("half"), _two_files(b"h", b"h"))
    engine.kill()
    (engine.data_root / "containers" / half / "config.v2.json").unlink()  # as if its create had died there
    time.sleep(0.5)
    engine.start()
    assert not (engine.data_root / "containers" / half).exists()
    assert not [m for m in _mounts_under(engine.data_root) if half in m]
    with _removed_after(engine.client, name):
        assert engine.client.get(f"/containers/{cid}/json")["State"]["Status"] == "running"
        assert engine.cli("exec", name, "cat", "/run/secrets/x").stdout.encode() == secret
        engine.client.post(f"/containers/{cid}/kill", params={"signal": "TERM"})  # exits 3: the policy restarts it
        deadline = time.monotonic() + 15
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = engine.client.get(f"/containers/{cid}/json")
            if state["RestartCount"] == 1 and state["State"]["Status"] == "running":
                break
            time.sleep(0.1)
        assert (state["RestartCount"], state["State"]["Status"]) == (1, "running")
        assert engine.cli("exec", name, "cat", "/run/secrets/x").stdout.encode() == secret
        engine.client.post(f"/containers/{cid}/restart", params={"t": "1"})
        assert engine.cli("exec", name, "cat", "/run/secrets/x").stdout.encode() == secret
        engine.client.delete(f"/containers/{cid}", params={"force": "1"})
        assert _mounts_under(engine.data_root) == []
        assert not list((engine.data_root / "containers").iterdir())
