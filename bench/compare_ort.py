#!/usr/bin/env python3
"""tunnx against ONNX Runtime on the models of make_models.py and two public real models, run alternately.

For every pass, every case (model, batch, threads) runs, one after the other and each in a fresh process:
`tunnx bench --json` and an ONNX Runtime worker (this script with --ort-worker), on the same model, inputs, thread count, warmup and iteration counts, so slow drift of
the machine (other jobs, frequency) hits both. Per case the table reports the median over passes of
each pass's median and p90 latency (p90: nearest rank, as `tunnx bench` computes it), the tunnx/ORT
ratio of the medians (below 1: tunnx is faster), cores busy (CPU time / wall time of the timed runs),
peak RSS and first-run latency:

- peak RSS: each fresh process's own peak at the end of its timed runs, the largest over passes.
  tunnx's is the whole `tunnx bench` process (VmHWM); ORT's is the whole worker, Python and numpy
  included (its RSS right after importing onnxruntime and numpy is given in parentheses). Both with
  their defaults, which free a weight's original once their kernels hold it pre-packed.
- first run: from a loaded program to the first result, measured the same way inside each process.
  ORT: the worker imports onnxruntime and numpy, then starts the clock, creates the InferenceSession
  from the file and runs once. tunnx: `tunnx bench`'s load_ms + session_ms + first_run_ms (reading
  the file, building the session, the first run). Process start and dynamic linking are in neither
  (the header prints a fresh `tunnx --version` for scale).

Inputs are written once per case as .npy files and fed to both runtimes (`--input NAME=FILE`), so both
compute on the same data: synthesized ones follow `tunnx bench`'s rules (floats uniform in [-1, 1),
integers uniform in [0, 100), first free dim = batch, other free dims 1, fixed seed); magika gets
features of real files (the repository's own, extracted the way magika 1.0.3 does: first and last 1024
bytes after stripping whitespace, padded with 256); silero-vad gets a synthetic 16 kHz speech-like
signal (vowel syllables, consonant hiss, pauses; the model calls ~80% of it speech) cut into 512-sample
windows, each fed with the 64 samples before it (input [1, 576]) as silero_vad's own wrapper does. ORT
streams the windows, feeding stateN back as the next window's state, as an application does; tunnx
times one window (the same every run, with the state ORT reached just before it), because `tunnx
bench` feeds fixed inputs.

magika and silero-vad come from their PyPI wheels through scripts/fetch_real_models.py (cached outside
the repository); without network those cases are skipped with one line. A case tunnx (or ORT) fails on
prints the error and the run goes on with the others.

ORT settings: intra_op_num_threads = threads, inter_op_num_threads = 1, sequential execution, all
graph optimizations (its default). tunnx: `--threads N`.

For the MatMul case each pass also runs build/bench/tunnx_matmul_peak: oneDNN's sgemm alone on the
same 1024^3 product (what the library does with no runtime around it) and the measured FP32 FMA peak
of one core (12 independent FMA chains of the widest vectors it has, AVX-512 or AVX2, no memory
traffic): GFLOP/s are quoted against that measured peak x threads, at the clock the machine runs at
that moment.

  .venv/bin/python bench/make_models.py
  .venv/bin/python bench/compare_ort.py [--passes 5] [--threads 1 2] [--only "MLP b64" ...] [--optimization 0|1|2]
                                        [--tunnx build/tools/tunnx] [--json FILE]
"""
import argparse
import atexit
import datetime
import functools
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import namedtuple

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MATMUL_FLOP = 2 * 1024**3
SAMPLE_RATE = 16000
FRAME = 512  # silero-vad's window at 16 kHz, fed with the 64 samples before it: input [1, 576]
CONTEXT = 64
STATE_AFTER = 40  # tunnx's silero frame: frame 40 (1.28 s in, inside a syllable), with the state after 0..39

# model: a file of bench/models, a path from the repository root (a checked-in model), or a name of
# scripts/fetch_real_models.py. feed: how inputs are made
# ("synth": tunnx bench's rules; "magika": real files' features; "silero": a speech-like stream;
# "ocr_page" / "ocr_line": pages and text lines of handwritten digits, as PaddleOCR's models read them).
Case = namedtuple("Case", "label model batch warmup iters feed")

