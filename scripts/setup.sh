#!/usr/bin/env bash
# velocast setup: a virtual environment in .venv with velocast and every optional dependency.
# torch is pinned to 2.13.0 so the CPU build is used where one is provided; on a GPU machine,
# install the torch build you want first and drop the pin (any torch >= 2.4 works).
set -euo pipefail
cd "$(dirname "$0")/.."

# Headless Chromium drives the web-page test of `velocast serve` (the test skips without it).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
PYTHON="${PYTHON:-python3}"
"$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0" -e ".[all]"
