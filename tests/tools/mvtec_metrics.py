#!/usr/bin/env python3
"""Image and pixel AUROC of `nominal predict --json --out` results on an
MVTec AD category, computed independently of nominal with NumPy.

    mvtec_metrics.py PREDICTIONS.jsonl CATEGORY_DIR [--min-image X] [--min-pixel Y]

Labels come from the folder names (test/good = normal, anything else =
defect); masks are CATEGORY/ground_truth/TYPE/STEM_mask.png, paired by file
name, compared at their original resolution against the .map.npy maps
(which nominal writes at the image's own size). AUROC counts ties as 1/2,
like sklearn.metrics.roc_auc_score. Exits 1 if a bound is not met.
"""
import argparse
import json
import os
import sys

import numpy as np
from PIL import Image


def auroc(scores, labels):
    """Area under the ROC curve with ties counted 1/2 (trapezoid over the
    distinct thresholds, as sklearn does)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels, dtype=bool).ravel()
    order = np.argsort(-scores, kind="mergesort")
    s = scores[order]
    y = labels[order]
    del order
    last_of_group = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tps = np.cumsum(y, dtype=np.int64)[last_of_group]
    fps = (last_of_group + 1) - tps
    p, n = tps[-1], fps[-1]
    if p == 0 or n == 0:
        raise SystemExit("auroc: need both classes")
    tpr = np.r_[0, tps] / p
    fpr = np.r_[0, fps] / n
    return float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2))


def au_pro(maps, masks, fpr_limit=0.3):
    """AU-PRO as the official MVTec AD evaluation computes it: 8-connected
    regions per mask, pixels sorted by descending score, cumulative FPR and
    mean per-region overlap, last point of each tie group, trapezoid up to
    fpr_limit with linear interpolation there, divided by fpr_limit."""
    from scipy.ndimage import label
    structure = np.ones((3, 3), dtype=int)
    fp, pro, scores = [], [], []
    n_ok, n_regions = 0, 0
    for m, g in zip(maps, masks):
        lab, n = label(g, structure)
        ok = lab == 0
        n_ok += int(ok.sum())
        n_regions += n
        f = ok.astype(np.float64).ravel()
        p = np.zeros(lab.size, dtype=np.float64)
        if n:
            sizes = np.bincount(lab.ravel())
            flat = lab.ravel()
            p[flat > 0] = 1.0 / sizes[flat[flat > 0]]
        fp.append(f)
        pro.append(p)
        scores.append(m.ravel().astype(np.float32))
    s = np.concatenate(scores)
    order = np.argsort(-s, kind="mergesort")
    s = s[order]
    fprs = np.cumsum(np.concatenate(fp)[order]) / n_ok
    pros = np.cumsum(np.concatenate(pro)[order]) / n_regions
    keep = np.append(np.diff(s) != 0, True)
    x = np.concatenate(([0.0], np.clip(fprs[keep], None, 1), [1.0]))
    y = np.concatenate(([0.0], np.clip(pros[keep], None, 1), [1.0]))
    corr = 0.0
    if fpr_limit not in x:
        i = int(np.searchsorted(x, fpr_limit, side="right"))
        yi = y[i - 1] + (y[i] - y[i - 1]) * (fpr_limit - x[i - 1]) / (x[i] - x[i - 1])
        corr = 0.5 * (yi + y[i - 1]) * (fpr_limit - x[i - 1])
    mask = x <= fpr_limit
    x, y = x[mask], y[mask]
    return float((np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + corr) / fpr_limit)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("predictions")
    ap.add_argument("category")
    ap.add_argument("--min-image", type=float, default=None)
    ap.add_argument("--min-pixel", type=float, default=None)
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--pro", action="store_true", help="also compute AU-PRO (slow)")
    ap.add_argument("--compare", default=None,
                    help="`nominal eval --json` output: check agreement to 1e-4")
    a = ap.parse_args()

    rows = [json.loads(l) for l in open(a.predictions) if l.strip()]
    img_scores, img_labels, pix_scores, pix_labels = [], [], [], []
    maps2d, masks2d = [], []
    for r in rows:
        path = r["image"]
        kind = os.path.basename(os.path.dirname(path))
        stem = os.path.splitext(os.path.basename(path))[0]
        img_scores.append(r["score"])
        img_labels.append(kind != "good")
        if "map" not in r:
            continue
        m = np.load(r["map"])
        if kind == "good":
            mask = np.zeros(m.shape, dtype=bool)
        else:
            mp = os.path.join(a.category, "ground_truth", kind, stem + "_mask.png")
            mask = np.asarray(Image.open(mp).convert("L")) > 0
        if mask.shape != m.shape:
            raise SystemExit(f"{path}: map {m.shape} vs mask {mask.shape}")
        pix_scores.append(m.astype(np.float32).ravel())
        pix_labels.append(mask.ravel())
        if a.pro:
            maps2d.append(m)
            masks2d.append(mask)
    out = {"images": len(rows), "defective": int(sum(img_labels)),
           "image_auroc": auroc(img_scores, img_labels)}
    if pix_scores:
        out["pixels"] = int(sum(len(p) for p in pix_scores))
        out["pixel_auroc"] = auroc(np.concatenate(pix_scores), np.concatenate(pix_labels))
    del pix_scores, pix_labels
    if a.pro and maps2d:
        out["au_pro"] = au_pro(maps2d, masks2d)
    print(json.dumps(out))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(out, f)
    ok = True
    if a.compare:
        theirs = json.load(open(a.compare))
        for key in ("image_auroc", "pixel_auroc", "au_pro"):
            if key in out and key in theirs:
                diff = abs(out[key] - theirs[key])
                print(f"{key}: python {out[key]:.6f} nominal {theirs[key]:.6f} diff {diff:.2e}")
                if diff > 1e-4:
                    ok = False
    if a.min_image is not None and out["image_auroc"] < a.min_image:
        print(f"image AUROC {out['image_auroc']:.4f} < {a.min_image}", file=sys.stderr)
        ok = False
    if a.min_pixel is not None and out.get("pixel_auroc", 0) < a.min_pixel:
        print(f"pixel AUROC {out.get('pixel_auroc', 0):.4f} < {a.min_pixel}", file=sys.stderr)
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
