#!/usr/bin/python3
"""Reference data for tests/test_padim.c, made at test time (never committed).

PaDiM as the reference implementations compute it (anomalib's Padim,
xiahaifeng1995/PaDiM-Anomaly-Detection-Localization-master), in torch and
numpy float64 on small random taps:
  embedding: deeper taps brought to the first tap's grid with torch
             F.interpolate(mode="nearest"), concatenated, channels selected;
  mean:      over the training images per position;
  cov:       np.cov (unbiased) + 0.01 I per position;
  full:      Mahalanobis distance sqrt((x-mu)^T cov^-1 (x-mu)) of each test
             image at each position (np.linalg.inv);
  diag:      the same with only the diagonal of cov;
  lowrank:   the probabilistic-PCA model of padim_gauss.h from np.linalg.eigh:
             the r leading eigenpairs of cov kept, the other eigenvalues
             replaced by their mean sigma^2.
The kept channels are drawn as padim_embed.h specifies (splitmix64 stream 3
of the seed, partial Fisher-Yates, sorted), written here independently.

Writes into --out (raw little-endian, row-major):
  cases.txt     "NAME SEED D N_FIT N_TEST RANK T C0 H0 W0 C1 H1 W1 ..."
  NAME.fit      float32, the T fit taps [N_FIT][C][H][W] one after another
  NAME.test     float32, the same for the test images
  NAME.channels int32 [D]
  NAME.emb      float32 [N_FIT][H0*W0][D], the fit images' embedding
  NAME.mean     float32 [H0*W0][D]
  NAME.cov      float32 [H0*W0][D][D] (with the 0.01 I)
  NAME.full, NAME.diag, NAME.lowrank   float32 [N_TEST][H0*W0] distances
  choices.txt   "SEED TOTAL D" and choice_SEED_TOTAL_D.channels (int32 [D]),
                including the real ResNet-50 case (1792 channels, d 550).
"""
import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F

EPS = 0.01
M64 = (1 << 64) - 1
STREAM_CHANNELS = 3

# name, seed, d, n_fit, n_test, rank, taps [(C, H, W)]
CASES = [
    # integer ratios (8 -> 4 -> 2, as 56 -> 28 -> 14), more images than d
    ("even", 7, 20, 30, 5, 6, [(6, 8, 8), (10, 4, 4), (12, 2, 2)]),
    # ratios that are not whole (7x9 from 4x5 and 3x3), all channels kept,
    # fewer images than d: the covariance is singular without the eps I
    ("odd", 11, 22, 9, 3, 3, [(5, 7, 9), (8, 4, 5), (9, 3, 3)]),
    # d odd and above 64: rows of 5 vector chunks (the kernels' groups of
    # four plus a remainder) and an unpaired last row
    ("wide", 5, 71, 90, 6, 10, [(40, 6, 6), (48, 3, 3)]),
    # one tap, d = 1
    ("single", 3, 1, 4, 2, 0, [(4, 3, 5)]),
]

CHOICES = [(0, 1792, 550), (1, 448, 100), (42, 30, 30), (5, 1000, 17)]


def splitmix(seed, stream):
    state = (seed ^ (stream * 0xD1B54A32D192ED03)) & M64
    while True:
        state = (state + 0x9E3779B97F4A7C15) & M64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        yield z ^ (z >> 31)


def choose_channels(seed, total, d):
    perm = list(range(total))
    draws = splitmix(seed, STREAM_CHANNELS)
    for i in range(d):
        j = i + next(draws) % (total - i)
        perm[i], perm[j] = perm[j], perm[i]
    return np.array(sorted(perm[:d]), dtype="<i4")


def save(out, name, arr, dtype="<f4"):
    np.ascontiguousarray(arr, dtype=dtype).tofile(os.path.join(out, name))


