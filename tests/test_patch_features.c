/*
 * PatchCore patch features against patchcore-inspection's _embed rewritten
 * in torch (tests/tools/gen_patchcore_ref.py -> tu_fixtures()/patchcore_ref):
 * the real wide_resnet50 tap shapes, odd grids, batches, patch sizes 1/3/5,
 * 1-3 taps, deeper taps larger than the first, and pooling that upsamples.
 * Also adaptive_avg_pool1d against torch and argument validation.
 */
#include "test_util.h"

#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "methods/patch_features.h"
#include "nominal.h"

#define MAX_TAPS 4
/* Relative to max|ref|; measured errors are printed (about 1e-7). */
#define TOLERANCE 1e-5

static const char *fixture(const char *name)
{
    return tu_path("%s/patchcore_ref/%s", tu_fixtures(), name);
}

static FILE *open_manifest(const char *name)
{
    const char *path = fixture(name);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("fixture %s missing: run tests/tools/gen_patchcore_ref.py",
                 path);
    return f;
}

static float *read_fixture(const char *name, const char *ext, size_t count)
{
    const char *path = fixture(tu_path("%s.%s", name, ext));
    float *data = tu_read_f32(path, count);
    if (!data)
        fail_msg("fixture %s missing or wrong size", path);
    return data;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------- pooling */

static void test_adaptive_pool_matches_torch(void **state)
{
    (void)state;
    FILE *m = open_manifest("pool_cases.txt");
    char name[128];
    int len, olen, cases = 0;
    while (fscanf(m, "%127s %d %d", name, &len, &olen) == 3) {
        float *in = read_fixture(name, "in", (size_t)len);
        float *ref = read_fixture(name, "ref", (size_t)olen);
        float *got = malloc((size_t)olen * sizeof *got);
        adaptive_avg_pool1d(in, len, got, olen);
        double e = tu_max_rel_err(got, ref, (size_t)olen, NULL);
        printf("  pool %5d -> %4d: max rel err %.2e\n", len, olen, e);
        assert_true(e <= 1e-6);
        free(in);
        free(ref);
        free(got);
        cases++;
    }
    fclose(m);
    assert_true(cases >= 6);
}

/* Windows overlap when len/out is not whole: 7 -> 3 averages [0,3) [2,5)
 * [4,7); 3 -> 7 repeats samples. */
static void test_adaptive_pool_windows(void **state)
{
    (void)state;
    const float in[7] = {1, 2, 3, 4, 5, 6, 7};
    float out[7];
    adaptive_avg_pool1d(in, 7, out, 3);
    assert_float_equal(out[0], 2.0f, 1e-6);
    assert_float_equal(out[1], 4.0f, 1e-6);
    assert_float_equal(out[2], 6.0f, 1e-6);
    adaptive_avg_pool1d(in, 3, out, 7);
    const float up[7] = {1, 1, 1.5f, 2, 2.5f, 3, 3};
    for (int i = 0; i < 7; i++)
        assert_float_equal(out[i], up[i], 1e-6);
}

/* ---------------------------------------------------------- patch features */

typedef struct pf_case {
    char name[128];
    int n, patch, dim, out_dim, n_taps;
    int shape[MAX_TAPS][3];
} pf_case;

static int read_case(FILE *m, pf_case *c)
{
    if (fscanf(m, "%127s %d %d %d %d %d", c->name, &c->n, &c->patch, &c->dim,
               &c->out_dim, &c->n_taps) != 6)
        return 0;
    assert_true(c->n_taps >= 1 && c->n_taps <= MAX_TAPS);
    for (int t = 0; t < c->n_taps; t++)
        assert_int_equal(fscanf(m, "%d %d %d", &c->shape[t][0],
                                &c->shape[t][1], &c->shape[t][2]), 3);
    return 1;
}

typedef struct pf_data {
    float *taps_data, *ref;
    nm_tensor taps[MAX_TAPS];
    size_t out_n;
} pf_data;

static void load_case(const pf_case *c, pf_data *d)
{
    size_t total = 0;
    for (int t = 0; t < c->n_taps; t++)
        total += (size_t)c->n * c->shape[t][0] * c->shape[t][1] *
                 c->shape[t][2];
    d->taps_data = read_fixture(c->name, "taps", total);
    size_t offset = 0;
    for (int t = 0; t < c->n_taps; t++) {
        d->taps[t] = (nm_tensor){4, {c->n, c->shape[t][0], c->shape[t][1],
                                     c->shape[t][2]}, d->taps_data + offset};
        offset += (size_t)c->n * c->shape[t][0] * c->shape[t][1] *
                  c->shape[t][2];
    }
    d->out_n = (size_t)c->n * c->shape[0][1] * c->shape[0][2] * c->out_dim;
    d->ref = read_fixture(c->name, "ref", d->out_n);
}

static void free_case(pf_data *d)
{
    free(d->taps_data);
    free(d->ref);
}

/* Best time of `reps` runs into out; fails on an error status. */
static double compute(const pf_case *c, const pf_data *d, float *out, int reps)
{
    patch_feature_config cfg = {c->patch, c->dim, c->out_dim};
    nm_error err = {0};
    double best = INFINITY;
    for (int rep = 0; rep < reps; rep++) {
        double t0 = now_ms();
        nm_status st = patch_features_compute(&cfg, d->taps, c->n_taps, out,
                                              &err);
        double dt = now_ms() - t0;
        if (st != NM_OK)
            fail_msg("%s: %s", c->name, err.msg);
        best = dt < best ? dt : best;
    }
    return best;
}

/* Runs one fixture case; returns the measured relative error and, through
 * ms, the best time of a few runs. */
static double run_case(const pf_case *c, double *ms)
{
    pf_data d;
    load_case(c, &d);
    float *out = malloc(d.out_n * sizeof *out);
    *ms = compute(c, &d, out, 3);
    size_t worst = 0;
    double e = tu_max_rel_err(out, d.ref, d.out_n, &worst);
    if (!(e <= TOLERANCE))
        fprintf(stderr, "%s: worst at %zu: got %.8g ref %.8g\n", c->name,
                worst, out[worst], d.ref[worst]);
    free_case(&d);
    free(out);
    return e;
}

static void test_patch_features_match_patchcore(void **state)
{
    (void)state;
    FILE *m = open_manifest("patch_cases.txt");
    pf_case c;
    int cases = 0, saw_real = 0;
    while (read_case(m, &c)) {
        double ms;
        double e = run_case(&c, &ms);
        printf("  %-14s N=%d p=%d %d taps -> %4d: max rel err %.2e, %.2f ms\n",
               c.name, c.n, c.patch, c.n_taps, c.out_dim, e, ms);
        assert_true(e <= TOLERANCE);
        saw_real |= c.shape[0][0] == 512 && c.shape[0][1] == 28;
        cases++;
    }
    fclose(m);
    assert_true(cases >= 5);
    assert_true(saw_real);
}

/* Rows are split into bands by thread count; the sums are the same in
 * every split, so results are bit-identical for 1, 2, 3 and 5 threads. */
static void test_thread_count_does_not_change_results(void **state)
{
    (void)state;
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    FILE *m = open_manifest("patch_cases.txt");
    pf_case c;
    int cases = 0;
    while (read_case(m, &c)) {
        if (c.shape[0][0] == 512) /* the big case adds time, not coverage */
            continue;
        pf_data d;
        load_case(&c, &d);
        float *first = malloc(d.out_n * sizeof *first);
        float *out = malloc(d.out_n * sizeof *out);
        static const int threads[] = {1, 2, 3, 5};
        for (size_t i = 0; i < sizeof threads / sizeof threads[0]; i++) {
            omp_set_num_threads(threads[i]);
            compute(&c, &d, i == 0 ? first : out, 1);
            if (i > 0 && memcmp(first, out, d.out_n * sizeof *out) != 0)
                fail_msg("%s: %d threads differ from 1", c.name, threads[i]);
        }
        assert_true(tu_max_rel_err(first, d.ref, d.out_n, NULL) <= TOLERANCE);
        free(first);
        free(out);
        free_case(&d);
        cases++;
    }
    fclose(m);
    omp_set_num_threads(saved);
    assert_true(cases >= 4);
#else
    skip();
#endif
}

/* A batch of two equals the two images run one by one. */
static void test_batch_equals_single_images(void **state)
{
    (void)state;
    enum { C0 = 5, H0 = 6, W0 = 7, C1 = 9, H1 = 3, W1 = 4, D = 33 };
    float *a = malloc(2 * C0 * H0 * W0 * sizeof *a);
    float *b = malloc(2 * C1 * H1 * W1 * sizeof *b);
    for (int i = 0; i < 2 * C0 * H0 * W0; i++)
        a[i] = (float)((i * 37) % 101) / 17.0f;
    for (int i = 0; i < 2 * C1 * H1 * W1; i++)
        b[i] = (float)((i * 53) % 89) / 13.0f;
    patch_feature_config cfg = {3, 20, D};
    nm_tensor both[2] = {{4, {2, C0, H0, W0}, a}, {4, {2, C1, H1, W1}, b}};
    float *out2 = malloc(2 * H0 * W0 * D * sizeof *out2);
    float *out1 = malloc(H0 * W0 * D * sizeof *out1);
    assert_int_equal(patch_features_compute(&cfg, both, 2, out2, NULL), NM_OK);
    for (int n = 0; n < 2; n++) {
        nm_tensor one[2] = {{4, {1, C0, H0, W0}, a + n * C0 * H0 * W0},
                            {4, {1, C1, H1, W1}, b + n * C1 * H1 * W1}};
        assert_int_equal(patch_features_compute(&cfg, one, 2, out1, NULL),
                         NM_OK);
        assert_memory_equal(out1, out2 + n * H0 * W0 * D,
                            H0 * W0 * D * sizeof *out1);
    }
    free(a);
    free(b);
    free(out1);
    free(out2);
}

static void test_default_config(void **state)
{
    (void)state;
    patch_feature_config cfg;
    patch_feature_config_default(&cfg);
    assert_int_equal(cfg.patch_size, 3);
    assert_int_equal(cfg.per_tap_dim, 1024);
    assert_int_equal(cfg.out_dim, 1024);
}

static void expect_arg_error(const patch_feature_config *cfg,
                             const nm_tensor *taps, int n_taps, float *out,
                             const char *fragment)
{
    nm_error err = {0};
    nm_status st = patch_features_compute(cfg, taps, n_taps, out, &err);
    assert_int_equal(st, NM_ERR_ARG);
    assert_int_equal(err.code, NM_ERR_ARG);
    if (!strstr(err.msg, fragment))
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, fragment);
    assert_null(strchr(err.msg, '\n'));
}

