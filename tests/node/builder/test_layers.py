"""The executor's pure parts: layered trees, COPY layer tars, RUN diff clean-up, metadata and history text."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from node.builder import layers as ly
from node.builder.dockerfile import BuildError, parse_dockerfile, resolve_stage
from node.builder.executor import _absolute, _run_argv, apply_metadata, created_by
from node.builder.trees import HostTree, LayeredTree, lookup_user, resolve
from node.images.model import Image

ROOT = pytest.mark.privileged  # whiteouts (mknod) and trusted.overlay xattrs need root


def _layer(root: Path, name: str, files: dict[str, str | None]) -> Path:
    """A diff dir: text files, directories (trailing /), symlinks ("-> target") and whiteouts (None)."""
    diff = root / name
    diff.mkdir()
    for rel, content in files.items():
        path = diff / rel.rstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            os.mknod(path, 0o600 | 0o020000, os.makedev(0, 0))
        elif rel.endswith("/"):
            path.mkdir(exist_ok=True)
        elif content.startswith("-> "):
            path.symlink_to(content[3:])
        else:
            path.write_text(content)
    return diff


@pytest.fixture
def image_tree(tmp_path: Path) -> LayeredTree:
    bottom = _layer(tmp_path, "l0", {"etc/passwd": "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/:/bin/sh\n",
                                     "etc/group": "root:x:0:\nstaff:x:50:\n", "usr/lib/": "",
                                     "var/run": "-> /run", "run/": "", "opt/a": "a", "opt/b": "b",
                                     "srv/old": "old"})  # fmt: skip
    top = _layer(tmp_path, "l1", {"opt/a": None, "srv/": "", "srv/new": "new"})
    os.setxattr(top / "srv", "trusted.overlay.opaque", b"y")
    return LayeredTree([bottom, top])


@ROOT
def test_layered_tree_applies_whiteouts_opaque_dirs_and_links(image_tree: LayeredTree) -> None:
    assert image_tree.listdir("opt") == ["b"]
    assert image_tree.host_path("opt/a") is None
    assert image_tree.listdir("srv") == ["new"]
    assert resolve(image_tree, "/var/run/x") == "run/x"
    assert resolve(image_tree, "/var/../etc/./passwd") == "etc/passwd"
    assert lookup_user(image_tree, "app") == (1000, 1001)
    assert lookup_user(image_tree, "app:staff") == (1000, 50)
    assert lookup_user(image_tree, "7:8") == (7, 8)
    with pytest.raises(KeyError):
        lookup_user(image_tree, "nobody")


def _entries(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar}


def _copy(image_tree: LayeredTree, src: Path, sources: list[str], dest: str,
          **options: object) -> dict[str, tarfile.TarInfo]:  # fmt: skip
    out = io.BytesIO()
    writer = ly.LayerWriter(out, image_tree, dir_owner=options.get("owner") or (0, 0))  # type: ignore[arg-type]
    ly.copy_to_layer(writer, src_tree=HostTree(src), sources=sources, dest=dest,
                     options=ly.CopyOptions(**options))  # type: ignore[arg-type]
    writer.close()
    return _entries(out.getvalue())


@ROOT
def test_copy_follows_docker_destination_rules(image_tree: LayeredTree, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "dir/sub").mkdir(parents=True)
    (ctx / "f.txt").write_text("f")
    (ctx / "dir/sub/g.txt").write_text("g")
    assert set(_copy(image_tree, ctx, ["f.txt"], "/usr/lib")) == {"usr/lib/f.txt"}  # existing dir: into it
    assert set(_copy(image_tree, ctx, ["f.txt"], "/new/name")) == {"new", "new/name"}  # a file path
    assert set(_copy(image_tree, ctx, ["dir"], "/usr/lib/")) == {"usr/lib/sub", "usr/lib/sub/g.txt"}  # contents
    assert set(_copy(image_tree, ctx, ["f.txt"], "/var/run/")) == {"run/f.txt"}  # through the image's link
    (ctx / "link.txt").symlink_to("f.txt")
    linked = _copy(image_tree, ctx, ["link.txt"], "/usr/lib/")
    assert set(linked) == {"usr/lib/link.txt"} and linked["usr/lib/link.txt"].isreg()  # followed, named as the link
    owned = _copy(image_tree, ctx, ["f.txt"], "/o/", owner=(5, 6), mode=0o600)
    assert (owned["o"].uid, owned["o/f.txt"].uid, owned["o/f.txt"].gid, owned["o/f.txt"].mode) == (5, 5, 6, 0o600)
    with pytest.raises(BuildError, match="must be a directory and end with a /"):
        _copy(image_tree, ctx, ["f.txt", "dir"], "/nodir")


@ROOT
def test_add_extracts_a_local_tar_inside_the_destination(image_tree: LayeredTree, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    with tarfile.open(ctx / "a.tgz", "w:gz") as tar:
        info = tarfile.TarInfo("../../escape/x")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
        info = tarfile.TarInfo("top/y")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"y"))
    assert set(_copy(image_tree, ctx, ["a.tgz"], "/opt/", extract_archives=True)) == {"opt/escape", "opt/escape/x",
                                                                                          "opt/top", "opt/top/y"}
    assert set(_copy(image_tree, ctx, ["a.tgz"], "/opt/")) == {"opt/a.tgz"}  # COPY does not extract


@ROOT
def test_clean_run_diff_drops_mount_points_the_runtime_made(image_tree: LayeredTree, tmp_path: Path) -> None:
    upper = _layer(tmp_path, "upper", {"run/secrets/token": "", "etc/hosts": "", "made/by/run.txt": "kept",
                                       "cache/": ""})  # fmt: skip
    os.chmod(upper / "run", 0o755)
    os.chmod(upper / "etc", os.lstat(image_tree.host_path("etc") or upper).st_mode & 0o7777)
    ly.clean_run_diff(upper, image_tree, ["/run/secrets/token", "/etc/hosts", "/cache"])
    remaining = sorted(str(p.relative_to(upper)) for p in upper.rglob("*"))
    assert remaining == ["made", "made/by", "made/by/run.txt"]


def _steps(text: str) -> list:  # type: ignore[type-arg]
    dockerfile = parse_dockerfile(text)
    return resolve_stage(dockerfile, 0)


def test_metadata_instructions_change_the_config_as_docker_does() -> None:
    steps = _steps('FROM x\nENV A=1 B="two words"\nCMD run me\nENTRYPOINT ["/ep"]\nEXPOSE 80 7000-7001/udp\n'
                   "VOLUME /data /logs\nUSER app\nLABEL a=b\nSTOPSIGNAL 9\nSHELL [\"/bin/bash\", \"-c\"]\n"
                   "HEALTHCHECK --interval=1m CMD true\nONBUILD RUN make\n")  # fmt: skip
    config: dict = {"Env": ["PATH=/bin", "A=0"], "Cmd": ["base"]}  # type: ignore[type-arg]
    for index, step in enumerate(steps):
        config = apply_metadata(config, step, cmd_in_stage=any(s.keyword == "CMD" for s in steps[:index]))
    assert config["Env"] == ["PATH=/bin", "A=1", "B=two words"]
    assert config["Cmd"] == ["/bin/sh", "-c", "run me"] and config["Entrypoint"] == ["/ep"]
    assert set(config["ExposedPorts"]) == {"80/tcp", "7000/udp", "7001/udp"}
    assert config["Volumes"] == {"/data": {}, "/logs": {}} and config["User"] == "app"
    assert config["Shell"] == ["/bin/bash", "-c"] and config["StopSignal"] == "9"
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 60_000_000_000}
    assert config["OnBuild"] == ["RUN make"]
    entry_only = _steps('FROM x\nENTRYPOINT ["/ep"]\n')
    assert apply_metadata({"Cmd": ["base"]}, entry_only[0], cmd_in_stage=False)["Cmd"] is None


def test_run_command_lines_and_history_text(tmp_path: Path) -> None:
    image = Image(id="sha256:" + "0" * 64, config={"config": {}})
    steps = _steps("FROM x\nARG V=1\nRUN echo $V\nRUN [\"echo\", \"x\"]\nRUN <<EOF\necho a\nEOF\n"
                   "RUN <<EOF\n#!/bin/sh\necho b\nEOF\nRUN cat <<EOF > /f\nline\nEOF\nCOPY --chown=1 a /b\n")
    _, shell, exec_form, doc, script, cat, copy = steps
    assert _run_argv(shell, ["/bin/sh", "-c"], tmp_path) == (["/bin/sh", "-c", "echo $V"], [])
    assert _run_argv(exec_form, ["/bin/sh", "-c"], tmp_path)[0] == ["echo", "x"]
    assert _run_argv(doc, ["/bin/sh", "-c"], tmp_path)[0] == ["/bin/sh", "-c", "echo a\n"]
    argv, mounts = _run_argv(script, ["/bin/sh", "-c"], tmp_path)
    assert argv[0].startswith("/dev/pipes/") and mounts[0]["Target"] == argv[0]
    assert _run_argv(cat, ["/bin/sh", "-c"], tmp_path)[0] == ["/bin/sh", "-c", "cat <<EOF > /f\nline\nEOF\n"]
    assert created_by(shell, image) == "RUN |1 V=1 /bin/sh -c echo $V"
    assert created_by(copy, image) == "COPY --chown=1 a /b"
    assert _absolute("rel/", "/app") == "/app/rel/" and _absolute("/abs", "/app") == "/abs"


def test_symbolic_chmod_as_chmod_does() -> None:
    assert ly.apply_symbolic_mode(0o644, "u+x", is_dir=False) == 0o744
    assert ly.apply_symbolic_mode(0o777, "go-w", is_dir=False) == 0o755
    assert ly.apply_symbolic_mode(0o600, "a=rX", is_dir=True) == 0o555
    assert ly.apply_symbolic_mode(0o600, "a=rX", is_dir=False) == 0o444
    assert ly.apply_symbolic_mode(0o644, "+x,o-r", is_dir=False) == 0o751