# Iteration counts keep a default run (all cases, threads 1 and 2, 5 passes) near 10 minutes on 2 cores
# while leaving enough samples for a stable median; YOLOv8n at 640x640 is the heavy one.
CASES = [
    Case("MatMul 1024", "matmul_1024.onnx", 1, 5, 30, "synth"),
    Case("MLP b1", "mlp.onnx", 1, 20, 200, "synth"),
    Case("MLP b64", "mlp.onnx", 64, 10, 100, "synth"),
    Case("BERT-2L b1", "bert2.onnx", 1, 3, 20, "synth"),
    Case("ResNet-18 b1", "resnet18.onnx", 1, 3, 20, "synth"),
    Case("MobileNetV3-S b1", "mobilenetv3_small.onnx", 1, 10, 100, "synth"),
    Case("YOLOv8n b1", "yolov8n.onnx", 1, 2, 12, "synth"),
    Case("magika b1", "magika", 1, 10, 100, "magika"),
    Case("magika b16", "magika", 16, 2, 12, "magika"),
    Case("silero-vad frame", "silero_vad", 1, 20, 500, "silero"),
    Case("decoder block b1", "tests/models/decoder_block.onnx", 1, 10, 100, "synth"),
    Case("PP-OCRv4 det 640", "ppocr_det", 1, 2, 10, "ocr_page"),
    Case("PP-OCRv4 rec b1", "ppocr_rec", 1, 5, 40, "ocr_line"),
    Case("PP-OCR cls b6", "ppocr_cls", 6, 10, 100, "ocr_line"),
]

# magika's inputs: checked-in files of this repository, of many kinds (b1 takes the first).
MAGIKA_FILES = [
    "bench/compare_ort.py", "README.md", "CMakeLists.txt", "runtime/core/kernel.cc", "include/tunnx/tensor.h",
    "scripts/setup.sh", "tests/models/README.json", "docs/digits_curve.svg", "examples/digits_cnn.onnx",
    "examples/digits_sample.npy", "examples/digits_sample_labels.txt", "cmake/tunnxConfig.cmake.in",
    "bench/.gitignore", "tests/models/extension/mlp_lora.init.safetensors", "tests/consumer/run_consumer_test.cmake",
    "tests/models/resnet18_narrow.onnx",
]

ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def ort_session(model, threads, optimize=True):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def synth_inputs(session, batch):
    """Same rules as `tunnx bench`: the first free dim is the batch, other free dims are 1."""
    rng = np.random.default_rng(20240611)
    batch_symbol, seen, feeds = None, False, {}
    for inp in session.get_inputs():
        dims = []
        for axis, d in enumerate(inp.shape):
            if isinstance(d, int) and d >= 0:
                dims.append(d)
                continue
            symbol = d if isinstance(d, str) else None
            if not seen:
                seen, batch_symbol, is_batch = True, symbol, True
            else:
                is_batch = symbol == batch_symbol if symbol else axis == 0
            dims.append(batch if is_batch else 1)
        dtype = ORT_TYPES[inp.type]
        if np.issubdtype(dtype, np.floating):
            feeds[inp.name] = rng.uniform(-1, 1, dims).astype(dtype)
        elif dtype == np.bool_:
            feeds[inp.name] = rng.integers(0, 2, dims).astype(np.bool_)
        else:
            feeds[inp.name] = rng.integers(0, 100, dims).astype(dtype)
    return feeds


def magika_features(path, beg_size=1024, end_size=1024, block_size=4096, padding=256):
    """magika 1.0.3's features of one file (Magika._extract_features_from_seekable, model standard_v3_3):
    read at most block_size bytes from each end; lstrip the first block and keep its first beg_size
    bytes, padded after; rstrip the last block and keep its last end_size bytes, padded before."""
    with open(path, "rb") as f:
        data = f.read()
    n = min(block_size, len(data))
    beg = list(data[:n].lstrip()[:beg_size])
    end = list(data[len(data) - n:].rstrip()[-end_size:]) if n else []
    return beg + [padding] * (beg_size - len(beg)) + [padding] * (end_size - len(end)) + end


def magika_inputs(batch):
    files = [os.path.join(ROOT, f) for f in MAGIKA_FILES if os.path.isfile(os.path.join(ROOT, f))]
    rows = [magika_features(files[i % len(files)]) for i in range(batch)]
    return {"bytes": np.array(rows, dtype=np.int32)}


