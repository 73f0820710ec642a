#!/usr/bin/python3
"""Hostile inputs for tests/test_bad_inputs.sh and seeds for the fuzzers.

  bad_inputs.py --out DIR --nominal build/nominal

writes into DIR:
  tiny.onnx, train/*.png, tiny.nmm   a tiny backbone (taps t1, t2), three
                                     small training images and a PatchCore
                                     model fitted from them by the CLI
  onnx/*.onnx                        backbones that must be refused, one
                                     problem each (reproducers of the bugs
                                     the fuzzers found among them)
  model/*.nmm                        tiny.nmm with one thing wrong each, the
                                     checksums right, so the loaders behind
                                     the container see the problem
  meta/*.json                        the META JSON texts of those models
  bad/*.png, tiny_cal.nmm,           tiny.nmm calibrated by the CLI: FPR
  tiny_fnr.nmm, tiny_f1.nmm          0.25 on train/ (+ a pixel threshold),
                                     FNR 0.9 and F1 with six "bad" images
  cali/*.json                        their CALI texts, and variants with one
                                     problem each; model/cali_*.nmm:
                                     tiny_cal.nmm with each of those
  http/*.req                         raw requests (several, pipelined, in a
                                     file) `nominal serve` must answer 4xx
Made at test time, never committed. The file layout of models is the one in
src/io/model_file.h.
"""
import argparse
import json
import os
import struct
import subprocess
import zlib

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def write(path, data):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


# ------------------------------------------------------------------- onnx

def vi(name, dims=None, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, dims)


def weights(name, shape, seed):
    rng = np.random.default_rng(seed)
    return numpy_helper.from_array(
        rng.standard_normal(shape).astype(np.float32) * 0.3, name)


