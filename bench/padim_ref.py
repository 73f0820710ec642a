#!/usr/bin/python3
"""PaDiM's Mahalanobis scoring as the reference computes it, timed on this
machine (a benchmark, not a test): anomalib's Padim
(anomalib/models/padim/torch_model.py, AnomalyMapGenerator.compute_distance)
on bottle's sizes, random data.

    delta = (embedding - mean).permute(2, 0, 1)              # [P][N][d]
    dist = (torch.matmul(delta, inv_covariance) * delta).sum(2)
    dist = dist.permute(1, 0).reshape(N, 1, H, W).clamp(0).sqrt()

inv_covariance is the full [P][d][d] float32 inverse (3.8 GB at d=550 on
56 x 56). Prints ms per image for each batch size, to set against
bench/padim_kernels.c (same work in nominal).

    padim_ref.py [--d 550] [--grid 56] [--batch 1 8] [--threads 2]
"""
import argparse
import time

import torch


def compute_distance(embedding, mean, inv_covariance):
    """anomalib 0.x AnomalyMapGenerator.compute_distance, verbatim."""
    batch, channel, height, width = embedding.shape
    embedding = embedding.reshape(batch, channel, height * width)
    delta = (embedding - mean).permute(2, 0, 1)
    distances = (torch.matmul(delta, inv_covariance) * delta).sum(2).permute(1, 0)
    distances = distances.reshape(batch, 1, height, width)
    return distances.clamp(0).sqrt()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=550)
    ap.add_argument("--grid", type=int, default=56)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    p = args.grid * args.grid
    inv = torch.rand(p, args.d, args.d)
    mean = torch.rand(args.d, p)
    print("torch %s, %d threads: anomalib compute_distance, d=%d, %d positions, "
          "inverse covariances %.2f GB" % (torch.__version__, args.threads, args.d, p,
                                           inv.numel() * 4e-9))
    with torch.no_grad():
        for n in args.batch:
            emb = torch.rand(n, args.d, args.grid, args.grid)
            compute_distance(emb, mean, inv)  # warm up
            best = float("inf")
            for _ in range(args.iters):
                t0 = time.perf_counter()
                compute_distance(emb, mean, inv)
                best = min(best, time.perf_counter() - t0)
            print("batch %d: %.2f ms/image" % (n, best * 1e3 / n))


if __name__ == "__main__":
    main()
