"""Pure decisions on a create request: validate it, merge it with the image config, parse mounts.

Nothing here touches the kernel or the disk; the service passes observations (image config, whether a
path exists) in.

Besides Docker's HostConfig fields, create takes our extension `HostConfig.Files` (what the cluster
agent gives a task's secrets and configs): a list of
`{"Target": "/run/secrets/db_password", "Data": "<base64>", "UID": "0", "GID": "0", "Mode": 292}` —
Target absolute (no `..`, not `/`, each once, not another mount's target), Data base64 (at most 1 MiB a
file, 16 MiB in all), UID/GID numeric strings or numbers (default "0"), Mode a number 0..0o7777 (default 0o444;
JSON has no octal: 292 is 0o444). The files live on a tmpfs of the container and are bound read-only at
their targets (node.runtime.memfiles); the stored HostConfig keeps Target/UID/GID/Mode, never Data.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from node.errors import InvalidArgument
from node.runtime.memfiles import MAX_FILE_BYTES, MAX_TOTAL_BYTES, MemoryFile
from node.runtime.spec import apply_cap_changes, host_caps, normalize_cap

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")
MIN_MEMORY = 6 * 1024 * 1024
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True, slots=True, kw_only=True)
class MountSpec:
    type: str  # bind | volume | tmpfs
    target: str
    source: str = ""  # host path or volume name ("" for an anonymous volume)
    read_only: bool = False
    no_copy: bool = False
    tmpfs_options: tuple[str, ...] = ()


def validate_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise InvalidArgument(f'Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
    return name.lstrip("/")


def parse_bind(spec: str) -> MountSpec:
    """`-v` forms: `name:/dst[:ro]`, `/src:/dst[:ro,...]`, `/dst` (anonymous volume)."""
    parts = spec.split(":")
    if not spec or len(parts) > 3 or any(p == "" for p in parts):
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    mode = parts[2] if len(parts) == 3 else ""
    opts = [o for o in mode.split(",") if o]
    for opt in opts:
        if opt not in ("ro", "rw", "z", "Z", "nocopy", "shared", "slave", "private", "rshared", "rslave",
                       "rprivate", "consistent", "cached", "delegated"):
            raise InvalidArgument(f"invalid mode: {opt}")
    if len(parts) == 1:
        return MountSpec(type="volume", target=_abs_target(parts[0], spec))
    source, target = parts[0], _abs_target(parts[1], spec)
    kind = "bind" if source.startswith(("/", ".")) else "volume"
    if kind == "volume":
        _check_volume_name(source)
    return MountSpec(type=kind, source=source, target=target, read_only="ro" in opts, no_copy="nocopy" in opts)


def _abs_target(target: str, spec: str) -> str:
    if not target.startswith("/"):
        raise InvalidArgument(f"invalid volume specification: '{spec}': mount path must be absolute")
    if target == "/":
        raise InvalidArgument(f"invalid volume specification: '{spec}': destination can't be '/'")
    return target.rstrip("/") or "/"


def _check_volume_name(name: str) -> None:
    if not re.match(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$", name):
        raise InvalidArgument(
            f'"{name}" includes invalid characters for a local volume name, '
            'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed')


def parse_mount_object(obj: dict[str, Any]) -> MountSpec:
    """HostConfig.Mounts entries (what `--mount` produces)."""
    kind = str(obj.get("Type", "volume"))
    target = str(obj.get("Target", ""))
    if kind not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(f"invalid mount config for type \"{kind}\": mount type unknown")
    if not target:
        raise InvalidArgument("invalid mount config: Target must not be empty")
    if not target.startswith("/"):
        raise InvalidArgument(f"invalid mount config for type \"{kind}\": invalid mount path: '{target}' mount "
                              "path must be absolute")
    source = str(obj.get("Source", "") or "")
    if kind == "bind" and not source:
        raise InvalidArgument('invalid mount config for type "bind": field Source must not be empty')
    if kind == "tmpfs" and source:
        raise InvalidArgument('invalid mount config for type "tmpfs": field Source must not be specified')
    if kind == "volume" and source:
        _check_volume_name(source)
    tmpfs = obj.get("TmpfsOptions") or {}
    tmpfs_opts = tuple(f"{k}={v}" for k, v in (("size", tmpfs.get("SizeBytes")), ("mode", tmpfs.get("Mode"))) if v)
    return MountSpec(type=kind, source=source, target=target.rstrip("/") or "/",
                     read_only=bool(obj.get("ReadOnly")),
                     no_copy=bool((obj.get("VolumeOptions") or {}).get("NoCopy")), tmpfs_options=tmpfs_opts)


def parse_tmpfs(target: str, options: str) -> MountSpec:
    if not target.startswith("/"):
        raise InvalidArgument(f"invalid tmpfs mount path: '{target}' mount path must be absolute")
    return MountSpec(type="tmpfs", target=target, tmpfs_options=tuple(o for o in options.split(",") if o))


def collect_mounts(host_config: dict[str, Any], image_volumes: dict[str, Any] | None) -> list[MountSpec]:
    """Every mount of a new container, in order: image volumes (anonymous), -v, --mount, --tmpfs."""
    explicit: list[MountSpec] = [parse_bind(b) for b in host_config.get("Binds") or []]
    explicit += [parse_mount_object(m) for m in host_config.get("Mounts") or []]
    explicit += [parse_tmpfs(t, o or "") for t, o in (host_config.get("Tmpfs") or {}).items()]
    targets = [m.target for m in explicit]
    duplicate = next((t for t in targets if targets.count(t) > 1), None)
    if duplicate:
        raise InvalidArgument(f"Duplicate mount point: {duplicate}")
    implicit = [MountSpec(type="volume", target=t.rstrip("/") or "/") for t in (image_volumes or {})
                if (t.rstrip("/") or "/") not in targets]
    return implicit + explicit


_FILE_FIELDS = ("Target", "Data", "UID", "GID", "Mode")
_MAX_ID = 2**32 - 2


def parse_files(raw: Any, *, mount_targets: list[str]) -> tuple[MemoryFile, ...]:
    """HostConfig.Files -> the files to place, in order; InvalidArgument names `HostConfig.Files[i].<field>`."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidArgument("HostConfig.Files: must be a list of {Target, Data, UID, GID, Mode}")
    files: list[MemoryFile] = []
    total = 0
    for index, entry in enumerate(raw):
        f = _parse_file(entry, f"HostConfig.Files[{index}]")
        if any(f.target == other.target for other in files):
            raise InvalidArgument(f"HostConfig.Files[{index}].Target: {f.target} is given twice")
        if f.target in mount_targets:
            raise InvalidArgument(f"HostConfig.Files[{index}].Target: {f.target} is also the target of a mount")
        total += len(f.data)
        if total > MAX_TOTAL_BYTES:
            raise InvalidArgument(f"HostConfig.Files[{index}].Data: the files hold more than {MAX_TOTAL_BYTES} "
                                  "bytes in all")
        files.append(f)
    return tuple(files)


