#!/usr/bin/env bash
# Install PyTorch Open-Unmix (openunmix 1.3.0 on torch 2.13.0, CPU) beside the project, so
# benchmarks/separate_speed_umx.py can compare keras_sep's Open-Unmix with it side by side.
# Usage: openunmix_peer_setup.sh [DIR]   (default: /tmp/openunmix_peer). Idempotent.
# openunmix is installed without its dependencies: it asks for torchaudio, which only its
# audio loading uses; the benchmark stands a module in for it, so no torchaudio is needed.
# torch is pinned to 2.13.0: the CPU wheel of that version is what this setup is meant for
# (other versions may pull gigabytes of CUDA packages).
# Afterwards:  DIR/venv/bin/python -c "import torch, openunmix"
set -euo pipefail
DIR=${1:-/tmp/openunmix_peer}
mkdir -p "$DIR" && cd "$DIR"
PY=$(command -v python3.11 || command -v python3)
[ -x venv/bin/python ] || "$PY" -m venv venv
venv/bin/python -c "import torch; assert torch.__version__.startswith('2.13.0')" 2>/dev/null \
  || venv/bin/pip install -q "torch==2.13.0"
venv/bin/python -c "import numpy, tqdm" 2>/dev/null || venv/bin/pip install -q numpy tqdm
[ -f venv/.openunmix-1.3.0 ] || { venv/bin/pip install -q --no-deps "openunmix==1.3.0" && touch venv/.openunmix-1.3.0; }
echo "openunmix peer ready in $DIR"
echo "python: $DIR/venv/bin/python"
