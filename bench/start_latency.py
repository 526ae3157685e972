"""Start latency and idle-container memory of pynode, against raw crun (and docker when one answers).

Run as root: `.venv/bin/python bench/start_latency.py [--runs 20] [--idle 50]`. Starts its own daemon on a
temporary data root; prints a table. Not a test: figures swing with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.runtime.cgroups import CgroupLayout, detect_layout  # noqa: E402
from node.runtime.spec import BundleRequest, build_spec  # noqa: E402

PYNODE = str(Path(sys.executable).parent / "pynode")
RAW_CGROUP_PARENT = "pynode-bench"  # the raw crun runs' cgroups: /pynode-bench/raw in every hierarchy


def _time(argv: list[str], runs: int, env: dict[str, str] | None = None) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        out.append(time.perf_counter() - t0)
    return out


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _crun_bundle(base: Path) -> Path:
    bundle = base / "bundle"
    (bundle / "rootfs/bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", bundle / "rootfs/bin/busybox")
    os.symlink("busybox", bundle / "rootfs/bin/true")
    for d in ("proc", "sys", "dev", "etc", "tmp"):
        (bundle / "rootfs" / d).mkdir()
    spec = build_spec(BundleRequest(args=("/bin/true",), env=("PATH=/bin",), rootfs=str(bundle / "rootfs"),
                                    cgroups_path=f"/{RAW_CGROUP_PARENT}/raw"))
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def _crun_argv(base: Path, bundle: Path) -> list[str]:
    layout, side = detect_layout()
    crun = ["crun", f"--root={base / 'crun-state'}", "run", "--bundle", str(bundle), "bench-raw"]
    if layout is CgroupLayout.HYBRID:
        unmounts = "; ".join(f"umount -l {m}" for m in side)
        return ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", f'{unmounts}; exec "$@"', "sh",
                *crun]
    return crun


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--idle", type=int, default=50)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="pnb", dir="/tmp"))
    host = f"unix://{base}/s.sock"
    env = {**os.environ, "PYNODE_HOST": host}
    # its own nftables table (and default bridge): the default one is a running engine's on most machines
    daemon = subprocess.Popen([PYNODE, "-H", host, "daemon", "--data-root", str(base / "root"), "--exec-root",
                               str(base / "run"), "--config-file", str(base / "d.json"), "--nft-table", base.name],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(200):
            if (base / "s.sock").exists():
                break
            time.sleep(0.05)
        time.sleep(0.5)
        subprocess.run([PYNODE, "image", "bootstrap", "busybox"], env=env, check=True, capture_output=True)
        rows = []
        bundle = _crun_bundle(base)
        raw = _time(_crun_argv(base, bundle), args.runs)
        rows.append(("crun run (prepared bundle)", statistics.median(raw)))
        ours = _time([PYNODE, "run", "--rm", "busybox", "true"], args.runs, env)
        rows.append(("pynode run --rm busybox true", statistics.median(ours)))
        client_only = _time([PYNODE, "version"], args.runs, env)
        rows.append(("  of which CLI start-up (pynode version)", statistics.median(client_only)))
        if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
            docker = _time(["docker", "run", "--rm", "busybox", "true"], args.runs)
            rows.append(("docker run --rm busybox true", statistics.median(docker)))
        print(f"{'start latency (median of ' + str(args.runs) + ')':45} {'ms':>8}")
        for label, value in rows:
            print(f"{label:45} {value * 1000:8.1f}")
        print(f"{'ratio pynode / crun':45} {statistics.median(ours) / statistics.median(raw):8.2f}x")
        _memory(args.idle, daemon.pid, env)
    finally:
        subprocess.run([PYNODE, "rm", "-f", *subprocess.run([PYNODE, "ps", "-aq"], env=env, capture_output=True,
                                                            text=True).stdout.split()], env=env, capture_output=True)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        shutil.rmtree(base, ignore_errors=True)
        _remove_raw_cgroups()


def _remove_raw_cgroups() -> None:
    """crun removes each run's own cgroup but leaves their parent, empty, in every hierarchy."""
    root = Path("/sys/fs/cgroup")
    for parent in [*root.glob(f"*/{RAW_CGROUP_PARENT}"), root / RAW_CGROUP_PARENT]:
        if not parent.is_dir():
            continue
        for directory in [*sorted((d for d in parent.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)),
                          parent]:
            try:
                directory.rmdir()
            except OSError as exc:
                print(f"could not remove {directory}: {exc}", file=sys.stderr)


def _memory(count: int, daemon_pid: int, env: dict[str, str]) -> None:
    before = _rss_kb(daemon_pid)
    for _ in range(count):
        subprocess.run([PYNODE, "run", "-d", "busybox", "sleep", "3600"], env=env, check=True, capture_output=True)
    time.sleep(1)
    after = _rss_kb(daemon_pid)
    ids = subprocess.run([PYNODE, "ps", "-q", "--no-trunc"], env=env, capture_output=True, text=True).stdout.split()
    conmon = 0
    for cid in ids:
        info = json.loads(subprocess.run([PYNODE, "inspect", cid], env=env, capture_output=True, text=True).stdout)
        bundle = Path(info[0]["LogPath"]).parent
        conmon += _rss_kb(int((bundle / "conmon.pid").read_text()))
    per = ((after - before) + conmon) / max(len(ids), 1) / 1024
    print(f"\nidle containers: {len(ids)}")
    print(f"{'daemon RSS growth':45} {(after - before) / 1024:8.1f} MB")
    print(f"{'conmon RSS (sum)':45} {conmon / 1024:8.1f} MB")
    print(f"{'per idle container':45} {per:8.2f} MB")


if __name__ == "__main__":
    main()
