#!/usr/bin/env python3
"""Create the README's bundled example model, examples/digits_cnn.onnx.

What it makes
  examples/digits_cnn.onnx          a small CNN (~34k parameters, ~135 KB) that classifies
                                    8x8 handwritten digits, laid out exactly like what
                                    torch.onnx.export writes for this PyTorch module:

      class DigitsCNN(nn.Module):            # x: float32 [batch, 1, 8, 8], pixels / 16.0
          conv1 = nn.Conv2d(1, 8, 3, padding=1); bn1 = nn.BatchNorm2d(8); relu
          x.reshape(-1, 512)                 # -> Reshape with int64 initializer [-1, 512]
          fc1 = nn.Linear(512, 64); relu; fc2 = nn.Linear(64, 10)   # -> Gemm(transB=1)

                                    (opset 17, ir_version 8, input "input" [batch,1,8,8],
                                    output "logits" [batch,10], PyTorch initializer and node
                                    names), but built with onnx.helper; torch is not needed.
  examples/digits_sample.npy        float32 [4,1,8,8]: the first 4 test images, scaled.
  examples/digits_sample_labels.txt their labels, one per line.

Why
  The README needs a small, committable model with meaningful weights to run inference and
  fine-tuning on. The weights are trained here on real data that ships inside a package
  (scikit-learn's bundled digits dataset, sklearn.datasets.load_digits; no download), with a
  short numpy implementation of exactly this network (im2col conv, batch-norm in training
  mode, Adam). The batch-norm running statistics are then set from the conv activations of
  the whole training split. Everything is seeded and single-threaded, so reruns write
  identical bytes.

  The script checks the model with onnx.checker (full_check=True), runs it with onnxruntime on
  the whole test split, and fails unless ORT's accuracy equals the numpy accuracy and is > 90%.

How to run (from the repository root)
  .venv/bin/python scripts/make_example_model.py
  (packages: scripts/requirements-dev.txt)
"""

import os

# Single-threaded BLAS so that float summation order, and hence the output bytes, are fixed.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import hashlib  # noqa: E402
import pathlib  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

SEED = 0
EPOCHS = 15
BATCH = 32
LR = 2e-3
BN_EPS = 1e-5
BN_MOMENTUM = 0.1  # PyTorch convention; exported as ONNX momentum 1 - 0.1 = 0.9

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "examples"
MODEL_PATH = OUT_DIR / "digits_cnn.onnx"


# ----------------------------------------------------------------------------- data
def load_data():
    digits = load_digits()
    x = (digits.images.astype(np.float64) / 16.0)[:, None, :, :]  # [1797, 1, 8, 8]
    y = digits.target.astype(np.int64)
    perm = np.random.default_rng(SEED).permutation(len(y))
    n_test = len(y) // 5  # 80/20 split
    test, train = perm[:n_test], perm[n_test:]
    return x[train], y[train], x[test], y[test]


def im2col(x):
    """[N,1,8,8] -> [N,64,9]: the 3x3 neighbourhood (zero padding 1) of each output pixel."""
    n = x.shape[0]
    xp = np.pad(x[:, 0], ((0, 0), (1, 1), (1, 1)))
    cols = [xp[:, i:i + 8, j:j + 8].reshape(n, 64) for i in range(3) for j in range(3)]
    return np.stack(cols, axis=2)


# ----------------------------------------------------------------------------- model
def init_params(rng):
    """PyTorch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases."""
    def uniform(shape, fan_in):
        bound = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-bound, bound, size=shape)

    return {
        "conv1.weight": uniform((8, 1, 3, 3), 9),
        "conv1.bias": uniform((8,), 9),
        "bn1.weight": np.ones(8),
        "bn1.bias": np.zeros(8),
        "fc1.weight": uniform((64, 512), 512),
        "fc1.bias": uniform((64,), 512),
        "fc2.weight": uniform((10, 64), 64),
        "fc2.bias": uniform((10,), 64),
    }


def conv(p, cols):
    """cols [N,64,9] -> conv1 output [N,8,64] (channel, then 8x8 pixels row-major)."""
    return np.einsum("npk,ck->ncp", cols, p["conv1.weight"].reshape(8, 9)) + p["conv1.bias"][:, None]


