#!/usr/bin/python3
"""Fixtures for tests/test_onnx_graph.c.

Writes into --out:
  * small ONNX files made with the python3-onnx helper API, most of them
    broken on purpose (cycle, missing input, bad tensor sizes, ...), a few
    valid but unusual (unsorted nodes, Constant nodes, unknown ops, every
    tensor encoding);
  * zero_byte.onnx, garbage*.onnx, truncated_small.onnx and truncated.txt
    (cut points inside length-delimited fields of a real model, so every
    prefix is undecodable; the C test cuts the file in memory);
  * ref_<model>.txt for each shared model: node order and op types as
    python3-onnx reads them, initializer shapes and sums, and selected
    weight values as exact float32 bit patterns (numpy_helper), so the C
    loader's byte order and offsets are checked against an independent
    decoder.

Nothing binary is committed: everything is made here at test time.
"""
import argparse
import os
import struct

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import set_external_data

SHARED_MODELS = [
    "resnet50v2_trunk.onnx",
    "squeezenet1.1.onnx",
    "mobilenetv2_gluon_features.onnx",
]


def vi(name, dims=None, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, dims)


def model(nodes, inputs, outputs, inits=(), opset=13, **kw):
    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              initializer=list(inits))
    if opset is None:
        return helper.make_model(graph, opset_imports=[], **kw)
    return helper.make_model(graph,
                             opset_imports=[helper.make_opsetid("", opset)],
                             **kw)


def save(out, name, m):
    with open(os.path.join(out, name), "wb") as f:
        f.write(m.SerializeToString())


def float_tensor(name, dims, raw_len=None):
    """FLOAT tensor with raw_data of raw_len bytes (default: what dims say)."""
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend(dims)
    n = int(np.prod(dims)) if dims else 1
    t.raw_data = bytes(4 * n if raw_len is None else raw_len)
    return t


def relu(name, x, y):
    return helper.make_node("Relu", [x], [y], name=name)


# ------------------------------------------------------------ broken graphs

def gen_graph_errors(out):
    # Cycle A <-> B; C is only downstream of it and must not be named.
    save(out, "cycle.onnx", model(
        [relu("C", "a", "y"),
         helper.make_node("Add", ["x", "b"], ["a"], name="A"),
         relu("B", "a", "b")],
        [vi("x", [1])], [vi("y", [1])]))
    save(out, "missing_input.onnx", model(
        [helper.make_node("Conv", ["x", "w_missing"], ["y"], name="conv1")],
        [vi("x", [1, 1, 4, 4])], [vi("y")]))
    save(out, "duplicate_producer.onnx", model(
        [relu("relu_a", "x", "y"), relu("relu_b", "x", "y")],
        [vi("x", [1])], [vi("y", [1])]))
    save(out, "duplicate_init_output.onnx", model(
        [relu("overwriter", "x", "w")],
        [vi("x", [2])], [vi("w", [2])],
        inits=[float_tensor("w", [2])]))
    save(out, "duplicate_input.onnx", model(
        [relu("r", "x", "y")], [vi("x", [1]), vi("x", [1])], [vi("y")]))
    save(out, "output_never_produced.onnx", model(
        [relu("r", "x", "y")], [vi("x", [1])], [vi("y"), vi("ghost")]))
    save(out, "no_opset.onnx", model(
        [relu("r", "x", "y")], [vi("x", [1])], [vi("y")], opset=None))
    no_graph = onnx.ModelProto()
    no_graph.ir_version = 7
    save(out, "no_graph.onnx", no_graph)


def gen_big_chain(out, n=100000):
    """A chain of n Relu nodes listed last to first: sorting it must not
    take O(n^2) name comparisons."""
    nodes = [relu("n%d" % i, "v%d" % i, "v%d" % (i + 1))
             for i in reversed(range(n))]
    save(out, "big_chain.onnx", model(nodes, [vi("v0", [1])],
                                      [vi("v%d" % n, [1])]))


