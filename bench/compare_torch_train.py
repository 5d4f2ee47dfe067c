#!/usr/bin/env python3
"""One training step in tunnx against PyTorch CPU on the models of make_train_models.py, run alternately.

For every pass, every case (model, threads) runs build/bench/tunnx_train_step --json and then PyTorch in a
fresh Python process, with the same model definition, initial weights, batch, loss (cross-entropy),
optimizer (SGD, lr 0.01, no momentum) and the same warm-up and iteration counts, so slow drift of the
machine hits both. A PyTorch step is timed as a user writes it: zero_grad() (set_to_none), forward, loss,
backward, optimizer.step(); a tunnx step is Trainer::step(batch), which does the same. The table reports,
per case, the median over passes of each pass's median step time, the tunnx/PyTorch ratio (below 1:
tunnx is faster), CPU time / wall time of the timed steps, and each process's peak RSS (getrusage
ru_maxrss; PyTorch's includes the ~0.5 GB of importing torch, reported apart as "after import").
The first step's loss of both is printed as a check that they train the same thing.

With a Python that has torch, onnx and numpy:
  python bench/make_train_models.py
  python bench/compare_torch_train.py [--passes 3] [--threads 1 2] [--only "MLP b64"] [--split] [--json FILE]
"""
import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LR = 0.01

# (label, model name in bench/models, warmup, iters): one pass of every case takes ~1-2 min on 2 cores.
CASES = [
    ("MLP b64", "train_mlp", 5, 50),
    ("BERT layer b8 s128", "train_bert_layer", 2, 8),
]


def files(models, name):
    return {ext: os.path.join(models, f"{name}.{ext}") for ext in ("onnx", "pt", "x.npy", "y.npy")}


def time_tunnx(tool, models, name, threads, warmup, iters, split):
    f = files(models, name)
    cmd = [tool, f["onnx"], "--input", f"input={f['x.npy']}", "--target", f["y.npy"], "--loss", "cross_entropy",
           "--optimizer", "sgd", "--lr", str(LR), "--threads", str(threads), "--warmup", str(warmup),
           "--iters", str(iters), "--json"]
    if split:
        cmd.append("--split")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return json.loads(r.stdout)


