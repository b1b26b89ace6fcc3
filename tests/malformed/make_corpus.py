"""Regenerates the malformed-model corpus: python3 make_corpus.py (needs onnx==1.23.2).

Each file is written beside this script; expected.tsv maps file -> a phrase its error must contain.
"""
import os, struct
import onnx
from onnx import helper, TensorProto

here = os.path.dirname(os.path.abspath(__file__))
expected = []

def save(name, data, phrase):
    with open(os.path.join(here, name), "wb") as f:
        f.write(data)
    expected.append((name, phrase))

def model(nodes, inputs, outputs, inits=(), opset=18):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 10
    return m.SerializeToString()

X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
good = model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [X], [Y],
             [helper.make_tensor("w", TensorProto.FLOAT, [64], [0.5] * 64)])

def varint(v):
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7F) | 0x80]); v >>= 7
    return out + bytes([v])

def field(num, payload):
    return varint((num << 3) | 2) + varint(len(payload)) + payload

def raw_tensor(name, dims, dtype, raw=None, extra=b""):
    t = TensorProto(); t.name = name; t.dims.extend([0] * len(dims)); t.data_type = dtype
    b = b"".join(varint((1 << 3) | 0) + varint(d & (2**64 - 1)) for d in dims)
    b += varint((2 << 3) | 0) + varint(dtype) + field(8, name.encode())
    if raw is not None:
        b += field(9, raw)
    return b + extra

def model_with_init(tensor_bytes):
    g = onnx.GraphProto(); g.name = "g"
    g.node.extend([helper.make_node("Relu", ["x"], ["y"], name="relu")])
    g.input.extend([X]); g.output.extend([Y])
    gb = g.SerializeToString() + field(5, tensor_bytes)
    return varint((1 << 3) | 0) + varint(10) + field(8, varint((2 << 3) | 0) + varint(18)) + field(7, gb)

save("empty.onnx", b"", "empty")
save("not_protobuf.onnx", b"this is a text file, not an ONNX model\n" * 3, "ONNX")
save("truncated.onnx", good[: len(good) // 2], "truncated")
save("bad_wire_type.onnx", b"\x0f\x01\x02\x03", "wire type")
save("varint_overflow.onnx", b"\x08" + b"\xff" * 11, "varint")
save("length_overflow.onnx", b"\x3a" + varint(2**60) + b"\x00" * 8, "truncated")
save("no_graph.onnx", varint((1 << 3) | 0) + varint(10), "no graph")
save("cyclic.onnx", model([helper.make_node("Relu", ["b"], ["a"], name="n1"), helper.make_node("Relu", ["a"], ["b"], name="n2"),
                           helper.make_node("Add", ["x", "a"], ["y"], name="n3")], [X], [Y]), "cycle")
save("self_loop.onnx", model([helper.make_node("Add", ["x", "y"], ["y"], name="selfadd")], [X], [Y]), "cycle")
save("undefined_input.onnx", model([helper.make_node("Add", ["x", "ghost"], ["y"], name="add")], [X], [Y]), "never defined")
save("undefined_output.onnx", model([helper.make_node("Relu", ["x"], ["z"], name="relu")], [X], [Y]), "never defined")
save("duplicate_output_names.onnx", model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [X], [Y, Y]), "twice")
save("duplicate_definition.onnx", model([helper.make_node("Relu", ["x"], ["y"], name="r1"), helper.make_node("Relu", ["x"], ["y"], name="r2")], [X], [Y]), "more than one node")
save("unknown_dtype.onnx", model_with_init(raw_tensor("w", [4], 99, b"\x00" * 64)), "unknown data type 99")
save("huge_dim.onnx", model_with_init(raw_tensor("w", [2**62], 1, b"\x00" * 64)), "2^40")
save("negative_dim.onnx", model_with_init(raw_tensor("w", [-3], 1, b"\x00" * 12)), "negative dim")
save("short_data.onnx", model_with_init(raw_tensor("w", [100], 1, b"\x00" * 80)), "needs 400")
save("short_typed_data.onnx", model_with_init(raw_tensor("w", [5], 1, None, extra=field(4, struct.pack("<2f", 1.0, 2.0)))), "needs 5")
ext = lambda loc: raw_tensor("w", [4], 1, None, extra=field(13, field(1, b"location") + field(2, loc.encode())) + varint((14 << 3) | 0) + varint(1))
save("external_escape.onnx", model_with_init(ext("../../../etc/passwd")), "escapes")
save("external_absolute.onnx", model_with_init(ext("/etc/passwd")), "escapes")
save("external_missing.onnx", model_with_init(ext("no_such_weights.bin")), "no_such_weights.bin")
Xh = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2**62, 3])
save("input_dim_huge.onnx", model([helper.make_node("Relu", ["x"], ["y"])], [Xh], [Y]), "2^40")
S = helper.make_tensor_sequence_value_info("x", TensorProto.FLOAT, [2, 3])
save("sequence_input.onnx", model([helper.make_node("Identity", ["x"], ["y"])], [S], [Y]), "sequence")
A = helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])
B = helper.make_tensor_value_info("b", TensorProto.FLOAT, [4, 5])
save("broadcast_mismatch.onnx", model([helper.make_node("Add", ["a", "b"], ["y"], name="add")], [A, B], [Y]), "broadcast")

# If subgraphs nested 5000 deep, written directly in wire format (protobuf libraries refuse to).
cond = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
leaf = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "leaf", [], [Y]).SerializeToString()
deep = leaf
for i in range(5000):
    attr = field(1, b"then_branch") + field(6, deep) + varint((20 << 3) | 0) + varint(5)
    attr2 = field(1, b"else_branch") + field(6, leaf) + varint((20 << 3) | 0) + varint(5)
    node = field(1, b"c") + field(2, b"y") + field(4, b"If") + field(5, attr) + field(5, attr2)
    deep = field(1, node) + field(12, Y.SerializeToString())
top = deep + field(11, cond.SerializeToString()) + field(11, X.SerializeToString())
save("nested_if_5000.onnx", varint((1 << 3) | 0) + varint(10) + field(8, varint((2 << 3) | 0) + varint(18)) + field(7, top), "too deeply")

with open(os.path.join(here, "expected.tsv"), "w") as f:
    f.write("# file\tphrase its one-line error must contain\n")
    for n, p in expected:
        f.write(f"{n}\t{p}\n")
print(len(expected), "files")
