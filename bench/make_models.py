#!/usr/bin/env python3
"""Writes the benchmark models into bench/models/ (or --out DIR).

  matmul_1024.onnx  Y = A @ B, A [1024,1024] an input, B [1024,1024] an initializer
  mlp.onnx          784-1024-1024-10: Gemm(transB=1) + Relu twice, then Gemm; batch is dynamic
  bert2.onnx        2-layer BERT-base-shaped encoder (hidden 768, 12 heads, FF 3072, seq 128), token
                    ids in, last hidden state out; batch is dynamic; no attention mask
  resnet18.onnx     torchvision's resnet18 layout (BasicBlock x [2,2,2,2], widths 64..512, 1000 classes),
                    BatchNormalization kept as nodes; input [batch,3,224,224]
  mobilenetv3_small.onnx  torchvision's mobilenet_v3_small layout (depthwise convs, SE blocks, HardSwish,
                    1000 classes, dropout omitted); input [batch,3,224,224]
  yolov8n.onnx      YOLOv8n-shaped detector (ultralytics yolov8.yaml at width 0.25, depth 0.33: C2f, SPPF,
                    FPN/PAN neck, the Detect head with its DFL box decode); input [batch,3,640,640],
                    output [batch,84,8400]

The CNNs are written node by node as torch.onnx.export (opset 17, eval mode, no constant folding)
writes them, with torch's initializer names; their weights are He-uniform (bound sqrt(6 / fan_in)) and
their BatchNorm statistics random but non-trivial, so activations stay finite and every channel differs.

Weights come from numpy generators with fixed seeds, so every run writes byte-identical files.
Run with the project venv:  .venv/bin/python bench/make_models.py
"""
import argparse
import math
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # the newest IR that opset 17 needs; keeps older onnxruntime builds happy


def make_model(graph, name):
    model = helper.make_model(graph, producer_name="tunnx-bench", opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    model.doc_string = name
    onnx.checker.check_model(model, full_check=True)
    return model


def init(name, array):
    return numpy_helper.from_array(np.ascontiguousarray(array), name)


def matmul_1024():
    rng = np.random.default_rng(1024)
    n = 1024
    b = rng.uniform(-1, 1, (n, n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["A", "B"], ["Y"], name="matmul")],
        "matmul_1024",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n, n])],
        [init("B", b)],
    )
    return make_model(graph, "one MatMul 1024x1024 @ 1024x1024 (B an initializer)")


def mlp():
    rng = np.random.default_rng(784)
    sizes = [784, 1024, 1024, 10]
    nodes, inits = [], []
    x = "input"
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = 1 / math.sqrt(fan_in)  # torch.nn.Linear's init range
        inits.append(init(f"fc{i}.weight", rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32)))
        inits.append(init(f"fc{i}.bias", rng.uniform(-bound, bound, (fan_out,)).astype(np.float32)))
        y = f"fc{i}" if i < len(sizes) - 2 else "logits"
        nodes.append(helper.make_node("Gemm", [x, f"fc{i}.weight", f"fc{i}.bias"], [y], name=f"fc{i}", transB=1))
        if i < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [y], [f"relu{i}"], name=f"relu{i}"))
            y = f"relu{i}"
        x = y
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 784])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    return make_model(graph, "MLP 784-1024-1024-10")