def save_model(path, nodes, inputs, outputs, inits, opset=13):
    g = helper.make_graph(nodes, "bad", inputs, outputs, initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    data = m.SerializeToString()
    write(path, data)
    return data


RGB = ["N", 3, "H", "W"]


def tiny_backbone(path):
    """Taps t1 (stride 2, 4 channels) and t2 (stride 4, 6 channels) from
    Conv+BN+Relu, MaxPool and a residual Add, so loading exercises fusion."""
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
    return save_model(path, nodes, [vi("x", RGB)], [vi("t1"), vi("t2")], inits)


def op_zoo(d):
    """Every op and attribute the runtime supports, small (fuzz seeds)."""
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
    save_model(os.path.join(d, "op_zoo.onnx"), nodes, [vi("x", RGB)],
               [vi("feat"), vi("y")], inits)
    # opset 6: Clip bounds as attributes; MaxPool with ceil_mode
    nodes = [helper.make_node("MaxPool", ["x"], ["m"], name="mp",
                              kernel_shape=[2, 2], strides=[2, 2],
                              ceil_mode=1),
             helper.make_node("Clip", ["m"], ["y"], name="clip6", min=-1.0,
                              max=1.0)]
    save_model(os.path.join(d, "opset6.onnx"), nodes, [vi("x", RGB)],
               [vi("y")], [], opset=6)


def bad_onnx(d):
    """One problem each; the comment says what nominal must answer."""
    conv = helper.make_node("Conv", ["x", "w"], ["c"], name="conv")
    # input with 4 channels: nm_net_run's input is RGB, it read past it
    save_model(os.path.join(d, "input_4ch.onnx"),
               [helper.make_node("Conv", ["x", "w"], ["y"], name="c")],
               [vi("x", ["N", 4, "H", "W"])], [vi("y")],
               [weights("w", (2, 4, 1, 1), 8)])
    # a BatchNorm of 2 channels after a Conv of 4: folding it read past
    # its arrays
    save_model(os.path.join(d, "bn_mismatch.onnx"),
               [conv, helper.make_node("BatchNormalization",
                                       ["c", "s", "b", "m", "v"], ["y"],
                                       name="bn_small")],
               [vi("x", RGB)], [vi("y")],
               [weights("w", (4, 3, 1, 1), 9)] +
               [numpy_helper.from_array(np.ones(2, np.float32), n)
                for n in ("s", "b", "m", "v")])
    # an Add of a 4-channel and a 6-channel value, fused into the Conv: the
    # backend got mismatched buffers
    save_model(os.path.join(d, "add_fused_mismatch.onnx"),
               [conv, helper.make_node("Relu", ["c"], ["r"], name="relu"),
                helper.make_node("Conv", ["r", "w6"], ["c6"], name="conv6"),
                helper.make_node("Add", ["c6", "r"], ["y"], name="add_bad")],
               [vi("x", RGB)], [vi("y")],
               [weights("w", (4, 3, 1, 1), 10), weights("w6", (6, 4, 1, 1), 11)])
    # a Relu without inputs: the builder read an input that is not there
    save_model(os.path.join(d, "relu_no_input.onnx"),
               [conv, helper.make_node("Relu", [], ["y"], name="relu_empty")],
               [vi("x", RGB)], [vi("c"), vi("y")],
               [weights("w", (4, 3, 1, 1), 12)])
    # a node name with a line break and an escape: messages stay one line
    save_model(os.path.join(d, "newline_name.onnx"),
               [helper.make_node("Softmax", ["x"], ["y"],
                                 name="evil\nname\x1b[31m")],
               [vi("x", RGB)], [vi("y")], [])
    # the graph's output is its input
    save_model(os.path.join(d, "output_is_input.onnx"), [], [vi("x", RGB)],
               [vi("x")], [])
    # a Conv with an empty weight (dims [0, 3, 1, 1])
    save_model(os.path.join(d, "empty_weight.onnx"), [conv], [vi("x", RGB)],
               [vi("c")], [numpy_helper.from_array(
                   np.zeros((0, 3, 1, 1), np.float32), "w")])
    # Concat of 64 copies, 6 times over: 3 * 64^6 channels, more than any
    # tensor may have; 3 times over: 786432 channels, 800 MB at 16x16
    for name, levels in (("concat_explosion", 6), ("concat_memory", 3)):
        nodes, prev = [], "x"
        for i in range(levels):
            nodes.append(helper.make_node("Concat", [prev] * 64, [f"k{i}"],
                                          name=f"cat{i}", axis=1))
            prev = f"k{i}"
        save_model(os.path.join(d, name + ".onnx"), nodes, [vi("x", RGB)],
                   [vi(prev)], [])
    # an empty value_ints Constant (NULL list in the message)
    save_model(os.path.join(d, "empty_constant.onnx"),
               [helper.make_node("Constant", [], ["k"], name="k",
                                 value_ints=[]),
                helper.make_node("Relu", ["x"], ["y"], name="r")],
               [vi("x", RGB)], [vi("y")], [])


def training_images(d):
    from PIL import Image
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(9)
    for i in range(3):
        a = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
        Image.fromarray(a, "RGB").save(os.path.join(d, f"{i:03d}.png"))


# ------------------------------------------------------------------ model

def sections(data):
    """[(tag, payload)] of a model file."""
    n = struct.unpack_from("<I", data, 12)[0]
    off, out = 64, []
    for _ in range(n):
        tag = data[off:off + 4].decode()
        size = struct.unpack_from("<Q", data, off + 8)[0]
        out.append((tag, data[off + 64:off + 64 + size]))
        off += 64 + (size + 63) // 64 * 64
    return out


def rebuild(parts, version=1):
    """A model file from [(tag, payload)], every checksum right."""
    body = b""
    for tag, payload in parts:
        h = bytearray(64)
        h[0:4] = tag.encode()
        struct.pack_into("<QI", h, 8, len(payload), zlib.crc32(payload))
        body += bytes(h) + payload + bytes(-len(payload) % 64)
    head = bytearray(64)
    head[0:8] = b"NOMINAL\x1a"
    struct.pack_into("<IIQ", head, 8, version, len(parts), 64 + len(body) + 12)
    struct.pack_into("<I", head, 24, zlib.crc32(bytes(head[:24])))
    data = bytes(head) + body
    return data + b"NMEND\0\0\0" + struct.pack("<I", zlib.crc32(data))


def meta_variants(meta):
    """{name: META text}, each differing from a good one in one way."""
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
    variant("pre_mean_text", lambda m: m["preprocess"].update(
        mean=["a", "b", "c"]))
    variant("params_missing", lambda m: m.pop("params"))
    variant("dim_huge", lambda m: m["params"].update(dim=1e300,
                                                     tap_dim=2 ** 31))
    variant("k_huge", lambda m: m["params"].update(k=-1e308))
    variant("patch_huge", lambda m: m["params"].update(patch=2 ** 30))
    variant("patch_even", lambda m: m["params"].update(patch=4))
    variant("reweight_big", lambda m: m["params"].update(reweight=65))
    variant("seed_negative", lambda m: m["train"].update(seed=-1))
    texts = {k: json.dumps(v, separators=(",", ":")).encode()
             for k, v in out.items()}
    texts["not_json"] = b'{"method": "patchcore", '
    texts["array"] = b"[1, 2, 3]"
    texts["deep"] = b"[" * 2000 + b"]" * 2000
    texts["empty"] = b""
    return texts


def bad_models(d, model_path, onnx_dir):
    parts = sections(open(model_path, "rb").read())
    meta = json.loads(dict(parts)["META"])
    others = [(t, p) for t, p in parts if t != "META"]
    for name, text in meta_variants(meta).items():
        write(os.path.join(d, "..", "meta", name + ".json"), text)
        write(os.path.join(d, f"meta_{name}.nmm"),
              rebuild([("META", text)] + others))
    for drop in sorted({t for t, _ in parts}):
        write(os.path.join(d, f"without_{drop}.nmm"),
              rebuild([(t, p) for t, p in parts if t != drop]))
    # bank_rows * dim * 4 = 2^64 * dim wraps around to 0, the size of an
    # empty BANK: scoring read 2^62 rows of nothing
    wrap = json.loads(json.dumps(meta))
    wrap["params"]["bank_rows"] = 2 ** 62
    write(os.path.join(d, "bank_wrap.nmm"),
          rebuild([("META", json.dumps(wrap).encode())] +
                  [(t, b"" if t == "BANK" else p) for t, p in others]))
    write(os.path.join(d, "bank_short.nmm"),
          rebuild([(t, p[:-4] if t == "BANK" else p) for t, p in parts]))
    write(os.path.join(d, "newer_version.nmm"), rebuild(parts, version=2))
    four = open(os.path.join(onnx_dir, "input_4ch.onnx"), "rb").read()
    write(os.path.join(d, "onnx_4ch.nmm"),
          rebuild([(t, four if t == "ONNX" else p) for t, p in parts]))


# ------------------------------------------------------------ calibration

def bad_images(d):
    """Six training-like images with a bright square: scored higher."""
    from PIL import Image
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(11)
    for i in range(6):
        a = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
        a[4:12, 5:15] = 255
        Image.fromarray(a, "RGB").save(os.path.join(d, f"{i:03d}.png"))


def calibrated_models(out, nominal, model):
    """{name: path} of tiny.nmm calibrated each way by the CLI."""
    good, bad = os.path.join(out, "train"), os.path.join(out, "bad")
    bad_images(bad)
    runs = {"tiny_cal": ["--target-fpr", "0.25", "--pixel-fpr", "0.01"],
            # k = floor(0.9 * 7) = 6 bad images, more than the 3 good ones:
            # the reader took k for a count of good images and refused it
            "tiny_fnr": ["--bad", bad, "--target-fnr", "0.9"],
            "tiny_f1": ["--bad", bad, "--f1"]}
    paths = {}
    for name, args in runs.items():
        paths[name] = os.path.join(out, name + ".nmm")
        subprocess.run([nominal, "calibrate", model, "--good", good, "-o",
                        paths[name], "--threads", "1"] + args, check=True,
                       stdout=subprocess.DEVNULL)
    return paths


def cali_variants(cali):
    """{name: CALI text}, each differing from a good one in one way."""
    out = {}

    def variant(name, edit):
        c = json.loads(json.dumps(cali))
        edit(c)
        out[name] = json.dumps(c, separators=(",", ":")).encode()

    # not a number / not a count: converted to int before the check, which
    # is undefined behaviour (NAN, 1e20 to int)
    variant("n_good_text", lambda c: c.update(n_good="3"))
    variant("n_good_huge", lambda c: c.update(n_good=1e20))
    variant("pixels_huge", lambda c: c["pixel"].update(n_good_pixels=1e300))
    # a table threshold beyond the float range was accepted as infinity and
    # written back as null: the saved model could not be read again
    variant("table_inf", lambda c: c["table"][0].update(threshold=1e39))
    variant("table_ascending", lambda c: c.update(
        table=[{"threshold": 1, "fpr_good": 0, "fpr_bound": 0.25,
                "fnr_bad": None},
               {"threshold": 2, "fpr_good": 0, "fpr_bound": 0.25,
                "fnr_bad": None}]))
    # a table that is not a list was accepted when it had no items
    variant("table_number", lambda c: c.update(table=5))
    variant("k_zero", lambda c: c.update(k=0))
    variant("threshold_moved", lambda c: c.update(
        threshold=c["threshold"] * 1.5 + 1))
    variant("scores_unsorted", lambda c: c.update(
        good_scores=c["good_scores"][::-1]))
    variant("kind_unknown", lambda c: c.update(kind="fpx"))
    variant("version_2", lambda c: c.update(version=2))
    texts = dict(out)
    texts["not_json"] = b'{"version": 1, "kind": '
    texts["deep"] = b"[" * 2000 + b"]" * 2000
    return texts


def bad_calibrations(out, model_dir, cal_paths):
    d = os.path.join(out, "cali")
    cali = {n: dict(sections(open(p, "rb").read()))["CALI"]
            for n, p in cal_paths.items()}
    for name, text in cali.items():
        write(os.path.join(d, name + ".json"), text)
    parts = sections(open(cal_paths["tiny_cal"], "rb").read())
    for name, text in cali_variants(json.loads(cali["tiny_cal"])).items():
        write(os.path.join(d, name + ".json"), text)
        write(os.path.join(model_dir, f"cali_{name}.nmm"),
              rebuild([(t, text if t == "CALI" else p) for t, p in parts]))


# ------------------------------------------------------------------- http

def http_request(method, path, body=b"", headers=(), length=None):
    """Raw request bytes; Content-Length is the body's unless given."""
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"] + list(headers)
    if length is None and body:
        length = len(body)
    if length is not None:
        head.append(f"Content-Length: {length}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


# A model name of 255 bytes (the longest a file name allows), served by
# tests/test_bad_inputs.sh next to tiny.nmm.
LONG_MODEL_NAME = "m" * 255


def bad_http(d, image):
    """Requests `nominal serve` must refuse with a 4xx JSON error (tiny.nmm
    served as "tiny"); the name says what is wrong."""
    def req(name, *a, **k):
        write(os.path.join(d, name + ".req"), http_request(*a, **k))

    png = ["Content-Type: image/png"]
    body = open(image, "rb").read()
    # a map= value too long for the buffer was ignored: 200 without a map
    req("map_long", "POST", "/v1/models/tiny/predict?map=" + "x" * 40, body,
        png)
    # messages quoted these bytes as they were: the JSON was not UTF-8
    req("path_not_utf8", "GET", "/v1/%ff%fe")
    req("model_not_utf8", "POST", "/v1/models/%c3/predict", body, png)
    req("type_not_utf8", "POST", "/v1/models/tiny/predict", body,
        ["Content-Type: image/\xe9"])
    # a model name was cut to 255 bytes: a longer one named that model
    req("model_name_long", "GET", "/v1/models/" + LONG_MODEL_NAME + "x")
    req("demo_traversal", "GET", "/demo/..%2fsecret.png")
    req("not_an_image", "POST", "/v1/models/tiny/predict", b"GIF89a....", png)
    req("body_short", "POST", "/v1/models/tiny/predict", body[:50], png,
        length=len(body))


def generate(out, nominal):
    onnx_dir, model_dir = (os.path.join(out, k) for k in ("onnx", "model"))
    os.makedirs(onnx_dir, exist_ok=True)
    tiny_backbone(os.path.join(out, "tiny.onnx"))
    bad_onnx(onnx_dir)
    training_images(os.path.join(out, "train"))
    model = os.path.join(out, "tiny.nmm")
    subprocess.run([nominal, "fit", "--backbone",
                    os.path.join(out, "tiny.onnx"), "--taps", "t1,t2",
                    "--train", os.path.join(out, "train"), "-o", model,
                    "--resize", "32", "--crop", "32", "--coreset", "0.05",
                    "--tap_dim", "8", "--dim", "8", "--threads", "1"],
                   check=True, stdout=subprocess.DEVNULL)
    bad_models(model_dir, model, onnx_dir)
    bad_calibrations(out, model_dir, calibrated_models(out, nominal, model))
    bad_http(os.path.join(out, "http"), os.path.join(out, "train", "000.png"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--nominal", required=True)
    a = ap.parse_args()
    generate(a.out, a.nominal)


if __name__ == "__main__":
    main()
