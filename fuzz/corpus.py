#!/usr/bin/python3
"""Seed corpora for the fuzz targets (run by fuzz/make_corpus.sh).

  corpus.py base  --out SEEDS   images, ONNX files, and the tiny backbone and
                                training images the model seeds are fit from
  corpus.py model --out SEEDS --model TINY.nmm
                                model files and META JSON texts derived from
                                a tiny model fitted by the CLI

Seeds are small valid files of every kind the decoders handle, the broken
files the unit tests use (made by the same generators, imported from
tests/tools), truncations, and one reproducer per bug the fuzzers found
(marked "regression:"). Nothing here is committed: seeds are made fresh.
"""
import argparse
import json
import os
import shutil
import struct
import sys
import tempfile
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "tools"))

# Seeds above this are left out: the targets run with -max_len 65536.
MAX_SEED = 65536


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def add_truncations(d, name, data, cuts):
    for c in cuts:
        if 0 < c < len(data):
            write(os.path.join(d, f"{name}.cut{c}"), data[:c])


def copy_small(src_dir, dst_dir, exts):
    os.makedirs(dst_dir, exist_ok=True)
    for name in sorted(os.listdir(src_dir)):
        p = os.path.join(src_dir, name)
        if (name.endswith(exts) and os.path.isfile(p)
                and os.path.getsize(p) <= MAX_SEED):
            shutil.copy(p, os.path.join(dst_dir, name))


# ----------------------------------------------------------------- images

