"""OCI runtime spec (config.json) generation: pure, from a BundleRequest to the dict the runtime reads.

Defaults follow Docker's: its capability set, masked and read-only paths, devices, /dev/shm, /dev/mqueue,
a read-only /sys, and a seccomp profile that refuses what Docker's default profile refuses.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

DEFAULT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
ALL_CAPS = (
    "CAP_AUDIT_CONTROL", "CAP_AUDIT_READ", "CAP_AUDIT_WRITE", "CAP_BLOCK_SUSPEND", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
    "CAP_FSETID", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_KILL", "CAP_LEASE", "CAP_LINUX_IMMUTABLE",
    "CAP_MAC_ADMIN", "CAP_MAC_OVERRIDE", "CAP_MKNOD", "CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_RAW", "CAP_PERFMON", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
    "CAP_SETUID", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_CHROOT", "CAP_SYS_MODULE", "CAP_SYS_NICE",
    "CAP_SYS_PACCT", "CAP_SYS_PTRACE", "CAP_SYS_RAWIO", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_SYSLOG", "CAP_WAKE_ALARM",
)
# Linux capability numbers (linux/capability.h), for reading a CapBnd mask.
CAP_NUMBERS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3, "CAP_FSETID": 4,
    "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15, "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19, "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27, "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31, "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35, "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38, "CAP_BPF": 39, "CAP_CHECKPOINT_RESTORE": 40,
}
MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# What Docker's default seccomp profile refuses to a container without extra capabilities.
_BLOCKED_SYSCALLS = (
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module",
    "finit_module", "get_kernel_syms", "get_mempolicy", "init_module", "ioperm", "iopl", "kcmp",
    "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mbind", "move_pages", "nfsservctl",
    "open_by_handle_at", "perf_event_open", "personality", "pivot_root", "process_vm_readv",
    "process_vm_writev", "ptrace", "query_module", "quotactl", "reboot", "request_key", "set_mempolicy",
    "setns", "settimeofday", "stime", "swapoff", "swapon", "sysfs", "_sysctl", "umount", "umount2",
    "unshare", "uselib", "userfaultfd", "ustat", "vm86", "vm86old", "mount", "name_to_handle_at",
    "fsopen", "fsconfig", "fsmount", "fspick", "open_tree", "move_mount",
)
# Syscalls a capability re-enables, as Docker's profile does.
_CAP_SYSCALLS = {
    "CAP_SYS_ADMIN": {"bpf", "clock_adjtime", "lookup_dcookie", "mount", "name_to_handle_at", "perf_event_open",
                      "quotactl", "setns", "umount", "umount2", "unshare", "fsopen", "fsconfig", "fsmount",
                      "fspick", "open_tree", "move_mount", "keyctl", "add_key", "request_key"},
    "CAP_SYS_PTRACE": {"kcmp", "process_vm_readv", "process_vm_writev", "ptrace"},
    "CAP_SYS_MODULE": {"delete_module", "init_module", "finit_module"},
    "CAP_SYS_BOOT": {"reboot"},
    "CAP_SYS_TIME": {"settimeofday", "stime", "clock_settime"},
    "CAP_SYS_PACCT": {"acct"},
    "CAP_SYS_RAWIO": {"iopl", "ioperm"},
    "CAP_SYS_NICE": {"get_mempolicy", "mbind", "set_mempolicy", "move_pages"},
}

_DEFAULT_DEVICES = (  # (path, major, minor)
    ("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7), ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0),
)


def bounding_caps(status: str) -> tuple[str, ...]:
    """The capabilities of a `/proc/<pid>/status` text's CapBnd mask, in ALL_CAPS order (all if absent)."""
    mask = next((int(line.split()[1], 16) for line in status.splitlines() if line.startswith("CapBnd:")), None)
    if mask is None:
        return ALL_CAPS
    return tuple(cap for cap in ALL_CAPS if mask >> CAP_NUMBERS[cap] & 1)


@functools.cache
def host_caps() -> tuple[str, ...]:
    """What this process (the daemon) may grant: its bounding set. Docker's `ALL` and `--privileged` mean
    these, not every capability the kernel knows: asking the runtime for more fails its capset (EPERM)."""
    try:
        with open("/proc/self/status") as fh:
            return bounding_caps(fh.read())
    except OSError:
        return ALL_CAPS


@dataclass(frozen=True, slots=True, kw_only=True)
class MountRequest:
    destination: str
    source: str
    type: str = "bind"
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleRequest:
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()
    terminal: bool = False
    hostname: str = ""
    rootfs: str
    readonly_rootfs: bool = False
    mounts: tuple[MountRequest, ...] = ()
    caps: tuple[str, ...] = DEFAULT_CAPS
    privileged: bool = False  # every capability of `available_caps`, whatever `caps` says (as Docker)
    available_caps: tuple[str, ...] = field(default_factory=host_caps)
    memory: int = 0
    memory_swap: int = 0
    cpu_quota: int = 0
    cpu_period: int = 100_000
    cpu_shares: int = 0
    pids_limit: int = 0
    netns: str | None = None  # None: a new empty netns; "host": none at all; else a path to join
    cgroups_path: str
    sysctls: dict[str, str] = field(default_factory=dict)
    oom_score_adj: int | None = None
    no_new_privileges: bool = False


