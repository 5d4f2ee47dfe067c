#!/usr/bin/env python3
"""Every public pretrained ONNX file of the real-model set, through tunnx and ONNX Runtime.

The models come from their PyPI wheels (scripts/fetch_real_models.py, all of them: magika's classifier,
the six exports of silero-vad's detector and PaddleOCR's three models from rapidocr-onnxruntime's;
cached outside the repository, never committed). Each
runs on realistic inputs through `tunnx run` (the CLI, a fresh process per run) and through
onnxruntime's CPU provider, and every output is compared:

- magika: features of 16 files of this repository, extracted as magika 1.0.3 does; the probabilities
  within 1e-4 of each other and the same top-1 label for every file. Where they are not (small files,
  mostly padding, make its first LayerNorm cancel to a few significant bits), the model converted to
  float64 decides: tunnx passes when it is no further from that answer than ONNX Runtime (and within
  1e-4 of it, or no worse than ONNX Runtime).
- silero-vad: 1.2 s of bench/compare_ort.py's deterministic speech-like signal as a stream of 512-sample
  windows (each with the 64 samples before it), each runtime feeding its own state back, as
  silero_vad's OnnxWrapper does (the sequence export takes the whole stream in one run); every output
  of every window within 1e-4 (relative to the output's scale when above 1), and the same speech
  decision (probability > 0.5) on every window.

- PaddleOCR: a 640x640 page of handwritten digits (bench/compare_ort.py's, from the digits in Debian's
  scikit-learn) for the detector, six text lines of them for the recognizer and the angle classifier;
  every output within 1e-4, and the same decisions: text or not (probability > 0.3, rapidocr's
  threshold) at every pixel whose probability is not within 1e-4 of it, the same character at every
  position of every line, the same angle for every line.

Then `tunnx bench` runs each model once more on the same inputs, at their real size.

  .venv/bin/python tests/real_models/check_real_models.py --tunnx build/tools/tunnx

Exit 0 when all agree, 1 with a line per disagreement; 77 (ctest's skip) when the models cannot be
downloaded, except under CI=true, where that is a failure.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import fetch_real_models  # noqa: E402
from compare_ort import (CONTEXT, FRAME, MAGIKA_FILES, SAMPLE_RATE, magika_features, ocr_lines, ocr_page,  # noqa: E402
                         speech_like)

TOLERANCE = 1e-4
SECONDS = 1.2
SKIP = 77


def input_args(feeds, folder, prefix):
    """`--input NAME=FILE` for each input, saved as .npy files in `folder` (names may hold '/' or ':')."""
    args = []
    for i, (name, value) in enumerate(feeds.items()):
        path = os.path.join(folder, f"{prefix}{i}.npy")
        np.save(path, value)
        args += ["--input", f"{name}={path}"]
    return args


def file_stem(output):
    """The name `tunnx run --output-dir` gives an output's file: anything outside [A-Za-z0-9._-] as '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", output)


class Run:
    """`tunnx run` on one set of inputs, in a scratch folder; outputs by their files' names (file_stem)."""

    def __init__(self, tunnx, folder):
        self.tunnx, self.folder, self.count = tunnx, folder, 0

    def __call__(self, model, feeds):
        self.count += 1
        work = os.path.join(self.folder, str(self.count))
        os.makedirs(work)
        cmd = [self.tunnx, "run", model, "--threads", "1", "--output-dir", os.path.join(work, "out")]
        cmd += input_args(feeds, work, "")
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
        return {name[:-4]: np.load(os.path.join(work, "out", name)) for name in os.listdir(os.path.join(work, "out"))}


def ort_session(model):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


class Checker:
    def __init__(self):
        self.failures = []

    def outputs(self, model, where, got, want):
        """Every output of ORT's present in tunnx's, equal within the tolerance; returns the worst error."""
        worst = 0.0
        for name, expected in want.items():
            if file_stem(name) not in got:
                self.failures.append(f"{model} {where}: tunnx did not write output '{name}'")
                continue
            actual = got[file_stem(name)].astype(np.float64)
            if actual.shape != expected.shape:
                self.failures.append(f"{model} {where}: '{name}' has shape {actual.shape}, ONNX Runtime's {expected.shape}")
                continue
            scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
            error = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
            worst = max(worst, error / scale)
            if not error <= TOLERANCE * scale:
                self.failures.append(f"{model} {where}: '{name}' differs by {error:.3g} (scale {scale:.3g})")
        return worst


def silero_stream():
    """The stream's windows [n, 576] as silero_vad's OnnxWrapper cuts them."""
    signal = speech_like(seconds=SECONDS)
    windows = len(signal) // FRAME
    padded = np.concatenate([np.zeros(CONTEXT, np.float32), signal[:windows * FRAME]])
    return np.stack([padded[i * FRAME:(i + 1) * FRAME + CONTEXT] for i in range(windows)])


