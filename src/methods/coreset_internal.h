/*
 * Pieces of coreset_greedy_select that tests need to build a naive
 * reference with exactly the same numbers (same projection, same starts,
 * same distance function). Not part of the library's interface.
 *
 * Random numbers: splitmix64 (Steele, Lea, Flood 2014), one stream per use:
 * state0 = seed ^ (stream * 0xD1B54A32D192ED03), then each draw
 * state += 0x9E3779B97F4A7C15 and the usual xor-shift-multiply mix. Integer
 * arithmetic only, so every machine draws the same numbers.
 */
#ifndef NM_METHODS_CORESET_INTERNAL_H
#define NM_METHODS_CORESET_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "methods/coreset.h"
#include "nominal.h"

enum { CORESET_STREAM_PROJECTION = 1, CORESET_STREAM_STARTS = 2 };

#define CORESET_MAX_STARTS 1000

typedef struct coreset_rng {
    uint64_t state;
} coreset_rng;

void coreset_rng_init(coreset_rng *r, uint64_t seed, uint64_t stream);
uint64_t coreset_rng_next(coreset_rng *r);

/* The dim x pdim projection matrix (row-major): entry = (2u - 1) / sqrt(dim)
 * with u = (draw >> 40) / 2^24, drawn row by row from the projection stream
 * (torch.nn.Linear's default init range, as patchcore-inspection uses). */
void coreset_projection_matrix(int dim, int pdim, uint64_t seed, float *w);

/* features (n x dim) times the projection matrix, into *proj (malloc'ed,
 * n x pdim). When pdim == dim the features are used as they are (like
 * patchcore-inspection): *proj is then NULL and the caller reads features. */
nm_status coreset_project(const float *features, size_t n, int dim, int pdim,
                          uint64_t seed, float **proj, nm_error *err);

/* min(n_starts, n) distinct indices from the starts stream: each draw is
 * next() % n, repeats are drawn again. */
size_t coreset_pick_starts(size_t n, int n_starts, uint64_t seed,
                           size_t *starts);

/* Euclidean distance, summed in a fixed order (16 lanes, then a fixed
 * pairwise combination) so that every caller gets bit-identical results. */
float coreset_dist(const float *a, const float *b, int d);

/* d[i] = mean over the starts of coreset_dist(row i, start row): the sum is
 * taken in double in start order, divided by the count, rounded to float.
 * sdist (optional, n x n_starts) receives the individual distances. */
void coreset_initial_distances(const float *proj, size_t n, int pdim,
                               const size_t *starts, size_t n_starts,
                               float *sdist, float *d);

/* What the selection did, for benchmarks and tests. */
typedef struct coreset_stats {
    size_t exact;        /* point-to-new-center distances computed */
    size_t center_dists; /* center-to-new-center distances computed */
    size_t super_dists;  /* super-center-to-new-center distances */
    size_t scans;        /* clusters whose members were looked at */
    size_t moves;        /* distances lowered */
    double project_s;    /* projection, starts, initial distances */
    double select_s;     /* the greedy loop */
} coreset_stats;

/* coreset_greedy_select that also fills *stats (optional). */
nm_status coreset_greedy_select_stats(const float *features, size_t n, int dim,
                                      const coreset_options *opts,
                                      size_t **indices, size_t *count,
                                      float *radius, coreset_stats *stats,
                                      nm_error *err);

#endif
