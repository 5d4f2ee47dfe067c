#!/usr/bin/env bash
# README command 1: install what is missing, build, and run the main job on the bundled example,
# a small CNN trained on scikit-learn's handwritten digits (examples/digits_cnn.onnx).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh -DTUNNX_BUILD_TESTS=OFF
model=examples/digits_cnn.onnx
echo "== tunnx check $model"
build/tools/tunnx check "$model"
echo
echo "== tunnx params $model"
build/tools/tunnx params "$model"
echo
echo "== tunnx run $model on four real test digits (labels: $(tr '\n' ' ' < examples/digits_sample_labels.txt))"
build/tools/tunnx run "$model" --input input=examples/digits_sample.npy --profile
