#!/usr/bin/python3
"""Seed corpora for the fuzz targets (run by fuzz/make_corpus.sh).

  corpus.py --out SEEDS --nominal build/nominal

Seeds are small valid files of every kind the decoders handle, the broken
files the unit tests use (made by the same generators, imported from
tests/tools), truncations, and the hostile files of fuzz/bad_inputs.py
(which include one reproducer per bug the fuzzers found). Nothing here is
committed: seeds are made fresh.
"""
import argparse
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "tools"))
import bad_inputs  # noqa: E402

# Seeds above this are left out: the targets run with -max_len 65536.
MAX_SEED = 65536


def add_truncations(d, path, cuts):
    data = open(path, "rb").read()
    name = os.path.basename(path)
    for c in cuts(len(data)):
        if 0 < c < len(data):
            bad_inputs.write(os.path.join(d, f"{name}.cut{c}"), data[:c])


def copy_small(src_dir, dst_dir, exts=("",)):
    os.makedirs(dst_dir, exist_ok=True)
    for name in sorted(os.listdir(src_dir)):
        p = os.path.join(src_dir, name)
        if (name.endswith(exts) and os.path.isfile(p)
                and os.path.getsize(p) <= MAX_SEED):
            shutil.copy(p, os.path.join(dst_dir, name))


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
            copy_small(dec, os.path.join(out, kind), exts)
            copy_small(bad, os.path.join(out, kind), exts)
        for name in ("rgb8.png", "rgb_interlaced.png", "palette_trns.png"):
            add_truncations(os.path.join(out, "png"), os.path.join(dec, name),
                            lambda n: [8, 16, 33, 40, n // 2, n - 12])
        for name in ("rgb420.jpg", "progressive.jpg", "gray.jpg"):
            add_truncations(os.path.join(out, "jpeg"), os.path.join(dec, name),
                            lambda n: [3, 20, 200, n // 2, n - 2])


def make_onnx(out, work):
    import gen_onnx_bad  # tests/tools: the loader's broken-file fixtures
    d = os.path.join(out, "onnx")
    os.makedirs(d, exist_ok=True)
    for gen in (gen_onnx_bad.gen_graph_errors, gen_onnx_bad.gen_tensor_errors,
                gen_onnx_bad.gen_unsorted, gen_onnx_bad.gen_constants,
                gen_onnx_bad.gen_unknown_op, gen_onnx_bad.gen_encodings,
                gen_onnx_bad.gen_garbage):
        gen(d)
    copy_small(os.path.join(work, "onnx"), d)
    tiny = os.path.join(work, "tiny.onnx")
    shutil.copy(tiny, d)
    add_truncations(d, tiny, lambda n: [1, 2, 10, 100, n // 2])
    bad_inputs.op_zoo(d)


def make_models(out, work):
    d = os.path.join(out, "model")
    copy_small(os.path.join(work, "model"), d)
    tiny = os.path.join(work, "tiny.nmm")
    shutil.copy(tiny, d)
    add_truncations(d, tiny, lambda n: [8, 30, 64, 100, 128, n // 2, n - 12])
    copy_small(os.path.join(work, "meta"), os.path.join(out, "meta_json"))
    shutil.copy(tiny, os.path.join(out, "template.nmm"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--nominal", required=True)
    a = ap.parse_args()
    work = os.path.join(a.out, "work")
    bad_inputs.generate(work, a.nominal)
    make_images(a.out)
    make_onnx(a.out, work)
    make_models(a.out, work)


if __name__ == "__main__":
    main()
