"""Exports the real-model fixtures of tunnx's end-to-end tests with PyTorch, and records
ONNX Runtime's outputs for them, so CI compares tunnx with ONNX Runtime without installing torch.

  tests/models/resnet18_narrow.onnx   a ResNet-18-shaped CNN (BasicBlock x [2,2,2,2], widths 24..192),
                                      input [batch,3,32,32], BatchNorm in eval mode with non-trivial stats
  tests/models/encoder4.onnx          token embedding + learned positions + a 4-layer Transformer encoder
                                      (d_model 160, 4 heads, FF 640) + a 10-way head; input int64
                                      [batch, seq], both dynamic
  tests/models/mobilenet_v3_small.onnx  torchvision's mobilenet_v3_small (10 classes, random weights),
                                      input [batch,3,96,96]
  tests/models/yolo_style_detector.onnx  YOLOv8's anchor-free detector at width 16: DFL softmax, anchor
                                      grid, sigmoid scores; input [batch,3,128,128] -> [batch,8,336]
  tests/models/bilstm_recognizer.onnx  a CRNN-shaped line recognizer: convs, 2-layer bidirectional LSTM,
                                      log-softmax; input [batch,1,32,100] -> [25,batch,37]
  tests/models/decoder_block.onnx     a Llama-style decoder block at opset 23 (hidden 256, 8 query and 2
                                      key/value heads, SwiGLU 768): RMSNormalization, RotaryEmbedding and
                                      causal grouped-query Attention as ONNX nodes; input [batch,128,256]
  tests/models/<model>.b<N>.input.npy / .ort.npy   inputs and ONNX Runtime outputs (batch 1 and 64, or
                                      1 and 4 for the others, 1 and 2 for decoder_block)

  python scripts/make_real_models.py [NAME...]   (default all; NAME is a fixture's name)

Needs torch, onnx and onnxruntime (PyPI): python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip
install torch torchvision pillow onnx onnxruntime onnxscript; then /tmp/torchvenv/bin/python scripts/make_real_models.py
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


class ConvBnSiLU(nn.Sequential):
    def __init__(self, cin, cout, k, stride):
        super().__init__(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.SiLU())


class YoloStyleDetector(nn.Module):
    """YOLOv8's anchor-free detector at small width: a stride-32 backbone of Conv-BN-SiLU blocks, a
    top-down neck (nearest Upsample + Concat), per level a box branch (4 sides x 16 DFL bins) and a
    class branch; the DFL softmax and expectation, distances to boxes on the anchor grid, sigmoid
    scores. Output [batch, 4 + classes, anchors] (xywh in pixels, then class scores)."""

    def __init__(self, classes=4, width=16, reg_max=16):
        super().__init__()
        c = width
        self.classes, self.reg_max = classes, reg_max
        self.stem, self.b1 = ConvBnSiLU(3, c, 3, 2), ConvBnSiLU(c, 2 * c, 3, 2)
        self.b2, self.b3, self.b4 = ConvBnSiLU(2 * c, 4 * c, 3, 2), ConvBnSiLU(4 * c, 8 * c, 3, 2), ConvBnSiLU(8 * c, 8 * c, 3, 2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.n4, self.n3 = ConvBnSiLU(16 * c, 8 * c, 3, 1), ConvBnSiLU(12 * c, 4 * c, 3, 1)
        chans = [4 * c, 8 * c, 8 * c]
        self.box = nn.ModuleList(nn.Sequential(ConvBnSiLU(ch, c, 3, 1), ConvBnSiLU(c, c, 3, 1), nn.Conv2d(c, 4 * reg_max, 1))
                                 for ch in chans)
        self.cls = nn.ModuleList(nn.Sequential(ConvBnSiLU(ch, c, 3, 1), ConvBnSiLU(c, c, 3, 1), nn.Conv2d(c, classes, 1))
                                 for ch in chans)
        self.register_buffer("bins", torch.arange(reg_max, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        p3 = self.b2(self.b1(self.stem(x)))
        p4 = self.b3(p3)
        p5 = self.b4(p4)
        n4 = self.n4(torch.cat([self.up(p5), p4], 1))
        n3 = self.n3(torch.cat([self.up(n4), p3], 1))
        outs, anchors, strides = [], [], []
        for i, (f, s) in enumerate(zip((n3, n4, p5), (8, 16, 32))):
            h, w = f.shape[2], f.shape[3]
            outs.append(torch.cat([self.box[i](f), self.cls[i](f)], 1).flatten(2))
            ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
            anchors.append(torch.stack([xs, ys], 0).reshape(2, -1))
            strides.append(torch.full((1, h * w), float(s)))
        y = torch.cat(outs, 2)
        box, cls = y.split([4 * self.reg_max, self.classes], 1)
        b, _, a = box.shape
        dist = (box.view(b, 4, self.reg_max, a).transpose(1, 2).softmax(1) * self.bins).sum(1)
        lt, rb = dist.chunk(2, 1)
        anchor, stride = torch.cat(anchors, 1), torch.cat(strides, 1)
        xy = (anchor + (rb - lt) / 2) * stride
        wh = (lt + rb) * stride
        return torch.cat([xy, wh, cls.sigmoid()], 1)


class BiLstmRecognizer(nn.Module):
    """A CRNN-shaped text-line recognizer: conv features of a 32 x 100 grey image, its 25 columns as a
    sequence, a 2-layer bidirectional LSTM (hidden 48), per-step log-probabilities of 37 classes (CTC's
    blank and 36 characters). Output [steps, batch, classes]."""

    def __init__(self, classes=37, hidden=48):
        super().__init__()
        def block(cin, cout, pool):
            return [nn.Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(pool, pool)]
        self.features = nn.Sequential(*block(1, 32, (2, 2)), *block(32, 64, (2, 2)), *block(64, 96, (2, 1)),
                                      *block(96, 96, (4, 1)))
        self.rnn = nn.LSTM(96, hidden, num_layers=2, bidirectional=True)
        self.head = nn.Linear(2 * hidden, classes)

    def forward(self, x):
        columns = self.features(x).squeeze(2).permute(2, 0, 1)
        y, _ = self.rnn(columns)
        return self.head(y).log_softmax(2)


class DecoderBlock(nn.Module):
    """A Llama-style decoder block: x + o(attn(rope(q(n1(x))), rope(k(n1(x))), v(n1(x)))), then h +
    down(silu(gate(n2(h))) * up(n2(h))). nn.RMSNorm exports as RMSNormalization, torch.onnx.ops'
    rotary_embedding as RotaryEmbedding (halves rotated, Llama's rotate_half; caches indexed by
    position_ids) and scaled_dot_product_attention (causal, enable_gqa) as Attention, all at opset 23.
    Input and output [batch, seq, hidden]; positions 0..seq-1."""

    def __init__(self, hidden=256, heads=8, kv_heads=2, inter=768, max_positions=512, theta=10000.0):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, hidden // heads
        self.norm1, self.norm2 = nn.RMSNorm(hidden, eps=1e-6), nn.RMSNorm(hidden, eps=1e-6)
        for norm in (self.norm1, self.norm2):
            norm.weight.data.uniform_(0.8, 1.2)
        self.q = nn.Linear(hidden, heads * self.head_dim, bias=False)
        self.k = nn.Linear(hidden, kv_heads * self.head_dim, bias=False)
        self.v = nn.Linear(hidden, kv_heads * self.head_dim, bias=False)
        self.o = nn.Linear(heads * self.head_dim, hidden, bias=False)
        self.gate = nn.Linear(hidden, inter, bias=False)
        self.up = nn.Linear(hidden, inter, bias=False)
        self.down = nn.Linear(inter, hidden, bias=False)
        inv_freq = 1.0 / theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim)
        angles = torch.outer(torch.arange(max_positions, dtype=torch.float32), inv_freq)  # [positions, head_dim / 2]
        self.register_buffer("cos_cache", angles.cos())
        self.register_buffer("sin_cache", angles.sin())

    def forward(self, x):
        batch, seq, _ = x.shape
        positions = torch.arange(seq, device=x.device).unsqueeze(0).expand(batch, seq)
        h = self.norm1(x)
        q = self.q(h).view(batch, seq, self.heads, self.head_dim).transpose(1, 2)
        k = self.k(h).view(batch, seq, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v(h).view(batch, seq, self.kv_heads, self.head_dim).transpose(1, 2)
        q = torch.onnx.ops.rotary_embedding(q, self.cos_cache, self.sin_cache, positions)
        k = torch.onnx.ops.rotary_embedding(k, self.cos_cache, self.sin_cache, positions)
        a = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        x = x + self.o(a.transpose(1, 2).reshape(batch, seq, self.heads * self.head_dim))
        h = self.norm2(x)
        return x + self.down(nn.functional.silu(self.gate(h)) * self.up(h))


def randomize_bn_stats(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)


def export(model, example, name, input_name, dynamic_axes, dynamo=False, output_name="logits"):
    # The TorchScript exporter bakes attention's sequence length into Reshape shapes; the dynamo
    # exporter keeps it symbolic, so the encoder uses that one.
    path = os.path.join(OUT, name + ".onnx")
    model.eval()
    torch.onnx.export(model, (example,), path, input_names=[input_name], output_names=[output_name],
                      dynamic_axes=dynamic_axes, opset_version=17, dynamo=dynamo, external_data=False)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    return path


def record(path, name, input_name, inputs_by_batch):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for batch, x in inputs_by_batch.items():
        np.save(os.path.join(OUT, f"{name}.b{batch}.input.npy"), x)
        np.save(os.path.join(OUT, f"{name}.b{batch}.ort.npy"), session.run(None, {input_name: x})[0])


def make_resnet():
    cnn = ResNet18Narrow()
    randomize_bn_stats(cnn)
    path = export(cnn, torch.randn(1, 3, 32, 32), "resnet18_narrow", "image", {"image": {0: "batch"}, "logits": {0: "batch"}})
    record(path, "resnet18_narrow", "image", {b: np.random.uniform(-1, 1, (b, 3, 32, 32)).astype(np.float32) for b in (1, 64)})
    return cnn


def make_encoder():
    enc = Encoder4()
    path = export(enc, torch.randint(0, 1000, (2, 16)), "encoder4", "tokens",
                  {"tokens": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}}, dynamo=True)
    record(path, "encoder4", "tokens",
           {1: np.random.randint(0, 1000, (1, 48)).astype(np.int64), 64: np.random.randint(0, 1000, (64, 24)).astype(np.int64)})
    return enc


def make_image_model(model, name, size, output_name="logits", low=-1.0, high=1.0, output_batch_axis=0):
    """Exports an image model with a dynamic batch and records ONNX Runtime's outputs at batch 1 and 4."""
    randomize_bn_stats(model)
    path = export(model, torch.randn(1, *size), name, "image",
                  {"image": {0: "batch"}, output_name: {output_batch_axis: "batch"}}, output_name=output_name)
    record(path, name, "image", {b: np.random.uniform(low, high, (b, *size)).astype(np.float32) for b in (1, 4)})
    return model


