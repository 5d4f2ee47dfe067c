#!/usr/bin/env bash
# README command 1: install what is missing, build, and run the main job: fine-tune a freshly
# initialised twin of the bundled example (examples/digits_cnn_init.onnx) on scikit-learn's
# handwritten digits (real data that Debian's python3-sklearn ships), then plot, export and run it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh -DTUNNX_BUILD_TESTS=OFF
tunnx=build/tools/tunnx
work=.cache/demo
rm -rf "$work"
mkdir -p "$work"

echo "== the digits as .npz (seeded 80/20 split, the one the bundled example was trained on)"
/usr/bin/python3 scripts/make_digits_data.py "$work"
echo
echo "== tunnx params examples/digits_cnn_init.onnx (fresh weights)"
"$tunnx" params examples/digits_cnn_init.onnx
echo
echo "== tunnx train: AdamW, 10 epochs, held-out accuracy before training and after every epoch"
"$tunnx" train examples/digits_cnn_init.onnx --data "$work/train.npz" --eval-data "$work/test.npz" \
  --target label --loss cross_entropy --optimizer adamw --lr 3e-3 --epochs 10 --batch-size 32 \
  --checkpoint-dir "$work/checkpoints" --metrics "$work/metrics.jsonl" --save "$work/digits_cnn_tuned.onnx"
echo
echo "== tunnx plot: the loss and accuracy curves"
"$tunnx" plot "$work/metrics.jsonl" -o "$work/curve.svg" --title "digits_cnn_init fine-tuned on scikit-learn's digits"
echo
echo "== tunnx run on the export, four real test digits (labels: $(tr '\n' ' ' < examples/digits_sample_labels.txt))"
"$tunnx" run "$work/digits_cnn_tuned.onnx" --input input=examples/digits_sample.npy --output-dir "$work/predictions"
/usr/bin/python3 -c "import numpy as np, sys; print('predicted classes:', *np.load(sys.argv[1]).argmax(axis=1))" \
  "$work/predictions/logits.npy"
echo
echo "checkpoints, metrics, the curve and the fine-tuned model are in $work/"