def files_view(files: tuple[MemoryFile, ...]) -> list[dict[str, Any]]:
    """What HostConfig.Files keeps (config.v2.json, inspect): everything but the content."""
    return [{"Target": f.target, "UID": str(f.uid), "GID": str(f.gid), "Mode": f.mode} for f in files]


def _parse_file(entry: Any, where: str) -> MemoryFile:
    if not isinstance(entry, dict):
        raise InvalidArgument(f"{where}: must be an object with Target, Data, UID, GID, Mode")
    unknown = next((k for k in entry if k not in _FILE_FIELDS), None)
    if unknown is not None:
        raise InvalidArgument(f"{where}.{unknown}: unknown field (known: {', '.join(_FILE_FIELDS)})")
    return MemoryFile(target=_file_target(entry.get("Target"), f"{where}.Target"),
                      data=_file_data(entry.get("Data"), f"{where}.Data"),
                      uid=_file_id(entry.get("UID", "0"), f"{where}.UID"),
                      gid=_file_id(entry.get("GID", "0"), f"{where}.GID"),
                      mode=_file_mode(entry.get("Mode", 0o444), f"{where}.Mode"))


def _file_target(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        raise InvalidArgument(f"{where}: must be an absolute path, got {value!r:.60}")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"{where}: must not contain '..' ({value})")
    if not parts:
        raise InvalidArgument(f"{where}: must not be /")
    return "/" + "/".join(parts)


