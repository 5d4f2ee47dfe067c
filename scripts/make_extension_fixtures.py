"""Makes the PyTorch-parity fixtures of tunnx's model extensions (tunnx/extend.h): new heads and LoRA
adapters (tests/models/extension/, checked by tests/train/extension_parity_test.cc), so CI checks them
against PyTorch without installing torch.

It reuses the models of scripts/make_training_fixtures.py, exported the same way (opset 17, eval form,
batch axis dynamic, no constant folding), and trains K=5 steps on fixed data (batch k = samples
[8k, 8k+8)) with AdamW (lr 0.01, weight_decay 0.01):

  Heads: the backbone frozen (requires_grad False) but in train mode, so BatchNorm normalises with
  batch statistics and updates its running statistics (PyTorch does that for frozen layers too); a new
  nn.Linear reads an intermediate value of the exported graph (found by a forward pre-hook, checked
  against ONNX Runtime) and the loss reads the head alone.
    cnn_head      SmallCNN, head on '/Flatten_output_0' [N, 8] (tunnx: Gemm), cross_entropy
    encoder_head  EncoderBlock, head 'aux' on '/Add_output_0' [N, 6, 16] (tunnx: MatMul + Add), mse
  LoRA as PEFT computes it, y = base(x) + (alpha/r) (x A^T) B^T, rank 4, alpha 8, every base
  parameter frozen; A from kaiming_uniform(a=sqrt(5)) and B from U(-0.1, 0.1) instead of PEFT's zeros
  (zeros would leave A's gradient zero at the first step, a weak test).
    mlp_lora      MLP, glob 'fc*.weight' (products: Gemm transB=1), cross_entropy
    encoder_lora  EncoderBlock, glob '[qv].weight' (products: MatMul(x, Transpose(W)) of [N, 6, 16]), mse

For each fixture NAME it writes:
  NAME.onnx                        the model tunnx loads (the backbone alone)
  NAME.x.npy / NAME.y.npy          the data (y: int64 classes for cross_entropy, float for mse)
  NAME.init.safetensors            the new tensors' initial values; heads: <head>.weight/.bias, with
                                   metadata value / out_features / name / loss; LoRA: the adapters in
                                   tunnx's save_adapters format (metadata lora_glob, lora_rank,
                                   lora_alpha, loss), for load_adapters
  NAME.losses.npy                  the loss at every step (float64 [K])
  NAME.expected.safetensors        after K steps: the head or adapters, and (heads) the running
                                   statistics
  NAME.expected_output.npy         (LoRA) the trained model's first output on all of x, in eval mode

Needs torch, onnx, onnxruntime (PyPI), in a virtual environment outside the repository:
  python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch onnx onnxruntime onnxscript
  /tmp/torchvenv/bin/python scripts/make_extension_fixtures.py
"""
import json
import math
import os
import sys

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_training_fixtures import BATCH, K, MLP, EncoderBlock, SmallCNN, export  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "models", "extension")
RANK, ALPHA = 4, 8.0


def make_data(rng, x_shape, loss, classes=0, y_tail=()):
    n = K * BATCH
    x = rng.standard_normal((n, *x_shape)).astype(np.float32)
    if loss == "cross_entropy":
        y = rng.integers(0, classes, n).astype(np.int64)
    else:
        y = rng.standard_normal((n, *y_tail)).astype(np.float32)
    return x, y


def loss_fn(kind):
    return nn.CrossEntropyLoss() if kind == "cross_entropy" else nn.MSELoss()


def adamw(params):
    return torch.optim.AdamW(params, lr=0.01, weight_decay=0.01)


def save_file(tensors, path, metadata=None):
    """safetensors.numpy.save_file for float32 arrays, with the header's keys sorted: the package writes
    metadata in hash order, which would make the fixtures differ from run to run."""
    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = dict(sorted(metadata.items()))
    for name in sorted(tensors):
        size = tensors[name].nbytes
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text)
        for name in sorted(tensors):
            f.write(np.ascontiguousarray(tensors[name], dtype="<f4").tobytes())


def numpy_dict(tensors):
    return {k: v.detach().numpy().astype(np.float32, copy=True) for k, v in tensors.items()}


def onnx_value(path, value, x):
    """`value` of the ONNX file at `path` on input x, by ONNX Runtime (the value made a graph output)."""
    model = onnx.load(path)
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(value))
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run([value], {"input": x})[0]


def save_common(name, x, y, losses):
    np.save(os.path.join(OUT, f"{name}.x.npy"), x)
    np.save(os.path.join(OUT, f"{name}.y.npy"), y)
    np.save(os.path.join(OUT, f"{name}.losses.npy"), losses)


# ---- Heads -------------------------------------------------------------------------------------------