def gen_tensor_errors(out):
    def with_init(name, t):
        save(out, name, model(
            [helper.make_node("Mul", ["x", t.name], ["y"], name="mul")],
            [vi("x", [2, 3])], [vi("y")], inits=[t]))

    with_init("raw_len_mismatch.onnx", float_tensor("w_short", [2, 3], 20))
    with_init("raw_len_long.onnx", float_tensor("w_long", [2, 3], 28))
    t = helper.make_tensor("w_floats", TensorProto.FLOAT, [4], [1, 2, 3, 4])
    del t.float_data[3]
    with_init("float_data_mismatch.onnx", t)
    t = float_tensor("w_neg", [2, 3])
    t.dims[0] = -1
    with_init("negative_dim.onnx", t)
    # No data at all: the element count must be refused before anything
    # is allocated or multiplied into an overflow.
    t = TensorProto(name="w_huge", data_type=TensorProto.FLOAT,
                    dims=[1 << 62, 1 << 62, 1 << 62])
    with_init("absurd_dims.onnx", t)
    t = TensorProto(name="w_big", data_type=TensorProto.FLOAT,
                    dims=[65536, 65536])
    with_init("too_many_elements.onnx", t)
    t = float_tensor("w_rank9", [1] * 9)
    with_init("rank9.onnx", t)
    t = float_tensor("w_ext", [2, 3])
    set_external_data(t, location="w_ext.bin", offset=0, length=24)
    t.data_location = TensorProto.EXTERNAL
    t.ClearField("raw_data")
    with_init("external_data.onnx", t)
    # Errors in a Constant value, after a node has been copied: the
    # partly built graph must be freed (ASan run) and the output named.
    bad = float_tensor("v", [2], 4)
    save(out, "constant_bad.onnx", model(
        [relu("r", "x", "a"),
         helper.make_node("Constant", [], ["k"], name="c_bad", value=bad),
         helper.make_node("Add", ["a", "k"], ["y"], name="add")],
        [vi("x", [2])], [vi("y")]))
    save(out, "input_negative_dim.onnx", model(
        [relu("r", "x", "y")], [vi("x", [1, -2])], [vi("y")]))


# ----------------------------------------------------- valid but unusual

def gen_unsorted(out):
    # File order n0, n3, n1, "" (-> Relu_3). A stable topological sort
    # gives n0, n1, Relu_3, n3; a FIFO Kahn would give n0, Relu_3, n1, n3.
    save(out, "unsorted.onnx", model(
        [relu("n0", "x", "a"),
         helper.make_node("Add", ["c", "d"], ["y"], name="n3"),
         relu("n1", "a", "c"),
         helper.make_node("Relu", ["x"], ["d"])],
        [vi("x", ["N", 4])], [vi("y", ["N", 4])]))


def gen_constants(out):
    nodes = [
        helper.make_node("Constant", [], ["min"], name="c_min",
                         value=helper.make_tensor("v", TensorProto.FLOAT,
                                                  [], [-1.5])),
        helper.make_node("Constant", [], ["max"], name="c_max",
                         value_float=6.0),
        helper.make_node("Constant", [], ["ints"], name="c_ints",
                         value_ints=[1, -2, 3]),
        helper.make_node("Constant", [], ["one_int"], name="c_int",
                         value_int=7),
        helper.make_node("Constant", [], ["fl"], name="c_floats",
                         value_floats=[0.25, 0.5]),
        helper.make_node("Constant", [], ["i64mat"], name="c_i64",
                         value=helper.make_tensor("v", TensorProto.INT64,
                                                  [2, 2], [1, 2, 3, -4])),
        # A string constant is not turned into an initializer: stays a node.
        helper.make_node("Constant", [], ["s"], name="c_str",
                         value_string="hi"),
        helper.make_node("Clip", ["x", "min", "max"], ["y"], name="clip"),
        helper.make_node("Sink", ["ints", "one_int", "fl", "i64mat", "s"],
                         ["z"], name="sink", domain="test.domain"),
    ]
    save(out, "constant.onnx", model(nodes, [vi("x", [1, 3])],
                                     [vi("y"), vi("z")]))


