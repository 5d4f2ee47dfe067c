#!/usr/bin/env python3
"""ONNX Runtime's contrib ops (com.microsoft) in tunnx against ONNX Runtime itself.

Each case is a one-node model made here (random inputs from a fixed seed, weights as initializers),
run through `tunnx run` and through onnxruntime's CPU provider; every output must agree within 1e-4 of
its scale (its largest magnitude, at least 1). The cases cover the attribute variants ONNX Runtime's
fusion and quantization tools write: FastGelu with and without bias, FusedGemm's transposes, alpha,
beta and activations, FusedConv with a residual and each activation, SkipLayerNormalization with and
without beta, bias and the sum output, ORT's contrib LayerNormalization (ai.onnx below opset 17), the
dynamic-quantization products, DynamicQuantizeLSTM (int8/uint8 weights, per-direction or per-column
scales, initial state, peepholes, both directions), Attention, and MultiHeadAttention in each layout
(separate, packed QKV, packed KV, key/value already [B, N, L, H]) with its masks, attention_bias shapes,
decoding past/present (concatenated, or one shared buffer with past_sequence_length) and qk output.
ONNX Runtime's CPU provider refuses the packed layouts, so for those it runs the same numbers unpacked.

  .venv/bin/python tests/contrib_ops/check_contrib_ops.py --tunnx build/tools/tunnx

Exit 0 when all agree, 1 with a line per disagreement; 77 (ctest's skip) without onnx/onnxruntime,
except under CI=true.
"""
import argparse
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
except ImportError as e:
    print(f"check_contrib_ops: {e}", file=sys.stderr)
    sys.exit(1 if os.environ.get("CI") == "true" else 77)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOLERANCE = 1e-4
rng = np.random.default_rng(2026)


def normal(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


class Case:
    """One node of `op` with inputs (name -> array; names in `weights` become initializers)."""

    def __init__(self, label, op, inputs, outputs, attrs=None, domain="com.microsoft", weights=(), opset=17, types=None,
                 reference=None):
        self.label, self.op, self.inputs, self.outputs = label, op, inputs, outputs
        self.types = types or {}  # output name -> TensorProto type where not float
        self.attrs, self.domain, self.weights, self.opset = attrs or {}, domain, set(weights), opset
        # The case ONNX Runtime runs instead, with this one's outputs (and maybe more), where its CPU
        # provider refuses this one's layout (MultiHeadAttention's packed QKV and packed KV: the same
        # numbers, unpacked) or answers it wrongly.
        self.reference = reference or self

    def model(self, shapes=None):
        """The model; `shapes` (output name -> array) gives the outputs their types, as the ONNX
        checker of Debian's libonnx wants them declared."""
        names = [name if value is not None else "" for name, value in self.inputs]
        node = helper.make_node(self.op, names, self.outputs, domain=self.domain, **self.attrs)
        graph_inputs, initializers = [], []
        for name, value in self.inputs:
            if value is None:
                continue
            if name in self.weights:
                initializers.append(numpy_helper.from_array(value, name))
            else:
                graph_inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype), value.shape))
        outputs = [helper.make_tensor_value_info(
                       o, helper.np_dtype_to_tensor_dtype(shapes[o].dtype) if shapes else self.types.get(o, TensorProto.FLOAT),
                       shapes[o].shape if shapes else None)
                   for o in self.outputs if o]
        graph = helper.make_graph([node], "contrib", graph_inputs, outputs, initializers)
        opsets = [helper.make_opsetid("", self.opset), helper.make_opsetid("com.microsoft", 1)]
        return helper.make_model(graph, opset_imports=opsets, ir_version=8)

    def feeds(self):
        return {name: value for name, value in self.inputs if value is not None and name not in self.weights}


