"""`pycompose up -d` to all running, and `down`, for N services (busybox `sleep`) and `--scale web=N`.

Run as root: `.venv/bin/python bench/compose_scale.py [--runs 3] [--sizes 10,50,100] [--scale 50]`. Starts its
own daemon on a temporary data root (or uses PYNODE_HOST with --host-from-env); prints a table of medians.
When `docker compose` (or `docker-compose`) and a Docker engine answer, the same files run through them too.
Not a test: figures swing with the machine's load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYNODE = str(Path(sys.executable).parent / "pynode")
PYCOMPOSE = str(Path(sys.executable).parent / "pycompose")

# Docker Compose 1.29 on Docker 20.10, measured on this machine (the figures).
REFERENCE = {"up 10": 4.1, "up 50": 17.9, "up 100": 32.8, "scale web=50": 18.4}


def compose_file(n: int) -> str:
    # init: true so that SIGTERM stops `sleep` at once (pid 1 ignores it otherwise), as the target assumes
    services = "".join(f"  s{i}:\n    image: busybox\n    init: true\n    command: sleep 86400\n" for i in range(n))
    return f"services:\n{services}"


SCALE_FILE = "services:\n  web:\n    image: busybox\n    init: true\n    command: sleep 86400\n"


def timed(argv: list[str], *, cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stderr[-2000:]}")
    return elapsed


def running(env: dict[str, str], workdir: Path) -> int:
    out = subprocess.run([PYCOMPOSE, "ps", "-q"], env=env, capture_output=True, text=True, cwd=workdir).stdout
    return len(out.split())


def measure(cmd: list[str], workdir: Path, env: dict[str, str], *, up_args: list[str], expect: int,
            runs: int, check_running: bool) -> tuple[list[float], list[float]]:
    ups, downs = [], []
    for _ in range(runs):
        ups.append(timed([*cmd, "up", "-d", *up_args], cwd=workdir, env=env))
        if check_running and running(env, workdir) != expect:
            raise SystemExit(f"expected {expect} running containers after up")
        downs.append(timed([*cmd, "down"], cwd=workdir, env=env))
    return ups, downs


def docker_compose() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        cmd = ["docker", "compose"]
    elif shutil.which("docker-compose"):
        cmd = ["docker-compose"]
    else:
        return None
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return None
    return cmd


def start_daemon(base: Path) -> tuple[subprocess.Popen[bytes], str]:
    host = f"unix://{base}/s.sock"
    daemon = subprocess.Popen([PYNODE, "-H", host, "daemon", "--data-root", str(base / "root"), "--exec-root",
                               str(base / "run"), "--config-file", str(base / "d.json"), "--nft-table", base.name],
                              stdout=open(base / "daemon.log", "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
                              start_new_session=True)
    env = {**os.environ, "PYNODE_HOST": host}
    for _ in range(200):
        if subprocess.run([PYNODE, "version"], env=env, capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    subprocess.run([PYNODE, "image", "bootstrap", "busybox"], env=env, check=True, capture_output=True)
    return daemon, host


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="10,50,100")
    parser.add_argument("--scale", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=-1, help="pycompose --parallel")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="pcb", dir="/tmp"))
    daemon, host = start_daemon(base)
    env = {**os.environ, "PYNODE_HOST": host}
    ours = [PYCOMPOSE, "--progress", "quiet", "--parallel", str(args.parallel)]
    docker = docker_compose()
    rows: list[tuple[str, float, float, float | None, float | None]] = []
    try:
        cases = [(f"up {n}", compose_file(n), [], n) for n in map(int, args.sizes.split(","))]
        cases.append((f"scale web={args.scale}", SCALE_FILE, ["--scale", f"web={args.scale}"], args.scale))
        for label, text, up_args, expect in cases:
            workdir = base / label.replace(" ", "").replace("=", "")
            workdir.mkdir()
            (workdir / "compose.yaml").write_text(text)
            ups, downs = measure(ours, workdir, env, up_args=up_args, expect=expect, runs=args.runs,
                                 check_running=True)
            theirs_up = theirs_down = None
            if docker is not None:
                d_ups, d_downs = measure(docker, workdir, dict(os.environ), up_args=up_args, expect=expect,
                                         runs=args.runs, check_running=False)
                theirs_up, theirs_down = statistics.median(d_ups), statistics.median(d_downs)
            rows.append((label, statistics.median(ups), statistics.median(downs), theirs_up, theirs_down))
            print(f"{label}: up {' '.join(f'{t:.2f}' for t in ups)}  down {' '.join(f'{t:.2f}' for t in downs)}",
                  file=sys.stderr)
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        shutil.rmtree(base, ignore_errors=True)
    print(f"\nmedian of {args.runs} runs, seconds (reference: docker-compose 1.29 / Docker 20.10 on this machine)")
    print(f"{'case':<14} {'pycompose up':>13} {'down':>7} {'docker up':>10} {'down':>7} {'reference up':>13} "
          f"{'ratio':>6}")
    for label, up, down, d_up, d_down in rows:
        ref = REFERENCE.get(label)
        ratio = f"{up / ref:.2f}" if ref else "-"
        print(f"{label:<14} {up:>13.2f} {down:>7.2f} {_fmt(d_up):>10} {_fmt(d_down):>7} {_fmt(ref):>13} {ratio:>6}")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
