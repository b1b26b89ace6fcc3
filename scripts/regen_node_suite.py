#!/usr/bin/env python3
"""Regenerates the ONNX backend node conformance suite from the onnx Python package.

Usage:  pip install onnx==1.23.2 && python3 scripts/regen_node_suite.py OUT
Writes OUT/onnx-node-tests/node/<case>/{model.onnx, test_data_set_N/{input,output}_K.pb}; then
point PETASOS_SHARED at OUT. Only tensor values are written (cases whose inputs or outputs are
sequences or optionals lack those files). Generators that draw unseeded random inputs produce
different values than another copy of the suite; ops and shapes are the same.
"""
import os
import shutil
import sys

import onnx.backend.test.case.node as node_cases
from onnx import TensorProto, numpy_helper


def write_value(path, value, name):
    if isinstance(value, TensorProto):
        data = value.SerializeToString()
    else:
        data = numpy_helper.from_array(value, name).SerializeToString()
    with open(path, "wb") as f:
        f.write(data)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = os.path.join(sys.argv[1], "onnx-node-tests", "node")
    count = 0
    for case in node_cases.collect_testcases():
        folder = os.path.join(root, case.name)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        with open(os.path.join(folder, "model.onnx"), "wb") as f:
            f.write(case.model.SerializeToString())
        for k, (inputs, outputs) in enumerate(case.data_sets):
            data_dir = os.path.join(folder, f"test_data_set_{k}")
            os.makedirs(data_dir)
            for kind, values, infos in (("input", inputs, case.model.graph.input), ("output", outputs, case.model.graph.output)):
                for j, v in enumerate(values):
                    try:
                        write_value(os.path.join(data_dir, f"{kind}_{j}.pb"), v, infos[j].name)
                    except Exception:
                        break
        count += 1
    print(f"{count} cases written to {root}")


if __name__ == "__main__":
    main()
