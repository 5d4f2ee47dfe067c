#!/usr/bin/env python3
"""Fetches the public real models that tunnx's benchmarks and real-model tests run, from their PyPI wheels.

  magika      magika==1.0.3       magika/models/standard_v3_3/model.onnx  file-type classifier (tf2onnx):
                                  bytes int32 [batch, 2048] -> target_label float [batch, 214]
  silero_vad  silero-vad==6.2.3   silero_vad/data/silero_vad.onnx         voice activity detector (LSTM, If):
                                  input float [1, 576] (at 16 kHz: the previous window's last 64 samples,
                                  then 512 new ones, as silero_vad's OnnxWrapper feeds it), state float
                                  [2, 1, 128], sr int64 scalar 16000 -> output float [1, 1] (speech
                                  probability), stateN [2, 1, 128] (the next window's state)
  silero_vad_16k_op15, _16k_sequence, _half, _op18_ifless, _openvino_16k: the same wheel's other
                                  exports of the detector (opset 15, a whole sequence per run with h/c,
                                  float16 inside, opset 18 without If, OpenVINO's 16 kHz form); the
                                  real-model tests run them all (`all` fetches every model)
  ppocr_det   rapidocr-onnxruntime==1.4.4  .../models/ch_PP-OCRv4_det_infer.onnx   PaddleOCR's text detector
                                  (Paddle2ONNX, opset 12): x float [n, 3, H, W] (H, W multiples of 32) ->
                                  a text probability map [n, 1, H, W]
  ppocr_rec   (same wheel)        .../models/ch_PP-OCRv4_rec_infer.onnx   text-line recognizer (SVTR):
                                  x float [n, 3, 48, W] -> per-position character probabilities
                                  [n, W / 8, 6625]
  ppocr_cls   (same wheel)        .../models/ch_ppocr_mobile_v2.0_cls_infer.onnx   text-line angle
                                  classifier (0 or 180 degrees): x float [n, 3, 48, 192] -> [n, 2]

Each wheel is downloaded with `python -m pip download --no-deps --only-binary=:all:` into a temporary
folder of the cache (once per wheel), only the .onnx files named above are extracted, each its SHA-256 is checked against the
pin below, and the wheel is deleted. A model already in the cache is not fetched again. The cache is
$TUNNX_MODEL_CACHE, else ~/.cache/tunnx/models; the models are never copied into the repository.

  .venv/bin/python scripts/fetch_real_models.py [--cache DIR] [all | NAME...]   (default: magika silero_vad)

prints `NAME PATH` per model; exits 1 with one line on stderr when a download fails (offline, say).
From Python (bench/compare_ort.py, tests):

  sys.path.insert(0, "scripts"); import fetch_real_models
  paths = fetch_real_models.fetch()   # {"magika": ".../model.onnx", "silero_vad": ".../silero_vad.onnx"}
  # raises fetch_real_models.FetchError with the same one-line message
"""
import argparse
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import namedtuple

Wheel = namedtuple("Wheel", "package version member sha256")

# The SHA-256 is of the extracted .onnx file, so a republished wheel or a changed member fails loudly
# instead of silently benchmarking another model.
MODELS = {
    "magika": Wheel("magika", "1.0.3", "magika/models/standard_v3_3/model.onnx",
                    "fe2d2eb49c5f88a9e0a6c048e15d6ffdf86235519c2afc535044de433169ec8c"),
    "silero_vad": Wheel("silero-vad", "6.2.3", "silero_vad/data/silero_vad.onnx",
                        "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"),
    # The wheel's other exports of the same detector (the real-model tests run every one).
    "silero_vad_16k_op15": Wheel("silero-vad", "6.2.3", "silero_vad/data/silero_vad_16k_op15.onnx",
                                 "7ed98ddbad84ccac4cd0aeb3099049280713df825c610a8ed34543318f1b2c49"),
    "silero_vad_16k_sequence": Wheel("silero-vad", "6.2.3", "silero_vad/data/silero_vad_16k_sequence.onnx",
                                     "9ccdacc4719d8aa7e45a77536bfabec45a03ba1f2fad5e241ab4060b24238a85"),
    "silero_vad_half": Wheel("silero-vad", "6.2.3", "silero_vad/data/silero_vad_half.onnx",
                             "1e0b195ad4806595ef4466f419d16fca7e4afcfc6669b8c0b5f76ea87547c769"),
    "silero_vad_op18_ifless": Wheel("silero-vad", "6.2.3", "silero_vad/data/silero_vad_op18_ifless.onnx",
                                    "7671cd04b004e9076da0d4a7b1a5aec36adf161c39230c1cb94a4fd5db6bbd28"),
    "silero_vad_openvino_16k": Wheel("silero-vad", "6.2.3", "silero_vad/data/silero_vad_openvino_16k.onnx",
                                     "7776b81ad1b0350c15d7f1555943b9232eb53e9ca5d989c6d0cea9ebc8664d87"),
    # PaddleOCR's three models as rapidocr ships them (Paddle2ONNX exports).
    "ppocr_det": Wheel("rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
                       "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"),
    "ppocr_rec": Wheel("rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
                       "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b"),
    "ppocr_cls": Wheel("rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
                       "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"),
}
# What the benchmarks run by default (the other exports are for the real-model tests).
DEFAULT = ["magika", "silero_vad", "ppocr_det", "ppocr_rec", "ppocr_cls"]


