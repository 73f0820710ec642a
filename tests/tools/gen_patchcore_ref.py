#!/usr/bin/python3
"""Reference data for tests/test_patch_features.c and tests/test_anomaly_map.c,
made at test time (never committed).

Writes into --out (float32 files are raw little-endian, row-major):
  pool_cases.txt    "NAME LEN OUT": NAME.in [LEN], NAME.ref [OUT] =
                    torch F.adaptive_avg_pool1d;
  patch_cases.txt   "NAME N P DIM OUT T C0 H0 W0 C1 H1 W1 ...": NAME.taps
                    (the T taps [N][C][H][W] one after another) and NAME.ref
                    [N*H0*W0][OUT], PatchCore._embed of patchcore-inspection
                    rewritten here with torch (PatchMaker.patchify, bilinear
                    alignment, Preprocessing/MeanMapper, Aggregator);
  resize_cases.txt  "NAME SW SH DW DH": NAME.src, NAME.ref = torch
                    F.interpolate(bilinear, align_corners=False) per enlarged
                    axis and PIL's triangle filter (float, no rounding) per
                    shrunk axis, computed in float64 by numpy; checked here
                    against torch (enlarging) and PIL mode "F" resize;
  blur_cases.txt    "NAME W H SIGMA": NAME.src, NAME.ref = scipy.ndimage.
                    gaussian_filter(float32, sigma, mode="reflect",
                    truncate=4.0);
  render_cases.txt  "NAME PW PH SRC_W SRC_H RES_W RES_H CROP_X CROP_Y OUT_W
                    OUT_H SIGMA": NAME.scores [PH][PW], NAME.crop
                    [OUT_H][OUT_W] and NAME.image [SRC_H][SRC_W], the render
                    chain in numpy/torch/scipy.
"""
import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.ndimage import gaussian_filter


def save(out, name, arr):
    np.ascontiguousarray(arr, dtype="<f4").tofile(os.path.join(out, name))


# ------------------------------------------------------------- PatchCore

def patchify(features, patchsize):
    """PatchMaker(patchsize, stride=1).patchify: [B,C,H,W] ->
    [B, H*W, C, p, p] and the patch grid (h, w)."""
    padding = int((patchsize - 1) / 2)
    unfolder = torch.nn.Unfold(kernel_size=patchsize, stride=1,
                               padding=padding, dilation=1)
    unfolded = unfolder(features)
    grid = []
    for s in features.shape[-2:]:
        n = (s + 2 * padding - 1 * (patchsize - 1) - 1) / 1 + 1
        grid.append(int(n))
    unfolded = unfolded.reshape(*features.shape[:2], patchsize, patchsize, -1)
    return unfolded.permute(0, 4, 1, 2, 3), grid


def mean_mapper(features, dim):
    features = features.reshape(len(features), 1, -1)
    return F.adaptive_avg_pool1d(features, dim).squeeze(1)


def aggregator(features, dim):
    features = features.reshape(len(features), 1, -1)
    features = F.adaptive_avg_pool1d(features, dim)
    return features.reshape(len(features), -1)


def patchcore_embed(taps, patchsize, per_tap_dim, out_dim):
    """PatchCore._embed after the backbone, as in patchcore-inspection."""
    pairs = [patchify(x, patchsize) for x in taps]
    patch_shapes = [x[1] for x in pairs]
    features = [x[0] for x in pairs]
    ref = patch_shapes[0]
    for i in range(1, len(features)):
        f = features[i]
        dims = patch_shapes[i]
        f = f.reshape(f.shape[0], dims[0], dims[1], *f.shape[2:])
        f = f.permute(0, -3, -2, -1, 1, 2)
        base = f.shape
        f = f.reshape(-1, *f.shape[-2:])
        f = F.interpolate(f.unsqueeze(1), size=(ref[0], ref[1]),
                          mode="bilinear", align_corners=False)
        f = f.squeeze(1)
        f = f.reshape(*base[:-2], ref[0], ref[1])
        f = f.permute(0, -2, -1, 1, 2, 3)
        f = f.reshape(len(f), -1, *f.shape[-3:])
        features[i] = f
    features = [x.reshape(-1, *x.shape[-3:]) for x in features]
    features = torch.stack([mean_mapper(x, per_tap_dim) for x in features],
                           dim=1)
    return aggregator(features, out_dim)