def random_taps(rng, n, shapes):
    """Correlated, non-negative features with channel-dependent scales, like
    a backbone's post-ReLU maps (and so a covariance worth inverting)."""
    taps = []
    for c, h, w in shapes:
        z = rng.standard_normal((n, c, h, w))
        mix = rng.standard_normal((c, c)) / np.sqrt(c)
        x = np.einsum("ij,njhw->nihw", mix, z) + rng.random((1, c, h, w)) * 2
        x *= rng.uniform(0.2, 3.0, (1, c, 1, 1))
        taps.append(np.maximum(x, 0).astype(np.float32))
    return taps


def embedding(taps, channels):
    """anomalib's Padim.generate_embedding with the channel index_select."""
    ts = [torch.from_numpy(t) for t in taps]
    emb = ts[0]
    for t in ts[1:]:
        emb = torch.cat((emb, F.interpolate(t, size=emb.shape[-2:], mode="nearest")), 1)
    emb = torch.index_select(emb, 1, torch.from_numpy(channels.astype(np.int64)))
    n, d, h, w = emb.shape
    return emb.numpy().reshape(n, d, h * w).transpose(0, 2, 1)  # [N][P][D]


def covariances(emb):
    x = emb.astype(np.float64)
    n, p, d = x.shape
    mean = x.mean(0)
    cov = np.empty((p, d, d))
    for i in range(p):
        cov[i] = np.cov(x[:, i, :].T).reshape(d, d) + EPS * np.eye(d)
    return mean, cov


def distances(test_emb, mean, cov, rank):
    x = test_emb.astype(np.float64)
    n, p, d = x.shape
    full = np.empty((n, p))
    diag = np.empty((n, p))
    low = np.zeros((n, p))
    for i in range(p):
        diff = x[:, i, :] - mean[i]
        inv = np.linalg.inv(cov[i])
        full[:, i] = np.sqrt(np.einsum("nj,jk,nk->n", diff, inv, diff))
        diag[:, i] = np.sqrt((diff * diff / np.diag(cov[i])).sum(1))
        if rank:
            lam, vec = np.linalg.eigh(cov[i])  # ascending
            top, v = lam[-rank:], vec[:, -rank:]
            sigma2 = lam[:-rank].mean()
            proj = diff @ v
            q = (proj * proj / top).sum(1) + ((diff * diff).sum(1) - (proj * proj).sum(1)) / sigma2
            low[:, i] = np.sqrt(q)
    return full, diag, low


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--shared", default="../shared")  # unused: all synthetic
    ap.add_argument("--nominal", default="build/nominal")  # unused
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(2)
    rng = np.random.default_rng(2021)
    with open(os.path.join(args.out, "cases.txt"), "w") as m:
        for name, seed, d, n_fit, n_test, rank, shapes in CASES:
            total = sum(s[0] for s in shapes)
            channels = choose_channels(seed, total, d)
            taps = random_taps(rng, n_fit + n_test, shapes)
            fit = [t[:n_fit] for t in taps]
            test = [t[n_fit:].copy() for t in taps]
            test[0][0, :, 1, 1] += 5.0  # one clearly anomalous patch
            emb = embedding(fit, channels)
            mean, cov = covariances(emb)
            full, diag, low = distances(embedding(test, channels), mean, cov, rank)
            save(args.out, name + ".fit", np.concatenate([t.ravel() for t in fit]))
            save(args.out, name + ".test", np.concatenate([t.ravel() for t in test]))
            save(args.out, name + ".channels", channels, "<i4")
            save(args.out, name + ".emb", emb)
            save(args.out, name + ".mean", mean)
            save(args.out, name + ".cov", cov)
            save(args.out, name + ".full", full)
            save(args.out, name + ".diag", diag)
            save(args.out, name + ".lowrank", low)
            m.write("%s %d %d %d %d %d %d %s\n" % (
                name, seed, d, n_fit, n_test, rank, len(shapes),
                " ".join("%d %d %d" % s for s in shapes)))
    with open(os.path.join(args.out, "choices.txt"), "w") as m:
        for seed, total, d in CHOICES:
            save(args.out, "choice_%d_%d_%d.channels" % (seed, total, d),
                 choose_channels(seed, total, d), "<i4")
            m.write("%d %d %d\n" % (seed, total, d))


if __name__ == "__main__":
    main()