def check_silero_stream(name, model, run, check):
    """Window by window, each runtime feeding its own state back; returns (windows, speech windows, worst)."""
    session = ort_session(model)
    inputs = {i.name for i in session.get_inputs()}
    sr = {"sr": np.array(SAMPLE_RATE, np.int64)} if "sr" in inputs else {}
    ort_state = tunnx_state = np.zeros((2, 1, 128), np.float32)
    worst, speech = 0.0, 0
    for k, window in enumerate(silero_stream()):
        x = window[None, :]
        want = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": x, "state": ort_state, **sr})))
        got = run(model, {"input": x, "state": tunnx_state, **sr})
        worst = max(worst, check.outputs(name, f"window {k}", got, want))
        p_ort, p_tunnx = float(want["output"].ravel()[0]), float(got["output"].ravel()[0])
        speech += p_ort > 0.5
        if (p_ort > 0.5) != (p_tunnx > 0.5) and abs(p_ort - 0.5) > 1e-3:
            check.failures.append(f"{name} window {k}: speech probability {p_tunnx:.4f} against ONNX Runtime's {p_ort:.4f}")
        ort_state, tunnx_state = want["stateN"], got["stateN"].astype(np.float32)
    return len(silero_stream()), speech, worst


def check_silero_sequence(name, model, run, check):
    """The export that takes the whole stream [n, 576] with LSTM states h, c in one run."""
    session = ort_session(model)
    frames = silero_stream()
    feeds = {"input": frames, "h": np.zeros((1, 1, 128), np.float32), "c": np.zeros((1, 1, 128), np.float32)}
    want = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    got = run(model, feeds)
    worst = check.outputs(name, "stream", got, want)
    decided = np.abs(want["speech_probs"] - 0.5) > 1e-3
    if np.any(((want["speech_probs"] > 0.5) != (got["speech_probs"] > 0.5)) & decided):
        check.failures.append(f"{name}: a speech decision differs from ONNX Runtime's")
    return len(frames), int(np.sum(want["speech_probs"] > 0.5)), worst


def magika_feeds():
    files = [os.path.join(ROOT, f) for f in MAGIKA_FILES if os.path.isfile(os.path.join(ROOT, f))]
    return {"bytes": np.array([magika_features(f) for f in files], dtype=np.int32)}