def head_fixture(name, module, reads, value, head_name, out_features, x, y, loss_kind):
    """`reads`: the submodule whose input is `value`, the ONNX value the head reads."""
    path = os.path.join(OUT, f"{name}.onnx")
    export(module, x, path)
    initializers = {i.name for i in onnx.load(path).graph.initializer}

    features = {}
    reads.register_forward_pre_hook(lambda _m, args: features.__setitem__("v", args[0]))
    with torch.no_grad():
        module.eval()
        module(torch.from_numpy(x[:BATCH]))
    np.testing.assert_allclose(features["v"].numpy(), onnx_value(path, value, x[:BATCH]), rtol=1e-5, atol=1e-6)

    head = nn.Linear(features["v"].shape[-1], out_features)
    init = {f"{head_name}.weight": head.weight, f"{head_name}.bias": head.bias}
    save_file(numpy_dict(init), os.path.join(OUT, f"{name}.init.safetensors"),
              metadata={"value": value, "out_features": str(out_features), "name": head_name, "loss": loss_kind})

    for p in module.parameters():
        p.requires_grad_(False)
    module.train()
    opt = adamw(head.parameters())
    criterion = loss_fn(loss_kind)
    losses = []
    for k in range(K):
        xb = torch.from_numpy(x[k * BATCH:(k + 1) * BATCH])
        yb = torch.from_numpy(y[k * BATCH:(k + 1) * BATCH])
        opt.zero_grad()
        module(xb)  # the whole backbone runs, as in the graph tunnx trains
        loss = criterion(head(features["v"]), yb)
        loss.backward()
        opt.step()
        losses.append(loss.item())

    expected = dict(init)
    for key, t in module.state_dict().items():
        if key.endswith(("running_mean", "running_var")):
            assert key in initializers, key
            expected[key] = t
    save_file(numpy_dict(expected), os.path.join(OUT, f"{name}.expected.safetensors"))
    losses = np.array(losses, dtype=np.float64)
    save_common(name, x, y, losses)
    return {"value": value, "head": head_name, "out_features": out_features, "loss": loss_kind,
            "losses": losses.tolist()}


# ---- LoRA --------------------------------------------------------------------------------------------

class LoraLinear(nn.Module):
    """PEFT's LoraLayer for nn.Linear, without dropout."""

    def __init__(self, base, rank, alpha):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = nn.Parameter(torch.empty(base.out_features, rank).uniform_(-0.1, 0.1))
        self.scaling = alpha / rank

    def forward(self, x):
        return self.base(x) + (x @ self.lora_A.T) @ self.lora_B.T * self.scaling


def lora_fixture(name, module, layers, glob, x, y, loss_kind):
    """`layers`: the attribute names of the adapted nn.Linear layers (their weights match `glob`)."""
    path = os.path.join(OUT, f"{name}.onnx")
    export(module, x, path)
    for p in module.parameters():
        p.requires_grad_(False)
    adapted = {}
    for layer in layers:
        wrapped = LoraLinear(getattr(module, layer), RANK, ALPHA)
        setattr(module, layer, wrapped)
        adapted[f"{layer}.weight"] = wrapped

    def adapters():
        out = {}
        for weight, wrapped in adapted.items():
            out[f"{weight}.lora_A"] = wrapped.lora_A
            out[f"{weight}.lora_B"] = wrapped.lora_B
        return out

    # The metadata of tunnx's save_adapters (runtime/train/lora.cc): alpha as C++ writes a double
    # with precision 17 (%.17g).
    save_file(numpy_dict(adapters()), os.path.join(OUT, f"{name}.init.safetensors"),
              metadata={"format": "pt", "lora_glob": glob, "lora_rank": str(RANK), "lora_alpha": f"{ALPHA:.17g}",
                        "loss": loss_kind})

    module.train()
    opt = adamw([p for p in module.parameters() if p.requires_grad])
    criterion = loss_fn(loss_kind)
    losses = []
    for k in range(K):
        xb = torch.from_numpy(x[k * BATCH:(k + 1) * BATCH])
        yb = torch.from_numpy(y[k * BATCH:(k + 1) * BATCH])
        opt.zero_grad()
        loss = criterion(module(xb), yb)
        loss.backward()
        opt.step()
        losses.append(loss.item())

    save_file(numpy_dict(adapters()), os.path.join(OUT, f"{name}.expected.safetensors"))
    module.eval()
    with torch.no_grad():
        np.save(os.path.join(OUT, f"{name}.expected_output.npy"), module(torch.from_numpy(x)).numpy())
    losses = np.array(losses, dtype=np.float64)
    save_common(name, x, y, losses)
    return {"glob": glob, "rank": RANK, "alpha": ALPHA, "loss": loss_kind, "losses": losses.tolist()}


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    summary = {}

    cnn = SmallCNN()
    x, y = make_data(rng, (1, 8, 8), "cross_entropy", classes=4)
    summary["cnn_head"] = head_fixture("cnn_head", cnn, cnn.fc, "/Flatten_output_0", "head", 4, x, y, "cross_entropy")

    encoder = EncoderBlock()
    x, y = make_data(rng, (6, 16), "mse", y_tail=(6, 3))
    # The encoder has a `head` of its own: the new one is `aux`.
    summary["encoder_head"] = head_fixture("encoder_head", encoder, encoder.norm2, "/Add_output_0", "aux", 3, x, y,
                                           "mse")

    mlp = MLP()
    x, y = make_data(rng, (20,), "cross_entropy", classes=5)
    summary["mlp_lora"] = lora_fixture("mlp_lora", mlp, ["fc1", "fc2", "fc3"], "fc*.weight", x, y, "cross_entropy")

    encoder = EncoderBlock()
    x, y = make_data(rng, (6, 16), "mse", y_tail=(4,))
    summary["encoder_lora"] = lora_fixture("encoder_lora", encoder, ["q", "v"], "[qv].weight", x, y, "mse")

    with open(os.path.join(OUT, "README.json"), "w") as f:
        json.dump({"made_by": "scripts/make_extension_fixtures.py", "torch": torch.__version__, "steps": K,
                   "batch": BATCH, "optimizer": "adamw lr 0.01, weight_decay 0.01",
                   "lora_b_init": "U(-0.1, 0.1)", "fixtures": summary}, f, indent=1)


if __name__ == "__main__":
    main()