def build_spec(req: BundleRequest) -> dict[str, Any]:
    caps = list(req.available_caps) if req.privileged else [c for c in req.caps if c in req.available_caps]
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": req.terminal,
            "user": {"uid": req.uid, "gid": req.gid, "additionalGids": list(req.additional_gids)},
            "args": list(req.args),
            "env": list(req.env),
            "cwd": req.cwd or "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "noNewPrivileges": req.no_new_privileges,
        },
        "root": {"path": req.rootfs, "readonly": req.readonly_rootfs},
        "hostname": req.hostname,
        "mounts": _mounts(req),
        "linux": _linux(req),
    }
    if req.oom_score_adj is not None:
        spec["process"]["oomScoreAdj"] = req.oom_score_adj
    return spec


def _mounts(req: BundleRequest) -> list[dict[str, Any]]:
    sys_opts = ["nosuid", "noexec", "nodev", "ro" if not req.privileged else "rw"]
    base: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]},
    ]
    if req.netns == "host":
        base = [m for m in base if m["destination"] != "/sys"] + [
            {"destination": "/sys", "type": "bind", "source": "/sys",
             "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}]
    user = [{"destination": m.destination, "type": m.type, "source": m.source, "options": list(m.options)}
            for m in req.mounts]
    user_dests = {m["destination"] for m in user}
    return [m for m in base if m["destination"] not in user_dests] + user


def _linux(req: BundleRequest) -> dict[str, Any]:
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if req.netns is None:
        namespaces.append({"type": "network"})
    elif req.netns != "host":
        namespaces.append({"type": "network", "path": req.netns})
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "cgroupsPath": req.cgroups_path,
        "resources": _resources(req),
        "sysctl": dict(req.sysctls),
    }
    if req.privileged:
        return linux
    linux["maskedPaths"] = list(MASKED_PATHS)
    linux["readonlyPaths"] = list(READONLY_PATHS)
    linux["seccomp"] = default_seccomp(req.caps)
    linux["devices"] = [
        {"path": path, "type": "c", "major": major, "minor": minor, "fileMode": 0o666, "uid": 0, "gid": 0}
        for path, major, minor in _DEFAULT_DEVICES
    ]
    return linux


def _resources(req: BundleRequest) -> dict[str, Any]:
    res: dict[str, Any] = {}
    if not req.privileged:
        allowed = [{"allow": False, "access": "rwm"}]
        allowed += [{"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"}
                    for _, ma, mi in _DEFAULT_DEVICES]
        allowed += [{"allow": True, "type": "c", "major": 136, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"}]
        res["devices"] = allowed
    if req.memory:
        res["memory"] = {"limit": req.memory, "swap": req.memory_swap or req.memory * 2}
    cpu: dict[str, Any] = {}
    if req.cpu_quota:
        cpu.update(quota=req.cpu_quota, period=req.cpu_period)
    if req.cpu_shares:
        cpu["shares"] = req.cpu_shares
    if cpu:
        res["cpu"] = cpu
    if req.pids_limit:
        res["pids"] = {"limit": req.pids_limit}
    return res


def default_seccomp(caps: tuple[str, ...]) -> dict[str, Any]:
    allowed_by_caps = set().union(*(_CAP_SYSCALLS.get(c, set()) for c in caps))
    blocked = sorted(s for s in _BLOCKED_SYSCALLS if s not in allowed_by_caps)
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "syscalls": [{"names": blocked, "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }


def normalize_cap(name: str) -> str | None:
    """'net_admin', 'NET_ADMIN', 'CAP_NET_ADMIN' -> 'CAP_NET_ADMIN'; 'ALL' kept; None if unknown."""
    upper = name.strip().upper()
    if upper == "ALL":
        return "ALL"
    full = upper if upper.startswith("CAP_") else f"CAP_{upper}"
    return full if full in ALL_CAPS else None


def apply_cap_changes(*, add: tuple[str, ...], drop: tuple[str, ...],
                      available: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Docker's TweakCapabilities: add ALL is every available capability but those dropped; drop ALL leaves
    only those added; else the default set, less the drops, plus the adds. `available`: host_caps()."""
    everything = host_caps() if available is None else available
    if "ALL" in add:
        return tuple(c for c in everything if c not in drop)
    caps = [] if "ALL" in drop else [c for c in DEFAULT_CAPS if c not in drop]
    caps += [c for c in add if c not in caps and c != "ALL"]
    return tuple(caps)
