#!/usr/bin/env python3
"""Reference values for src/eval/metrics.c, computed independently of it.

    gen_metrics_ref.py --out DIR [--shared S --nominal N  (unused)]

Writes into DIR:
  binK.f32 / binK.u8   scores / labels of binary case K (scores rounded to
                       2 decimals, so there are many ties)
  pixel_maps.f32       IMAGES x H x W anomaly maps (rounded to 3 decimals)
  pixel_masks.u8       IMAGES x H x W masks (0/1; blobs, some images empty)
  expected.json        flat JSON: bin_count, binK_n, binK_auroc, binK_aupr,
                       binK_f1, binK_f1_threshold, pixel_images, pixel_width,
                       pixel_height, pixel_auroc, au_pro_LIMIT (LIMIT 0.3,
                       0.1, 1), reference (which implementation was used)

Binary metrics come from scikit-learn when it is importable; otherwise from
formulations different from the C walk: AUROC as the Mann-Whitney U statistic
on average ranks, AP and F1 by brute force over every distinct threshold.
AU-PRO follows the official MVTec AD evaluation code (compute_pro with
scipy.ndimage.label and a 3x3 structure, then trapezoid_area), re-written
here with NumPy.
"""
import argparse
import json
import os
from bisect import bisect

import numpy as np
from scipy import ndimage, stats

try:
    from sklearn.metrics import average_precision_score, roc_auc_score
    HAVE_SKLEARN = True
except ImportError:
    HAVE_SKLEARN = False


def auroc_ranks(scores, labels):
    """Mann-Whitney U / (P N) with average ranks: ties count 1/2."""
    ranks = stats.rankdata(scores)  # average ranks for ties
    pos = labels.astype(bool)
    p, n = pos.sum(), (~pos).sum()
    u = ranks[pos].sum() - p * (p + 1) / 2.0
    return float(u / (p * n))


def ap_brute(scores, labels):
    """sum over distinct thresholds t (descending) of dRecall * Precision."""
    pos = labels.astype(bool)
    total = 0.0
    prev_r = 0.0
    for t in np.unique(scores)[::-1]:
        pred = scores >= t
        tp = np.sum(pred & pos)
        r = tp / pos.sum()
        total += (r - prev_r) * tp / pred.sum()
        prev_r = r
    return float(total)


def f1_brute(scores, labels):
    """Largest F1 over thresholds t = each distinct score (predict >= t);
    on equal F1 the highest threshold."""
    pos = labels.astype(bool)
    best, best_t = -1.0, None
    for t in np.unique(scores)[::-1]:
        pred = scores >= t
        tp = np.sum(pred & pos)
        f1 = 2.0 * tp / (pred.sum() + pos.sum())
        if f1 > best:
            best, best_t = f1, float(t)
    return float(best), best_t


def official_pro_curve(maps, masks):
    """compute_pro of the MVTec AD evaluation code, in NumPy."""
    structure = np.ones((3, 3), dtype=int)
    n_ok, n_regions = 0, 0
    fp_changes = np.zeros(maps.shape, dtype=np.uint32)
    pro_changes = np.zeros(maps.shape, dtype=np.float64)
    for i, gt in enumerate(masks):
        labeled, n_comp = ndimage.label(gt, structure)
        n_regions += n_comp
        ok = labeled == 0
        n_ok += ok.sum()
        fp_changes[i][ok] = 1
        for k in range(n_comp):
            region = labeled == (k + 1)
            pro_changes[i][region] = 1.0 / region.sum()
    scores = maps.ravel()
    order = np.argsort(scores).astype(np.uint32)[::-1]
    s = scores[order]
    fps = np.cumsum(fp_changes.ravel()[order]) / n_ok
    pros = np.cumsum(pro_changes.ravel()[order]) / n_regions
    keep = np.append(np.diff(s) != 0, np.True_)
    fps = np.clip(fps[keep], None, 1.0)
    pros = np.clip(pros[keep], None, 1.0)
    return np.r_[0.0, fps, 1.0], np.r_[0.0, pros, 1.0]