def gen_unknown_op(out):
    attrs = dict(an_int=-3, some_ints=[4, 5, 6], a_float=0.5,
                 some_floats=[1.5, -2.25], a_string="hello",
                 a_tensor=helper.make_tensor("t", TensorProto.FLOAT, [1],
                                             [1.0]))
    nodes = [
        helper.make_node("FancyOp", ["x"], ["a"], name="mystery", **attrs),
        helper.make_node("Thing", ["a", "", "x"], ["y", ""], name="thing",
                         domain="com.example"),
    ]
    # Old exporters leave AttributeProto.type unset.
    for key, value in (("untyped_int", 9), ("untyped_floats", [0.5, 1.0])):
        attr = helper.make_attribute(key, value)
        attr.ClearField("type")
        nodes[1].attribute.append(attr)
    # The default domain spelled "ai.onnx", listed after another domain.
    graph = helper.make_graph(nodes, "unknown", [vi("x", [1, 2])],
                              [vi("y")])
    m = helper.make_model(graph, opset_imports=[
        helper.make_opsetid("com.example", 1),
        helper.make_opsetid("ai.onnx", 11)])
    save(out, "unknown_op.onnx", m)


def gen_encodings(out):
    """Every tensor encoding the loader copies, with known values."""
    f_raw = numpy_helper.from_array(
        np.array([[1.0, -2.5, 3.14159274, 1e-30],
                  [65504.0, -0.0, 0.1, 7.0]], dtype=np.float32), "f_raw")
    f_list = helper.make_tensor("f_list", TensorProto.FLOAT, [3],
                                [0.5, -0.75, 2.0])
    i_raw = numpy_helper.from_array(
        np.array([1, -1, 1 << 40, -(1 << 50)], dtype=np.int64), "i_raw")
    i_list = helper.make_tensor("i_list", TensorProto.INT64, [2],
                                [-7, 1 << 33])
    i32 = helper.make_tensor("i32", TensorProto.INT32, [2], [5, 6])
    f_empty = numpy_helper.from_array(np.zeros((0, 3), np.float32), "f_empty")
    inits = [f_raw, f_list, i_raw, i_list, i32, f_empty]
    node = helper.make_node("Use", ["x"] + [t.name for t in inits], ["y"],
                            name="", domain="")
    # IR 3 style: the initializers are listed as graph inputs too; only
    # "x" is a real input.
    inputs = [vi("x", ["N", 3, "H", 17])] + [
        vi(t.name, list(t.dims), t.data_type) for t in inits]
    outputs = [vi("y", None)]
    m = model([node], inputs, outputs, inits=inits, opset=13,
              producer_name="gen_onnx_bad", producer_version="1.2")
    m.ir_version = 3
    helper.set_model_props(m, {"alpha": "one", "beta": ""})
    m.graph.name = "encodings"
    save(out, "encodings.onnx", m)


def gen_garbage(out):
    open(os.path.join(out, "zero_byte.onnx"), "wb").close()
    with open(os.path.join(out, "garbage.onnx"), "wb") as f:
        f.write(bytes(range(255, -1, -1)) * 4)
    with open(os.path.join(out, "garbage_text.onnx"), "wb") as f:
        f.write(b"this is not an ONNX model, just some text\n")


# ---------------------------------------------------------------- truncation

def read_varint(buf, pos):
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def top_level_fields(buf):
    """(field number, wire type, start, end) of each top-level field."""
    fields, pos = [], 0
    while pos < len(buf):
        start = pos
        key, pos = read_varint(buf, pos)
        wire = key & 7
        if wire == 0:
            _, pos = read_varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            n, pos = read_varint(buf, pos)
            pos += n
        elif wire == 5:
            pos += 4
        else:
            raise ValueError("unexpected wire type %d" % wire)
        fields.append((key >> 3, wire, start, pos))
    return fields