class GraphBuilder:
    """Collects nodes and initializers with unique names; each method returns its output's name."""

    def __init__(self, rng):
        self.rng = rng
        self.nodes, self.inits = [], []
        self.count = 0

    def name(self, stem):
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, stem, array):
        n = self.name(stem)
        self.inits.append(init(n, array))
        return n

    def weight(self, stem, shape):
        return self.const(stem, (self.rng.standard_normal(shape) * 0.02).astype(np.float32))

    def op(self, op_type, inputs, stem=None, **attrs):
        out = self.name(stem or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def linear(self, x, fan_in, fan_out, stem):
        # x [B,S,fan_in] @ W [fan_in,fan_out] + b [fan_out], as PyTorch exports nn.Linear
        y = self.op("MatMul", [x, self.weight(stem + ".weight", (fan_in, fan_out))], stem + ".matmul")
        return self.op("Add", [y, self.const(stem + ".bias", np.zeros(fan_out, np.float32))], stem + ".add")

    def layer_norm(self, x, hidden, stem):
        scale = self.const(stem + ".weight", np.ones(hidden, np.float32))
        bias = self.const(stem + ".bias", np.zeros(hidden, np.float32))
        return self.op("LayerNormalization", [x, scale, bias], stem, axis=-1, epsilon=1e-12)

    def gelu(self, x):
        # 0.5 * x * (1 + erf(x / sqrt(2))), the exact GELU as exported before opset 20 had Gelu
        scaled = self.op("Div", [x, self.const("sqrt2", np.array(math.sqrt(2), np.float32))])
        erf = self.op("Erf", [scaled])
        one_plus = self.op("Add", [erf, self.const("one", np.array(1, np.float32))])
        half_x = self.op("Mul", [x, self.const("half", np.array(0.5, np.float32))])
        return self.op("Mul", [half_x, one_plus], "gelu")


def bert2(layers=2, hidden=768, heads=12, ff=3072, seq=128, vocab=1000):
    g = GraphBuilder(np.random.default_rng(768))
    head_dim = hidden // heads
    word = g.weight("embeddings.word", (vocab, hidden))
    position = g.weight("embeddings.position", (seq, hidden))
    x = g.op("Gather", [word, "input_ids"], "embeddings.gather", axis=0)  # [B,S,H]
    x = g.op("Add", [x, position], "embeddings.add")
    x = g.layer_norm(x, hidden, "embeddings.norm")
    split_heads = g.const("split_heads", np.array([0, 0, heads, head_dim], np.int64))  # 0: copy that dim
    merge_heads = g.const("merge_heads", np.array([0, 0, hidden], np.int64))
    for layer in range(layers):
        p = f"layer{layer}"
        # [B,S,H] -> [B,heads,S,head_dim] for q and v; k as [B,heads,head_dim,S]
        q = g.op("Transpose", [g.op("Reshape", [g.linear(x, hidden, hidden, p + ".q"), split_heads])], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [g.linear(x, hidden, hidden, p + ".k"), split_heads])], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [g.linear(x, hidden, hidden, p + ".v"), split_heads])], perm=[0, 2, 1, 3])
        scores = g.op("MatMul", [q, k], p + ".scores")  # [B,heads,S,S]
        scores = g.op("Div", [scores, g.const("sqrt_dk", np.array(math.sqrt(head_dim), np.float32))])
        probs = g.op("Softmax", [scores], p + ".softmax", axis=-1)
        context = g.op("Transpose", [g.op("MatMul", [probs, v], p + ".context")], perm=[0, 2, 1, 3])
        context = g.op("Reshape", [context, merge_heads])  # [B,S,H]
        attn = g.linear(context, hidden, hidden, p + ".out")
        x = g.layer_norm(g.op("Add", [attn, x], p + ".residual1"), hidden, p + ".norm1")
        h = g.gelu(g.linear(x, hidden, ff, p + ".ff1"))
        h = g.linear(h, ff, hidden, p + ".ff2")
        x = g.layer_norm(g.op("Add", [h, x], p + ".residual2"), hidden, p + ".norm2")
    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))
    graph = helper.make_graph(
        g.nodes,
        "bert2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", seq])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", seq, hidden])],
        g.inits,
    )
    return make_model(graph, f"{layers}-layer BERT-base-shaped encoder, seq {seq}, vocab {vocab}")


