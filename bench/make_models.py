#!/usr/bin/env python3
"""Writes the benchmark models into bench/models/ (or --out DIR).

  matmul_1024.onnx  Y = A @ B, A [1024,1024] an input, B [1024,1024] an initializer
  mlp.onnx          784-1024-1024-10: Gemm(transB=1) + Relu twice, then Gemm; batch is dynamic
  bert2.onnx        2-layer BERT-base-shaped encoder (hidden 768, 12 heads, FF 3072, seq 128), token
                    ids in, last hidden state out; batch is dynamic; no attention mask

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


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(here, "models"), help="output folder (default bench/models)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name, build in [("matmul_1024", matmul_1024), ("mlp", mlp), ("bert2", bert2)]:
        path = os.path.join(args.out, name + ".onnx")
        model = build()
        tmp = path + ".tmp"
        onnx.save(model, tmp)
        os.replace(tmp, path)
        params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
        print(f"wrote {path}  ({len(model.graph.node)} nodes, {params:,} parameters, {os.path.getsize(path) / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