def gen_truncated(out, shared):
    source = os.path.join(shared, "models", SHARED_MODELS[0])
    if not os.path.exists(source):
        # Small stand-in with the same layout: a graph, then metadata.
        source = os.path.join(out, "truncation_source.onnx")
        w = numpy_helper.from_array(np.arange(4096, dtype=np.float32), "w")
        m = model([helper.make_node("Mul", ["x", "w"], ["y"], name="mul")],
                  [vi("x", [4096])], [vi("y")], inits=[w])
        helper.set_model_props(m, {"k": "v"})
        save(out, os.path.basename(source), m)
    buf = open(source, "rb").read()
    fields = top_level_fields(buf)
    graph = [f for f in fields if f[0] == 7][0]
    g0, g1 = graph[2], graph[3]
    # Cutting strictly inside a length-delimited field always leaves it
    # incomplete, so no prefix can decode as a (smaller) valid message.
    cuts = [g0 + 1, g0 + 2, g0 + 100, g1 - 1]
    cuts += [g0 + (g1 - g0) * k // 7 for k in range(1, 7)]
    if fields[-1][1] == 2:
        cuts.append(len(buf) - 1)
    cuts = sorted(set(c for c in cuts if 0 < c < len(buf)))
    for c in cuts:
        try:
            onnx.ModelProto().ParseFromString(buf[:c])
        except Exception:
            continue
        raise SystemExit("gen_onnx_bad: prefix of %d bytes still decodes" % c)
    with open(os.path.join(out, "truncated.txt"), "w") as f:
        f.write("source\t%s\n" % os.path.abspath(source))
        for c in cuts:
            f.write("cut\t%d\n" % c)
    with open(os.path.join(out, "truncated_small.onnx"), "wb") as f:
        f.write(buf[:g0 + 100])


# ------------------------------------------------------ shared model refs

def write_reference(out, path):
    m = onnx.load(path)
    rng = np.random.default_rng(20241129)
    lines = []
    for n in m.graph.node:
        lines.append("node\t%s\t%s" % (n.name, n.op_type))
    inits = list(m.graph.initializer)
    for t in inits:
        a = numpy_helper.to_array(t).astype(np.float64)
        lines.append("tensor\t%s\t%s\t%d\t%.17g\t%.17g" % (
            t.name, ",".join(str(d) for d in t.dims), a.size, a.sum(),
            np.abs(a).sum()))
    # Values: first, last and the largest tensor, plus two at random; at
    # the first, last and three random flat indices of each.
    largest = max(range(len(inits)), key=lambda i: numpy_helper.to_array(
        inits[i]).size)
    picks = sorted({0, len(inits) - 1, largest,
                    *rng.integers(0, len(inits), 2).tolist()})
    for i in picks:
        a = numpy_helper.to_array(inits[i]).astype(np.float32).ravel()
        idx = sorted({0, a.size - 1, *rng.integers(0, a.size, 3).tolist()})
        for j in idx:
            bits = struct.unpack("<I", struct.pack("<f", a[j]))[0]
            lines.append("value\t%s\t%d\t0x%08x" % (inits[i].name, j, bits))
    name = "ref_" + os.path.splitext(os.path.basename(path))[0] + ".txt"
    with open(os.path.join(out, name), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--nominal", help="unused; every generator gets it")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    gen_garbage(args.out)
    gen_graph_errors(args.out)
    gen_tensor_errors(args.out)
    gen_unsorted(args.out)
    gen_big_chain(args.out)
    gen_constants(args.out)
    gen_unknown_op(args.out)
    gen_encodings(args.out)
    gen_truncated(args.out, args.shared)
    for name in SHARED_MODELS:
        path = os.path.join(args.shared, "models", name)
        if os.path.exists(path):
            write_reference(args.out, path)


if __name__ == "__main__":
    main()