def _file_data(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidArgument(f"{where}: must be a base64 string")
    if len(value) > (MAX_FILE_BYTES + 2) // 3 * 4 + 4:  # refuse before decoding what is plainly too big
        raise InvalidArgument(f"{where}: more than {MAX_FILE_BYTES} bytes")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument(f"{where}: not valid base64") from None
    if len(data) > MAX_FILE_BYTES:
        raise InvalidArgument(f"{where}: more than {MAX_FILE_BYTES} bytes")
    return data


def _file_id(value: Any, where: str) -> int:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not text.isascii() or not text.isdigit() or int(text) > _MAX_ID:
        raise InvalidArgument(f"{where}: must be a numeric id (a string such as \"1000\"), got {value!r:.60}")
    return int(text)


def _file_mode(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0o7777:
        raise InvalidArgument(f"{where}: must be a number from 0 to 4095 (0o7777), got {value!r:.60}")
    return value


def validate_restart(policy: dict[str, Any] | None, *, auto_remove: bool) -> dict[str, Any]:
    policy = dict(policy or {})
    name = policy.get("Name") or "no"
    if name not in RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy: unknown policy '{name}'; use one of "
                              "'no', 'always', 'on-failure', or 'unless-stopped'")
    retries = int(policy.get("MaximumRetryCount") or 0)
    if retries < 0:
        raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
    if retries and name != "on-failure":
        raise InvalidArgument("invalid restart policy: maximum retry count can only be used with 'on-failure'")
    if auto_remove and name != "no":
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")
    return {"Name": "" if name == "no" and not policy.get("Name") else name, "MaximumRetryCount": retries}


def validate_resources(hc: dict[str, Any]) -> None:
    memory = int(hc.get("Memory") or 0)
    if memory < 0:
        raise InvalidArgument(f"invalid memory size: {memory}")
    if memory and memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if int(hc.get("NanoCpus") or 0) < 0:
        raise InvalidArgument("Range of CPUs is from 0.01 to the number of CPUs available")
    if hc.get("NanoCpus") and hc.get("CpuQuota"):
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")


def resolve_caps(hc: dict[str, Any]) -> tuple[str, ...]:
    def normalise(names: list[str] | None, what: str) -> tuple[str, ...]:
        out = []
        for name in names or []:
            cap = normalize_cap(name)
            if cap is None:
                upper = name.strip().upper()
                raise InvalidArgument(f"invalid {what}: unknown capability: "
                                      f"\"{upper if upper.startswith('CAP_') else 'CAP_' + upper}\"")
            if cap != "ALL" and cap not in host_caps():
                raise InvalidArgument(f"invalid {what}: capability not supported by your kernel or not available "
                                      f"in the current environment: \"{cap}\"")
            out.append(cap)
        return tuple(out)

    add = normalise(hc.get("CapAdd"), "CapAdd")
    drop = normalise(hc.get("CapDrop"), "CapDrop")
    return apply_cap_changes(add=add, drop=drop)


def parse_bytes(value: str) -> int:
    """Docker's RAMInBytes: '32m', '1g', '512k', '100' (bytes)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?\s*", value.lower())
    if not match:
        raise InvalidArgument(f"invalid size: '{value}'")
    unit = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}[match.group(2)]
    return int(float(match.group(1)) * unit)


def merge_config(request: dict[str, Any], image_config: dict[str, Any], *, image_ref: str) -> dict[str, Any]:
    """Docker's merge: Entrypoint/Cmd/Env/WorkingDir/User/Labels/Healthcheck/StopSignal from the image unless set."""
    cfg = dict(request)
    cfg["Image"] = image_ref
    entrypoint = cfg.get("Entrypoint")
    cmd = cfg.get("Cmd")
    if entrypoint is None:
        entrypoint = image_config.get("Entrypoint")
        if not cmd:
            cmd = image_config.get("Cmd")
    elif entrypoint == [""] or entrypoint == "":
        entrypoint = None
    cfg["Entrypoint"] = _as_list(entrypoint)
    cfg["Cmd"] = _as_list(cmd)
    if not (cfg["Entrypoint"] or cfg["Cmd"]):
        raise InvalidArgument("No command specified")
    cfg["Env"] = merge_env(image_config.get("Env") or [], cfg.get("Env") or [])
    cfg["WorkingDir"] = cfg.get("WorkingDir") or image_config.get("WorkingDir") or ""
    cfg["User"] = cfg.get("User") or image_config.get("User") or ""
    cfg["Labels"] = {**(image_config.get("Labels") or {}), **(cfg.get("Labels") or {})}
    cfg["StopSignal"] = cfg.get("StopSignal") or image_config.get("StopSignal")
    cfg["Volumes"] = {**(image_config.get("Volumes") or {}), **(cfg.get("Volumes") or {})} or None
    cfg["ExposedPorts"] = {**(image_config.get("ExposedPorts") or {}), **(cfg.get("ExposedPorts") or {})} or None
    cfg["Healthcheck"] = merge_healthcheck(image_config.get("Healthcheck"), cfg.get("Healthcheck"))
    for key, default in (("Tty", False), ("OpenStdin", False), ("StdinOnce", False), ("AttachStdin", False),
                         ("AttachStdout", False), ("AttachStderr", False), ("Hostname", ""), ("Domainname", "")):
        cfg.setdefault(key, default)
    if cfg.get("Healthcheck") is None:
        cfg.pop("Healthcheck", None)
    if cfg.get("StopSignal") is None:
        cfg.pop("StopSignal", None)
    return cfg


def _as_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def merge_env(image_env: list[str], request_env: list[str]) -> list[str]:
    merged: dict[str, str] = {}
    for entry in [*image_env, *request_env]:
        key = entry.split("=", 1)[0]
        if not key:
            raise InvalidArgument(f"invalid environment variable: {entry}")
        merged[key] = entry
    if "PATH" not in merged:
        merged = {"PATH": DEFAULT_PATH, **merged}
    return list(merged.values())


def merge_healthcheck(image_hc: dict[str, Any] | None, request_hc: dict[str, Any] | None) -> dict[str, Any] | None:
    if request_hc is None:
        return image_hc
    if request_hc.get("Test") == ["NONE"]:
        return request_hc
    merged = dict(image_hc or {})
    for key, value in request_hc.items():
        if value not in (None, 0, [], ""):
            merged[key] = value
    return merged or None


def command_of(cfg: dict[str, Any]) -> list[str]:
    return [*(cfg.get("Entrypoint") or []), *(cfg.get("Cmd") or [])]
