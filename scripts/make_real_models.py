"""Exports the two real-model fixtures of tunnx's end-to-end tests with PyTorch, and records
ONNX Runtime's outputs for them, so CI compares tunnx with ONNX Runtime without installing torch.

  tests/models/resnet18_narrow.onnx   a ResNet-18-shaped CNN (BasicBlock x [2,2,2,2], widths 24..192),
                                      input [batch,3,32,32], BatchNorm in eval mode with non-trivial stats
  tests/models/encoder4.onnx          token embedding + learned positions + a 4-layer Transformer encoder
                                      (d_model 160, 4 heads, FF 640) + a 10-way head; input int64
                                      [batch, seq], both dynamic
  tests/models/<model>.b<N>.input.npy / .ort.npy   inputs and ONNX Runtime outputs at batch 1 and 64

Needs torch, onnx and onnxruntime (PyPI): python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip
install torch onnx onnxruntime onnxscript; then /tmp/torchvenv/bin/python scripts/make_real_models.py
"""
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "models")
torch.manual_seed(0)
np.random.seed(0)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + identity)


class ResNet18Narrow(nn.Module):
    def __init__(self, widths=(24, 48, 96, 192), classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers, cin = [], widths[0]
        for i, w in enumerate(widths):
            layers.append(nn.Sequential(BasicBlock(cin, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)))
            cin = w
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Encoder4(nn.Module):
    def __init__(self, vocab=1000, d=160, heads=4, ff=640, layers=4, max_len=256, classes=10):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(max_len, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, batch_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, tokens):
        x = self.embed(tokens) + self.pos[: tokens.shape[1]]
        x = self.norm(self.encoder(x))
        return self.head(x)  # [batch, seq, classes]


def randomize_bn_stats(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)


def export(model, example, name, input_name, dynamic_axes, dynamo=False):
    # The TorchScript exporter bakes attention's sequence length into Reshape shapes; the dynamo
    # exporter keeps it symbolic, so the encoder uses that one.
    path = os.path.join(OUT, name + ".onnx")
    model.eval()
    torch.onnx.export(model, (example,), path, input_names=[input_name], output_names=["logits"],
                      dynamic_axes=dynamic_axes, opset_version=17, dynamo=dynamo, external_data=False)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    return path


def record(path, name, input_name, inputs_by_batch):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for batch, x in inputs_by_batch.items():
        np.save(os.path.join(OUT, f"{name}.b{batch}.input.npy"), x)
        np.save(os.path.join(OUT, f"{name}.b{batch}.ort.npy"), session.run(None, {input_name: x})[0])


def main():
    os.makedirs(OUT, exist_ok=True)
    cnn = ResNet18Narrow()
    randomize_bn_stats(cnn)
    cnn_path = export(cnn, torch.randn(1, 3, 32, 32), "resnet18_narrow", "image", {"image": {0: "batch"}, "logits": {0: "batch"}})
    record(cnn_path, "resnet18_narrow", "image",
           {b: np.random.uniform(-1, 1, (b, 3, 32, 32)).astype(np.float32) for b in (1, 64)})

    enc = Encoder4()
    enc_path = export(enc, torch.randint(0, 1000, (2, 16)), "encoder4", "tokens",
                      {"tokens": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}}, dynamo=True)
    record(enc_path, "encoder4", "tokens",
           {1: np.random.randint(0, 1000, (1, 48)).astype(np.int64), 64: np.random.randint(0, 1000, (64, 24)).astype(np.int64)})

    counts = {"resnet18_narrow": sum(p.numel() for p in cnn.parameters()),
              "encoder4": sum(p.numel() for p in enc.parameters())}
    with open(os.path.join(OUT, "README.json"), "w") as f:
        json.dump({"made_by": "scripts/make_real_models.py", "torch": torch.__version__, "onnx": onnx.__version__,
                   "onnxruntime": ort.__version__, "parameters": counts}, f, indent=2)
    print(counts)


if __name__ == "__main__":
    main()