def make_images(out):
    import gen_image  # tests/tools: the decoder fixtures, reused as seeds
    with tempfile.TemporaryDirectory() as tmp:
        dec, bad = os.path.join(tmp, "decode"), os.path.join(tmp, "bad")
        os.makedirs(dec)
        os.makedirs(bad)
        gen_image.make_decode_pngs(dec)
        gen_image.make_decode_jpegs(dec, None)
        gen_image.make_bad_files(bad, dec)
        for kind, exts in (("png", (".png",)), ("jpeg", (".jpg",))):
            d = os.path.join(out, kind)
            copy_small(dec, d, exts)
            copy_small(bad, d, exts)
        for name in ("rgb8.png", "rgb_interlaced.png", "palette_trns.png"):
            data = open(os.path.join(dec, name), "rb").read()
            add_truncations(os.path.join(out, "png"), name, data,
                            [8, 16, 33, 40, len(data) // 2, len(data) - 12])
        for name in ("rgb420.jpg", "progressive.jpg", "gray.jpg"):
            data = open(os.path.join(dec, name), "rb").read()
            add_truncations(os.path.join(out, "jpeg"), name, data,
                            [3, 20, 200, len(data) // 2, len(data) - 2])


# ------------------------------------------------------------------- onnx

def vi(name, dims=None, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, dims)


def weights(name, shape, seed):
    rng = np.random.default_rng(seed)
    return numpy_helper.from_array(
        rng.standard_normal(shape).astype(np.float32) * 0.3, name)


def save_model(path, nodes, inputs, outputs, inits, opset=13):
    g = helper.make_graph(nodes, "fuzz", inputs, outputs, initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    data = m.SerializeToString()
    write(path, data)
    return data


def tiny_backbone(path):
    """The backbone the model seeds are fit with: taps t1 (stride 2, 4
    channels) and t2 (stride 4, 6 channels); Conv+BN+Relu, MaxPool and a
    residual Add, so fusion is exercised on load."""
    x = vi("x", ["N", 3, "H", "W"])
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1",
                         kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization",
                         ["c1", "bn_s", "bn_b", "bn_m", "bn_v"], ["n1"],
                         name="bn1", epsilon=1e-5),
        helper.make_node("Relu", ["n1"], ["t1"], name="relu1"),
        helper.make_node("MaxPool", ["t1"], ["p1"], name="pool1",
                         kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], name="conv2",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w3"], ["c3"], name="conv3",
                         kernel_shape=[1, 1]),
        helper.make_node("Add", ["c3", "r2"], ["t2"], name="add"),
    ]
    inits = [weights("w1", (4, 3, 3, 3), 1), weights("b1", (4,), 2),
             numpy_helper.from_array(np.full(4, 1.1, np.float32), "bn_s"),
             numpy_helper.from_array(np.full(4, 0.1, np.float32), "bn_b"),
             numpy_helper.from_array(np.full(4, 0.05, np.float32), "bn_m"),
             numpy_helper.from_array(np.full(4, 0.9, np.float32), "bn_v"),
             weights("w2", (6, 4, 3, 3), 3), weights("w3", (6, 6, 1, 1), 4)]
    return save_model(path, nodes, [x], [vi("t1"), vi("t2")], inits)


def op_zoo(d):
    """Every op and attribute the runtime supports, small."""
    x = vi("x", ["N", 3, "H", "W"])
    nodes = [
        helper.make_node("Conv", ["x", "wg"], ["g"], name="grouped",
                         kernel_shape=[3, 3], group=3, dilations=[2, 2],
                         pads=[2, 2, 2, 2], auto_pad="NOTSET"),
        helper.make_node("AveragePool", ["g"], ["a"], name="avg",
                         kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1,
                         pads=[1, 1, 1, 1], count_include_pad=0),
        helper.make_node("Identity", ["a"], ["ai"], name="ident"),
        helper.make_node("Constant", [], ["lo"], name="const_lo",
                         value=numpy_helper.from_array(
                             np.array(-0.5, np.float32))),
        helper.make_node("Clip", ["ai", "lo", "hi"], ["cl"], name="clip"),
        helper.make_node("Concat", ["cl", "ai"], ["cat"], name="cat", axis=1),
        helper.make_node("BatchNormalization",
                         ["cat", "s6", "b6", "m6", "v6"], ["bn"], name="bn"),
        helper.make_node("Relu", ["bn"], ["feat"], name="relu"),
        helper.make_node("GlobalAveragePool", ["feat"], ["gp"], name="gap"),
        helper.make_node("Flatten", ["gp"], ["fl"], name="flat", axis=1),
        helper.make_node("Gemm", ["fl", "wf", "bf"], ["y"], name="fc",
                         transB=1, alpha=0.5, beta=2.0),
    ]
    ones6 = np.ones(6, np.float32)
    inits = [weights("wg", (3, 1, 3, 3), 5),
             numpy_helper.from_array(np.array(0.5, np.float32), "hi"),
             numpy_helper.from_array(ones6, "s6"),
             numpy_helper.from_array(ones6 * 0.1, "b6"),
             numpy_helper.from_array(ones6 * 0.2, "m6"),
             numpy_helper.from_array(ones6 * 0.7, "v6"),
             weights("wf", (5, 6), 6), weights("bf", (5,), 7)]
    save_model(os.path.join(d, "op_zoo.onnx"), nodes, [x],
               [vi("feat"), vi("y")], inits)
    # opset 6: Clip bounds as attributes; MaxPool with ceil_mode
    nodes = [helper.make_node("MaxPool", ["x"], ["m"], name="mp",
                              kernel_shape=[2, 2], strides=[2, 2],
                              ceil_mode=1),
             helper.make_node("Clip", ["m"], ["y"], name="clip6", min=-1.0,
                              max=1.0)]
    save_model(os.path.join(d, "opset6.onnx"), nodes, [x], [vi("y")], [],
               opset=6)


def regressions_onnx(d):
    """Reproducers for the bugs the ONNX fuzzer found (see
    docs/bad-inputs.md); each must be refused with a clear error."""
    # regression: an input with 4 channels made nm_net_run read past the
    # caller's [n][3][h][w] buffer
    x4 = vi("x", ["N", 4, "H", "W"])
    save_model(os.path.join(d, "regress_input_4ch.onnx"),
               [helper.make_node("Conv", ["x", "w"], ["y"], name="c")], [x4],
               [vi("y")], [weights("w", (2, 4, 1, 1), 8)])


def make_onnx(out, work):
    import gen_onnx_bad  # tests/tools: the loader's broken-file fixtures
    d = os.path.join(out, "onnx")
    os.makedirs(d, exist_ok=True)
    for gen in (gen_onnx_bad.gen_graph_errors, gen_onnx_bad.gen_tensor_errors,
                gen_onnx_bad.gen_unsorted, gen_onnx_bad.gen_constants,
                gen_onnx_bad.gen_unknown_op, gen_onnx_bad.gen_encodings,
                gen_onnx_bad.gen_garbage):
        gen(d)
    tiny = tiny_backbone(os.path.join(work, "tiny.onnx"))
    write(os.path.join(d, "tiny.onnx"), tiny)
    add_truncations(d, "tiny.onnx", tiny, [1, 2, 10, 100, len(tiny) // 2])
    op_zoo(d)
    regressions_onnx(d)


def make_training_images(work):
    from PIL import Image
    d = os.path.join(work, "train")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(9)
    for i in range(3):
        a = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
        Image.fromarray(a, "RGB").save(os.path.join(d, f"{i:03d}.png"))


# ------------------------------------------------------------------ model

def sections(data):
    """[(tag, payload offset, size)] of a model file (layout in
    src/io/model_file.h)."""
    n = struct.unpack_from("<I", data, 12)[0]
    off, out = 64, []
    for _ in range(n):
        tag = data[off:off + 4].decode()
        size = struct.unpack_from("<Q", data, off + 8)[0]
        out.append((tag, off + 64, size))
        off += 64 + (size + 63) // 64 * 64
    return out


def rebuild(parts):
    """A model file from [(tag, payload)], with every checksum right."""
    body = b""
    for tag, payload in parts:
        h = bytearray(64)
        h[0:4] = tag.encode()
        struct.pack_into("<QI", h, 8, len(payload), zlib.crc32(payload))
        body += bytes(h) + payload + bytes(-len(payload) % 64)
    total = 64 + len(body) + 12
    head = bytearray(64)
    head[0:8] = b"NOMINAL\x1a"
    struct.pack_into("<IIQ", head, 8, 1, len(parts), total)
    struct.pack_into("<I", head, 24, zlib.crc32(bytes(head[:24])))
    data = bytes(head) + body
    return data + b"NMEND\0\0\0" + struct.pack("<I", zlib.crc32(data))


def meta_variants(meta):
    """META texts that differ from a good one in one way each."""
    out = {"good": meta}

    def variant(name, edit):
        m = json.loads(json.dumps(meta))
        edit(m)
        out[name] = m

    variant("no_method", lambda m: m.pop("method"))
    variant("method_number", lambda m: m.update(method=7))
    variant("taps_empty", lambda m: m["backbone"].update(taps=[]))
    variant("taps_nine", lambda m: m["backbone"].update(taps=["t1"] * 9))
    variant("tap_missing", lambda m: m["backbone"].update(taps=["t9"]))
    variant("tap_number", lambda m: m["backbone"].update(taps=[1]))
    variant("pre_negative", lambda m: m["preprocess"].update(resize_short=-1))
    variant("pre_huge", lambda m: m["preprocess"].update(
        resize_short=1e300, crop_width=2 ** 40))
    variant("pre_std_zero", lambda m: m["preprocess"].update(std=[0, 0, 0]))
    variant("pre_mean_short", lambda m: m["preprocess"].update(mean=[1]))
    variant("params_missing", lambda m: m.pop("params"))
    variant("bank_rows_huge", lambda m: m["params"].update(bank_rows=2 ** 62))
    variant("dim_huge", lambda m: m["params"].update(dim=1e300, tap_dim=2 ** 31))
    variant("k_nan_like", lambda m: m["params"].update(k=-1e308))
    variant("patch_huge", lambda m: m["params"].update(patch=2 ** 30))
    variant("reweight_big", lambda m: m["params"].update(reweight=65))
    variant("seed_negative", lambda m: m["train"].update(seed=-1))
    texts = {k: json.dumps(v, separators=(",", ":")).encode()
             for k, v in out.items()}
    texts["not_json"] = b'{"method": "patchcore", '
    texts["array"] = b"[1, 2, 3]"
    texts["deep"] = b"[" * 2000 + b"]" * 2000
    texts["empty"] = b""
    return texts


def make_model_seeds(out, model_path):
    data = open(model_path, "rb").read()
    secs = sections(data)
    parts = [(t, data[o:o + s]) for t, o, s in secs]
    meta = json.loads(dict(parts)["META"])
    dm, dj = os.path.join(out, "model"), os.path.join(out, "meta_json")
    write(os.path.join(dm, "tiny.nmm"), data)
    add_truncations(dm, "tiny.nmm", data,
                    [8, 30, 64, 100, 128, len(data) // 2, len(data) - 12])
    for name, text in meta_variants(meta).items():
        write(os.path.join(dj, name + ".json"), text)
        others = [(t, p) for t, p in parts if t != "META"]
        write(os.path.join(dm, "meta_" + name + ".nmm"),
              rebuild([("META", text)] + others))
    without = {t for t, _ in parts}
    for drop in sorted(without):
        write(os.path.join(dm, f"without_{drop}.nmm"),
              rebuild([(t, p) for t, p in parts if t != drop]))
    write(os.path.join(dm, "bank_short.nmm"),
          rebuild([(t, p[:-4] if t == "BANK" else p) for t, p in parts]))
    shutil.copy(model_path, os.path.join(out, "template.nmm"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=("base", "model"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--model")
    a = ap.parse_args()
    if a.step == "base":
        work = os.path.join(a.out, "work")
        os.makedirs(work, exist_ok=True)
        make_images(a.out)
        make_onnx(a.out, work)
        make_training_images(work)
    else:
        make_model_seeds(a.out, a.model)


if __name__ == "__main__":
    main()
