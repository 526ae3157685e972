#!/usr/bin/env bash
# Start the engine (if none answers on its socket) and show it working.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
if ! pynode version >/dev/null 2>&1; then
  mkdir -p /var/log
  echo "==> starting pynode daemon (log: /var/log/pynode.log)"
  setsid pynode daemon >>/var/log/pynode.log 2>&1 < /dev/null &
  for _ in $(seq 100); do pynode version >/dev/null 2>&1 && break; sleep 0.1; done
fi
pynode info
# A base image from the host's busybox-static (no registry is needed), then a container through crun.
pynode image inspect busybox >/dev/null 2>&1 || pynode image bootstrap busybox
pynode run --rm busybox echo "hello from a pynode container"
pynode images