def make_mobilenet():
    import torchvision  # torchvision's own layout, random weights

    return make_image_model(torchvision.models.mobilenet_v3_small(num_classes=10), "mobilenet_v3_small", (3, 96, 96))


def make_yolo():
    return make_image_model(YoloStyleDetector(), "yolo_style_detector", (3, 128, 128), "detections", 0.0)


def make_bilstm():
    # The recognizer's output is [steps, batch, classes]: batch is its axis 1.
    return make_image_model(BiLstmRecognizer(), "bilstm_recognizer", (1, 32, 100), "log_probs", 0.0,
                            output_batch_axis=1)


def make_decoder_block():
    block = DecoderBlock().eval()
    path = os.path.join(OUT, "decoder_block.onnx")
    torch.onnx.export(block, (torch.randn(1, 128, 256),), path, input_names=["hidden_states"],
                      output_names=["output"], dynamic_shapes=({0: torch.export.Dim("batch", max=64)},),
                      opset_version=23, dynamo=True, external_data=False)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    ops = {n.op_type for n in model.graph.node}
    missing = {"Attention", "RMSNormalization", "RotaryEmbedding"} - ops
    if missing:
        raise SystemExit(f"decoder_block.onnx has no {sorted(missing)} node: {sorted(ops)}")
    record(path, "decoder_block", "hidden_states",
           {b: np.random.uniform(-1, 1, (b, 128, 256)).astype(np.float32) for b in (1, 2)})
    return block


MAKERS = {"resnet18_narrow": make_resnet, "encoder4": make_encoder, "mobilenet_v3_small": make_mobilenet,
          "yolo_style_detector": make_yolo, "bilstm_recognizer": make_bilstm, "decoder_block": make_decoder_block}


def main():
    import sys

    os.makedirs(OUT, exist_ok=True)
    names = sys.argv[1:] or list(MAKERS)  # a subset leaves the other fixtures as they are
    readme = os.path.join(OUT, "README.json")
    info = json.load(open(readme)) if os.path.exists(readme) else {"parameters": {}}
    for name in names:
        torch.manual_seed(0)
        np.random.seed(0)
        model = MAKERS[name]()
        info["parameters"][name] = sum(p.numel() for p in model.parameters())
    info.update({"made_by": "scripts/make_real_models.py", "torch": torch.__version__, "onnx": onnx.__version__,
                 "onnxruntime": ort.__version__})
    with open(readme, "w") as f:
        json.dump(info, f, indent=2)
    print(info["parameters"])


if __name__ == "__main__":
    main()
