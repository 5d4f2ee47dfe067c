#!/usr/bin/env python3
"""Create examples/digits_cnn_init.onnx: the bundled example's graph with freshly initialised weights.

The README's first command fine-tunes this twin on scikit-learn's digits with `tunnx train`, so the
held-out accuracy visibly goes from chance to that of the trained example. Same graph, names, opsets
and metadata as examples/digits_cnn.onnx; weights and biases drawn as PyTorch initialises
nn.Conv2d / nn.Linear (U(-1/sqrt(fan_in), 1/sqrt(fan_in))), batch norm as nn.BatchNorm2d starts
(weight 1, bias 0, running mean 0, running var 1). Seeded: reruns write identical bytes.

How to run (from the repository root): .venv/bin/python scripts/make_fresh_twin.py
(packages: scripts/requirements-dev.txt)
"""

import pathlib

import numpy as np
import onnx
from onnx import numpy_helper

SEED = 1
ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE = ROOT / "examples" / "digits_cnn.onnx"
TARGET = ROOT / "examples" / "digits_cnn_init.onnx"


def fresh(name, shape, rng):
    if name.startswith("bn1."):
        return np.zeros(shape) if name.endswith(("bias", "running_mean")) else np.ones(shape)
    fan_in = {"conv1": 9, "fc1": 512, "fc2": 64}[name.split(".")[0]]
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape)


def main():
    model = onnx.load(str(SOURCE))
    rng = np.random.default_rng(SEED)
    for init in model.graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue  # the Reshape shape stays
        value = fresh(init.name, tuple(init.dims), rng).astype(np.float32)
        init.CopyFrom(numpy_helper.from_array(value, init.name))
    model.doc_string = "digits_cnn with fresh PyTorch-style initial weights (scripts/make_fresh_twin.py)"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(TARGET))
    print(f"wrote {TARGET.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
