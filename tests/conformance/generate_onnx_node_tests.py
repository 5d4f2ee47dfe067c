"""Writes the node test cases defined in the `onnx` PyPI wheel (opsets up to 23 for onnx 1.18+) in the
libonnx-testdata layout: OUT/node/<case>/model.onnx + test_data_set_N/{input,output}_N.pb.

The wheel ships the case definitions (onnx/backend/test/case/node/*.py) but not their data; this
script runs the definitions. Used by tests/conformance/run_newer_node_tests.sh.

    .venv/bin/python tests/conformance/generate_onnx_node_tests.py OUT
"""
import os
import sys

import onnx
from onnx import numpy_helper
from onnx.backend.test.case import node as node_cases


def write_value(path, value, value_type):
    if value_type.HasField("sequence_type"):
        proto = numpy_helper.from_list(value)
    elif value_type.HasField("optional_type"):
        proto = numpy_helper.from_optional(value)
    elif isinstance(value, onnx.TensorProto):
        proto = value
    else:
        proto = numpy_helper.from_array(value)
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())


def main(out_dir):
    written = 0
    for case in node_cases.collect_testcases():
        case_dir = os.path.join(out_dir, "node", case.name)
        os.makedirs(case_dir, exist_ok=True)
        with open(os.path.join(case_dir, "model.onnx"), "wb") as f:
            f.write(case.model.SerializeToString())
        graph = case.model.graph
        for i, (inputs, outputs) in enumerate(case.data_sets):
            set_dir = os.path.join(case_dir, f"test_data_set_{i}")
            os.makedirs(set_dir, exist_ok=True)
            for j, value in enumerate(inputs):
                write_value(os.path.join(set_dir, f"input_{j}.pb"), value, graph.input[j].type)
            for j, value in enumerate(outputs):
                write_value(os.path.join(set_dir, f"output_{j}.pb"), value, graph.output[j].type)
        written += 1
    print(f"wrote {written} node test cases (onnx {onnx.__version__}) to {out_dir}/node")


if __name__ == "__main__":
    main(sys.argv[1])
