#!/usr/bin/env python3
"""Writes the training-step benchmark models and their batches into bench/models/ (or --out DIR).

  train_mlp.onnx        784-1024-1024-10, ReLU (nn.Linear x3); input "input" float32 [batch,784]
  train_bert_layer.onnx one BERT-base encoder layer (hidden 768, 12 heads, FF 3072, exact GELU, post-norm
                        LayerNorm eps 1e-12, dropout 0; attention written out as Linear q/k/v, reshape,
                        transpose, matmul, softmax), then mean over the sequence and Linear(768, 2);
                        input "input" float32 [batch,128,768] (hidden states: no embedding)
  <name>.pt             the same initial weights as a torch state_dict, for compare_torch_train.py
  <name>.x.npy          the batch's input (MLP: 64 rows; BERT layer: 8 x 128 tokens), fixed seed
  <name>.y.npy          int64 class indices for cross-entropy (MLP: 10 classes, BERT layer: 2)

Both are exported by torch.onnx.export (opset 17, dynamo=False, do_constant_folding=False, dynamic
batch), so the graphs are what a PyTorch user would hand tunnx. The model classes are imported by
compare_torch_train.py, so both runtimes train the same definition from the same weights.
Run with a Python that has torch, onnx and numpy:  python bench/make_train_models.py
"""
import argparse
import math
import os
import warnings

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 17

MLP_BATCH = 64
BERT_BATCH, BERT_SEQ, BERT_HIDDEN, BERT_HEADS, BERT_FF = 8, 128, 768, 12, 3072


class Mlp(nn.Module):
    """784-1024-1024-10 with ReLU. x [N,784] -> logits [N,10]."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 1024)
        self.fc2 = nn.Linear(1024, 1024)
        self.fc3 = nn.Linear(1024, 10)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class BertLayer(nn.Module):
    """One post-norm BERT encoder layer (as transformers' BertLayer, no mask, no dropout) and a mean-pool
    classification head. x [N,S,768] -> logits [N,2]."""

    def __init__(self, hidden=BERT_HIDDEN, heads=BERT_HEADS, ff=BERT_FF, classes=2):
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.intermediate = nn.Linear(hidden, ff)
        self.gelu = nn.GELU()  # exact (erf)
        self.output = nn.Linear(ff, hidden)
        self.out_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.classifier = nn.Linear(hidden, classes)

    def split_heads(self, t, n, s):
        # [N,S,H*D] -> [N,H,S,D]
        return t.reshape(n, s, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x):
        n, s = x.shape[0], x.shape[1]
        q = self.split_heads(self.query(x), n, s)
        k = self.split_heads(self.key(x), n, s)
        v = self.split_heads(self.value(x), n, s)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)  # [N,H,S,S]
        probs = torch.softmax(scores, dim=-1)
        context = torch.matmul(probs, v).transpose(1, 2).reshape(n, s, self.heads * self.head_dim)
        h = self.attn_norm(self.attn_out(context) + x)
        h = self.out_norm(self.output(self.gelu(self.intermediate(h))) + h)
        return self.classifier(h.mean(dim=1))


def make_mlp():
    torch.manual_seed(784)
    return Mlp()


def make_bert_layer():
    torch.manual_seed(768)
    model = BertLayer()
    # Fresh LayerNorms are all ones / zeros, and the exporter merges identical initializers, which
    # would tie the two LayerNorms' parameters in the ONNX file: give each its own values.
    with torch.no_grad():
        for norm in (model.attn_norm, model.out_norm):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.1, 0.1)
    return model


# name -> (constructor, input shape, number of classes)
MODELS = {
    "train_mlp": (make_mlp, (MLP_BATCH, 784), 10),
    "train_bert_layer": (make_bert_layer, (BERT_BATCH, BERT_SEQ, BERT_HIDDEN), 2),
}


def export(name, out_dir):
    make, shape, classes = MODELS[name]
    model = make().eval()
    rng = np.random.default_rng(20240611)
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    y = rng.integers(0, classes, (shape[0],)).astype(np.int64)
    path = os.path.join(out_dir, name + ".onnx")
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # dynamo=False is deliberate
    torch.onnx.export(model, (torch.from_numpy(x),), path, opset_version=OPSET, dynamo=False,
                      do_constant_folding=False, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    torch.save(model.state_dict(), os.path.join(out_dir, name + ".pt"))
    np.save(os.path.join(out_dir, name + ".x.npy"), x)
    np.save(os.path.join(out_dir, name + ".y.npy"), y)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(HERE, "models"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name in MODELS:
        print(export(name, args.out))


if __name__ == "__main__":
    main()
