#!/usr/bin/python3
"""Seed corpora for the fuzz targets (run by fuzz/make_corpus.sh).

  corpus.py --out SEEDS --nominal build/nominal

Seeds are small valid files of every kind the decoders handle, the broken
files the unit tests use (made by the same generators, imported from
tests/tools), raw HTTP requests for `nominal serve`, truncations, and the
hostile files of fuzz/bad_inputs.py (which include one reproducer per bug
the fuzzers found). Nothing here is committed: seeds are made fresh.
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
    for name in ("tiny_cal.nmm", "tiny_fnr.nmm", "tiny_f1.nmm"):  # with CALI
        shutil.copy(os.path.join(work, name), d)
    copy_small(os.path.join(work, "meta"), os.path.join(out, "meta_json"))
    shutil.copy(tiny, os.path.join(out, "template.nmm"))


def make_calibration_json(out, work):
    d = os.path.join(out, "calibration_json")
    copy_small(os.path.join(work, "cali"), d)
    for name in ("tiny_cal.json", "tiny_fnr.json", "tiny_f1.json"):
        add_truncations(d, os.path.join(work, "cali", name),
                        lambda n: [1, 12, 40, n // 3, n // 2, n - 30, n - 1])


def http_seeds(work):
    """{name: raw request} that fuzz_http's server answers (models "tiny"
    and "tiny_cal", a demo folder with ok.png, ok.jpg, a folder.png/)."""
    import io
    from PIL import Image
    req = bad_inputs.http_request
    png = open(os.path.join(work, "train", "000.png"), "rb").read()
    buf = io.BytesIO()
    Image.open(io.BytesIO(png)).save(buf, "JPEG", quality=80)
    jpeg = buf.getvalue()
    buf = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("L").save(buf, "PNG")
    gray = buf.getvalue()
    buf = io.BytesIO()
    Image.new("RGB", (100, 100), (9, 9, 9)).save(buf, "PNG")  # > 4096 pixels
    big = buf.getvalue()
    ct = {"png": ["Content-Type: image/png"], "jpeg": ["Content-Type: image/jpeg"]}
    pr = "/v1/models/tiny/predict"
    seeds = {
        "page": req("GET", "/"),
        "healthz": req("GET", "/healthz"),
        "metrics": req("GET", "/metrics"),
        "models": req("GET", "/v1/models"),
        "models_slash": req("GET", "/v1/models/"),
        "model_tiny": req("GET", "/v1/models/tiny"),
        "model_cal": req("GET", "/v1/models/tiny_cal"),
        "model_unknown": req("GET", "/v1/models/nope"),
        "endpoint_unknown": req("GET", "/v1/models/tiny/nothing"),
        "head_page": req("HEAD", "/"),
        "delete_models": req("DELETE", "/v1/models"),
        "get_predict": req("GET", pr),
        "demo_png": req("GET", "/demo/ok.png"),
        "demo_jpg": req("GET", "/demo/ok.jpg"),
        "demo_folder": req("GET", "/demo/folder.png"),
        "demo_hidden": req("GET", "/demo/.ok.png"),
        "demo_up": req("GET", "/demo/../secret.png"),
        "predict_png": req("POST", pr, png, ct["png"]),
        "predict_jpeg": req("POST", pr, jpeg, ct["jpeg"]),
        "predict_gray": req("POST", pr, gray, ["Content-Type: IMAGE/PNG; x=y"]),
        "predict_octet": req("POST", pr, png, ["Content-Type: application/octet-stream"]),
        "predict_form": req("POST", pr, png, ["Content-Type: multipart/form-data"]),
        "predict_overlay": req("POST", "/v1/models/tiny_cal/predict?map=overlay", png,
                               ct["png"]),
        "predict_heatmap": req("POST", "/v1/models/tiny_cal/predict?x=1&map=png", jpeg,
                               ct["jpeg"]),
        "predict_map_none": req("POST", pr + "?map=none", png, ct["png"]),
        "predict_map_bad": req("POST", pr + "?map=jpeg", png, ct["png"]),
        "predict_cal": req("POST", "/v1/models/tiny_cal/predict", png, ct["png"]),
        "predict_big_image": req("POST", pr, big, ct["png"]),
        "predict_too_large": req("POST", pr, png * 12, ct["png"]),
        "predict_empty": req("POST", pr, b"", ct["png"], length=0),
        "predict_expect": req("POST", pr, png, ct["png"] + ["Expect: 100-continue"]),
        "predict_unknown_model": req("POST", "/v1/models/nope/predict", png, ct["png"]),
        "predict_chunked": req("POST", pr, b"", ct["png"] + ["Transfer-Encoding: chunked"])
        + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (100, png[:100], len(png) - 100,
                                                    png[100:]),
    }
    seeds["pipelined"] = seeds["healthz"] + seeds["predict_png"] + seeds["metrics"]
    seeds["http10"] = b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    return seeds


def make_http(out, work):
    d = os.path.join(out, "http")
    copy_small(os.path.join(work, "http"), d)
    for name, data in http_seeds(work).items():
        bad_inputs.write(os.path.join(d, name + ".req"), data)
    for name in ("predict_png", "predict_chunked", "pipelined"):
        add_truncations(d, os.path.join(d, name + ".req"),
                        lambda n: [5, 20, 60, 100, 140, n // 2, n - 1])
    shutil.copy(os.path.join(work, "tiny_cal.nmm"), os.path.join(out, "calibrated.nmm"))


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
    make_calibration_json(a.out, work)
    make_http(a.out, work)


if __name__ == "__main__":
    main()
