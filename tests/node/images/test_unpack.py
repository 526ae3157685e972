"""The layer unpacker and tar re-creation, in process (root: whiteouts are device nodes, opacity a trusted xattr)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from node.images.pack import iter_dir_tar
from node.images.tarformat import BadLayer
from node.images.tarsplit import iter_layer_tar
from node.images.unpack import unpack_layer
from tests.node.images.archives import d, f, layer_tar, sha

pytestmark = pytest.mark.privileged


def _unpack(data: bytes, root: Path):  # type: ignore[no-untyped-def]
    root.mkdir(exist_ok=True)
    return unpack_layer(io.BytesIO(data), root)


def test_metadata_survives_and_the_tar_is_recreated_byte_for_byte(tmp_path: Path) -> None:
    data = layer_tar([
        d("bin", mtime=1000), f("bin/busybox", b"\x7fELF" * 1000, mode=0o4755, uid=1000, gid=1001, mtime=2000,
                                xattrs={"user.note": "hi"}),
        f("bin/sh", type=tarfile.LNKTYPE, linkname="bin/busybox"),
        f("bin/ls", type=tarfile.SYMTYPE, linkname="/bin/busybox", mtime=3000),
        f("fifo", type=tarfile.FIFOTYPE, mode=0o600), f("big", os.urandom(3 << 20), mode=0o600),
    ])
    root = tmp_path / "diff"
    result = _unpack(data, root)
    assert result.diff_id == sha(data) and result.tar_size == len(data)
    st = os.lstat(root / "bin/busybox")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)) == (0o4755, 1000, 1001, 2000)
    assert st.st_nlink == 2 and os.lstat(root / "bin/sh").st_ino == st.st_ino
    assert os.getxattr(root / "bin/busybox", "user.note") == b"hi"
    assert os.readlink(root / "bin/ls") == "/bin/busybox"
    assert int(os.lstat(root / "bin").st_mtime) == 1000
    assert stat.S_ISFIFO(os.lstat(root / "fifo").st_mode)
    assert b"".join(iter_layer_tar(result.tarsplit, root)) == data


def test_whiteouts_become_overlay_whiteouts_and_back(tmp_path: Path) -> None:
    data = layer_tar([f(".wh.gone"), d("dir"), f("dir/.wh..wh..opq"), f("dir/new", b"n"), f("a/b/.wh.c")])
    root = tmp_path / "diff"
    result = _unpack(data, root)
    st = os.lstat(root / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(root / "dir", "trusted.overlay.opaque") == b"y"
    assert stat.S_ISCHR(os.lstat(root / "a/b/c").st_mode)
    assert not (root / "dir/.wh..wh..opq").exists()
    assert b"".join(iter_layer_tar(result.tarsplit, root)) == data
    with tarfile.open(fileobj=io.BytesIO(b"".join(iter_dir_tar(root)))) as tar:
        names = tar.getnames()
    assert {".wh.gone", "dir/.wh..wh..opq", "a/b/.wh.c", "dir/new"} <= set(names)


def test_packing_a_directory_is_deterministic(tmp_path: Path) -> None:
    root = tmp_path / "diff"
    _unpack(layer_tar([d("x"), f("x/1", b"1"), f("x/2", type=tarfile.LNKTYPE, linkname="x/1"), f(".wh.y")]), root)
    first = b"".join(iter_dir_tar(root))
    assert first == b"".join(iter_dir_tar(root))
    copy = tmp_path / "copy"
    _unpack(first, copy)
    assert os.lstat(copy / "x/1").st_ino == os.lstat(copy / "x/2").st_ino
    assert stat.S_ISCHR(os.lstat(copy / "y").st_mode)


@pytest.mark.parametrize(("entries", "message"), [
    ([f("../evil", b"x")], "escapes the layer"),
    ([f("/etc/evil", b"x")], "absolute path"),
    ([f("lib", type=tarfile.SYMTYPE, linkname="/etc"), f("lib/passwd", b"x")], "through symlink"),
    ([f("lib", type=tarfile.SYMTYPE, linkname="../../.."), f("lib/x", b"x")], "through symlink"),
    ([f("null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)], "device nodes"),
    ([f("sda", type=tarfile.BLKTYPE, devmajor=8, devminor=0)], "device nodes"),
    ([f("a", b"1"), f("b", type=tarfile.LNKTYPE, linkname="../../etc/passwd")], "escapes the layer"),
])
def test_hostile_entries_are_refused(tmp_path: Path, entries: list, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(BadLayer, match=message):
        _unpack(layer_tar(entries), tmp_path / "diff")
    assert not (tmp_path / "evil").exists()


def test_truncated_layers_are_refused(tmp_path: Path) -> None:
    data = layer_tar([f("a", b"x" * 5000)])
    for cut in (100, 700, 3000, 512 + 5120):
        with pytest.raises(BadLayer, match="truncated"):
            _unpack(data[:cut], tmp_path / f"diff{cut}")