def float64_model(model, folder):
    """The model with every float32 tensor, Cast and declared type made float64: an evaluation whose
    rounding is negligible next to float32's, to tell which of two float32 answers is right."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(model)

    def widen(graph):
        for i, t in enumerate(graph.initializer):
            if t.data_type == onnx.TensorProto.FLOAT:
                graph.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float64), t.name))
        for n in graph.node:
            for a in n.attribute:
                if a.name == "to" and a.i == onnx.TensorProto.FLOAT:
                    a.i = onnx.TensorProto.DOUBLE
                if a.name == "value" and a.t.data_type == onnx.TensorProto.FLOAT:
                    a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float64), a.t.name))
                if a.g.node:
                    widen(a.g)
        for v in list(graph.value_info) + list(graph.input) + list(graph.output):
            if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
                v.type.tensor_type.elem_type = onnx.TensorProto.DOUBLE

    widen(m.graph)
    path = os.path.join(folder, "float64-" + os.path.basename(model))
    onnx.save(m, path)
    return path


def check_magika(name, model, run, check, folder):
    session = ort_session(model)
    feeds = magika_feeds()
    want = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    got = run(model, feeds)
    disagree = Checker()
    worst = disagree.outputs(name, "batch", got, want)
    top_ort, top_tunnx = np.argmax(want["target_label"], axis=1), np.argmax(got["target_label"], axis=1)
    if disagree.failures or np.any(top_ort != top_tunnx):
        # Small files are mostly padding: magika's first LayerNorm, spelled E[x^2] - E[x]^2 by tf2onnx,
        # then cancels to a few significant bits, and float32 summation order decides the last ones.
        # The model in float64 says which runtime is right; tunnx fails only where it is further off.
        truth = run(float64_model(model, folder), feeds)["target_label"]
        ort_error = np.max(np.abs(want["target_label"] - truth), axis=1)
        tunnx_error = np.max(np.abs(got["target_label"] - truth), axis=1)
        for row in np.nonzero(tunnx_error > np.maximum(ort_error, TOLERANCE))[0]:
            check.failures.append(f"{name} file {row}: {tunnx_error[row]:.3g} from the float64 answer, "
                                  f"ONNX Runtime {ort_error[row]:.3g}")
        top_truth = np.argmax(truth, axis=1)
        if np.any((top_tunnx != top_truth) & (top_ort == top_truth)):
            check.failures.append(f"{name}: top-1 labels {top_tunnx.tolist()}, float64 {top_truth.tolist()}")
        print(f"{name}: tunnx and ONNX Runtime differ by up to {worst:.2e}; against the model in float64 "
              f"tunnx is off by at most {tunnx_error.max():.2e}, ONNX Runtime by {ort_error.max():.2e}")
        worst = float(tunnx_error.max())
    return len(feeds["bytes"]), len(set(top_ort.tolist())), worst


def ocr_feeds(name):
    return {"x": ocr_page()} if name == "ppocr_det" else {"x": ocr_lines(name, 6)}


def check_ocr(name, model, run, check):
    """Returns (what was fed, what was decided, worst error)."""
    feeds = ocr_feeds(name)
    session = ort_session(model)
    want = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    got = run(model, feeds)
    worst = check.outputs(name, "", got, want)
    out = next(iter(want))
    if file_stem(out) not in got or got[file_stem(out)].shape != want[out].shape:
        return "-", "-", worst  # check.outputs reported it
    result = got[file_stem(out)]
    if name == "ppocr_det":
        text = want[out] > 0.3
        flipped = (text != (result > 0.3)) & (np.abs(want[out] - 0.3) > TOLERANCE)
        if flipped.any():
            check.failures.append(f"{name}: {int(flipped.sum())} pixels decided text/not text otherwise than ONNX Runtime")
        return "a 640x640 page", f"{text.mean():.1%} text pixels", worst
    decided, expected = np.argmax(result, axis=-1), np.argmax(want[out], axis=-1)
    if (decided != expected).any():
        what = "characters" if name == "ppocr_rec" else "angles"
        check.failures.append(f"{name}: {int((decided != expected).sum())} {what} differ from ONNX Runtime's")
    if name == "ppocr_rec":
        return "6 text lines", f"{int((expected > 0).sum())} characters", worst
    return "6 text lines", f"angles {expected.tolist()}", worst


def bench_at_real_size(tunnx, model, feeds, folder, check, name):
    """`tunnx bench` on the same inputs: the model runs at its real shapes, not synthesized ones."""
    cmd = [tunnx, "bench", model, "--threads", "1", "--warmup", "1", "--iters", "3"]
    cmd += input_args(feeds, folder, f"bench-{name}-")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        check.failures.append(f"{name}: tunnx bench failed ({r.returncode}): {r.stderr.strip()}")
        return "-"
    median = [line.split()[1] for line in r.stdout.splitlines() if line.strip().startswith("median")]
    return median[0] + " ms" if median else "?"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tunnx", default=os.path.join(ROOT, "build", "tools", "tunnx"))
    args = parser.parse_args()
    try:
        models = fetch_real_models.fetch(list(fetch_real_models.MODELS))
    except fetch_real_models.FetchError as e:
        print(f"check_real_models: {e}", file=sys.stderr)
        if os.environ.get("CI") == "true":
            print("check_real_models: CI=true, so the real-model set may not be skipped", file=sys.stderr)
            return 1
        print("check_real_models: skipped (no models)")
        return SKIP

    check = Checker()
    with tempfile.TemporaryDirectory(prefix="tunnx-real-") as folder:
        run = Run(args.tunnx, folder)
        rows = []
        for name, model in models.items():
            try:
                if name == "magika":
                    runs, what, worst = check_magika(name, model, run, check, folder)
                    summary = f"{runs} files, {what} distinct labels"
                    feeds = magika_feeds()
                elif name.startswith("ppocr_"):
                    fed, decided, worst = check_ocr(name, model, run, check)
                    summary = f"{fed}, {decided}"
                    feeds = ocr_feeds(name)
                elif name == "silero_vad_16k_sequence":
                    runs, what, worst = check_silero_sequence(name, model, run, check)
                    summary = f"{runs} windows in one run, {what} speech"
                    feeds = {"input": silero_stream(), "h": np.zeros((1, 1, 128), np.float32),
                             "c": np.zeros((1, 1, 128), np.float32)}
                else:
                    runs, what, worst = check_silero_stream(name, model, run, check)
                    summary = f"{runs} windows, state fed back, {what} speech"
                    sr = {"sr": np.array(SAMPLE_RATE, np.int64)} if "sr" in {i.name for i in ort_session(model).get_inputs()} else {}
                    feeds = {"input": silero_stream()[:1], "state": np.zeros((2, 1, 128), np.float32), **sr}
            except RuntimeError as e:
                check.failures.append(f"{name}: {e}")
                continue
            rows.append((name, summary, worst, bench_at_real_size(args.tunnx, model, feeds, folder, check, name)))
        print(f"{'model':26s} {'inputs':44s} {'worst error / scale':>20s} {'tunnx bench median':>20s}")
        for name, summary, worst, median in rows:
            print(f"{name:26s} {summary:44s} {worst:20.2e} {median:>20s}")
        print(f"{run.count} tunnx runs, tolerance {TOLERANCE} of each output's scale (its largest magnitude, at least 1)")
    for failure in check.failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