POOL_CASES = [(4608, 1024), (9216, 1024), (2048, 1024), (7, 3), (3, 7),
              (5, 5), (1, 4), (10, 1)]

# name, N, patch, per_tap_dim, out_dim, taps [(C, H, W), ...]
PATCH_CASES = [
    ("wrn50", 1, 3, 1024, 1024, [(512, 28, 28), (1024, 14, 14)]),
    ("odd", 2, 3, 40, 24, [(8, 13, 17), (16, 7, 9)]),
    ("p1_three", 1, 1, 16, 20, [(6, 10, 12), (10, 5, 6), (12, 3, 3)]),
    ("p5_single", 2, 5, 64, 50, [(4, 6, 5)]),
    ("deeper_larger", 1, 3, 7, 11, [(4, 6, 6), (3, 9, 11)]),
    ("upsample_pool", 3, 3, 100, 128, [(2, 4, 5), (3, 2, 3)]),
]


def gen_patch(out, seed):
    g = torch.Generator().manual_seed(seed)
    with open(os.path.join(out, "pool_cases.txt"), "w") as m:
        for length, olen in POOL_CASES:
            name = "pool_%d_%d" % (length, olen)
            x = torch.randn(1, 1, length, generator=g)
            save(out, name + ".in", x.numpy())
            save(out, name + ".ref", F.adaptive_avg_pool1d(x, olen).numpy())
            m.write("%s %d %d\n" % (name, length, olen))
    with open(os.path.join(out, "patch_cases.txt"), "w") as m:
        for name, n, p, dim, odim, shapes in PATCH_CASES:
            # ReLU-like non-negative features, as real backbone taps are
            taps = [torch.rand(n, c, h, w, generator=g) * 3.0
                    for c, h, w in shapes]
            ref = patchcore_embed(taps, p, dim, odim)
            h0, w0 = shapes[0][1], shapes[0][2]
            assert ref.shape == (n * h0 * w0, odim), ref.shape
            np.concatenate([t.numpy().ravel() for t in taps]).astype(
                "<f4").tofile(os.path.join(out, name + ".taps"))
            save(out, name + ".ref", ref.numpy())
            dims = " ".join("%d %d %d" % s for s in shapes)
            m.write("%s %d %d %d %d %d %s\n" % (name, n, p, dim, odim,
                                                len(shapes), dims))


# ------------------------------------------------------------ anomaly maps

def axis_matrix(n_in, n_out):
    """[n_out, n_in] float64 resampling matrix of one axis: torch bilinear
    (align_corners=False) when n_out >= n_in, PIL's triangle filter with
    support scaled by n_in/n_out when shrinking."""
    m = np.zeros((n_out, n_in))
    scale = n_in / n_out
    if n_out >= n_in:
        for o in range(n_out):
            src = max(scale * (o + 0.5) - 0.5, 0.0)
            i0 = min(int(src), n_in - 1)
            i1 = min(i0 + 1, n_in - 1)
            lam = src - i0
            m[o, i0] += 1 - lam
            m[o, i1] += lam
        return m
    for o in range(n_out):
        center = (o + 0.5) * scale
        lo = max(int(center - scale + 0.5), 0)
        hi = min(int(center + scale + 0.5), n_in)
        x = np.arange(lo, hi)
        w = np.clip(1 - np.abs((x - center + 0.5) / scale), 0, None)
        m[o, lo:hi] = w / w.sum()
    return m


def map_resize(a, dw, dh):
    sh, sw = a.shape
    return axis_matrix(sh, dh) @ a.astype(np.float64) @ axis_matrix(sw, dw).T


def pil_resize(a, dw, dh):
    img = Image.fromarray(a.astype(np.float32), mode="F")
    return np.asarray(img.resize((dw, dh), Image.BILINEAR), dtype=np.float64)


def torch_resize(a, dw, dh):
    t = torch.from_numpy(a.astype(np.float32))[None, None]
    r = F.interpolate(t, size=(dh, dw), mode="bilinear", align_corners=False)
    return r[0, 0].double().numpy()


def rel_err(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)


# name, sw, sh, dw, dh
RESIZE_CASES = [
    ("up_28_224", 28, 28, 224, 224),
    ("up_odd", 7, 5, 31, 18),
    ("up_one", 1, 1, 4, 3),
    ("same", 13, 11, 13, 11),
    ("down_256_900", 900, 900, 256, 256),
    ("down_odd", 37, 29, 10, 7),
    ("mixed_axes", 40, 9, 15, 30),
    ("down_to_one", 6, 5, 1, 1),
]


