/*
 * Greedy coreset: the pruned selection in src/methods/coreset.c must pick
 * exactly the indices of the straightforward algorithm (written out here,
 * sharing only the projection, the starts and the distance function), for
 * any seed, fraction and thread count; plus the edge cases and argument
 * errors, and pinned random numbers (the same on every machine).
 */
#include "test_util.h"

#include <omp.h>

#include "methods/coreset.h"
#include "methods/coreset_internal.h"
#include "nominal.h"

/* ---------------------------------------------------------------- helpers */

typedef struct rng {
    uint64_t s;
} rng;

static double rng_uniform(rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (double)(r->s >> 11) * 0x1p-53;
}

static double rng_gauss(rng *r)
{
    double u = rng_uniform(r) + 1e-300, v = rng_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* n points in dim dimensions from a mixture of n_clusters Gaussians living
 * in an intrinsic_dim subspace (like CNN patch features: clustered, low
 * intrinsic dimension), made non-negative-ish like post-ReLU features. */
static float *clustered_data(size_t n, int dim, int intrinsic_dim,
                             int n_clusters, uint64_t seed)
{
    rng r = {seed * 2654435761u + 1};
    float *basis = malloc((size_t)intrinsic_dim * (size_t)dim * sizeof *basis);
    float *centers = malloc((size_t)n_clusters * (size_t)intrinsic_dim * sizeof *centers);
    float *spread = malloc((size_t)n_clusters * sizeof *spread);
    float *z = malloc((size_t)intrinsic_dim * sizeof *z);
    float *f = malloc(n * (size_t)dim * sizeof *f);
    assert_non_null(basis);
    assert_non_null(centers);
    assert_non_null(spread);
    assert_non_null(z);
    assert_non_null(f);
    for (size_t i = 0; i < (size_t)intrinsic_dim * (size_t)dim; i++)
        basis[i] = (float)(rng_gauss(&r) / sqrt((double)intrinsic_dim));
    for (size_t i = 0; i < (size_t)n_clusters * (size_t)intrinsic_dim; i++)
        centers[i] = (float)(3.0 * rng_gauss(&r));
    for (int c = 0; c < n_clusters; c++)
        spread[c] = (float)(0.2 + rng_uniform(&r));
    for (size_t i = 0; i < n; i++) {
        int c = (int)(rng_uniform(&r) * n_clusters);
        for (int k = 0; k < intrinsic_dim; k++)
            z[k] = centers[c * intrinsic_dim + k] + spread[c] * (float)rng_gauss(&r);
        for (int j = 0; j < dim; j++) {
            float v = (float)(0.02 * rng_gauss(&r));
            for (int k = 0; k < intrinsic_dim; k++)
                v += z[k] * basis[(size_t)k * (size_t)dim + (size_t)j];
            f[i * (size_t)dim + (size_t)j] = v > 0 ? v : 0.1f * v;
        }
    }
    free(basis);
    free(centers);
    free(spread);
    free(z);
    return f;
}

/* The algorithm of coreset.h without any pruning: argmax (lowest index on
 * ties), then d = min(d, dist to the new point) for every point. */
static size_t *naive_select(const float *features, size_t n, int dim,
                            const coreset_options *o, size_t *count,
                            float *radius)
{
    float *proj = NULL;
    assert_int_equal(coreset_project(features, n, dim, o->projection_dim,
                                     o->seed, &proj, NULL),
                     NM_OK);
    const float *p = proj ? proj : features;
    const int pdim = o->projection_dim;
    size_t starts[CORESET_MAX_STARTS];
    size_t ns = coreset_pick_starts(n, o->n_starts, o->seed, starts);
    float *d = malloc(n * sizeof *d);
    assert_non_null(d);
    coreset_initial_distances(p, n, pdim, starts, ns, NULL, d);
    size_t want = (size_t)((double)n * o->fraction);
    if (want == 0)
        want = 1;
    size_t *sel = malloc(want * sizeof *sel);
    assert_non_null(sel);
    for (size_t t = 0; t < want; t++) {
        size_t q = 0;
        for (size_t i = 1; i < n; i++)
            if (d[i] > d[q])
                q = i;
        sel[t] = q;
        for (size_t i = 0; i < n; i++) {
            float v = coreset_dist(p + i * (size_t)pdim, p + q * (size_t)pdim, pdim);
            if (v < d[i])
                d[i] = v;
        }
    }
    float r = d[0];
    for (size_t i = 1; i < n; i++)
        if (d[i] > r)
            r = d[i];
    *radius = r;
    *count = want;
    free(d);
    free(proj);
    return sel;
}

/* Run the library with 1 and 2 threads and the naive version once; the
 * selections must be equal. Returns the share of the naive distance
 * computations that the library did. */
static double check_against_naive(const float *f, size_t n, int dim,
                                  const coreset_options *o)
{
    size_t ref_count = 0;
    float ref_radius = 0;
    size_t *ref = naive_select(f, n, dim, o, &ref_count, &ref_radius);
    double share = 0;
    int saved = omp_get_max_threads();
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        size_t *got = NULL, count = 0;
        float radius = -1;
        nm_error err = {0};
        coreset_stats st;
        nm_status s = coreset_greedy_select_stats(f, n, dim, o, &got, &count,
                                                  &radius, &st, &err);
        omp_set_num_threads(saved);
        if (s != NM_OK)
            fail_msg("coreset: %s", err.msg);
        assert_int_equal(count, ref_count);
        for (size_t t = 0; t < count; t++)
            if (got[t] != ref[t])
                fail_msg("n %zu dim %d pdim %d fraction %g seed %llu threads %d: "
                         "selection %zu is %zu, naive %zu",
                         n, dim, o->projection_dim, o->fraction,
                         (unsigned long long)o->seed, threads, t, got[t], ref[t]);
        assert_true(radius == ref_radius);
        assert_true(st.exact <= n * count);
        share = (double)st.exact / ((double)n * (double)count);
        free(got);
    }
    free(ref);
    return share;
}

