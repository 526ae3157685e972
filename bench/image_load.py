"""Image load throughput: `pynode load` against plain `tar -x` of the same layer tars, on the same disk.

Builds a ~200 MB image (many small files and a few large ones, incompressible) as a docker-archive, then
runs each contender several times and prints the median time, throughput and the ratio to tar.

    .venv/bin/python bench/image_load.py [--runs 5] [--size-mb 200] [--dir /var/tmp]

Not a test: it prints a table and never fails.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.node.images.archives import docker_archive  # noqa: E402
from tests.support.engine import PYNODE, EngineProcess  # noqa: E402


def make_layers(size_mb: int, *, seed: int = 7) -> list[bytes]:
    """Three layers: 45% small files (1-16 KB) in nested dirs, 55% large files (5-20 MB)."""
    rng = random.Random(seed)
    budget_small = size_mb * 450_000
    budget_large = size_mb * 550_000
    small, large = [], []
    n = 0
    while budget_small > 0:
        size = rng.randint(1024, 16384)
        small.append((f"usr/share/d{n % 97}/s{n // 3000}/f{n}.dat", size))
        budget_small -= size
        n += 1
    while budget_large > 0:
        size = min(rng.randint(5, 20) << 20, max(budget_large, 1 << 20))
        large.append((f"opt/big/blob{len(large)}.bin", size))
        budget_large -= size
    half = len(small) // 2
    return [_layer(small[:half], rng), _layer(small[half:], rng), _layer(large, rng)]


def _layer(files: list[tuple[str, int]], rng: random.Random) -> bytes:
    buf = io.BytesIO()
    dirs: set[str] = set()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, size in sorted(files):
            parts = name.split("/")
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                if parent not in dirs:
                    dirs.add(parent)
                    info = tarfile.TarInfo(parent)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
                    tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = size, 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(rng.randbytes(size)))
    return buf.getvalue()


Contender = tuple[Callable[[], None], Callable[[], None]]


def timed_rounds(contenders: dict[str, Contender], runs: int) -> dict[str, list[float]]:
    """Each round runs every contender once, in turn, so load from other processes hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(runs):
        for name, (fn, cleanup) in contenders.items():
            subprocess.run(["sync"], check=True)
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
            cleanup()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--dir", default="/var/tmp", help="Work directory (the daemon's data root lives here too).")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pynode-bench-", dir=args.dir))
    engine = EngineProcess(prefix="pnb")
    try:
        layers = make_layers(args.size_mb)
        layer_paths = []
        for i, layer in enumerate(layers):
            path = work / f"layer{i}.tar"
            path.write_bytes(layer)
            layer_paths.append(path)
        archive = work / "image.tar"
        archive.write_bytes(docker_archive(layers, tags=["bench:1"]))
        total = sum(len(layer) for layer in layers)
        files = sum(layer.count(b"ustar\x0000") for layer in layers)
        engine.base.rmdir()  # the daemon lives in the work dir, on the disk tar -x writes to
        engine.base = work / "engine"
        engine.base.mkdir()
        engine.data_root, engine.exec_root = engine.base / "root", engine.base / "run"
        engine.sock, engine.log_path = engine.base / "s.sock", engine.base / "daemon.log"
        engine.host = f"unix://{engine.sock}"
        engine.env["PYNODE_HOST"] = engine.host
        engine.start()

        def tar_x() -> None:
            for i, path in enumerate(layer_paths):
                dest = work / "tar-out" / str(i)
                dest.mkdir(parents=True)
                subprocess.run(["tar", "-x", "-f", str(path), "-C", str(dest)], check=True)

        def rm_tar() -> None:
            shutil.rmtree(work / "tar-out")

        def cli_load() -> None:
            subprocess.run([PYNODE, "load", "-q", "-i", str(archive)], env=engine.env, check=True,
                           stdout=subprocess.DEVNULL)

        def api_load() -> None:
            with open(archive, "rb") as fh:
                for _ in engine.client.stream_json("POST", "/images/load", params={"quiet": "1"}, content=fh):
                    pass

        def rmi() -> None:
            engine.client.delete("/images/bench:1")

        results = timed_rounds({
            "tar -x (GNU tar)": (tar_x, rm_tar),
            "pynode load (CLI)": (cli_load, rmi),
            "POST /images/load (API)": (api_load, rmi),
        }, args.runs)
        print(f"\nimage: {total / 1e6:.0f} MB in {len(layers)} layers, {files} entries; {args.runs} runs each;"
              f" work dir {args.dir} ({os.cpu_count()} CPUs)\n")
        base = statistics.median(results["tar -x (GNU tar)"])
        print(f"{'what':<26}{'median s':>10}{'min s':>8}{'MB/s':>9}{'x tar':>8}")
        for name, times in results.items():
            med = statistics.median(times)
            print(f"{name:<26}{med:>10.3f}{min(times):>8.3f}{total / 1e6 / med:>9.0f}{base / med:>8.2f}"
                  f"   runs: {' '.join(f'{t:.2f}' for t in times)}")
    finally:
        engine.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
