#!/usr/bin/env bash
# Install everything pynode, pycompose and pyswarm need on Debian 12 (as root): system packages, then a
# venv in .venv with the project and its test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  crun runc conmon catatonit tini          # OCI runtimes, the container monitor, init processes
  busybox-static mmdebstrap                # base images: busybox from the host, Debian via mmdebstrap
  nftables iproute2 iputils-ping           # packet filtering, links (pyroute2 does the work; ip for humans)
  skopeo umoci docker-registry             # interop checks of saved images; an OCI distribution server for pull tests
  iperf3 curl ruby                         # benchmarks, probes, Vagrantfile syntax check
  python3 python3-venv python3-dev gcc    # the venv
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "==> apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import node, pytest, xdist' 2>/dev/null || [ pyproject.toml -nt .venv/.installed ]; then
  echo "==> installing the project into .venv"
  .venv/bin/pip install -q -U pip
  # compat mode: a plain path entry; the default editable finder costs every command ~20 ms at start
  .venv/bin/pip install -q -e '.[test]' --config-settings editable_mode=compat
  touch .venv/.installed
fi
# bytecode for our packages now (a user's first commands, and shells that set PYTHONDONTWRITEBYTECODE, would
# otherwise compile every module on each start: ~20 ms of each CLI call)
.venv/bin/python -m compileall -q node compose orchestrator >/dev/null
echo "==> installed: $(.venv/bin/pynode --help >/dev/null && echo pynode pycompose pyswarm in .venv/bin)"
