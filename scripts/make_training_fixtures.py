"""Makes the PyTorch-parity fixtures of tunnx's training tests (tests/models/train/), so CI checks
training against PyTorch without installing torch.

For each of three small models — an MLP, a CNN with BatchNorm and a transformer encoder block — it
exports the freshly initialised module with torch.onnx.export (opset 17, eval form, batch axis dynamic,
no constant folding so initializers keep their parameter names), then trains K=5 steps on fixed data
(batch k = samples [8k, 8k+8)) with SGD (momentum 0.9, weight decay) and with AdamW, each from the same
initial state (and, on the MLP alone, with Adam and SGD's nesterov and dampening forms), and writes:

  <model>.onnx                    the initial model tunnx starts from
  <model>.x.npy / <model>.y.npy   the data (y: int64 classes for cross_entropy, float for mse)
  <model>.<opt>.losses.npy        the loss at every step (float64 [K])
  <model>.<opt>.expected.onnx     the trained model exported the same way: its initializers are
                                  PyTorch's parameters and running statistics after K steps

Needs torch, onnx, onnxruntime (PyPI), in a virtual environment outside the repository:
  python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch onnx onnxruntime onnxscript
  /tmp/torchvenv/bin/python scripts/make_training_fixtures.py
"""
import copy
import json
import math
import os

import numpy as np
import onnx
import torch
from torch import nn

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "models", "train")
K = 5
BATCH = 8

OPTIMIZERS = {
    "sgd": lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=0.01),
    "adamw": lambda params: torch.optim.AdamW(params, lr=0.01, weight_decay=0.01),
    "adam": lambda params: torch.optim.Adam(params, lr=0.01, weight_decay=0.001),
    "nesterov": lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.001),
    "dampening": lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.5, dampening=0.3),
}


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(20, 32)
        self.fc2 = nn.Linear(32, 16)
        self.fc3 = nn.Linear(16, 5)

    def forward(self, x):
        return self.fc3(torch.tanh(self.fc2(torch.relu(self.fc1(x)))))


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        # No bias before BatchNorm: its gradient is mathematically zero (the batch mean removes it), so
        # both runtimes would only see rounding noise there, which Adam normalises into full-size steps.
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 8, 3, stride=1, padding=1, groups=2, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 3)
        # Non-trivial statistics and affine parameters: a fresh BatchNorm's weight equals its running_var
        # (ones) and its bias its running_mean (zeros), and the exporter would merge those initializers.
        with torch.no_grad():
            for bn in (self.bn1, self.bn2):
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.normal_(0, 0.1)
                bn.running_mean.normal_(0, 0.1)
                bn.running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = torch.relu(self.bn2(self.conv2(x)))
        x = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


class EncoderBlock(nn.Module):
    """Pre-norm transformer encoder block with a pooled regression head, attention written out."""

    def __init__(self, d=16, heads=2, ff=32, out=4):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d)
        self.q = nn.Linear(d, d)
        # No key bias: softmax over keys cancels it (zero gradient; see SmallCNN's convolutions).
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.ff1 = nn.Linear(d, ff)
        self.ff2 = nn.Linear(ff, d)
        self.head = nn.Linear(d, out)
        # Distinct LayerNorm parameters: fresh ones are all ones/zeros, which the exporter would merge
        # into one initializer (tying norm1 and norm2).
        with torch.no_grad():
            for norm in (self.norm1, self.norm2):
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.normal_(0, 0.1)

    def forward(self, x):  # x [N, S, D]
        n, s, d = x.shape
        h = self.norm1(x)
        def split(t):
            return t.reshape(n, s, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.heads), dim=-1)
        a = (att @ v).transpose(1, 2).reshape(n, s, d)
        x = x + self.proj(a)
        x = x + self.ff2(nn.functional.gelu(self.ff1(self.norm2(x))))
        return self.head(x.mean(dim=1))


def data(name, rng):
    n = K * BATCH
    if name == "mlp":
        x = rng.standard_normal((n, 20)).astype(np.float32)
        y = rng.integers(0, 5, n).astype(np.int64)
        return x, y, "cross_entropy"
    if name == "cnn":
        x = rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
        y = rng.integers(0, 3, n).astype(np.int64)
        return x, y, "cross_entropy"
    x = rng.standard_normal((n, 6, 16)).astype(np.float32)
    y = rng.standard_normal((n, 4)).astype(np.float32)
    return x, y, "mse"


def export(module, x, path):
    module.eval()
    dynamic = {"input": {0: "batch"}, "output": {0: "batch"}}
    torch.onnx.export(module, (torch.from_numpy(x[:BATCH]),), path, input_names=["input"], output_names=["output"],
                      opset_version=17, dynamic_axes=dynamic, do_constant_folding=False, dynamo=False)
    onnx.checker.check_model(onnx.load(path))


def train(module, x, y, loss_kind, make_optimizer):
    module.train()
    opt = make_optimizer(module.parameters())
    loss_fn = nn.CrossEntropyLoss() if loss_kind == "cross_entropy" else nn.MSELoss()
    losses = []
    for k in range(K):
        xb = torch.from_numpy(x[k * BATCH:(k + 1) * BATCH])
        yb = torch.from_numpy(y[k * BATCH:(k + 1) * BATCH])
        opt.zero_grad()
        loss = loss_fn(module(xb), yb)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.array(losses, dtype=np.float64)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    summary = {}
    for name, make in (("mlp", MLP), ("cnn", SmallCNN), ("encoder", EncoderBlock)):
        module = make()
        x, y, loss_kind = data(name, rng)
        initial = copy.deepcopy(module.state_dict())
        export(module, x, os.path.join(OUT, f"{name}.onnx"))
        np.save(os.path.join(OUT, f"{name}.x.npy"), x)
        np.save(os.path.join(OUT, f"{name}.y.npy"), y)
        summary[name] = {"loss": loss_kind}
        for opt_name, make_optimizer in OPTIMIZERS.items():
            if name != "mlp" and opt_name not in ("sgd", "adamw"):
                continue
            module.load_state_dict(initial)
            losses = train(module, x, y, loss_kind, make_optimizer)
            np.save(os.path.join(OUT, f"{name}.{opt_name}.losses.npy"), losses)
            export(module, x, os.path.join(OUT, f"{name}.{opt_name}.expected.onnx"))
            summary[name][opt_name] = losses.tolist()
    with open(os.path.join(OUT, "README.json"), "w") as f:
        json.dump({"made_by": "scripts/make_training_fixtures.py", "torch": torch.__version__, "steps": K,
                   "batch": BATCH, "optimizers": {"sgd": "lr 0.05, momentum 0.9, weight_decay 0.01",
                                                  "adamw": "lr 0.01, weight_decay 0.01",
                                                  "adam": "lr 0.01, weight_decay 0.001 (mlp only)",
                                                  "nesterov": "lr 0.05, momentum 0.9, nesterov, weight_decay 0.001 (mlp only)",
                                                  "dampening": "lr 0.05, momentum 0.5, dampening 0.3 (mlp only)"},
                   "models": summary}, f, indent=1)


if __name__ == "__main__":
    main()
