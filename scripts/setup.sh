#!/usr/bin/env bash
# Set up a development environment: Python venv with SERECA and its test
# dependencies; with --system (as root) also the Debian packages the tests
# use (Chromium + ChromeDriver for the dashboard browser test, Mosquitto for
# the MQTT sensor input).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--system" ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup.sh --system installs Debian packages and must run as root (or: sudo $0 --system)" >&2
        exit 2
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium chromium-driver mosquitto >/dev/null
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    "$PY" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[dev]'
echo "setup done: $(.venv/bin/sereca version 2>/dev/null || echo sereca installed)"
