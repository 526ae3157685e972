"""Test helpers: layer tars, docker-archive and OCI layout tars written with the standard tarfile module,
and a listing of a data root to compare before and after an operation."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Entry:
    name: str
    data: bytes | None = None
    type: bytes = tarfile.REGTYPE
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 1_700_000_000
    linkname: str = ""
    xattrs: dict[str, str] | None = None
    devmajor: int = 0
    devminor: int = 0


def d(name: str, **kw: Any) -> Entry:
    return Entry(name, type=tarfile.DIRTYPE, mode=kw.pop("mode", 0o755), **kw)


def f(name: str, data: bytes = b"", **kw: Any) -> Entry:
    return Entry(name, data=data, **kw)


def layer_tar(entries: Sequence[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type, info.mode, info.uid, info.gid, info.mtime = e.type, e.mode, e.uid, e.gid, e.mtime
            info.linkname, info.devmajor, info.devminor = e.linkname, e.devmajor, e.devminor
            info.uname = info.gname = ""
            if e.xattrs:
                info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in e.xattrs.items()}
            info.size = len(e.data or b"")
            tar.addfile(info, io.BytesIO(e.data) if e.data else None)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def config_for(layers: Sequence[bytes], *, cmd: Sequence[str] = ("sh",), created: str = "2024-01-02T03:04:05Z",
               history: list[dict[str, Any]] | None = None) -> bytes:
    return json.dumps({
        "architecture": "amd64", "os": "linux", "created": created, "config": {"Cmd": list(cmd)},
        "rootfs": {"type": "layers", "diff_ids": [sha(layer) for layer in layers]},
        "history": history if history is not None else [{"created": created, "created_by": f"layer {i}"}
                                                         for i in range(len(layers))],
    }).encode()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), 1_700_000_000
    tar.addfile(info, io.BytesIO(data))


def docker_archive(layers: Sequence[bytes], *, tags: Sequence[str] = (), config: bytes | None = None,
                   gzip_layers: bool = False, skip: Sequence[str] = ()) -> bytes:
    """The classic docker-archive layout: `<n>/layer.tar`, `<config-hex>.json`, `manifest.json`."""
    config = config if config is not None else config_for(layers)
    config_name = sha(config)[7:] + ".json"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        names = []
        for i, layer in enumerate(layers):
            name = f"layer{i}/layer.tar"
            names.append(name)
            if name not in skip:
                _add(tar, name, gzip.compress(layer, mtime=0) if gzip_layers else layer)
        _add(tar, config_name, config)
        _add(tar, "manifest.json", json.dumps([{"Config": config_name, "RepoTags": list(tags),
                                                 "Layers": names}]).encode())
    return buf.getvalue()


def oci_archive(layers: Sequence[bytes], *, name: str | None = None, gzip_layers: bool = True) -> bytes:
    """An OCI image layout tar (`oci-layout`, `index.json`, `blobs/sha256/`)."""
    config = config_for(layers)
    blobs = [gzip.compress(layer, mtime=0) if gzip_layers else layer for layer in layers]
    media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gzip_layers else "")
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": media, "digest": sha(b), "size": len(b)} for b in blobs],
    }).encode()
    descriptor: dict[str, Any] = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                  "digest": sha(manifest), "size": len(manifest)}
    if name:
        descriptor["annotations"] = {"org.opencontainers.image.ref.name": name}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        for blob in [*blobs, config, manifest]:
            _add(tar, f"blobs/sha256/{sha(blob)[7:]}", blob)
        _add(tar, "index.json", json.dumps({"schemaVersion": 2, "manifests": [descriptor]}).encode())
    return buf.getvalue()


def listing(root: Path) -> list[tuple[str, str, int, int]]:
    """(path, kind, size, mode) of everything under `root`; directory sizes left out (they vary)."""
    out = []
    for dirpath, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            kind = "d" if stat.S_ISDIR(st.st_mode) else "l" if stat.S_ISLNK(st.st_mode) else "f"
            out.append((os.path.relpath(full, root), kind, 0 if kind == "d" else st.st_size, st.st_mode))
    return sorted(out)


def overlay_layer_dirs(data_root: Path) -> list[str]:
    return sorted(p.name for p in (data_root / "overlay2").iterdir() if p.name != "l")


def saved_layers(path: Path) -> dict[str, bytes]:
    """The saved archive's layer blobs by the manifest.json's order: {digest: bytes}."""
    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        out = {}
        for entry in manifest:
            for name in entry["Layers"]:
                data = tar.extractfile(name).read()  # type: ignore[union-attr]
                out[sha(data)] = data
        return out
