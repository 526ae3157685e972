"""Build times of a 10-step Dockerfile on busybox: cold, fully cached, and after changing one file.

Run as root: `.venv/bin/python bench/build.py [--runs 5]`. Starts its own daemon on a temporary data root,
bootstraps busybox, and times `pynode build` end to end (CLI start, context upload, build, tagging). When
a Docker engine answers, `docker build` (BuildKit) runs the same scenarios beside it. Prints a table of
medians (and min/max); not a test: figures swing with the machine's load.
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
from collections.abc import Callable
from pathlib import Path

PYNODE = str(Path(sys.executable).parent / "pynode")
DOCKERFILE = """\
FROM busybox
WORKDIR /app
COPY base.txt ./
RUN echo "first run" > /app/first && sleep 0.1
ENV STAGE=bench
COPY changing.txt ./
RUN cat /app/base.txt /app/changing.txt > /app/both
LABEL bench=yes
RUN wc -c /app/both > /app/size
CMD ["cat", "/app/size"]
"""


def _time(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _run(argv: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stderr[-2000:]}")


def _docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    probe = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True)
    return probe.returncode == 0


def _scenarios(build: Callable[..., None], prune: Callable[[], None], ctx: Path, runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"cold": [], "cached": [], "one file changed": []}
    for i in range(runs):
        prune()
        (ctx / "changing.txt").write_text(f"run {i}\n")
        times["cold"].append(_time(lambda: build(no_cache=True)))
        times["cached"].append(_time(build))
        (ctx / "changing.txt").write_text(f"run {i} changed\n")
        times["one file changed"].append(_time(build))
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="pnbb", dir="/tmp"))
    host = f"unix://{base}/s.sock"
    env = {**os.environ, "PYNODE_HOST": host}
    # its own nftables table (and so its own default bridge): the machine's daemon keeps table `pynode`
    daemon = subprocess.Popen([PYNODE, "-H", host, "daemon", "--data-root", str(base / "root"), "--exec-root",
                               str(base / "run"), "--config-file", str(base / "d.json"), "--nft-table", base.name],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([PYNODE, "version"], env=env, capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise SystemExit("the daemon did not start")
            time.sleep(0.2)
        _run([PYNODE, "image", "bootstrap", "busybox"], env)
        ctx = base / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(DOCKERFILE)
        (ctx / "base.txt").write_text("base\n")

        def pynode_build(*, no_cache: bool = False) -> None:
            _run([PYNODE, "build", "-q", "-t", "bench:1", *(["--no-cache"] if no_cache else []), str(ctx)], env)

        results = {"pynode": _scenarios(pynode_build, lambda: _run([PYNODE, "builder", "prune", "-f"], env),
                                        ctx, args.runs)}  # fmt: skip
        if _docker_available():
            docker_env = {**os.environ, "DOCKER_BUILDKIT": "1"}

            def docker_build(*, no_cache: bool = False) -> None:
                _run(["docker", "build", "-q", "-t", "pynode-bench:1", *(["--no-cache"] if no_cache else []),
                      str(ctx)], docker_env)  # fmt: skip

            results["docker"] = _scenarios(docker_build, lambda: _run(["docker", "builder", "prune", "-af"],
                                                                      docker_env), ctx, args.runs)  # fmt: skip
        _print(results, args.runs)
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            daemon.kill()
        shutil.rmtree(base, ignore_errors=True)


def _print(results: dict[str, dict[str, list[float]]], runs: int) -> None:
    print(f"10-step Dockerfile on busybox, {runs} runs each, seconds (median [min-max]):")
    engines = list(results)
    print(f"{'scenario':<20}" + "".join(f"{name:>26}" for name in engines))
    for scenario in results[engines[0]]:
        cells = []
        for name in engines:
            values = results[name][scenario]
            cells.append(f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]")
        print(f"{scenario:<20}" + "".join(f"{c:>26}" for c in cells))
    if "docker" not in results:
        print("(no Docker engine answers here: docker build not measured)")


if __name__ == "__main__":
    main()
