#!/usr/bin/env bash
# One-command setup for a fresh Debian machine: toolchains for the sandboxed evaluation,
# a virtual environment in .venv with the CPU build of torch, and lensprobe (editable) + test deps.
#   bash scripts/setup.sh            # everything
#   SKIP_APT=1 bash scripts/setup.sh # no Debian packages (evaluation of PHP/C#/Go/C++ then skips)
#   TORCH_SPEC="torch==2.13.0" ...   # the torch requirement (default: the CPU wheel 2.13.0)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
APT_PACKAGES="php-cli golang-go golang-github-stretchr-testify-dev g++ libssl-dev mono-mcs mono-runtime bubblewrap util-linux"
# headless Chromium and its driver: the report's browser test (selenium drives /usr/bin/chromedriver; nothing is downloaded)
APT_PACKAGES="$APT_PACKAGES chromium chromium-driver"

if [ "${SKIP_APT:-0}" != "1" ]; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
      echo "setup: not root and no sudo; skipping Debian packages ($APT_PACKAGES)" >&2; SKIP_APT=1; fi
  fi
  if [ "${SKIP_APT:-0}" != "1" ]; then
    missing=""
    for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
    if [ -n "$missing" ]; then
      echo "setup: installing Debian packages:$missing"
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
    fi
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned: an unpinned torch pulls several GB of CUDA packages on a CPU machine.
.venv/bin/python -m pip install -q "$TORCH_SPEC"
.venv/bin/python -m pip install -q -e ".[dev]"
# the tuned-lens package (2023) is a test oracle only; its declared deps (torchdata, wandb, datasets, an
# old transformers range) would swap packages, and the modules the tests import need none of them
.venv/bin/python -m pip install -q --no-deps "tuned-lens==0.2.0"
# a Jupyter kernel inside the venv, for the notebooks in examples/ (the tests execute them)
.venv/bin/python -m ipykernel install --sys-prefix >/dev/null
.venv/bin/python -c "import torch, transformers, lensprobe; print('setup: ok — torch', torch.__version__, '| transformers', transformers.__version__, '| lensprobe', lensprobe.__version__)"