def gen_resize(out, rng):
    with open(os.path.join(out, "resize_cases.txt"), "w") as m:
        for name, sw, sh, dw, dh in RESIZE_CASES:
            src = rng.standard_normal((sh, sw)).astype(np.float32)
            ref = map_resize(src, dw, dh)
            # two independent references for the same definition
            assert rel_err(pil_resize(src, dw, dh), ref) < 1e-6, name
            if dw >= sw and dh >= sh:
                assert rel_err(torch_resize(src, dw, dh), ref) < 1e-6, name
            save(out, name + ".src", src)
            save(out, name + ".ref", ref)
            m.write("%s %d %d %d %d\n" % (name, sw, sh, dw, dh))


# name, w, h, sigma
BLUR_CASES = [
    ("b224_s4", 224, 224, 4.0),
    ("b3_s4", 3, 3, 4.0),
    ("b1x5_s2", 1, 5, 2.0),
    ("b17x9_s07", 17, 9, 0.7),
    ("b64x48_s12", 64, 48, 12.0),
    ("b30x20_s0", 30, 20, 0.0),
    ("b100x60_s2_5", 100, 60, 2.5),
]


def gen_blur(out, rng):
    with open(os.path.join(out, "blur_cases.txt"), "w") as m:
        for name, w, h, sigma in BLUR_CASES:
            src = rng.standard_normal((h, w)).astype(np.float32)
            ref = gaussian_filter(src, sigma, mode="reflect", truncate=4.0)
            assert ref.dtype == np.float32
            save(out, name + ".src", src)
            save(out, name + ".ref", ref)
            m.write("%s %d %d %.9g\n" % (name, w, h, sigma))


def render(scores, geom, sigma):
    """patch scores -> (crop map, image map), as anomaly_map_render."""
    src_w, src_h, res_w, res_h, cx, cy, out_w, out_h = geom
    up = torch_resize(scores, out_w, out_h).astype(np.float32)
    crop = gaussian_filter(up, sigma, mode="reflect", truncate=4.0)
    canvas = np.zeros((res_h, res_w), dtype=np.float32)
    x0, y0 = max(cx, 0), max(cy, 0)
    x1, y1 = min(cx + out_w, res_w), min(cy + out_h, res_h)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = crop[y0 - cy:y1 - cy, x0 - cx:x1 - cx]
    image = map_resize(canvas, src_w, src_h)
    assert rel_err(pil_resize(canvas, src_w, src_h), image) < 1e-6
    return crop, image


# name, pw, ph, (src_w, src_h, res_w, res_h, crop_x, crop_y, out_w, out_h), sigma
RENDER_CASES = [
    ("bottle", 28, 28, (900, 900, 256, 256, 16, 16, 224, 224), 4.0),
    ("landscape", 28, 28, (640, 480, 341, 256, 58, 16, 224, 224), 4.0),
    ("padded", 14, 10, (200, 150, 200, 150, -12, -37, 224, 224), 4.0),
    ("mixed_geom", 9, 7, (300, 90, 150, 120, -3, 5, 100, 80), 2.0),
]


def gen_render(out, rng):
    with open(os.path.join(out, "render_cases.txt"), "w") as m:
        for name, pw, ph, geom, sigma in RENDER_CASES:
            # smooth-ish positive scores with one hot spot, like real maps
            scores = rng.random((ph, pw)).astype(np.float32)
            scores[ph // 3, pw // 2] += 4.0
            crop, image = render(scores, geom, sigma)
            save(out, name + ".scores", scores)
            save(out, name + ".crop", crop)
            save(out, name + ".image", image)
            m.write("%s %d %d %s %.9g\n" % (name, pw, ph,
                                            " ".join(map(str, geom)), sigma))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--shared", default="../shared")  # unused: all synthetic
    ap.add_argument("--nominal", default="build/nominal")  # unused
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(2)
    gen_patch(args.out, 1234)
    rng = np.random.default_rng(5678)
    gen_resize(args.out, rng)
    gen_blur(args.out, rng)
    gen_render(args.out, rng)


if __name__ == "__main__":
    main()
