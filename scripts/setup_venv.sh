#!/usr/bin/env bash
# The project's Python virtual environment (.venv) for tests and benchmarks, never for the product:
# onnx (newer conformance data), onnxruntime (the peer exports are checked against), safetensors
# (checkpoints must stay readable by it), numpy. Versions from scripts/requirements-dev.txt.
# Idempotent: installs only what is missing. torch is not here (too big for CI; see
# scripts/make_training_fixtures.py).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
wanted=()
for package in numpy onnx onnxruntime safetensors; do
  pin=$(grep -E "^$package==" scripts/requirements-dev.txt || echo "$package")
  wanted+=("$pin")
done
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import numpy, onnx, onnxruntime, safetensors" 2>/dev/null; then
  echo "setup_venv: installing ${wanted[*]} into $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${wanted[@]}"
fi
echo "setup_venv: $venv ready"