def head(p, a):
    """Post-BN activations [N,8,64] -> logits, plus what backward needs."""
    r = np.maximum(a, 0.0)
    flat = r.reshape(len(a), 512)  # NCHW flatten, same as x.reshape(-1, 512)
    z1 = flat @ p["fc1.weight"].T + p["fc1.bias"]
    h1 = np.maximum(z1, 0.0)
    logits = h1 @ p["fc2.weight"].T + p["fc2.bias"]
    return logits, (r, flat, z1, h1)


def forward_infer(p, stats, x):
    c = conv(p, im2col(x))
    scale = p["bn1.weight"] / np.sqrt(stats["bn1.running_var"] + BN_EPS)
    a = (c - stats["bn1.running_mean"][:, None]) * scale[:, None] + p["bn1.bias"][:, None]
    return head(p, a)[0]


def train_step(p, x, y):
    """Forward with batch-statistics batch norm, softmax cross-entropy, backward. Returns grads."""
    n = len(y)
    cols = im2col(x)
    c = conv(p, cols)
    mean = c.mean(axis=(0, 2))
    var = c.var(axis=(0, 2))
    inv_std = 1.0 / np.sqrt(var + BN_EPS)
    xhat = (c - mean[:, None]) * inv_std[:, None]
    a = xhat * p["bn1.weight"][:, None] + p["bn1.bias"][:, None]
    logits, (r, flat, z1, h1) = head(p, a)

    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    dlogits = prob
    dlogits[np.arange(n), y] -= 1.0
    dlogits /= n

    g = {"fc2.weight": dlogits.T @ h1, "fc2.bias": dlogits.sum(0)}
    dz1 = (dlogits @ p["fc2.weight"]) * (z1 > 0)
    g["fc1.weight"] = dz1.T @ flat
    g["fc1.bias"] = dz1.sum(0)
    da = (dz1 @ p["fc1.weight"]).reshape(r.shape) * (a > 0)
    g["bn1.weight"] = (da * xhat).sum(axis=(0, 2))
    g["bn1.bias"] = da.sum(axis=(0, 2))
    dxhat = da * p["bn1.weight"][:, None]
    m = c.shape[0] * c.shape[2]
    dc = (inv_std[:, None] / m) * (
        m * dxhat - dxhat.sum(axis=(0, 2))[:, None] - xhat * (dxhat * xhat).sum(axis=(0, 2))[:, None]
    )
    g["conv1.weight"] = np.einsum("ncp,npk->ck", dc, cols).reshape(8, 1, 3, 3)
    g["conv1.bias"] = dc.sum(axis=(0, 2))
    return g


def train(x_tr, y_tr):
    rng = np.random.default_rng(SEED)
    p = init_params(rng)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    b1, b2, t = 0.9, 0.999, 0
    for epoch in range(EPOCHS):
        order = rng.permutation(len(y_tr))
        for s in range(0, len(order), BATCH):
            idx = order[s:s + BATCH]
            g = train_step(p, x_tr[idx], y_tr[idx])
            t += 1
            for k in p:  # Adam
                m[k] = b1 * m[k] + (1 - b1) * g[k]
                v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
                p[k] -= LR * (m[k] / (1 - b1 ** t)) / (np.sqrt(v[k] / (1 - b2 ** t)) + 1e-8)
    # Running statistics from the whole training split's conv activations. PyTorch stores the
    # unbiased variance in running_var, so do the same.
    c = conv(p, im2col(x_tr))
    count = c.shape[0] * c.shape[2]
    stats = {
        "bn1.running_mean": c.mean(axis=(0, 2)),
        "bn1.running_var": c.var(axis=(0, 2)) * count / (count - 1),
    }
    return p, stats