def cases():
    x = normal(2, 3, 16, scale=2.0)
    yield Case("Gelu", "Gelu", [("x", x)], ["y"])
    yield Case("FastGelu", "FastGelu", [("x", x)], ["y"])
    yield Case("FastGelu bias", "FastGelu", [("x", x), ("bias", normal(16))], ["y"], weights=["bias"])
    yield Case("BiasGelu", "BiasGelu", [("a", x), ("b", normal(16))], ["y"], weights=["b"])
    yield Case("QuickGelu", "QuickGelu", [("x", x)], ["y"])
    yield Case("QuickGelu alpha 1.5", "QuickGelu", [("x", x)], ["y"], {"alpha": 1.5})
    for ta in (0, 1):
        for tb in (0, 1):
            a = normal(*((7, 5) if ta else (5, 7)))
            b = normal(*((9, 7) if tb else (7, 9)))
            yield Case(f"FusedGemm transA {ta} transB {tb} Relu", "FusedGemm", [("a", a), ("b", b), ("c", normal(9))],
                       ["y"], {"transA": ta, "transB": tb, "alpha": 0.5, "beta": 2.0, "activation": "Relu"}, weights=["b", "c"])
    a, b = normal(5, 7), normal(7, 9)
    for act, extra in [("LeakyRelu", {"activation_alpha": 0.2}), ("Sigmoid", {}), ("Tanh", {}),
                       ("HardSigmoid", {"activation_alpha": 0.3, "activation_beta": 0.4})]:
        yield Case(f"FusedGemm {act}", "FusedGemm", [("a", a), ("b", b), ("c", normal(5, 9))], ["y"],
                   {"activation": act, **extra}, weights=["b"])
    yield Case("FusedGemm no C", "FusedGemm", [("a", a), ("b", b)], ["y"], {"activation": "Relu"}, weights=["b"])
    image = normal(1, 8, 10, 10)
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    for act, params in [("Relu", []), ("LeakyRelu", [0.1]), ("Clip", [0.0, 6.0]), ("Sigmoid", []),
                        ("HardSigmoid", [0.2, 0.5]), ("Tanh", [])]:
        attrs = {**conv, "activation": act}
        if params:
            attrs["activation_params"] = params
        yield Case(f"FusedConv {act}", "FusedConv", [("x", image), ("w", normal(16, 8, 3, 3, scale=0.3)), ("b", normal(16))],
                   ["y"], attrs, weights=["w", "b"])
    yield Case("FusedConv residual Relu", "FusedConv",
               [("x", image), ("w", normal(16, 8, 3, 3, scale=0.3)), ("b", normal(16)), ("z", normal(1, 16, 10, 10))],
               ["y"], {**conv, "activation": "Relu"}, weights=["w", "b"])
    yield Case("FusedConv groups strides Relu", "FusedConv", [("x", image), ("w", normal(8, 2, 3, 3, scale=0.3))],
               ["y"], {**conv, "group": 4, "strides": [2, 2], "activation": "Relu"}, weights=["w"])
    hidden = normal(2, 6, 32)
    gamma, beta, bias = normal(32), normal(32), normal(32)
    yield Case("SkipLayerNormalization", "SkipLayerNormalization", [("x", hidden), ("skip", normal(2, 6, 32)), ("gamma", gamma)],
               ["y"], {"epsilon": 1e-5}, weights=["gamma"])
    yield Case("SkipLayerNormalization beta bias sum", "SkipLayerNormalization",
               [("x", hidden), ("skip", normal(2, 6, 32)), ("gamma", gamma), ("beta", beta), ("bias", bias)],
               ["y", "", "", "sum"], {"epsilon": 1e-12}, weights=["gamma", "beta", "bias"])
    for axis in (-1, 1):
        yield Case(f"LayerNormalization contrib (opset 13) axis {axis}", "LayerNormalization",
                   [("x", hidden), ("scale", normal(*hidden.shape[axis:])), ("b", normal(*hidden.shape[axis:]))], ["y"],
                   {"axis": axis, "epsilon": 1e-5}, domain="", weights=["scale", "b"], opset=13)
    # Attention: 4 heads of 4 over hidden 16, batch 2, sequence 5.
    tokens = normal(2, 5, 16)
    qkv = {"weights": normal(16, 48, scale=0.3), "bias": normal(48)}

    def attention(label, extra_inputs=(), attrs=None, outputs=("y",), weights=qkv):
        ins = [("x", tokens), ("weights", weights["weights"]), ("bias", weights["bias"])]
        ins += list(extra_inputs)
        return Case(label, "Attention", ins, list(outputs), {"num_heads": 4, **(attrs or {})},
                    weights=["weights", "bias"])

    yield attention("Attention")
    yield attention("Attention scale 0.3", attrs={"scale": 0.3})
    yield attention("Attention unidirectional", attrs={"unidirectional": 1})
    yield attention("Attention unidirectional, mask_filter_value -2, mask [B]", [("mask", np.array([5, 2], np.int32))],
                    attrs={"unidirectional": 1, "mask_filter_value": -2.0})
    raw = np.ones((2, 5), np.int32)
    raw[1, 3:] = 0
    yield attention("Attention mask [B, T] raw", [("mask", raw)])
    yield attention("Attention mask [B] key lengths", [("mask", np.array([5, 3], np.int32))])
    raw3 = np.ones((2, 5, 5), np.int32)
    raw3[0, :, 4] = 0
    raw3[1, 2, 1:] = 0
    yield attention("Attention mask [B, S, T] raw", [("mask", raw3)])
    yield attention("Attention attention_bias", [("mask", None), ("past", None), ("attention_bias", normal(1, 4, 5, 5))])
    yield attention("Attention qkv_hidden_sizes 16 16 24", attrs={"qkv_hidden_sizes": [16, 16, 24]},
                    weights={"weights": normal(16, 56, scale=0.3), "bias": normal(56)})
    yield attention("Attention past and present, unidirectional", [("mask", None), ("past", normal(2, 2, 4, 3, 4))],
                    attrs={"unidirectional": 1}, outputs=("y", "present"))
    # MultiHeadAttention: query [2, 5, 16], key [2, 6, 16], value [2, 6, 24], 4 heads.
    query, key, value = normal(2, 5, 16), normal(2, 6, 16), normal(2, 6, 24)

    def mha(label, extra_inputs=(), attrs=None, outputs=("y",), q=query, k=key, v=value, weights=()):
        ins = [("query", q), ("key", k), ("value", v)] + list(extra_inputs)
        return Case(label, "MultiHeadAttention", ins, list(outputs), {"num_heads": 4, **(attrs or {})}, weights=weights)

    yield mha("MultiHeadAttention")
    yield mha("MultiHeadAttention bias", [("bias", normal(56))], weights=["bias"])
    pad = np.ones((2, 6), np.int32)
    pad[0, 4:] = 0
    yield mha("MultiHeadAttention key_padding_mask [B, T]", [("bias", None), ("mask", pad)])
    yield mha("MultiHeadAttention key_padding_mask [B]", [("bias", None), ("mask", np.array([6, 2], np.int32))])
    yield mha("MultiHeadAttention attention_bias", [("bias", None), ("mask", None), ("attention_bias", normal(1, 4, 5, 6))])
    yield mha("MultiHeadAttention scale 0.25", attrs={"scale": 0.25})
    self_k, self_v = normal(2, 5, 16), normal(2, 5, 16)
    yield mha("MultiHeadAttention past, present, unidirectional",
              [("bias", None), ("mask", None), ("attention_bias", None), ("past_key", normal(2, 4, 3, 4)),
               ("past_value", normal(2, 4, 3, 4))], attrs={"unidirectional": 1},
              outputs=("y", "present_key", "present_value"), k=self_k, v=self_v)
    mask3 = np.ones((2, 5, 6), np.int32)
    mask3[0, :, 5] = 0
    mask3[1, 2, 1:] = 0
    yield mha("MultiHeadAttention key_padding_mask [B, S, T]", [("bias", None), ("mask", mask3)])
    # [3B + 2] (key lengths, then cumulative query and key offsets): ONNX Runtime's CPU reads the lengths.
    yield mha("MultiHeadAttention key_padding_mask [3B + 2]", [("bias", None), ("mask", np.array([4, 6, 0, 5, 10, 0, 4, 10], np.int32))])
    yield mha("MultiHeadAttention mask_filter_value -3", [("bias", None), ("mask", pad)], attrs={"mask_filter_value": -3.0})
    for shape in [(2, 4, 5, 6), (2, 1, 5, 6), (1, 1, 5, 6)]:
        yield mha(f"MultiHeadAttention attention_bias {list(shape)}", [("bias", None), ("mask", None), ("attention_bias", normal(*shape))])
    yield mha("MultiHeadAttention bias, attention_bias, qk", [("bias", normal(56)), ("mask", None),
              ("attention_bias", normal(2, 4, 5, 6))], outputs=("y", "", "", "qk"), weights=["bias"])
    # Causal over 6 keys from 5 queries: ONNX Runtime leaves the last query row unmasked.
    yield mha("MultiHeadAttention unidirectional, cross-attention", attrs={"unidirectional": 1})
    yield mha("MultiHeadAttention unidirectional, mask_filter_value -2, mask [B, T]", [("bias", None), ("mask", pad)],
              attrs={"unidirectional": 1, "mask_filter_value": -2.0})

    def unpacked(packed, q, k, v, extra=()):  # the separate-inputs twin of a packed case, for ONNX Runtime
        return mha(packed.label, list(extra), packed.attrs, packed.outputs, q=q, k=k, v=v, weights=packed.weights)

    packed = normal(2, 5, 4, 3, 4)
    parts = [packed[:, :, :, i].reshape(2, 5, 16) for i in range(3)]
    case = Case("MultiHeadAttention packed QKV [B, S, N, 3, H]", "MultiHeadAttention", [("query", packed)], ["y"], {"num_heads": 4})
    case.reference = unpacked(case, *parts)
    yield case
    qkv_bias = normal(48)
    case = Case("MultiHeadAttention packed QKV, bias, unidirectional", "MultiHeadAttention",
                [("query", packed), ("key", None), ("value", None), ("bias", qkv_bias)], ["y"],
                {"num_heads": 4, "unidirectional": 1}, weights=["bias"])
    case.reference = unpacked(case, *parts, [("bias", qkv_bias)])
    yield case
    packed_kv = normal(2, 6, 4, 2, 4)
    kv = [packed_kv[:, :, :, i].reshape(2, 6, 16) for i in range(2)]
    case = Case("MultiHeadAttention packed KV [B, L, N, 2, H], mask [B, T]", "MultiHeadAttention",
                [("query", query), ("key", packed_kv), ("value", None), ("bias", None), ("mask", pad)], ["y"], {"num_heads": 4})
    case.reference = unpacked(case, query, *kv, [("bias", None), ("mask", pad)])
    yield case
    cache_k, cache_v = normal(2, 4, 6, 4), normal(2, 4, 6, 4)
    yield mha("MultiHeadAttention key/value [B, N, L, H], present", outputs=("y", "present_key", "present_value"),
              k=cache_k, v=cache_v)
    yield mha("MultiHeadAttention key/value [B, N, L, H], bias (query part), mask [B], attention_bias",
              [("bias", normal(48)), ("mask", np.array([6, 4], np.int32)), ("attention_bias", normal(1, 4, 5, 6))],
              k=cache_k, v=cache_v, weights=["bias"])
    # Decoding: one new token after 7 past ones, its mask over all 8 keys.
    step_q, step_k, step_v = normal(2, 1, 16), normal(2, 1, 16), normal(2, 1, 16)
    seen = np.ones((2, 8), np.int32)
    seen[1, :2] = 0
    past = [("past_key", normal(2, 4, 7, 4)), ("past_value", normal(2, 4, 7, 4))]
    yield mha("MultiHeadAttention decoding step, past, mask [B, P + 1], bias", [("bias", normal(48)), ("mask", seen), ("attention_bias", None)] + past,
              attrs={"unidirectional": 1}, outputs=("y", "present_key", "present_value"), q=step_q, k=step_k, v=step_v, weights=["bias"])
    # ONNX Runtime's CPU provider reads the past only while it writes present_key/present_value; without
    # them its answer is neither attention with the past nor without it. It runs this case with them.
    case = mha("MultiHeadAttention past without present", [("bias", None), ("mask", None), ("attention_bias", None)] + past,
               q=step_q, k=step_k, v=step_v)
    case.reference = mha(case.label, case.inputs[3:], outputs=("y", "present_key", "present_value"), q=step_q, k=step_k, v=step_v)
    yield case
    yield mha("MultiHeadAttention present without past", outputs=("y", "present_key", "present_value"), k=self_k, v=self_v,
              attrs={"unidirectional": 1})
    # A shared past/present buffer of 8 rows, the first 3 filled (past_sequence_length).
    buffer = [("past_key", normal(2, 4, 8, 4)), ("past_value", normal(2, 4, 8, 4))]
    for steps in (1, 2):
        yield mha(f"MultiHeadAttention shared buffer, past_sequence_length 3, {steps} new",
                  [("bias", None), ("mask", None), ("attention_bias", None)] + buffer + [("past_sequence_length", np.array([3], np.int32))],
                  attrs={"unidirectional": 1}, outputs=("y", "present_key", "present_value"),
                  q=normal(2, steps, 16), k=normal(2, steps, 16), v=normal(2, steps, 16))
    # EmbedLayerNormalization: vocabulary 30, 2 segments, hidden 16, batch 2, sequence 5.
    ids = rng.integers(0, 30, (2, 5)).astype(np.int32)
    segments = rng.integers(0, 2, (2, 5)).astype(np.int32)
    tables = [("word", normal(30, 16)), ("position", normal(8, 16)), ("segment", normal(2, 16)),
              ("gamma", normal(16)), ("beta", normal(16))]
    names = [name for name, _ in tables]
    ragged = np.ones((2, 5), np.int32)
    ragged[1, 3:] = 0
    yield Case("EmbedLayerNormalization", "EmbedLayerNormalization",
               [("ids", ids), ("segments", segments)] + tables + [("mask", ragged)], ["y", "mask_index"],
               {"epsilon": 1e-12}, weights=names, types={"mask_index": TensorProto.INT32})
    yield Case("EmbedLayerNormalization no segment, sum output", "EmbedLayerNormalization",
               [("ids", ids), ("segments", None), tables[0], tables[1], ("segment", None), tables[3], tables[4]],
               ["y", "", "sum"], weights=["word", "position", "gamma", "beta"])
    a_q = rng.integers(0, 256, (3, 8)).astype(np.uint8)
    b_q = rng.integers(-128, 128, (8, 5)).astype(np.int8)
    yield Case("MatMulIntegerToFloat", "MatMulIntegerToFloat",
               [("a", a_q), ("b", b_q), ("a_scale", np.array(0.02, np.float32)), ("b_scale", np.abs(normal(5)) * 0.01),
                ("a_zp", np.array(128, np.uint8)), ("b_zp", None), ("bias", normal(5))], ["y"],
               weights=["b", "a_scale", "b_scale", "a_zp", "bias"])
    yield Case("DynamicQuantizeMatMul", "DynamicQuantizeMatMul",
               [("a", normal(4, 16)), ("b", rng.integers(-128, 128, (16, 6)).astype(np.int8)),
                ("b_scale", np.abs(normal(6)) * 0.01), ("b_zp", None), ("bias", normal(6))], ["y"],
               weights=["b", "b_scale", "bias"])
    yield Case("DynamicQuantizeMatMul uint8 B, zero point", "DynamicQuantizeMatMul",
               [("a", normal(4, 16)), ("b", rng.integers(0, 256, (16, 6)).astype(np.uint8)),
                ("b_scale", np.array(0.01, np.float32)), ("b_zp", np.array(120, np.uint8))], ["y"],
               weights=["b", "b_scale", "b_zp"])

    # DynamicQuantizeLSTM as quantize_dynamic writes it: W [D, I, 4H], R [D, H, 4H] in 8 bits, scales and
    # zero points per direction or per gate column; X and each step's h quantized on the fly.
    def quantized_lstm(label, directions, hidden, signed, per_column, states=True, peepholes=False):
        seq, batch, size = 5, 3, 7
        wtype = np.int8 if signed else np.uint8
        lo, hi = (-128, 128) if signed else (0, 256)
        cols = 4 * hidden
        scale_shape = (directions, cols) if per_column else (directions,)
        # ONNX Runtime takes one zero point value for all of W (and of R): "must be constant".
        zero = np.zeros(scale_shape, wtype) if signed else np.full(scale_shape, 128, np.uint8)
        inputs = [("x", normal(seq, batch, size)),
                  ("w", rng.integers(lo, hi, (directions, size, cols)).astype(wtype)),
                  ("r", rng.integers(lo, hi, (directions, hidden, cols)).astype(wtype)),
                  ("bias", normal(directions, 2 * cols, scale=0.1)), ("seq_lens", None),
                  ("h0", normal(directions, batch, hidden, scale=0.5) if states else None),
                  ("c0", normal(directions, batch, hidden, scale=0.5) if states else None),
                  ("p", normal(directions, 3 * hidden, scale=0.1) if peepholes else None),
                  ("w_scale", (np.abs(normal(*scale_shape)) * 0.005 + 0.002).astype(np.float32)), ("w_zp", zero),
                  ("r_scale", (np.abs(normal(*scale_shape)) * 0.005 + 0.002).astype(np.float32)), ("r_zp", zero.copy())]
        return Case(label, "DynamicQuantizeLSTM", inputs, ["y", "y_h", "y_c"],
                    attrs={"hidden_size": hidden, "direction": "bidirectional" if directions == 2 else "forward"},
                    weights=["w", "r", "bias", "p", "w_scale", "w_zp", "r_scale", "r_zp"])

    yield quantized_lstm("DynamicQuantizeLSTM int8, per tensor", 1, 8, True, False)
    yield quantized_lstm("DynamicQuantizeLSTM uint8, per column, no initial state", 1, 6, False, True, states=False)
    yield quantized_lstm("DynamicQuantizeLSTM bidirectional int8, per column, peepholes", 2, 8, True, True, peepholes=True)
    # 4H = 132 gate columns: R spans three of the 64-column blocks tunnx interleaves it in (AVX-512BW).
    yield quantized_lstm("DynamicQuantizeLSTM bidirectional uint8, hidden 33", 2, 33, False, False)


