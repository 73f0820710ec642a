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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("predictions")
    ap.add_argument("category")
    ap.add_argument("--min-image", type=float, default=None)
    ap.add_argument("--min-pixel", type=float, default=None)
    ap.add_argument("--json-out", default=None)
    a = ap.parse_args()

    rows = [json.loads(l) for l in open(a.predictions) if l.strip()]
    img_scores, img_labels, pix_scores, pix_labels = [], [], [], []
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
    out = {"images": len(rows), "defective": int(sum(img_labels)),
           "image_auroc": auroc(img_scores, img_labels)}
    if pix_scores:
        out["pixels"] = int(sum(len(p) for p in pix_scores))
        out["pixel_auroc"] = auroc(np.concatenate(pix_scores), np.concatenate(pix_labels))
    print(json.dumps(out))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(out, f)
    ok = True
    if a.min_image is not None and out["image_auroc"] < a.min_image:
        print(f"image AUROC {out['image_auroc']:.4f} < {a.min_image}", file=sys.stderr)
        ok = False
    if a.min_pixel is not None and out.get("pixel_auroc", 0) < a.min_pixel:
        print(f"pixel AUROC {out.get('pixel_auroc', 0):.4f} < {a.min_pixel}", file=sys.stderr)
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