def trapezoid_area(x, y, x_max):
    """trapezoid_area of the MVTec AD evaluation code."""
    correction = 0.0
    if x_max not in x:
        ins = bisect(x, x_max)
        assert 0 < ins < len(x)
        y_interp = y[ins - 1] + (y[ins] - y[ins - 1]) * (x_max - x[ins - 1]) / (
            x[ins] - x[ins - 1])
        correction = 0.5 * (y_interp + y[ins - 1]) * (x_max - x[ins - 1])
    keep = x <= x_max
    x, y = x[keep], y[keep]
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction)


def blob_mask(rng, h, w):
    """A few smooth blobs (some touching), or nothing."""
    k = rng.integers(0, 4)
    if k == 0:
        return np.zeros((h, w), np.uint8)
    noise = ndimage.gaussian_filter(rng.standard_normal((h, w)), 3.0)
    thr = np.quantile(noise, 1.0 - rng.uniform(0.02, 0.15))
    mask = (noise >= thr).astype(np.uint8)
    # a few isolated single pixels and a diagonal pair: small regions
    for _ in range(k):
        y, x = rng.integers(1, h - 2), rng.integers(1, w - 2)
        mask[y, x] = 1
        mask[y + 1, x + 1] = 1
    return mask


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--shared", default=None)
    ap.add_argument("--nominal", default=None)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(1234)
    exp = {"reference": "sklearn" if HAVE_SKLEARN else "numpy"}

    sizes = [7, 50, 200, 1000, 5000]
    exp["bin_count"] = len(sizes)
    for k, n in enumerate(sizes):
        labels = (rng.uniform(size=n) < 0.3).astype(np.uint8)
        labels[0], labels[1] = 0, 1
        scores = np.round(rng.normal(size=n) + labels * 0.8, 2).astype(np.float32)
        s64 = scores.astype(np.float64)
        if HAVE_SKLEARN:
            auroc = float(roc_auc_score(labels, s64))
            aupr = float(average_precision_score(labels, s64))
        else:
            auroc = auroc_ranks(s64, labels)
            aupr = ap_brute(s64, labels)
        f1, f1_t = f1_brute(s64, labels)
        scores.tofile(os.path.join(a.out, f"bin{k}.f32"))
        labels.tofile(os.path.join(a.out, f"bin{k}.u8"))
        exp.update({f"bin{k}_n": n, f"bin{k}_auroc": auroc, f"bin{k}_aupr": aupr,
                    f"bin{k}_f1": f1, f"bin{k}_f1_threshold": f1_t})

    images, h, w = 10, 48, 64
    masks = np.stack([blob_mask(rng, h, w) for _ in range(images)])
    masks[0] = 0  # at least one good image
    if masks[1].sum() == 0:
        masks[1, 10:20, 10:20] = 1
    maps = ndimage.gaussian_filter(rng.standard_normal((images, h, w)), (0, 1.5, 1.5))
    maps = maps + 0.4 * ndimage.gaussian_filter(masks.astype(float), (0, 2, 2))
    maps = np.round(maps, 3).astype(np.float32)
    maps.tofile(os.path.join(a.out, "pixel_maps.f32"))
    masks.astype(np.uint8).tofile(os.path.join(a.out, "pixel_masks.u8"))
    flat_s = maps.astype(np.float64).ravel()
    flat_l = masks.ravel()
    exp.update({"pixel_images": images, "pixel_width": w, "pixel_height": h})
    exp["pixel_auroc"] = (float(roc_auc_score(flat_l, flat_s)) if HAVE_SKLEARN
                          else auroc_ranks(flat_s, flat_l))
    fprs, pros = official_pro_curve(maps, masks)
    for lim, name in ((0.3, "0.3"), (0.1, "0.1"), (1.0, "1")):
        exp[f"au_pro_{name}"] = trapezoid_area(fprs, pros, lim) / lim

    with open(os.path.join(a.out, "expected.json"), "w") as f:
        json.dump(exp, f, indent=1)
    print(json.dumps(exp, indent=1))


if __name__ == "__main__":
    main()