/* ------------------------------------------------------------------ tests */

static void test_matches_naive_on_clustered_data(void **state)
{
    (void)state;
    const size_t n = 4000;
    const int dim = 96;
    float *f = clustered_data(n, dim, 8, 12, 1);
    const double fractions[] = {0.002, 0.05, 0.25};
    const uint64_t seeds[] = {0, 12345};
    for (size_t fi = 0; fi < sizeof fractions / sizeof *fractions; fi++)
        for (size_t si = 0; si < sizeof seeds / sizeof *seeds; si++) {
            coreset_options o;
            coreset_options_default(&o);
            o.fraction = fractions[fi];
            o.seed = seeds[si];
            double share = check_against_naive(f, n, dim, &o);
            /* the bounds must actually skip work on clustered data */
            if (o.fraction >= 0.05 && share > 0.3)
                fail_msg("fraction %g: %.0f%% of the naive distances computed",
                         o.fraction, 100 * share);
        }
    free(f);
}

/* Projection width not a multiple of 16 (distance tail), one start, and
 * projection_dim == dim (no projection, as patchcore-inspection). */
static void test_matches_naive_with_other_shapes(void **state)
{
    (void)state;
    const size_t n = 3000;
    float *f = clustered_data(n, 37, 5, 20, 2);
    coreset_options o;
    coreset_options_default(&o);
    o.fraction = 0.1;
    o.seed = 7;
    o.projection_dim = 40;
    o.n_starts = 1;
    check_against_naive(f, n, 37, &o);
    o.projection_dim = 37;
    o.n_starts = 3;
    check_against_naive(f, n, 37, &o);
    free(f);
}

/* Points on a small integer grid without projection: many distances are
 * exactly equal, so the lowest-index rule decides most selections. */
static void test_matches_naive_with_ties(void **state)
{
    (void)state;
    const size_t n = 2000;
    const int dim = 3;
    float *f = malloc(n * dim * sizeof *f);
    assert_non_null(f);
    rng r = {99};
    for (size_t i = 0; i < n * dim; i++)
        f[i] = (float)(int)(rng_uniform(&r) * 6);
    coreset_options o;
    coreset_options_default(&o);
    o.projection_dim = dim;
    o.fraction = 0.2; /* more selections than distinct points (216) */
    check_against_naive(f, n, dim, &o);
    free(f);
}

/* All points equal: every distance is 0, the naive rule picks index 0 at
 * every step; so must the pruned one. */
static void test_identical_points(void **state)
{
    (void)state;
    const size_t n = 50;
    const int dim = 8;
    float f[50 * 8];
    for (size_t i = 0; i < n * dim; i++)
        f[i] = 0.5f;
    coreset_options o;
    coreset_options_default(&o);
    o.fraction = 0.1;
    check_against_naive(f, n, dim, &o);
}