def run_tunnx(tunnx, path, feeds, folder):
    cmd = [tunnx, "run", path, "--output-dir", os.path.join(folder, "out")]
    for i, (name, value) in enumerate(feeds.items()):
        np.save(os.path.join(folder, f"{i}.npy"), value)
        cmd += ["--input", f"{name}={os.path.join(folder, f'{i}.npy')}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip())
    out = os.path.join(folder, "out")
    return {f[:-4]: np.load(os.path.join(out, f)) for f in os.listdir(out)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tunnx", default=os.path.join(ROOT, "build", "tools", "tunnx"))
    args = parser.parse_args()
    failures, count = [], 0
    with tempfile.TemporaryDirectory(prefix="tunnx-contrib-") as tmp:
        for i, case in enumerate(cases()):
            folder = os.path.join(tmp, str(i))
            os.makedirs(folder)
            path = os.path.join(folder, "model.onnx")
            onnx.save(case.reference.model(), path)
            so = ort.SessionOptions()
            so.log_severity_level = 3
            # One thread: ONNX Runtime's DynamicQuantizeLSTM quantizes h(t-1) per chunk of batch rows
            # that each thread takes, so its answer moves with its thread count (3.8e-4 between 1 and 2
            # threads on a 3-row batch); on one thread the whole batch shares one scale, as in tunnx.
            so.intra_op_num_threads = 1
            session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            want = dict(zip([o.name for o in session.get_outputs()], session.run(None, case.reference.feeds())))
            onnx.save(case.model(want), path)
            try:
                got = run_tunnx(args.tunnx, path, case.feeds(), folder)
            except RuntimeError as e:
                failures.append(f"{case.label}: tunnx failed: {e}")
                continue
            worst = 0.0
            for name, expected in want.items():
                if name not in case.outputs:
                    continue  # asked of the reference only
                if name not in got or got[name].shape != expected.shape:
                    failures.append(f"{case.label}: output '{name}' missing or shaped {got.get(name, np.zeros(0)).shape}, "
                                    f"ONNX Runtime's {expected.shape}")
                    continue
                scale = max(1.0, float(np.max(np.abs(expected))))
                error = float(np.max(np.abs(got[name].astype(np.float64) - expected)))
                worst = max(worst, error / scale)
                if not error <= TOLERANCE * scale:
                    failures.append(f"{case.label}: output '{name}' differs by {error:.3g} (scale {scale:.3g})")
            count += 1
            print(f"{case.label:48s} worst error / scale {worst:.2e}")
    print(f"{count} contrib-op cases, tolerance {TOLERANCE} of each output's scale")
    for f in failures:
        print(f"FAIL {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