static void test_rejects_bad_arguments(void **state)
{
    (void)state;
    float data[2 * 2 * 4 * 4] = {0};
    float out[2 * 16 * 8];
    patch_feature_config cfg = {3, 8, 8};
    nm_tensor ok = {4, {1, 2, 4, 4}, data};
    nm_tensor taps[2] = {ok, ok};

    taps[1].rank = 3;
    expect_arg_error(&cfg, taps, 2, out, "rank 3");
    taps[1] = ok;
    taps[1].dims[0] = 2;
    expect_arg_error(&cfg, taps, 2, out, "batch");
    taps[1] = ok;
    taps[1].dims[2] = 0;
    expect_arg_error(&cfg, taps, 2, out, "dim 2");
    taps[1] = ok;
    taps[1].data = NULL;
    expect_arg_error(&cfg, taps, 2, out, "no data");
    taps[1] = ok;
    expect_arg_error(&cfg, taps, 0, out, "taps");
    expect_arg_error(&cfg, NULL, 1, out, "taps");
    expect_arg_error(&cfg, taps, 1, NULL, "output");
    expect_arg_error(NULL, taps, 1, out, "config");

    patch_feature_config bad = cfg;
    bad.patch_size = 2;
    expect_arg_error(&bad, taps, 1, out, "patch_size");
    bad.patch_size = 0;
    expect_arg_error(&bad, taps, 1, out, "patch_size");
    bad = cfg;
    bad.per_tap_dim = 0;
    expect_arg_error(&bad, taps, 1, out, "per_tap_dim");
    bad = cfg;
    bad.out_dim = -1;
    expect_arg_error(&bad, taps, 1, out, "out_dim");
    /* a NULL nm_error is allowed */
    assert_int_equal(patch_features_compute(&bad, taps, 1, out, NULL),
                     NM_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adaptive_pool_matches_torch),
        cmocka_unit_test(test_adaptive_pool_windows),
        cmocka_unit_test(test_patch_features_match_patchcore),
        cmocka_unit_test(test_thread_count_does_not_change_results),
        cmocka_unit_test(test_batch_equals_single_images),
        cmocka_unit_test(test_default_config),
        cmocka_unit_test(test_rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