# ----------------------------------------------------------------------------- ONNX
def build_model(p, stats):
    f32 = {k: v.astype(np.float32) for k, v in {**p, **stats}.items()}
    inits = [numpy_helper.from_array(f32[k], k) for k in (
        "conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var")]
    inits.append(numpy_helper.from_array(np.array([-1, 512], dtype=np.int64), "onnx::Reshape_17"))
    inits += [numpy_helper.from_array(f32[k], k) for k in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")]

    nodes = [
        helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["/conv1/Conv_output_0"],
                         name="/conv1/Conv", dilations=[1, 1], group=1, kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("BatchNormalization",
                         ["/conv1/Conv_output_0", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"],
                         ["/bn1/BatchNormalization_output_0"], name="/bn1/BatchNormalization",
                         epsilon=BN_EPS, momentum=1.0 - BN_MOMENTUM),
        helper.make_node("Relu", ["/bn1/BatchNormalization_output_0"], ["/relu/Relu_output_0"], name="/relu/Relu"),
        helper.make_node("Reshape", ["/relu/Relu_output_0", "onnx::Reshape_17"], ["/Reshape_output_0"],
                         name="/Reshape", allowzero=0),
        helper.make_node("Gemm", ["/Reshape_output_0", "fc1.weight", "fc1.bias"], ["/fc1/Gemm_output_0"],
                         name="/fc1/Gemm", alpha=1.0, beta=1.0, transB=1),
        helper.make_node("Relu", ["/fc1/Gemm_output_0"], ["/relu_1/Relu_output_0"], name="/relu_1/Relu"),
        helper.make_node("Gemm", ["/relu_1/Relu_output_0", "fc2.weight", "fc2.bias"], ["logits"],
                         name="/fc2/Gemm", alpha=1.0, beta=1.0, transB=1),
    ]
    graph = helper.make_graph(
        nodes, "main_graph",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializer=inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
        producer_name="tunnx-example", producer_version="1",
        doc_string=(
            "DigitsCNN: Conv(1->8, 3x3, pad 1) -> BatchNorm -> ReLU -> Reshape(-1, 512) -> "
            "Gemm(512->64) -> ReLU -> Gemm(64->10). Input 'input': float32 [batch, 1, 8, 8], "
            "8x8 handwritten digits from scikit-learn's load_digits, pixel values / 16.0. "
            "Output 'logits': float32 [batch, 10], one score per digit 0-9. Trained with numpy "
            "by scripts/make_example_model.py; laid out like torch.onnx.export output."))
    return model


def main():
    x_tr, y_tr, x_te, y_te = load_data()
    p, stats = train(x_tr, y_tr)

    # numpy accuracy, computed with the float32 weights that go into the file
    p32 = {k: v.astype(np.float32) for k, v in p.items()}
    s32 = {k: v.astype(np.float32) for k, v in stats.items()}
    x_te32 = x_te.astype(np.float32)
    np_pred = forward_infer(p32, s32, x_te32).argmax(1)
    np_acc = float((np_pred == y_te).mean())
    train_acc = float((forward_infer(p32, s32, x_tr.astype(np.float32)).argmax(1) == y_tr).mean())

    OUT_DIR.mkdir(exist_ok=True)
    model = build_model(p, stats)
    onnx.save(model, str(MODEL_PATH))
    onnx.checker.check_model(onnx.load(str(MODEL_PATH)), full_check=True)

    sess = ort.InferenceSession(str(MODEL_PATH), providers=["CPUExecutionProvider"])
    ort_pred = sess.run(["logits"], {"input": x_te32})[0].argmax(1)
    ort_acc = float((ort_pred == y_te).mean())

    np.save(OUT_DIR / "digits_sample.npy", x_te32[:4])
    (OUT_DIR / "digits_sample_labels.txt").write_text("".join(f"{int(v)}\n" for v in y_te[:4]))

    trainable = sum(p[k].size for k in p)
    buffers = sum(stats[k].size for k in stats)
    digest = hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest()
    print(f"train split: {len(y_tr)} images, test split: {len(y_te)} images")
    print(f"train accuracy (numpy): {train_acc:.4f}")
    print(f"test accuracy  (numpy): {np_acc:.4f}")
    print(f"test accuracy  (onnxruntime, saved model): {ort_acc:.4f}")
    print(f"prediction agreement numpy vs ORT: {(np_pred == ort_pred).mean():.4f}")
    print(f"trainable parameters: {trainable}, buffer elements (running mean/var): {buffers}")
    print(f"wrote {MODEL_PATH.relative_to(ROOT)} ({MODEL_PATH.stat().st_size} bytes, sha256 {digest})")
    print(f"sample labels: {[int(v) for v in y_te[:4]]}")

    if ort_acc != np_acc:
        raise SystemExit(f"ORT accuracy {ort_acc} != numpy accuracy {np_acc}")
    if ort_acc <= 0.90:
        raise SystemExit(f"test accuracy {ort_acc} is not above 0.90")


if __name__ == "__main__":
    main()
