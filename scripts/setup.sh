#!/usr/bin/env sh
# Create the virtual environment and install resnetlab into it.
#   scripts/setup.sh          runtime only
#   scripts/setup.sh dev      plus the test and lint tools
# VENV (default .venv) and PYTHON (default python3) can be overridden.
set -eu
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
EXTRA=${1:-}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip="$VENV/bin/python -m pip"

if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    $pip install "torch>=2.4"  # PyPI's Linux build carries CUDA
  else
    # No GPU: PyTorch's CPU build. A plain `torch` from PyPI would pull a multi-GB CUDA build.
    $pip install --timeout 20 --retries 1 --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
      || $pip install "torch==2.13.0"
  fi
fi

if [ "$EXTRA" = "dev" ]; then
  $pip install -e ".[dev]"
  # The browser test drives Debian's chromium through Playwright (no browser download from Playwright).
  if ! command -v chromium >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      export DEBIAN_FRONTEND=noninteractive
      apt-get install -y -q chromium >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } \
        || echo "note: could not install chromium; the browser test will say so" >&2
    else
      echo "note: the browser test needs chromium: sudo apt-get install chromium" >&2
    fi
  fi
else
  $pip install -e .
fi