# PaddleOCR's models (rapidocr-onnxruntime's wheel) read a page (the detector, [1, 3, H, W]) and text
# lines cut from it (the recognizer at [n, 3, 48, 320], the angle classifier at [n, 3, 48, 192], six
# lines a batch as rapidocr sends them). Their text is real handwriting: scikit-learn's bundled digits
# (1,797 scans of 8x8 pixels, 17 grey levels), scaled up, dark ink on a light page, in lines of varying
# length. Pixels are normalized as rapidocr does, (v / 255 - 0.5) / 0.5, grey replicated to 3 channels,
# and a line shorter than the input width is padded with zeros after normalization (rapidocr's resize_norm_img).
OCR_LINE_SHAPES = {"ppocr_rec": (48, 320), "ppocr_cls": (48, 192)}
OCR_PAGE = 640


# Debian's python3-sklearn, which the set-up installs for the bundled example (scripts/make_digits_data.py).
SKLEARN_DIGITS = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"


@functools.lru_cache(maxsize=1)
def handwritten_digits():
    """[1797, 8, 8], 0 (paper) .. 16 (ink): the file sklearn.datasets.load_digits reads, read here
    directly, since the project's virtualenv has no scikit-learn. Read once per process."""
    import gzip

    with gzip.open(SKLEARN_DIGITS, "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.float64)
    return rows[:, :64].reshape(-1, 8, 8)


def ink(digits, scale, count, rng):
    """`count` digits side by side, each `scale` times its 8x8 size with a small gap: grey [8s, w] in 0..255."""
    glyphs = [np.kron(digits[i], np.ones((scale, scale))) for i in rng.integers(0, len(digits), count)]
    gap = np.zeros((8 * scale, scale // 2 + 1))
    row = np.concatenate([part for g in glyphs for part in (g, gap)], axis=1)
    return 250 - row * (220 / 16)


def normalized(grey):
    return ((grey / 255 - 0.5) / 0.5).astype(np.float32)


def ocr_page(size=OCR_PAGE, seed=3):
    """A page [1, 3, size, size]: lines of handwritten digits at two sizes, a margin, paper noise."""
    rng = np.random.default_rng(seed)
    digits = handwritten_digits()
    page = 245 + rng.normal(0, 3, (size, size))
    y = 24
    while True:
        scale = int(rng.choice([3, 4]))
        line = ink(digits, scale, int(rng.integers(4, 3 * size // (10 * scale))), rng)
        if y + line.shape[0] > size - 24:
            break
        x = int(rng.integers(24, 64))
        width = min(line.shape[1], size - 24 - x)
        page[y:y + line.shape[0], x:x + width] = np.minimum(page[y:y + line.shape[0], x:x + width], line[:, :width])
        y += line.shape[0] + int(rng.integers(10, 24))
    grey = normalized(np.clip(page, 0, 255))
    return np.repeat(grey[None, None], 3, axis=1)


def ocr_lines(model, batch, seed=5):
    """`batch` text lines [batch, 3, 48, W] as the recognizer or the classifier reads them."""
    rng = np.random.default_rng(seed)
    height, width = OCR_LINE_SHAPES[model]
    digits = handwritten_digits()
    out = np.zeros((batch, 3, height, width), np.float32)
    for i in range(batch):
        line = np.pad(ink(digits, 4, int(rng.integers(3, 12)), rng), 8, constant_values=250)  # 48 px high
        line = line[:, :width]
        out[i, :, :, :line.shape[1]] = normalized(line)
    return out


# (F1, F2, F3) in Hz of seven English vowels (Peterson & Barney's male averages)
VOWELS = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410),
          (660, 1720, 2410), (440, 1020, 2240)]


def speech_like(seconds=20.0, rate=SAMPLE_RATE):
    """A deterministic speech-like signal in [-1, 1]: syllables of 120-280 ms, each a vowel gliding to
    another (harmonics of a 100-220 Hz pitch with a -6 dB/octave tilt, weighted by the three formants),
    half of them after a 30-80 ms consonant (a hiss: differenced noise), separated by 30-120 ms gaps
    and now and then a half-second pause; plus a noise floor 50 dB below the peak. silero-vad calls
    ~80% of its frames speech and the pauses silence."""
    rng = np.random.default_rng(rate)
    n = int(seconds * rate)
    envelope, hiss_level, pitch = np.zeros(n), np.zeros(n), np.full(n, 150.0)
    formants = np.tile(np.array(VOWELS[0], float)[:, None], (1, n))
    pos = int(0.3 * rate)
    while pos < n:
        length = int(rng.uniform(0.12, 0.28) * rate)
        seg = min(length, n - pos)
        envelope[pos:pos + seg] = np.sin(np.pi * np.arange(seg) / length) ** 0.5 * rng.uniform(0.3, 1.0)
        pitch[pos:pos + seg] = np.linspace(rng.uniform(110, 220), rng.uniform(100, 200), length)[:seg]
        start, end = VOWELS[rng.integers(len(VOWELS))], VOWELS[rng.integers(len(VOWELS))]
        for k in range(3):
            formants[k, pos:pos + seg] = np.linspace(start[k], end[k], length)[:seg]
        if rng.random() < 0.5:
            hiss_level[max(0, pos - int(rng.uniform(0.03, 0.08) * rate)):pos] = rng.uniform(0.05, 0.2)
        pos += length + int(rng.uniform(0.03, 0.12) * rate) + (int(0.5 * rate) if rng.random() < 0.1 else 0)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voiced = np.zeros(n)
    for h in range(1, 60):
        freq = h * pitch
        weight = sum(gain * np.exp(-(((freq - formants[k]) / width) ** 2))
                     for k, (width, gain) in enumerate([(90, 1.0), (110, 0.7), (150, 0.4)]))
        voiced += np.where(freq < rate / 2, (weight + 0.02) / h, 0.0) * np.sin(h * phase)
    signal = envelope * voiced + hiss_level * np.diff(rng.standard_normal(n), prepend=0.0)
    signal *= 0.6 / np.abs(signal).max()
    signal += rng.standard_normal(n) * 0.6 * 10 ** (-50 / 20)
    return np.clip(signal, -1, 1).astype(np.float32)


def silero_inputs(model):
    """The stream's model inputs [frames, 1, 576] (as silero_vad's OnnxWrapper feeds them: the last 64
    samples of the previous window, then 512 new ones), and tunnx's one frame with the state ORT
    reached just before it."""
    signal = speech_like()
    windows = len(signal) // FRAME
    padded = np.concatenate([np.zeros(CONTEXT, np.float32), signal[:windows * FRAME]])
    frames = np.stack([padded[i * FRAME:(i + 1) * FRAME + CONTEXT] for i in range(windows)])[:, None, :]
    sr = np.array(SAMPLE_RATE, dtype=np.int64)
    session = ort_session(model, 1)
    state = np.zeros((2, 1, 128), np.float32)
    for i in range(STATE_AFTER):
        state = session.run(["stateN"], {"input": frames[i], "state": state, "sr": sr})[0]
    return {"input": frames[STATE_AFTER], "state": state, "sr": sr}, frames


def write_inputs(case, model, folder):
    """{input name: .npy path} for both runtimes, and the stream's frames file (silero) or None."""
    frames = None
    if case.feed == "magika":
        feeds = magika_inputs(case.batch)
    elif case.feed == "silero":
        feeds, frames = silero_inputs(model)
    elif case.feed == "ocr_page":
        feeds = {"x": ocr_page()}
    elif case.feed == "ocr_line":
        feeds = {"x": ocr_lines(case.model, case.batch)}
    else:
        feeds = synth_inputs(ort_session(model, 1, optimize=False), case.batch)
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for name, value in feeds.items():
        paths[name] = os.path.join(folder, f"{len(paths)}.npy")  # input names may hold '/' or ':'
        np.save(paths[name], value)
    frames_path = None
    if frames is not None:
        frames_path = os.path.join(folder, "frames.npy")
        np.save(frames_path, frames)
    return paths, frames_path


def last_line(text, code):
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {code}"


def run_fresh(cmd):
    """subprocess.run(cmd) from a small shell, so that cmd's getrusage ru_maxrss is its own: Linux carries
    the RSS of the process a program was forked (or vforked) from into the program's ru_maxrss, and
    this script holds onnxruntime, numpy and the inputs (100+ MiB). The shell forks cmd (no exec: a
    command list), so cmd starts from the shell's ~1 MiB."""
    return subprocess.run(["/bin/sh", "-c", '"$@"; exit $?', "sh"] + cmd, capture_output=True, text=True)


def input_args(inputs):
    return [arg for name, path in inputs.items() for arg in ("--input", f"{name}={path}")]


def time_tunnx(tunnx, model, case, threads, inputs, optimization):
    """`tunnx bench --json` as a dict, or the error line."""
    cmd = [tunnx, "bench", model, "--json", "--batch", str(case.batch), "--threads", str(threads),
           "--warmup", str(case.warmup), "--iters", str(case.iters)] + input_args(inputs)
    if optimization is not None:
        cmd += ["--optimization", str(optimization)]
    r = run_fresh(cmd)
    if r.returncode != 0:
        return f"tunnx bench failed ({r.returncode}): {last_line(r.stderr, r.returncode)}"
    return json.loads(r.stdout)


def first_run_ms(result):
    """tunnx's first-run latency from its bench JSON (load + session + first run), or its error line."""
    if not ok(result):
        return result
    return result["load_ms"] + result["session_ms"] + result["first_run_ms"]


def process_start_ms(tunnx, repeat=5):
    """Wall ms of a fresh `tunnx --version` process: what process start and dynamic linking cost."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        try:
            subprocess.run([tunnx, "--version"], capture_output=True)
        except OSError:
            return float("nan")
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def time_ort(model, case, threads, inputs, frames):
    """The ORT worker's report as a dict, or the error line."""
    spec = {"model": model, "threads": threads, "warmup": case.warmup, "iters": case.iters, "inputs": inputs,
            "frames": frames}
    r = run_fresh([sys.executable, os.path.abspath(__file__), "--ort-worker", json.dumps(spec)])
    if r.returncode != 0:
        return f"ORT worker failed ({r.returncode}): {last_line(r.stderr, r.returncode)}"
    return json.loads(r.stdout)


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def nearest_rank(sorted_ms, p):
    rank = math.ceil(p / 100 * len(sorted_ms))
    return sorted_ms[min(max(rank, 1), len(sorted_ms)) - 1]


def ort_worker(spec):
    """Runs in its own process (onnxruntime and numpy already imported): ORT's side of one case, printed
    as one JSON object. With "frames" (silero-vad) the timed runs stream the frames in order from a zero
    state, each run's stateN fed back as the next one's state."""
    rss_after_import = peak_rss_bytes()
    feeds = {name: np.load(path) for name, path in spec["inputs"].items()}
    start = time.perf_counter()
    session = ort_session(spec["model"], spec["threads"])
    session_ms = (time.perf_counter() - start) * 1000
    session.run(None, feeds)
    first_run_ms = (time.perf_counter() - start) * 1000

    frames = np.load(spec["frames"]) if spec["frames"] else None
    if frames is not None:
        feeds["state"] = np.zeros_like(feeds["state"])  # a stream starts from silence

    def run(i):
        if frames is None:
            session.run(None, feeds)
            return
        feeds["input"] = frames[i % len(frames)]
        feeds["state"] = session.run(["stateN"], feeds)[0]

    for i in range(spec["warmup"] - 1):  # the first run above was the first warm-up run, as in tunnx bench
        run(i)
    samples = []
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for i in range(max(spec["warmup"] - 1, 0), max(spec["warmup"] - 1, 0) + spec["iters"]):
        t = time.perf_counter()
        run(i)
        samples.append((time.perf_counter() - t) * 1000)
    cores_busy = (time.process_time() - cpu_start) / (time.perf_counter() - wall_start)
    samples.sort()
    print(json.dumps({"median_ms": statistics.median(samples), "p90_ms": nearest_rank(samples, 90),
                      "cores_busy": cores_busy, "session_ms": session_ms, "first_run_ms": first_run_ms,
                      "rss_after_import_bytes": rss_after_import, "peak_rss_bytes": peak_rss_bytes()}))


def matmul_peak(tool, threads, iters):
    """oneDNN's sgemm alone on 1024^3 and the measured FMA peak of one core, or None without the tool."""
    if not os.path.exists(tool):
        return None
    r = subprocess.run([tool, "--threads", str(threads), "--iters", str(iters)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{tool} failed ({r.returncode}): {r.stderr.strip()}")
    return json.loads(r.stdout)


def machine():
    info = {"python": platform.python_version(), "onnxruntime": ort.__version__}
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)", "Core(s) per socket", "Socket(s)", "BogoMIPS", "Flags"):
                info[key.strip()] = value.strip()
    except OSError:
        pass
    flags = info.pop("Flags", "").split()
    info["simd"] = " ".join(f for f in ("avx512f", "avx2", "fma") if f in flags)
    return info


def resolve_models(cases, models_dir):
    """{model: path}; real models through fetch_real_models, whose cases are dropped (one line) offline."""
    paths, real = {}, sorted({c.model for c in cases if not c.model.endswith(".onnx")})
    for c in cases:
        if c.model.endswith(".onnx"):
            # A bare name is a file of make_models.py; a path is a model checked into the repository.
            paths[c.model] = os.path.join(ROOT if "/" in c.model else models_dir, c.model)
            if not os.path.exists(paths[c.model]):
                raise SystemExit(f"{paths[c.model]} is missing: run bench/make_models.py first")
    if real:
        sys.path.insert(0, os.path.join(ROOT, "scripts"))
        import fetch_real_models

        try:
            paths.update(fetch_real_models.fetch(real))
        except fetch_real_models.FetchError as e:
            skipped = [c.label for c in cases if c.model in real]
            print(f"skipping {', '.join(skipped)}: {e}", file=sys.stderr, flush=True)
            cases = [c for c in cases if c.model not in real]
    return cases, paths


def mib(b):
    return b / 2**20


def ok(result):
    """A measurement rather than an error line."""
    return not isinstance(result, str)


def table(cases, thread_counts, results):
    """Prints the markdown table; returns its rows (with every pass's numbers) for --json."""
    # cores busy: CPU time / wall time of the timed runs, median over passes; above the thread count
    # means the runtime used more threads than asked (or spun).
    print("| case | threads | tunnx ms | ORT ms | tunnx/ORT | per-pass ratios | p90 ms tunnx / ORT "
          "| cores busy tunnx / ORT | peak RSS MiB tunnx / ORT (after import) | first run ms tunnx / ORT "
          "| MatMul GFLOP/s tunnx / ORT |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")

    def cell(value, fmt):
        return "-" if value is None else format(value, fmt)

    rows = []
    for case in cases:
        for threads in thread_counts:
            records = results.get((case.label, threads), [])
            ts = [r["tunnx"] for r in records if ok(r["tunnx"])]
            os_ = [r["ort"] for r in records if ok(r["ort"])]
            firsts = [r["first_run"] for r in records if ok(r["first_run"])]
            med = lambda reports, field: statistics.median(r[field] for r in reports) if reports else None  # noqa: E731
            peak = lambda reports, field: max(r[field] for r in reports) / 2**20 if reports else None  # noqa: E731
            t, o = med(ts, "median_ms"), med(os_, "median_ms")
            ratio = t / o if t and o else None
            per_pass = " ".join(f"{r['tunnx']['median_ms'] / r['ort']['median_ms']:.2f}"
                                for r in records if ok(r["tunnx"]) and ok(r["ort"]))
            gflops = ""
            if case.model == "matmul_1024.onnx" and ratio:
                gflops = f"{MATMUL_FLOP / t / 1e6:.1f} / {MATMUL_FLOP / o / 1e6:.1f}"
            row = {"case": case.label, "model": case.model, "batch": case.batch, "threads": threads,
                   "warmup": case.warmup, "iters": case.iters, "tunnx_median_ms": t, "ort_median_ms": o,
                   "ratio": ratio, "tunnx_p90_ms": med(ts, "p90_ms"), "ort_p90_ms": med(os_, "p90_ms"),
                   "tunnx_cores_busy": med(ts, "cores_busy"), "ort_cores_busy": med(os_, "cores_busy"),
                   "tunnx_peak_rss_mib": peak(ts, "peak_rss_bytes"), "ort_peak_rss_mib": peak(os_, "peak_rss_bytes"),
                   "ort_rss_after_import_mib": peak(os_, "rss_after_import_bytes"),
                   "tunnx_first_run_ms": statistics.median(firsts) if firsts else None,
                   "ort_first_run_ms": med(os_, "first_run_ms"), "tunnx_load_ms": med(ts, "load_ms"),
                   "tunnx_session_ms": med(ts, "session_ms"), "ort_session_ms": med(os_, "session_ms"),
                   "passes": [dict(r) for r in records]}
            for r in row["passes"]:  # the kernels are listed once per case, apart
                if ok(r["tunnx"]):
                    r["tunnx"] = {k: v for k, v in r["tunnx"].items() if k not in ("kernels", "inputs")}
            print(f"| {case.label} | {threads} | {cell(t, '.3f')} | {cell(o, '.3f')} | {cell(ratio, '.2f')} "
                  f"| {per_pass} | {cell(row['tunnx_p90_ms'], '.3f')} / {cell(row['ort_p90_ms'], '.3f')} "
                  f"| {cell(row['tunnx_cores_busy'], '.2f')} / {cell(row['ort_cores_busy'], '.2f')} "
                  f"| {cell(row['tunnx_peak_rss_mib'], '.0f')} / {cell(row['ort_peak_rss_mib'], '.0f')} "
                  f"({cell(row['ort_rss_after_import_mib'], '.0f')}) "
                  f"| {cell(row['tunnx_first_run_ms'], '.1f')} / {cell(row['ort_first_run_ms'], '.1f')} | {gflops} |")
            rows.append(row)
    return rows


def start_background(kind, tunnx, models):
    """Processes that keep every core busy for the whole run (issue 11's busy-machine check), or []:
    spin: one pure-Python busy loop per core; openmp: another OpenMP program (tunnx bench on the 1024^3
    MatMul with all cores and OpenMP's active wait policy, as a spinning HPC job would run)."""
    cores = os.cpu_count() or 1
    processes = []
    if kind == "spin":
        processes = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    elif kind == "openmp":
        env = dict(os.environ, OMP_WAIT_POLICY="active")
        cmd = [tunnx, "bench", os.path.join(models, "matmul_1024.onnx"), "--threads", str(cores), "--warmup", "0",
               "--iters", "100000000"]
        processes = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    for process in processes:  # also when the run stops early
        atexit.register(process.kill)
    return processes


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tunnx", default=os.path.join(ROOT, "build", "tools", "tunnx"))
    parser.add_argument("--models", default=os.path.join(HERE, "models"))
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", nargs="*", help="case labels to run (default all)")
    parser.add_argument("--json", help="also write every measurement to this file")
    parser.add_argument("--optimization", type=int, choices=[0, 1, 2],
                        help="tunnx's graph optimization level (default: tunnx's default)")
    parser.add_argument("--peak-tool", default=os.path.join(ROOT, "build", "bench", "tunnx_matmul_peak"))
    parser.add_argument("--background", choices=["none", "spin", "openmp"], default="none",
                        help="measure on a busy machine: spin (a busy loop per core) or openmp (another OpenMP "
                             "program on every core)")
    parser.add_argument("--ort-worker", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ort_worker:
        return ort_worker(json.loads(args.ort_worker))

    unknown = [label for label in args.only or [] if label not in {c.label for c in CASES}]
    if unknown:
        raise SystemExit(f"unknown case {', '.join(unknown)} (cases: {', '.join(c.label for c in CASES)})")
    if not os.path.exists(args.tunnx):
        raise SystemExit(f"{args.tunnx} is missing: cmake --build build --target tunnx")
    cases = [c for c in CASES if not args.only or c.label in args.only]
    cases, model_paths = resolve_models(cases, args.models)

    background = start_background(args.background, args.tunnx, args.models)
    if background:
        time.sleep(2)  # let the background load settle
    load_before = os.getloadavg()[0]
    results, kernels = {}, {}  # (label, threads) -> one record per pass; label -> tunnx's kernels
    onednn_ms, peak_gflops = {}, {}
    peak_isa = "?"  # the ISA tunnx_matmul_peak measured its FMA peak with
    with tempfile.TemporaryDirectory(prefix="tunnx-bench-") as tmp:
        case_inputs = {c.label: write_inputs(c, model_paths[c.model], os.path.join(tmp, str(i)))
                       for i, c in enumerate(cases)}
        for p in range(args.passes):
            for case in cases:
                model = model_paths[case.model]
                inputs, frames = case_inputs[case.label]
                for threads in args.threads:
                    key = (case.label, threads)
                    tunnx_result = time_tunnx(args.tunnx, model, case, threads, inputs, args.optimization)
                    record = {"tunnx": tunnx_result, "first_run": first_run_ms(tunnx_result),
                              "ort": time_ort(model, case, threads, inputs, frames)}
                    results.setdefault(key, []).append(record)
                    t, o = record["tunnx"], record["ort"]
                    line = f"pass {p + 1}/{args.passes}  {case.label:<16} threads {threads}: "
                    line += (f"tunnx {t['median_ms']:9.3f} ms ({t['cores_busy']:.2f} cores busy)   " if ok(t)
                             else f"{t}   ")
                    line += f"ORT {o['median_ms']:9.3f} ms ({o['cores_busy']:.2f} cores busy)" if ok(o) else o
                    if ok(t):
                        kernels[case.label] = t.get("kernels", {})
                    if not ok(record["first_run"]):
                        line += f"   {record['first_run']}"
                    if case.model == "matmul_1024.onnx":
                        peak = matmul_peak(args.peak_tool, threads, case.iters)
                        if peak:
                            onednn_ms.setdefault(key, []).append(peak["onednn_ms"])
                            if peak["fma_peak_gflops"]:
                                peak_gflops.setdefault(key, []).append(peak["fma_peak_gflops"])
                                peak_isa = peak.get("fma_peak_isa") or peak_isa
                            line += f"   oneDNN alone {peak['onednn_ms']:9.3f} ms"
                    print(line, file=sys.stderr, flush=True)

    info = machine()
    print(f"date: {datetime.date.today().isoformat()}")
    print(f"machine: {info.get('Model name', '?')}, {info.get('CPU(s)', '?')} CPUs "
          f"({info.get('Core(s) per socket', '?')} cores x {info.get('Socket(s)', '?')} sockets), simd: {info['simd']}")
    try:
        version = subprocess.run([args.tunnx, "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        version = "tunnx (version unknown: the binary was missing at the end)"
    level = "default" if args.optimization is None else str(args.optimization)
    print(f"{version}; onnxruntime {ort.__version__}; {args.passes} passes, median of per-pass medians; "
          f"tunnx optimization level {level}")
    # Other jobs on the machine skew both runtimes (the 2-thread rows most): say how busy it was.
    load_after = os.getloadavg()[0]
    for process in background:
        process.kill()
        process.wait()
    if background:
        print(f"background load: {args.background} ({len(background)} process(es) kept every core busy throughout)")
    print(f"1-minute load average: {load_before:.2f} before, {load_after:.2f} after")
    start_ms = process_start_ms(args.tunnx)
    print(f"first run: ORT = session + first run after the imports; tunnx = load + session + first run in "
          f"`tunnx bench`; neither includes process start (`tunnx --version` alone takes {start_ms:.1f} ms here)\n")
    rows = table(cases, args.threads, results)
    if any(c.feed == "silero" for c in cases):
        print(f"\nsilero-vad frame: ORT streams {FRAME}-sample windows (+{CONTEXT} of context) of a synthetic 16 kHz "
              f"speech-like signal, stateN fed back as the next state; tunnx runs window {STATE_AFTER} every time, "
              f"with the state after windows 0..{STATE_AFTER - 1}.")
    if onednn_ms:
        print(f"\nMatMul 1024^3 against the machine (medians over passes; % of the measured {peak_isa} FMA peak x "
              "threads):")
        print("| threads | FMA peak GFLOP/s | oneDNN alone ms | tunnx ms | ORT ms | oneDNN alone % | tunnx % | ORT % |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for row in rows:
            key = (row["case"], row["threads"])
            if key not in onednn_ms or row["ratio"] is None:
                continue
            d, t, o = statistics.median(onednn_ms[key]), row["tunnx_median_ms"], row["ort_median_ms"]
            peak = statistics.median(peak_gflops[key]) * row["threads"] if key in peak_gflops else float("nan")
            pct = lambda ms: 100 * MATMUL_FLOP / ms / 1e6 / peak  # noqa: E731
            print(f"| {row['threads']} | {peak:.1f} | {d:.3f} | {t:.3f} | {o:.3f} | {pct(d):.0f}% | {pct(t):.0f}% "
                  f"| {pct(o):.0f}% |")
            row.update({"onednn_alone_ms": d, "fma_peak_gflops_per_core": peak / row["threads"],
                        "onednn_alone_pass_ms": onednn_ms[key]})
    errors = [(key, r[side]) for key, records in results.items() for r in records for side in r if not ok(r[side])]
    if errors:
        print("\nerrors:")
        for (label, threads), message in dict.fromkeys(errors):  # each distinct message once, in order
            print(f"  {label}, threads {threads}: {message}")
    print("\ntunnx kernels:")
    for label, ks in kernels.items():
        print(f"  {label}: " + ", ".join(f"{k} x{n}" for k, n in sorted(ks.items())))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": datetime.date.today().isoformat(), "machine": info, "tunnx": version,
                       "passes": args.passes, "tunnx_process_start_ms": start_ms, "results": rows,
                       "kernels": kernels}, f, indent=2)


if __name__ == "__main__":
    main()