def time_torch(models, name, threads, warmup, iters, split):
    cmd = [sys.executable, os.path.abspath(__file__), "--torch-worker", name, "--models", models,
           "--threads", str(threads), "--warmup", str(warmup), "--iters", str(iters)]
    if split:
        cmd.append("--split")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"PyTorch worker for {name} failed ({r.returncode}): {r.stderr.strip()}")
    return json.loads(r.stdout)


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def torch_worker(args):
    """Runs in its own process: PyTorch's side of one case, printed as one JSON object."""
    import numpy as np
    import torch

    threads = args.threads[0]
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    rss_after_import = peak_rss_bytes()
    sys.path.insert(0, HERE)
    import make_train_models

    f = files(args.models, args.torch_worker)
    model = make_train_models.MODELS[args.torch_worker][0]()
    model.load_state_dict(torch.load(f["pt"]))
    model.train()
    x = torch.from_numpy(np.load(f["x.npy"]))
    y = torch.from_numpy(np.load(f["y.npy"]))
    loss_fn = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)

    def step():
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    first_loss = last_loss = None
    for i in range(args.warmup):
        loss = step()
        if i == 0:
            first_loss = loss
    samples = []
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for i in range(args.iters):
        start = time.perf_counter()
        last_loss = step()
        samples.append((time.perf_counter() - start) * 1000)
        if args.warmup == 0 and i == 0:
            first_loss = last_loss
    cores_busy = (time.process_time() - cpu_start) / (time.perf_counter() - wall_start)
    out = {"median_ms": statistics.median(samples), "cores_busy": cores_busy, "first_loss": first_loss,
           "last_loss": last_loss, "rss_after_import_bytes": rss_after_import, "threads": torch.get_num_threads(),
           "torch": torch.__version__}
    if args.split:
        backward, update = [], []
        for _ in range(args.iters):
            start = time.perf_counter()
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            backward.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            optimizer.step()
            update.append((time.perf_counter() - start) * 1000)
        out["backward_median_ms"] = statistics.median(backward)
        out["optimizer_step_median_ms"] = statistics.median(update)
    out["peak_rss_bytes"] = peak_rss_bytes()
    print(json.dumps(out))


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def mib(b):
    return b / (1024 * 1024)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tool", default=os.path.join(ROOT, "build", "bench", "tunnx_train_step"))
    parser.add_argument("--models", default=os.path.join(HERE, "models"))
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", nargs="*", help="case labels to run (default all)")
    parser.add_argument("--warmup", type=int, help="override every case's warm-up steps")
    parser.add_argument("--iters", type=int, help="override every case's timed steps")
    parser.add_argument("--split", action="store_true",
                        help="also time backward (zero_grad + forward + loss + backward) and the optimizer step apart")
    parser.add_argument("--json", help="also write every measurement to this file")
    parser.add_argument("--torch-worker", metavar="MODEL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        return torch_worker(args)

    cases = [(label, name, args.warmup if args.warmup is not None else w, args.iters or n)
             for label, name, w, n in CASES if not args.only or label in args.only]
    if not cases:
        raise SystemExit(f"--only matched no case (cases: {', '.join(c[0] for c in CASES)})")
    for _, name, _, _ in cases:
        for path in files(args.models, name).values():
            if not os.path.exists(path):
                raise SystemExit(f"{path} is missing: run bench/make_train_models.py first")
    if not os.path.exists(args.tool):
        raise SystemExit(f"{args.tool} is missing: cmake --build build --target tunnx_train_step")

    load_before = os.getloadavg()[0]
    results = {}  # (label, threads) -> {"tunnx": [...], "torch": [...]}
    for p in range(args.passes):
        for label, name, warmup, iters in cases:
            for threads in args.threads:
                t = time_tunnx(args.tool, args.models, name, threads, warmup, iters, args.split)
                o = time_torch(args.models, name, threads, warmup, iters, args.split)
                r = results.setdefault((label, threads), {"tunnx": [], "torch": []})
                r["tunnx"].append(t)
                r["torch"].append(o)
                split = ""
                if args.split:
                    split = (f"   [backward {t['backward_median_ms']:.3f} / {o['backward_median_ms']:.3f} ms, "
                             f"optimizer {t['optimizer_step_median_ms']:.3f} / {o['optimizer_step_median_ms']:.3f} ms]")
                print(f"pass {p + 1}/{args.passes}  {label:<18} threads {threads}: tunnx {t['median_ms']:9.3f} ms "
                      f"({t['cores_busy']:.2f} cores busy)   PyTorch {o['median_ms']:9.3f} ms "
                      f"({o['cores_busy']:.2f} cores busy){split}", file=sys.stderr, flush=True)

    torch_version = next(iter(results.values()))["torch"][0]["torch"]
    print(f"date: {datetime.date.today().isoformat()}")
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs")
    print(f"PyTorch {torch_version}; {args.passes} passes, median of per-pass medians; SGD lr {LR}, cross-entropy")
    print(f"1-minute load average: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after\n")
    header = ("| case | threads | steps | tunnx ms | PyTorch ms | tunnx/PyTorch | per-pass ratios | cores busy tunnx / PyTorch "
              "| peak RSS MiB tunnx / PyTorch (after import) | first loss tunnx / PyTorch |")
    print(header)
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    rows = []
    for label, name, warmup, iters in cases:
        for threads in args.threads:
            r = results[(label, threads)]
            tm = [x["median_ms"] for x in r["tunnx"]]
            om = [x["median_ms"] for x in r["torch"]]
            t, o = statistics.median(tm), statistics.median(om)
            tb = statistics.median(x["cores_busy"] for x in r["tunnx"])
            ob = statistics.median(x["cores_busy"] for x in r["torch"])
            trss = max(x["peak_rss_bytes"] for x in r["tunnx"])
            orss = max(x["peak_rss_bytes"] for x in r["torch"])
            oimp = max(x["rss_after_import_bytes"] for x in r["torch"])
            tl, ol = r["tunnx"][0]["first_loss"], r["torch"][0]["first_loss"]
            ratios = " ".join(f"{a / b:.2f}" for a, b in zip(tm, om))
            print(f"| {label} | {threads} | {warmup}+{iters} | {t:.3f} | {o:.3f} | {t / o:.2f} | {ratios} | "
                  f"{tb:.2f} / {ob:.2f} | {mib(trss):.0f} / {mib(orss):.0f} ({mib(oimp):.0f}) | {tl:.6f} / {ol:.6f} |")
            row = {"case": label, "model": name, "threads": threads, "warmup": warmup, "iters": iters,
                   "tunnx_median_ms": t, "torch_median_ms": o, "ratio": t / o, "tunnx_pass_medians_ms": tm,
                   "torch_pass_medians_ms": om, "tunnx_cores_busy": tb, "torch_cores_busy": ob,
                   "tunnx_peak_rss_bytes": trss, "torch_peak_rss_bytes": orss, "torch_rss_after_import_bytes": oimp,
                   "tunnx_first_loss": tl, "torch_first_loss": ol}
            if args.split:
                for side in ("tunnx", "torch"):
                    for key in ("backward_median_ms", "optimizer_step_median_ms"):
                        row[f"{side}_{key}"] = statistics.median(x[key] for x in r[side])
            rows.append(row)
            if abs(tl - ol) > 1e-3 * max(abs(ol), 1e-3):
                print(f"warning: {label}: first losses differ (tunnx {tl}, PyTorch {ol}): not the same computation?",
                      file=sys.stderr)
    if args.split:
        print("\nbackward (forward + loss + backward) and optimizer step apart, medians over passes, ms:")
        print("| case | threads | backward tunnx / PyTorch | optimizer step tunnx / PyTorch |")
        print("|---|---:|---:|---:|")
        for row in rows:
            print(f"| {row['case']} | {row['threads']} | {row['tunnx_backward_median_ms']:.3f} / "
                  f"{row['torch_backward_median_ms']:.3f} | {row['tunnx_optimizer_step_median_ms']:.3f} / "
                  f"{row['torch_optimizer_step_median_ms']:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": datetime.date.today().isoformat(), "cpu": cpu_model(), "torch": torch_version,
                       "passes": args.passes, "lr": LR, "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