static void test_deterministic_across_runs_and_threads(void **state)
{
    (void)state;
    const size_t n = 20000;
    const int dim = 64;
    float *f = clustered_data(n, dim, 10, 30, 3);
    coreset_options o;
    coreset_options_default(&o);
    o.fraction = 0.1;
    o.seed = 5;
    size_t *first = NULL, first_count = 0;
    float first_radius = 0;
    int saved = omp_get_max_threads();
    for (int run = 0; run < 3; run++) {
        omp_set_num_threads(run == 1 ? 1 : 2);
        size_t *idx = NULL, count = 0;
        float radius = 0;
        nm_error err = {0};
        nm_status s = coreset_greedy_select(f, n, dim, &o, &idx, &count,
                                            &radius, &err);
        if (s != NM_OK)
            fail_msg("coreset: %s", err.msg);
        assert_int_equal(count, 2000);
        if (!first) {
            first = idx;
            first_count = count;
            first_radius = radius;
            continue;
        }
        assert_int_equal(count, first_count);
        assert_memory_equal(idx, first, count * sizeof *idx);
        assert_true(radius == first_radius);
        free(idx);
    }
    omp_set_num_threads(saved);
    /* a different seed makes a different selection */
    o.seed = 6;
    size_t *other = NULL, count = 0;
    assert_int_equal(coreset_greedy_select(f, n, dim, &o, &other, &count, NULL, NULL),
                     NM_OK);
    assert_true(memcmp(other, first, count * sizeof *other) != 0);
    free(other);
    free(first);
    free(f);
}

static void test_fraction_one_keeps_everything(void **state)
{
    (void)state;
    float f[7 * 3];
    for (int i = 0; i < 21; i++)
        f[i] = (float)(i % 5);
    const double fractions[] = {1.0, 2.5};
    for (int k = 0; k < 2; k++) {
        coreset_options o;
        coreset_options_default(&o);
        o.fraction = fractions[k];
        size_t *idx = NULL, count = 0;
        float radius = -1;
        assert_int_equal(coreset_greedy_select(f, 7, 3, &o, &idx, &count, &radius, NULL),
                         NM_OK);
        assert_int_equal(count, 7);
        for (size_t i = 0; i < count; i++)
            assert_int_equal(idx[i], i);
        assert_true(radius == 0.0f);
        free(idx);
    }
}

/* n = 1; and count = floor(n * fraction) = 0 still selects one point. */
static void test_single_point_and_minimum_count(void **state)
{
    (void)state;
    float one[4] = {1, 2, 3, 4};
    coreset_options o;
    coreset_options_default(&o);
    o.fraction = 0.5;
    size_t *idx = NULL, count = 0;
    float radius = -1;
    nm_error err = {0};
    assert_int_equal(coreset_greedy_select(one, 1, 4, &o, &idx, &count, &radius, &err),
                     NM_OK);
    assert_int_equal(count, 1);
    assert_int_equal(idx[0], 0);
    assert_true(radius == 0.0f);
    free(idx);

    float *f = clustered_data(30, 16, 3, 4, 4);
    o.fraction = 0.01; /* 0.3 -> 1 */
    check_against_naive(f, 30, 16, &o);
    free(f);
}

typedef struct progress_log {
    size_t calls, last_done, total;
    int monotonic;
} progress_log;

static void on_progress(void *ctx, size_t done, size_t total)
{
    progress_log *p = ctx;
    if (done <= p->last_done)
        p->monotonic = 0;
    p->calls++;
    p->last_done = done;
    p->total = total;
}

static void test_progress_is_reported(void **state)
{
    (void)state;
    float *f = clustered_data(4000, 16, 4, 8, 5);
    coreset_options o;
    coreset_options_default(&o);
    o.fraction = 0.1;
    progress_log log = {0, 0, 0, 1};
    o.progress = on_progress;
    o.progress_ctx = &log;
    size_t *idx = NULL, count = 0;
    assert_int_equal(coreset_greedy_select(f, 4000, 16, &o, &idx, &count, NULL, NULL),
                     NM_OK);
    assert_true(log.monotonic);
    assert_int_equal(log.total, 400);
    assert_int_equal(log.last_done, 400);
    assert_in_range(log.calls, 50, 101); /* about every 1% */
    free(idx);
    free(f);
}

static void expect_error(const float *f, size_t n, int dim,
                         const coreset_options *o, nm_status code,
                         const char *needle)
{
    size_t *idx = (size_t *)(uintptr_t)1, count = 99;
    nm_error err = {0};
    nm_status s = coreset_greedy_select(f, n, dim, o, &idx, &count, NULL, &err);
    assert_int_equal(s, code);
    assert_int_equal(err.code, code);
    assert_null(idx);
    assert_int_equal(count, 0);
    if (!strstr(err.msg, needle))
        fail_msg("message \"%s\" does not mention \"%s\"", err.msg, needle);
}