class FetchError(Exception):
    """A model could not be fetched; the message is one line."""


def cache_dir():
    return os.environ.get("TUNNX_MODEL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tunnx", "models")


def model_path(name, cache=None):
    """Where NAME lives in the cache (whether or not it is there yet)."""
    w = MODELS[name]
    return os.path.join(cache or cache_dir(), f"{w.package}-{w.version}", os.path.basename(w.member))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download_and_extract(names, cache):
    """Downloads the one wheel that holds every model of `names` and extracts their members."""
    w = MODELS[names[0]]
    spec = f"{w.package}=={w.version}"
    os.makedirs(cache, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wheel-", dir=cache) as tmp:
        # Few retries and a short timeout: offline should fail in seconds, not after pip's minute of backoff.
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--quiet", "--retries", "1", "--timeout", "20", "--dest", tmp, spec]
        r = subprocess.run(cmd, capture_output=True, text=True)
        wheels = glob.glob(os.path.join(tmp, "*.whl"))
        if r.returncode != 0 or len(wheels) != 1:
            lines = [line.strip() for line in (r.stderr + r.stdout).splitlines() if line.strip()]
            why = lines[-1] if lines else f"pip exited {r.returncode} without a wheel"
            raise FetchError(f"could not download {spec} from PyPI (offline?): {why}")
        for name in names:
            member, path = MODELS[name].member, model_path(name, cache)
            try:
                with zipfile.ZipFile(wheels[0]) as z, z.open(member) as src:
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    part = path + ".part"
                    with open(part, "wb") as dst:
                        shutil.copyfileobj(src, dst)
            except (KeyError, zipfile.BadZipFile) as e:
                raise FetchError(f"{os.path.basename(wheels[0])} has no readable {member}: {e}") from None
            digest = sha256(part)
            if digest != MODELS[name].sha256:
                os.remove(part)
                raise FetchError(f"{member} from {spec} has SHA-256 {digest}, expected {MODELS[name].sha256}")
            os.replace(part, path)


def fetch(names=None, cache=None):
    """{name: path} of the named models (default: DEFAULT), downloading the ones missing from the cache
    (one download per wheel)."""
    cache = cache or cache_dir()
    names = list(names or DEFAULT)
    for name in names:
        if name not in MODELS:
            raise FetchError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    missing = {}
    for name in names:
        if not os.path.exists(model_path(name, cache)):
            w = MODELS[name]
            missing.setdefault((w.package, w.version), []).append(name)
    for wheel_names in missing.values():
        _download_and_extract(wheel_names, cache)
    return {name: model_path(name, cache) for name in names}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"models to fetch (default {' '.join(DEFAULT)}; known: {' '.join(MODELS)}; 'all' for every one)")
    parser.add_argument("--cache", help="cache folder (default $TUNNX_MODEL_CACHE, else ~/.cache/tunnx/models)")
    args = parser.parse_args()
    try:
        paths = fetch(list(MODELS) if args.names == ["all"] else args.names, args.cache)
    except FetchError as e:
        print(f"fetch_real_models: {e}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"{name} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
