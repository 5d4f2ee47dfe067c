"""Runs ONNX node test cases through the command line, `tunnx run MODEL --test-data DIR`, once per
test_data_set_N, and checks that every in-scope case the in-process conformance runner passes also
passes there: exit 0 when the outputs match, 1 when they do not.

    cli_contract.py TUNNX DATA_DIR INPROCESS_REPORT REPORT [--jobs N] [--timeout S]

DATA_DIR holds suites of cases (DATA_DIR/node/<case>/model.onnx + test_data_set_N/); INPROCESS_REPORT
is tunnx_conformance's --report TSV (case, outcome, detail); REPORT is written as TSV (case, outcome,
first line of the error). Exits 1, listing them, when an in-scope case passes in-process but not
through `tunnx run`. Needs the `onnx` package (the project's .venv) to read model types.
"""
import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import onnx

# Ops whose outputs are draws from a random generator: the expected data holds one draw, so no run
# can match it. The in-process runner checks these cases by dtype, shape and distribution instead
# (is_random_case in onnx_test_case.cc, which this list mirrors; main() fails when the two disagree).
RANDOM_OPS = {"Bernoulli", "RandomUniform", "RandomUniformLike", "RandomNormal", "RandomNormalLike", "Multinomial"}
# Dropout in training mode drops random elements; the in-process runner knows these cases by name.
RANDOM_CASE_MARK = "training_dropout"


def op_types(graph, out):
    """Every op type in `graph` and its subgraphs (If/Loop/Scan bodies)."""
    for node in graph.node:
        out.add(node.op_type)
        for attr in node.attribute:
            if attr.HasField("g"):
                op_types(attr.g, out)
            for g in attr.graphs:
                op_types(g, out)
    return out


def out_of_scope(model_path):
    """Why a case is left out of the command-line contract, or None when it is in scope."""
    model = onnx.load(str(model_path), load_external_data=False)
    # Sequence and optional values are outside `tunnx run`'s file contract: --output-dir writes
    # tensors only (.npy or TensorProto .pb), and the contract this checks is the one for tensor
    # models. (--test-data does read SequenceProto/OptionalProto files; those cases are not gated.)
    for value in list(model.graph.input) + list(model.graph.output):
        if value.type.HasField("sequence_type") or value.type.HasField("optional_type"):
            return "sequence/optional value '" + value.name + "'"
    ops = op_types(model.graph, set())
    for function in model.functions:
        for node in function.node:
            ops.add(node.op_type)
    random = sorted(ops & RANDOM_OPS)
    if random:
        return "random op " + ", ".join(random)
    if RANDOM_CASE_MARK in model_path.parent.name:
        return "random op Dropout (training mode)"
    return None


def first_line(text):
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def run_set(tunnx, model, data_set, timeout):
    """(outcome, detail) of `tunnx run MODEL --test-data DATA_SET`."""
    command = [str(tunnx), "run", str(model), "--test-data", str(data_set)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", data_set.name + ": no answer within " + str(timeout) + " s"
    if done.returncode == 0:
        return "pass", ""
    if done.returncode < 0:
        return "error", data_set.name + ": killed by signal " + str(-done.returncode)
    if done.returncode == 1 and "FAILED: outputs differ" in done.stdout:
        # The table row of the first mismatching output: "NAME  ABS  REL  MISMATCH: DETAIL".
        row = next((line for line in done.stdout.splitlines() if "MISMATCH: " in line), "? MISMATCH: ?")
        output, detail = row.split()[0], row.split("MISMATCH: ", 1)[1]
        return "fail", data_set.name + " output '" + output + "': " + detail.strip()
    why = first_line(done.stderr) or first_line(done.stdout)
    return "error", data_set.name + ": exit " + str(done.returncode) + ": " + why


def run_case(tunnx, case_dir, timeout):
    sets = sorted(p for p in case_dir.iterdir() if p.is_dir() and p.name.startswith("test_data_set_"))
    if not sets:
        return "error", "no test_data_set_* folder"
    for data_set in sets:
        outcome, detail = run_set(tunnx, case_dir / "model.onnx", data_set, timeout)
        if outcome != "pass":
            return outcome, detail
    return "pass", ""


def read_report(path):
    """case -> (outcome, detail) from tunnx_conformance's --report; the per-op table after it is skipped."""
    cases = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                break
            if line.startswith("#"):
                continue
            fields = line.split("\t")
            cases[fields[0]] = (fields[1], fields[2] if len(fields) > 2 else "")
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tunnx", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("inprocess_report", type=Path)
    parser.add_argument("report", type=Path)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--timeout", type=float, default=120, help="seconds per tunnx process")
    args = parser.parse_args()

    cases = sorted(p.parent for p in args.data.glob("*/*/model.onnx"))
    if not cases:
        sys.exit("cli contract: no cases under " + str(args.data))
    inprocess = read_report(args.inprocess_report)
    started = time.monotonic()

    def check(case_dir):
        name = case_dir.parent.name + "/" + case_dir.name
        why = out_of_scope(case_dir / "model.onnx")
        if why:
            return name, "out-of-scope", why
        return (name,) + run_case(args.tunnx, case_dir, args.timeout)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(check, cases))

    with open(args.report, "w", encoding="utf-8") as f:
        f.write("# case\toutcome\tdetail\n")
        for name, outcome, detail in results:
            f.write(name + "\t" + outcome + "\t" + detail.replace("\t", " ") + "\n")

    disagreements, failures = [], []
    for name, outcome, detail in results:
        if outcome == "out-of-scope":
            continue
        inproc_outcome, inproc_detail = inprocess.get(name, ("missing", ""))
        if "random op" in inproc_detail:
            disagreements.append(name)
        elif inproc_outcome == "pass" and outcome != "pass":
            failures.append((name, outcome, detail))
    for name in disagreements:
        print("RANDOM LISTS DISAGREE\t" + name + "\tthe in-process runner treats it as random; update "
              "RANDOM_OPS in cli_contract.py")
    for name, outcome, detail in failures:
        print("CLI FAILURE\t" + name + "\t" + outcome + ": " + detail)
    in_scope = [r for r in results if r[1] != "out-of-scope"]
    passed = sum(1 for r in in_scope if r[1] == "pass")
    print("cli contract: %d of %d in-scope cases pass through tunnx run (%d out of scope); %d that pass in-process "
          "fail here; %.0f s" % (passed, len(in_scope), len(results) - len(in_scope), len(failures),
                                 time.monotonic() - started))
    problems = disagreements + failures
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