static void test_invalid_arguments(void **state)
{
    (void)state;
    float f[40 * 4];
    for (int i = 0; i < 160; i++)
        f[i] = (float)(i % 11);
    coreset_options o;
    coreset_options_default(&o);
    expect_error(f, 0, 4, &o, NM_ERR_ARG, "n = 0");
    expect_error(f, 40, 0, &o, NM_ERR_ARG, "dimension");
    expect_error(f, 40, -3, &o, NM_ERR_ARG, "dimension");
    expect_error(NULL, 40, 4, &o, NM_ERR_ARG, "required");
    expect_error(f, 40, 4, NULL, NM_ERR_ARG, "required");
    o.fraction = 0;
    expect_error(f, 40, 4, &o, NM_ERR_ARG, "fraction");
    o.fraction = -0.5;
    expect_error(f, 40, 4, &o, NM_ERR_ARG, "fraction");
    o.fraction = NAN;
    expect_error(f, 40, 4, &o, NM_ERR_ARG, "fraction");
    coreset_options_default(&o);
    o.projection_dim = 0;
    expect_error(f, 40, 4, &o, NM_ERR_ARG, "projection_dim");
    coreset_options_default(&o);
    o.n_starts = 0;
    expect_error(f, 40, 4, &o, NM_ERR_ARG, "n_starts");
    coreset_options_default(&o);
    assert_int_equal(coreset_greedy_select(f, 40, 4, &o, NULL, NULL, NULL, NULL),
                     NM_ERR_ARG);
}

static void test_non_finite_features_are_rejected(void **state)
{
    (void)state;
    float f[40 * 4];
    for (int i = 0; i < 160; i++)
        f[i] = (float)(i % 11);
    coreset_options o;
    coreset_options_default(&o);
    f[17 * 4 + 2] = NAN;
    expect_error(f, 40, 4, &o, NM_ERR_ARG, "row 17, column 2 is not finite");
    o.projection_dim = 4; /* no projection: checked directly */
    expect_error(f, 40, 4, &o, NM_ERR_ARG, "row 17, column 2 is not finite");
    o.fraction = 1.0; /* even when everything is kept */
    expect_error(f, 40, 4, &o, NM_ERR_ARG, "row 17, column 2 is not finite");
    f[17 * 4 + 2] = 1;
    f[39 * 4 + 0] = -INFINITY;
    coreset_options_default(&o);
    expect_error(f, 40, 4, &o, NM_ERR_ARG, "row 39, column 0 is not finite");
    /* finite but so large that squared distances would overflow */
    f[39 * 4 + 0] = 1e30f;
    expect_error(f, 40, 4, &o, NM_ERR_ARG, "row 39 is too large");
}

/* The random numbers are part of the result: pin them. */
static void test_random_numbers_are_pinned(void **state)
{
    (void)state;
    coreset_rng r;
    coreset_rng_init(&r, 0, 0);
    assert_true(coreset_rng_next(&r) == UINT64_C(0xE220A8397B1DCDAF)); /* splitmix64 */
    float w[64 * 2];
    coreset_projection_matrix(64, 2, 42, w);
    assert_true(w[0] == 0x1.2376ecp-4f);
    assert_true(w[1] == -0x1.13332cp-4f);
    assert_true(w[2] == -0x1.b76p-5f);
    assert_true(w[3] == -0x1.fb822p-4f);
    for (int i = 0; i < 128; i++)
        assert_true(fabsf(w[i]) <= 0.125f);
    size_t starts[5];
    assert_int_equal(coreset_pick_starts(1000, 5, 42, starts), 5);
    const size_t expect[5] = {144, 244, 7, 172, 328};
    assert_memory_equal(starts, expect, sizeof expect);
    /* more starts than points: all of them, distinct */
    size_t all[10];
    assert_int_equal(coreset_pick_starts(4, 10, 1, all), 4);
    int seen[4] = {0};
    for (int i = 0; i < 4; i++)
        seen[all[i]]++;
    for (int i = 0; i < 4; i++)
        assert_int_equal(seen[i], 1);
}

static void test_distance_is_symmetric_and_exact_on_small_values(void **state)
{
    (void)state;
    float a[37], b[37];
    double ref = 0;
    for (int i = 0; i < 37; i++) {
        a[i] = (float)i * 0.25f;
        b[i] = (float)(36 - i) * 0.5f;
        ref += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    }
    float d1 = coreset_dist(a, b, 37), d2 = coreset_dist(b, a, 37);
    assert_true(d1 == d2);
    assert_true(fabs(d1 - sqrt(ref)) <= 1e-6 * sqrt(ref));
    assert_true(coreset_dist(a, a, 37) == 0.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_naive_on_clustered_data),
        cmocka_unit_test(test_matches_naive_with_other_shapes),
        cmocka_unit_test(test_matches_naive_with_ties),
        cmocka_unit_test(test_identical_points),
        cmocka_unit_test(test_deterministic_across_runs_and_threads),
        cmocka_unit_test(test_fraction_one_keeps_everything),
        cmocka_unit_test(test_single_point_and_minimum_count),
        cmocka_unit_test(test_progress_is_reported),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_non_finite_features_are_rejected),
        cmocka_unit_test(test_random_numbers_are_pinned),
        cmocka_unit_test(test_distance_is_symmetric_and_exact_on_small_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
