/*
 * PaDiM's kernels at bottle's real size (a benchmark, not a test): 3136
 * positions (56 x 56), d = 550 (or argv[1]), on random data.
 *   score:  padim_gauss_score for 1 and 8 images per call, per covariance
 *           model: ms per image and the factor bytes streamed per second;
 *   fit:    padim_accum_add of blocks of 32 images (ms per image) and
 *           padim_gauss_fit (the per-position LAPACK work), on a slice of
 *           the positions, scaled to 3136.
 * Built and run by bench/padim_bottle.sh; threads from OMP_NUM_THREADS.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "methods/padim_gauss.h"
#include "methods/padim_kernels.h"

#define POSITIONS 3136

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static float *random_floats(size_t n, unsigned seed)
{
    float *p = padim_zalloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory (%zu floats)\n", n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) * 0x1p-24f;
    }
    return p;
}

/* Features [positions][n][d_pad] with zero pads, as padim_gather leaves them. */
static float *features(int n, int d, size_t positions)
{
    int d_pad = padim_pad(d);
    float *x = random_floats(positions * (size_t)n * (size_t)d_pad, 7);
    for (size_t r = 0; r < positions * (size_t)n; r++)
        memset(x + r * (size_t)d_pad + d, 0, (size_t)(d_pad - d) * sizeof *x);
    return x;
}

static void bench_score(padim_cov cov, int d, int rank, int threads)
{
    padim_gauss g = {.cov = cov, .d = d, .d_pad = padim_pad(d), .rank = rank,
                     .positions = POSITIONS};
    size_t per = padim_gauss_factor_floats(cov, d, rank);
    g.mean_owned = features(1, d, POSITIONS);
    g.factor_owned = random_floats(POSITIONS * per, 3);
    if (cov == PADIM_COV_LOWRANK)
        g.weights_owned = random_floats(POSITIONS * (size_t)(rank + 1), 5);
    g.mean = g.mean_owned;
    g.factor = g.factor_owned;
    g.weights = g.weights_owned;
    double gb = (double)(POSITIONS * per * sizeof(float)) * 1e-9;
    static const int batches[] = {1, 8};
    for (int b = 0; b < 2; b++) {
        int n = batches[b];
        float *x = features(n, d, POSITIONS);
        float *out = malloc((size_t)n * POSITIONS * sizeof *out);
        nm_error err = {0};
        double best = 1e30;
        for (int rep = 0; rep < 6; rep++) {
            double t0 = now();
            if (padim_gauss_score(&g, x, (size_t)n * (size_t)g.d_pad, n, out, threads, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                exit(1);
            }
            double t = now() - t0;
            best = rep ? (t < best ? t : best) : best; /* the first run warms up */
        }
        printf("score %-7s d=%d rank %2d: %.2f GB of factors, batch %d: %7.2f ms/image "
               "(%.1f GB/s)\n", padim_cov_name(cov), d, rank, gb, n, best * 1e3 / n, gb / best);
        free(x);
        free(out);
    }
    padim_gauss_free(&g);
}

static void bench_fit(padim_cov cov, int d, int rank, int threads)
{
    const size_t slice = 192; /* positions actually fitted */
    const int block = 32;
    int d_pad = padim_pad(d);
    padim_accum a;
    nm_error err = {0};
    if (padim_accum_init(&a, cov, slice, d, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    float *x = features(block, d, slice);
    double t0 = now();
    int reps = 4;
    for (int r = 0; r < reps; r++)
        padim_accum_add(&a, x, (size_t)block * (size_t)d_pad, block, threads, &err);
    double t_add = (now() - t0) * (double)POSITIONS / (double)slice / (reps * block);
    padim_gauss g;
    t0 = now();
    if (padim_gauss_fit(&a, 0.01, rank, 56, threads, &g, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    double t_fit = (now() - t0) * (double)POSITIONS / (double)slice;
    printf("fit   %-7s d=%d: sums %.1f ms/image, factors %.1f s (3136 positions, "
           "scaled from %zu)\n", padim_cov_name(cov), d, t_add * 1e3, t_fit, slice);
    padim_gauss_free(&g);
    free(x);
}

int main(int argc, char **argv)
{
    int d = argc > 1 ? atoi(argv[1]) : 550;
    int threads = omp_get_max_threads();
    printf("PaDiM kernels, %d positions, %d threads\n", POSITIONS, threads);
    bench_score(PADIM_COV_FULL, d, 0, threads);
    bench_score(PADIM_COV_LOWRANK, d, 64, threads);
    bench_score(PADIM_COV_DIAG, d, 0, threads);
    bench_fit(PADIM_COV_FULL, d, 0, threads);
    bench_fit(PADIM_COV_LOWRANK, d, 64, threads);
    bench_fit(PADIM_COV_DIAG, d, 0, threads);
    return 0;
}
