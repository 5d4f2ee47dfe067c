#!/usr/bin/env python3
"""tunnx against ONNX Runtime on the models of make_models.py, run alternately in one invocation.

For every pass, every case (model, batch, threads) runs `tunnx bench --json` and then ONNX Runtime on
the same model, batch and thread count, with the same warmup and iteration counts, so slow drift of the
machine (other jobs, frequency) hits both. The table reports, per case, the median over passes of
each pass's median latency, and the tunnx/ORT ratio (below 1: tunnx is faster).

ORT settings: intra_op_num_threads = threads, inter_op_num_threads = 1, sequential execution, all
graph optimizations (its default). tunnx: `--threads N`. Inputs: floats uniform in [-1, 1), integers
uniform in [0, 100), from fixed seeds in both runtimes (the values differ; the work does not).

For the MatMul case each pass also runs build/bench/tunnx_matmul_peak: oneDNN's sgemm alone on the
same 1024^3 product (what the library does with no runtime around it) and the measured FP32 FMA peak
of one core (12 independent AVX2 FMA chains, no memory traffic): GFLOP/s are quoted against that
measured peak x threads, at the clock the machine runs at that moment.

  .venv/bin/python bench/make_models.py
  .venv/bin/python bench/compare_ort.py [--passes 5] [--threads 1 2] [--optimization 0|1|2]
                                        [--tunnx build/tools/tunnx] [--json FILE]
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MATMUL_FLOP = 2 * 1024**3

# (label, model file, batch, warmup, iters): iteration counts keep one pass of every case under ~1 min
# on 2 cores while leaving enough samples for a stable median.
CASES = [
    ("MatMul 1024", "matmul_1024.onnx", 1, 5, 30),
    ("MLP b1", "mlp.onnx", 1, 20, 200),
    ("MLP b64", "mlp.onnx", 64, 10, 100),
    ("BERT-2L b1", "bert2.onnx", 1, 3, 20),
]

ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def ort_inputs(session, batch):
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


def time_ort(model, batch, threads, warmup, iters):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    feeds = ort_inputs(session, batch)
    for _ in range(warmup):
        session.run(None, feeds)
    samples = []
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for _ in range(iters):
        start = time.perf_counter()
        session.run(None, feeds)
        samples.append((time.perf_counter() - start) * 1000)
    cores_busy = (time.process_time() - cpu_start) / (time.perf_counter() - wall_start)
    return statistics.median(samples), cores_busy


def time_tunnx(tunnx, model, batch, threads, warmup, iters, optimization):
    cmd = [tunnx, "bench", model, "--json", "--batch", str(batch), "--threads", str(threads),
           "--warmup", str(warmup), "--iters", str(iters)]
    if optimization is not None:
        cmd += ["--optimization", str(optimization)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return json.loads(r.stdout)


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
    args = parser.parse_args()

    cases = [c for c in CASES if not args.only or c[0] in args.only]
    for _, file, *_ in cases:
        if not os.path.exists(os.path.join(args.models, file)):
            raise SystemExit(f"{os.path.join(args.models, file)} is missing: run bench/make_models.py first")

    load_before = os.getloadavg()[0]
    tunnx_ms, ort_ms, tunnx_busy, ort_busy, kernels = {}, {}, {}, {}, {}
    onednn_ms, peak_gflops = {}, {}
    for p in range(args.passes):
        for label, file, batch, warmup, iters in cases:
            for threads in args.threads:
                key = (label, threads)
                model = os.path.join(args.models, file)
                report = time_tunnx(args.tunnx, model, batch, threads, warmup, iters, args.optimization)
                tunnx_ms.setdefault(key, []).append(report["median_ms"])
                tunnx_busy.setdefault(key, []).append(report.get("cores_busy", float("nan")))
                kernels[label] = report.get("kernels", {})
                median, busy = time_ort(model, batch, threads, warmup, iters)
                ort_ms.setdefault(key, []).append(median)
                ort_busy.setdefault(key, []).append(busy)
                extra = ""
                if file == "matmul_1024.onnx":
                    peak = matmul_peak(args.peak_tool, threads, iters)
                    if peak:
                        onednn_ms.setdefault(key, []).append(peak["onednn_ms"])
                        if peak["fma_peak_gflops"]:
                            peak_gflops.setdefault(key, []).append(peak["fma_peak_gflops"])
                        extra = f"   oneDNN alone {peak['onednn_ms']:9.3f} ms"
                print(f"pass {p + 1}/{args.passes}  {label:<12} threads {threads}: tunnx {tunnx_ms[key][-1]:9.3f} ms"
                      f" ({tunnx_busy[key][-1]:.2f} cores busy)   ORT {median:9.3f} ms ({busy:.2f} cores busy){extra}",
                      file=sys.stderr, flush=True)

    info = machine()
    print(f"date: {datetime.date.today().isoformat()}")
    print(f"machine: {info.get('Model name', '?')}, {info.get('CPU(s)', '?')} CPUs "
          f"({info.get('Core(s) per socket', '?')} cores x {info.get('Socket(s)', '?')} sockets), simd: {info['simd']}")
    version = subprocess.run([args.tunnx, "--version"], capture_output=True, text=True).stdout.strip()
    level = "default" if args.optimization is None else str(args.optimization)
    print(f"{version}; onnxruntime {ort.__version__}; {args.passes} passes, median of per-pass medians; "
          f"tunnx optimization level {level}")
    # Other jobs on the machine skew both runtimes (the 2-thread rows most): say how busy it was.
    print(f"1-minute load average: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after\n")
    # cores busy: CPU time / wall time of the timed runs, median over passes; above the thread count
    # means the runtime used more threads than asked (or spun).
    header = (f"| {'case':<12} | threads | {'tunnx ms':>9} | {'ORT ms':>9} | tunnx/ORT | cores busy tunnx / ORT "
              f"| {'MatMul GFLOP/s tunnx / ORT':>26} |")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    rows = []
    for label, file, batch, _, _ in cases:
        for threads in args.threads:
            t = statistics.median(tunnx_ms[(label, threads)])
            o = statistics.median(ort_ms[(label, threads)])
            tb = statistics.median(tunnx_busy[(label, threads)])
            ob = statistics.median(ort_busy[(label, threads)])
            busy = f"{tb:.2f} / {ob:.2f}"
            gflops = f"{MATMUL_FLOP / t / 1e6:.1f} / {MATMUL_FLOP / o / 1e6:.1f}" if file == "matmul_1024.onnx" else ""
            print(f"| {label:<12} | {threads:>7} | {t:>9.3f} | {o:>9.3f} | {t / o:>9.2f} | {busy:>22} | {gflops:>26} |")
            rows.append({"case": label, "model": file, "batch": batch, "threads": threads, "tunnx_median_ms": t,
                         "ort_median_ms": o, "ratio": t / o, "tunnx_cores_busy": tb, "ort_cores_busy": ob,
                         "tunnx_pass_medians_ms": tunnx_ms[(label, threads)],
                         "ort_pass_medians_ms": ort_ms[(label, threads)]})
    if onednn_ms:
        print("\nMatMul 1024^3 against the machine (medians over passes; % of the measured FMA peak x threads):")
        print("| threads | FMA peak GFLOP/s | oneDNN alone ms | tunnx ms | ORT ms | oneDNN alone % | tunnx % | ORT % |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for label, file, batch, _, _ in cases:
            if file != "matmul_1024.onnx":
                continue
            for threads in args.threads:
                key = (label, threads)
                if key not in onednn_ms:
                    continue
                d = statistics.median(onednn_ms[key])
                t = statistics.median(tunnx_ms[key])
                o = statistics.median(ort_ms[key])
                peak = statistics.median(peak_gflops[key]) * threads if key in peak_gflops else float("nan")
                pct = lambda ms: 100 * MATMUL_FLOP / ms / 1e6 / peak  # noqa: E731
                print(f"| {threads} | {peak:.1f} | {d:.3f} | {t:.3f} | {o:.3f} | {pct(d):.0f}% | {pct(t):.0f}% "
                      f"| {pct(o):.0f}% |")
                for row in rows:
                    if row["case"] == label and row["threads"] == threads:
                        row.update({"onednn_alone_ms": d, "fma_peak_gflops_per_core": peak / threads,
                                    "onednn_alone_pass_ms": onednn_ms[key]})
    print("\ntunnx kernels:")
    for label, ks in kernels.items():
        print(f"  {label}: " + ", ".join(f"{k} x{n}" for k, n in sorted(ks.items())))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": datetime.date.today().isoformat(), "machine": info, "tunnx": version,
                       "passes": args.passes, "results": rows, "kernels": kernels}, f, indent=2)


if __name__ == "__main__":
    main()