class CnnBuilder(GraphBuilder):
    """GraphBuilder for NCHW CNNs: initializers named like the torch module's state_dict entries."""

    def param(self, name, array):
        self.inits.append(init(name, array.astype(np.float32)))
        return name

    def conv(self, x, cin, cout, k, stride, prefix, groups=1, bias=False):
        # weight [cout, cin/groups, k, k]; He-uniform keeps a ReLU stack's activations at a steady scale
        fan_in = cin // groups * k * k
        bound = math.sqrt(6 / fan_in)
        inputs = [x, self.param(prefix + ".weight", self.rng.uniform(-bound, bound, (cout, cin // groups, k, k)))]
        if bias:
            inputs.append(self.param(prefix + ".bias", self.rng.uniform(-1, 1, cout) / math.sqrt(fan_in)))
        return self.op("Conv", inputs, prefix, kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4,
                       dilations=[1, 1], group=groups)

    def batch_norm(self, x, c, prefix, eps=1e-5, momentum=0.1):
        # Eval-mode BatchNormalization as torch exports it (one output, momentum written as 1 - momentum).
        # The statistics are what a trained net has: means off zero, variances around one, per channel.
        names = [self.param(prefix + ".weight", self.rng.uniform(0.5, 1.0, c)),
                 self.param(prefix + ".bias", self.rng.uniform(-0.2, 0.2, c)),
                 self.param(prefix + ".running_mean", self.rng.uniform(-0.2, 0.2, c)),
                 self.param(prefix + ".running_var", self.rng.uniform(0.5, 2.0, c))]
        return self.op("BatchNormalization", [x] + names, prefix, epsilon=eps, momentum=1 - momentum)

    def gemm(self, x, fan_in, fan_out, prefix, out=None):
        # nn.Linear after Flatten: Gemm(transB=1), weight [fan_out, fan_in], torch's init range
        bound = 1 / math.sqrt(fan_in)
        w = self.param(prefix + ".weight", self.rng.uniform(-bound, bound, (fan_out, fan_in)))
        b = self.param(prefix + ".bias", self.rng.uniform(-bound, bound, fan_out))
        out = out or self.name(prefix)
        self.nodes.append(helper.make_node("Gemm", [x, w, b], [out], name=prefix, alpha=1.0, beta=1.0, transB=1))
        return out

    def model(self, name, inputs, outputs, doc):
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        return make_model(graph, doc)


def image_input(size):
    return [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])]


def resnet18(classes=1000):
    """torchvision.models.resnet18: conv1 7x7/2, BN, ReLU, MaxPool 3x3/2, BasicBlock x [2,2,2,2]."""
    g = CnnBuilder(np.random.default_rng(18))
    x = g.op("Relu", [g.batch_norm(g.conv("input", 3, 64, 7, 2, "conv1"), 64, "bn1")])
    x = g.op("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=0,
             dilations=[1, 1])
    cin = 64
    for layer, width in enumerate([64, 128, 256, 512], start=1):
        for block in range(2):
            p = f"layer{layer}.{block}"
            stride = 2 if layer > 1 and block == 0 else 1
            identity = x
            if stride != 1 or cin != width:
                identity = g.batch_norm(g.conv(x, cin, width, 1, stride, p + ".downsample.0"), width,
                                        p + ".downsample.1")
            y = g.op("Relu", [g.batch_norm(g.conv(x, cin, width, 3, stride, p + ".conv1"), width, p + ".bn1")])
            y = g.batch_norm(g.conv(y, width, width, 3, 1, p + ".conv2"), width, p + ".bn2")
            x = g.op("Relu", [g.op("Add", [y, identity])])
            cin = width
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x], "avgpool")], axis=1)
    g.gemm(x, 512, classes, "fc", out="logits")
    return g.model("resnet18", image_input(224),
                   [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
                   "torchvision resnet18 layout, random weights, BatchNorm kept")


def make_divisible(v, divisor=8):
    # torchvision's _make_divisible: round to a multiple of 8, never more than 10% down
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def mobilenetv3_small(classes=1000):
    """torchvision.models.mobilenet_v3_small (width 1.0); BatchNorm eps 0.001, momentum 0.01."""
    g = CnnBuilder(np.random.default_rng(3))

    def conv_bn_act(x, cin, cout, k, stride, prefix, act, groups=1):
        y = g.batch_norm(g.conv(x, cin, cout, k, stride, prefix + ".0", groups=groups), cout, prefix + ".1",
                         eps=1e-3, momentum=0.01)
        return g.op(act, [y]) if act else y

    # (input, kernel, expanded, out, squeeze-excite, activation, stride) of torchvision's table
    config = [(16, 3, 16, 16, True, "Relu", 2), (16, 3, 72, 24, False, "Relu", 2), (24, 3, 88, 24, False, "Relu", 1),
              (24, 5, 96, 40, True, "HardSwish", 2), (40, 5, 240, 40, True, "HardSwish", 1),
              (40, 5, 240, 40, True, "HardSwish", 1), (40, 5, 120, 48, True, "HardSwish", 1),
              (48, 5, 144, 48, True, "HardSwish", 1), (48, 5, 288, 96, True, "HardSwish", 2),
              (96, 5, 576, 96, True, "HardSwish", 1), (96, 5, 576, 96, True, "HardSwish", 1)]
    x = conv_bn_act("input", 3, 16, 3, 2, "features.0", "HardSwish")
    for i, (cin, k, expanded, cout, se, act, stride) in enumerate(config, start=1):
        p, j, y = f"features.{i}.block", 0, x
        if expanded != cin:
            y = conv_bn_act(y, cin, expanded, 1, 1, f"{p}.{j}", act)
            j += 1
        y = conv_bn_act(y, expanded, expanded, k, stride, f"{p}.{j}", act, groups=expanded)  # depthwise
        j += 1
        if se:
            squeeze = make_divisible(expanded // 4)
            s = g.op("GlobalAveragePool", [y])
            s = g.op("Relu", [g.conv(s, expanded, squeeze, 1, 1, f"{p}.{j}.fc1", bias=True)])
            s = g.op("HardSigmoid", [g.conv(s, squeeze, expanded, 1, 1, f"{p}.{j}.fc2", bias=True)],
                     alpha=1 / 6, beta=0.5)
            y = g.op("Mul", [s, y])
            j += 1
        y = conv_bn_act(y, expanded, cout, 1, 1, f"{p}.{j}", None)
        x = g.op("Add", [y, x]) if stride == 1 and cin == cout else y
    x = conv_bn_act(x, 96, 576, 1, 1, "features.12", "HardSwish")
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x], "avgpool")], axis=1)
    x = g.op("HardSwish", [g.gemm(x, 576, 1024, "classifier.0")])
    g.gemm(x, 1024, classes, "classifier.3", out="logits")  # classifier.2 is the Dropout
    return g.model("mobilenetv3_small", image_input(224),
                   [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
                   "torchvision mobilenet_v3_small layout, random weights, BatchNorm kept, dropout omitted")


def yolov8n(classes=80, size=640):
    """ultralytics YOLOv8n (yolov8.yaml, scale n: depth 0.33, width 0.25) as its ONNX export computes it,
    except that BatchNormalization stays a node (the export folds it into the convolution)."""
    g = CnnBuilder(np.random.default_rng(8))

    def cbs(x, cin, cout, k, stride, prefix):
        # ultralytics Conv: Conv2d(bias=False) + BatchNorm2d(eps 1e-3, momentum 0.03) + SiLU as x * Sigmoid(x)
        y = g.batch_norm(g.conv(x, cin, cout, k, stride, prefix + ".conv"), cout, prefix + ".bn", eps=1e-3,
                         momentum=0.03)
        return g.op("Mul", [y, g.op("Sigmoid", [y])], prefix + ".act")

    def c2f(x, cin, cout, n, shortcut, prefix):
        c = cout // 2
        y = cbs(x, cin, 2 * c, 1, 1, prefix + ".cv1")
        halves = [g.name(prefix + ".split"), g.name(prefix + ".split")]
        g.nodes.append(helper.make_node("Split", [y, g.const("split", np.array([c, c], np.int64))], halves,
                                        name=halves[0], axis=1))
        parts = list(halves)
        for i in range(n):
            b = cbs(cbs(parts[-1], c, c, 3, 1, f"{prefix}.m.{i}.cv1"), c, c, 3, 1, f"{prefix}.m.{i}.cv2")
            parts.append(g.op("Add", [parts[-1], b]) if shortcut else b)
        return cbs(g.op("Concat", parts, axis=1), (2 + n) * c, cout, 1, 1, prefix + ".cv2")

    def sppf(x, cin, cout, prefix):
        y = [cbs(x, cin, cin // 2, 1, 1, prefix + ".cv1")]
        for _ in range(3):
            y.append(g.op("MaxPool", [y[-1]], prefix + ".m", kernel_shape=[5, 5], strides=[1, 1], pads=[2] * 4,
                          ceil_mode=0, dilations=[1, 1]))
        return cbs(g.op("Concat", y, axis=1), cin // 2 * 4, cout, 1, 1, prefix + ".cv2")

    def upsample(x):
        return g.op("Resize", [x, "", g.const("scales", np.array([1, 1, 2, 2], np.float32))], mode="nearest",
                    coordinate_transformation_mode="asymmetric", nearest_mode="floor")

    # backbone (yolov8.yaml channels x 0.25, repeats x 0.33 rounded)
    x = cbs("input", 3, 16, 3, 2, "model.0")  # P1/2
    x = cbs(x, 16, 32, 3, 2, "model.1")  # P2/4
    x = c2f(x, 32, 32, 1, True, "model.2")
    x = cbs(x, 32, 64, 3, 2, "model.3")  # P3/8
    p3 = c2f(x, 64, 64, 2, True, "model.4")
    x = cbs(p3, 64, 128, 3, 2, "model.5")  # P4/16
    p4 = c2f(x, 128, 128, 2, True, "model.6")
    x = cbs(p4, 128, 256, 3, 2, "model.7")  # P5/32
    x = c2f(x, 256, 256, 1, True, "model.8")
    p5 = sppf(x, 256, 256, "model.9")
    # neck: top-down (FPN), then bottom-up (PAN)
    x = c2f(g.op("Concat", [upsample(p5), p4], axis=1), 384, 128, 1, False, "model.12")
    n3 = c2f(g.op("Concat", [upsample(x), p3], axis=1), 192, 64, 1, False, "model.15")
    n4 = c2f(g.op("Concat", [cbs(n3, 64, 64, 3, 2, "model.16"), x], axis=1), 192, 128, 1, False, "model.18")
    n5 = c2f(g.op("Concat", [cbs(n4, 128, 128, 3, 2, "model.19"), p5], axis=1), 384, 256, 1, False, "model.21")
    # Detect: per level a box branch (4 x 16 DFL bins) and a class branch, flattened and concatenated
    reg_max, c_box, c_cls = 16, 64, max(64, min(classes, 100))
    levels, p = [], "model.22"
    for i, (feat, ch) in enumerate([(n3, 64), (n4, 128), (n5, 256)]):
        box = cbs(cbs(feat, ch, c_box, 3, 1, f"{p}.cv2.{i}.0"), c_box, c_box, 3, 1, f"{p}.cv2.{i}.1")
        box = g.conv(box, c_box, 4 * reg_max, 1, 1, f"{p}.cv2.{i}.2", bias=True)
        cls = cbs(cbs(feat, ch, c_cls, 3, 1, f"{p}.cv3.{i}.0"), c_cls, c_cls, 3, 1, f"{p}.cv3.{i}.1")
        cls = g.conv(cls, c_cls, classes, 1, 1, f"{p}.cv3.{i}.2", bias=True)
        level = g.op("Concat", [box, cls], axis=1)
        levels.append(g.op("Reshape", [level, g.const("shape", np.array([0, 4 * reg_max + classes, -1], np.int64))]))
    x = g.op("Concat", levels, axis=2)  # [B, 144, 8400]
    box, cls = g.name("box"), g.name("cls")
    g.nodes.append(helper.make_node("Split", [x, g.const("split", np.array([4 * reg_max, classes], np.int64))],
                                    [box, cls], name=box, axis=1))
    # DFL: softmax over each side's 16 bins, expectation as a fixed 1x1 convolution with weights 0..15
    d = g.op("Reshape", [box, g.const("shape", np.array([0, 4, reg_max, -1], np.int64))])
    d = g.op("Softmax", [g.op("Transpose", [d], perm=[0, 2, 1, 3])], axis=1)  # [B, 16, 4, A]
    bins = g.param("model.22.dfl.conv.weight", np.arange(reg_max, dtype=np.float32).reshape(1, reg_max, 1, 1))
    d = g.op("Conv", [d, bins], "model.22.dfl.conv", kernel_shape=[1, 1])
    d = g.op("Reshape", [d, g.const("shape", np.array([0, 4, -1], np.int64))])  # [B, 4, A]: left, top, right, bottom
    # dist2bbox: anchors are the cell centres of the three grids, in grid units; boxes as xywh in pixels
    anchors, strides = [], []
    for stride in (8, 16, 32):
        n = size // stride
        sy, sx = np.meshgrid(np.arange(n, dtype=np.float32) + 0.5, np.arange(n, dtype=np.float32) + 0.5, indexing="ij")
        anchors.append(np.stack([sx.ravel(), sy.ravel()]))
        strides.append(np.full(n * n, stride, np.float32))
    anchor = g.const("anchors", np.concatenate(anchors, 1)[None])  # [1, 2, A]
    lt = g.op("Slice", [d, g.const("start", np.array([0], np.int64)), g.const("end", np.array([2], np.int64)),
                        g.const("axes", np.array([1], np.int64))])
    rb = g.op("Slice", [d, g.const("start", np.array([2], np.int64)), g.const("end", np.array([4], np.int64)),
                        g.const("axes", np.array([1], np.int64))])
    x1y1, x2y2 = g.op("Sub", [anchor, lt]), g.op("Add", [anchor, rb])
    centre = g.op("Div", [g.op("Add", [x1y1, x2y2]), g.const("two", np.array(2, np.float32))])
    wh = g.op("Sub", [x2y2, x1y1])
    dbox = g.op("Mul", [g.op("Concat", [centre, wh], axis=1), g.const("strides", np.concatenate(strides)[None])])
    g.nodes.append(helper.make_node("Concat", [dbox, g.op("Sigmoid", [cls])], ["output0"], name="output0", axis=1))
    anchors_total = sum((size // s) ** 2 for s in (8, 16, 32))
    return g.model("yolov8n", image_input(size),
                   [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 4 + classes, anchors_total])],
                   f"YOLOv8n-shaped detector, {size}x{size}, {classes} classes, random weights, BatchNorm kept")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(here, "models"), help="output folder (default bench/models)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name, build in [("matmul_1024", matmul_1024), ("mlp", mlp), ("bert2", bert2), ("resnet18", resnet18),
                        ("mobilenetv3_small", mobilenetv3_small), ("yolov8n", yolov8n)]:
        path = os.path.join(args.out, name + ".onnx")
        model = build()
        tmp = path + ".tmp"
        onnx.save(model, tmp)
        os.replace(tmp, path)
        params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
        print(f"wrote {path}  ({len(model.graph.node)} nodes, {params:,} parameters, "
              f"{os.path.getsize(path) / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
