/*
 * Exact k-NN by chunked GEMM (src/methods/knn.c) against a brute-force
 * double-precision reference: k = 1, 3, 9, 64 and k = m; banks that are not
 * a multiple of the chunk, smaller than one chunk, or one row; one query
 * and more queries than one block; duplicate points; workspace reuse; and
 * the argument errors; all of them both by brute force and pruned by a
 * projection. The pruned search is also checked tightly (each distance
 * to 2e-5 of itself) on low-rank data with anomalies, on isotropic data,
 * with a stored projection and with NaN queries.
 */
#include "test_util.h"

#include "backend/backend.h"
#include "methods/knn.h"
#include "nominal.h"

typedef struct rng {
    uint64_t s;
} rng;

static float rng_float(rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (float)((double)(r->s >> 11) * 0x1p-53);
}

/* Post-ReLU-like features: non-negative, a few clusters, so neighbours are
 * much closer than the norms (the cancellation case of |a|^2-2ab+|b|^2). */
static float *features(size_t rows, int dim, uint64_t seed)
{
    rng r = {seed * 0x9E3779B97F4A7C15u + 1};
    float *centers = malloc(8 * (size_t)dim * sizeof *centers);
    float *f = malloc(rows * (size_t)dim * sizeof *f);
    assert_non_null(centers);
    assert_non_null(f);
    for (size_t i = 0; i < 8 * (size_t)dim; i++)
        centers[i] = 2.0f * rng_float(&r);
    for (size_t i = 0; i < rows; i++) {
        const float *c = centers + (size_t)(rng_float(&r) * 8) * (size_t)dim;
        for (int j = 0; j < dim; j++) {
            float v = c[j] + 0.3f * (rng_float(&r) - 0.5f);
            f[i * (size_t)dim + (size_t)j] = v > 0 ? v : 0;
        }
    }
    free(centers);
    return f;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The k smallest squared distances of every query, in double. */
static double *brute_force(const float *q, int64_t nq, const float *bank,
                           int64_t m, int dim, int k)
{
    double *all = malloc((size_t)m * sizeof *all);
    double *out = malloc((size_t)nq * (size_t)k * sizeof *out);
    assert_non_null(all);
    assert_non_null(out);
    for (int64_t i = 0; i < nq; i++) {
        for (int64_t j = 0; j < m; j++) {
            double s = 0;
            for (int d = 0; d < dim; d++) {
                double t = (double)q[i * dim + d] - (double)bank[j * dim + d];
                s += t * t;
            }
            all[j] = s;
        }
        qsort(all, (size_t)m, sizeof *all, cmp_double);
        memcpy(out + i * k, all, (size_t)k * sizeof *out);
    }
    free(all);
    return out;
}

/* Distances must match the reference within 1e-4 of the distance scale
 * (the largest reference distance) and come out ascending. */
static void check_search(knn_index *idx, const float *q, int64_t nq,
                         const float *bank, int64_t m, int dim, int k)
{
    float *got = malloc((size_t)nq * (size_t)k * sizeof *got);
    assert_non_null(got);
    nm_error err = {0};
    nm_status s = knn_search(idx, q, nq, k, got, &err);
    if (s != NM_OK)
        fail_msg("knn_search: %s", err.msg);
    double *ref = brute_force(q, nq, bank, m, dim, k);
    double scale = 0;
    for (int64_t i = 0; i < nq * k; i++)
        scale = ref[i] > scale ? ref[i] : scale;
    for (int64_t i = 0; i < nq; i++) {
        for (int j = 0; j < k; j++) {
            double g = got[i * k + j], r = ref[i * k + j];
            if (!(fabs(g - r) <= 1e-4 * scale))
                fail_msg("m %lld dim %d k %d: query %lld, neighbour %d: %.9g, "
                         "reference %.9g (scale %.3g)", (long long)m, dim, k,
                         (long long)i, j, g, r, scale);
            assert_true(g >= 0);
            if (j > 0)
                assert_true(got[i * k + j - 1] <= g);
        }
    }
    free(ref);
    free(got);
}

static nm_backend *backend(void)
{
    nm_backend *be = NULL;
    nm_error err = {0};
    if (backend_create(0, &be, &err) != NM_OK)
        fail_msg("backend: %s", err.msg);
    return be;
}

/* Every case runs three ways: brute force, the automatic choice, and a
 * projection forced onto a quarter of the dimensions (so the pruned search
 * also meets k = 64, k = m, a one-row bank and several query blocks). */
static void run_case(nm_backend *be, int64_t m, int64_t nq, int dim,
                     const int *ks, int n_ks, uint64_t seed)
{
    float *bank = features((size_t)m, dim, seed);
    float *q = features((size_t)nq, dim, seed + 1000);
    const int modes[] = {0, -1, dim / 4 > 0 ? dim / 4 : 1};
    for (int mode = 0; mode < 3; mode++) {
        knn_options o;
        knn_options_default(&o);
        o.projection_dims = modes[mode];
        knn_index *idx = NULL;
        nm_error err = {0};
        if (knn_index_create(be, bank, m, dim, &o, &idx, &err) != NM_OK)
            fail_msg("knn_index_create: %s", err.msg);
        assert_true((knn_index_projection(idx) != NULL) ==
                    (modes[mode] > 0 || (modes[mode] < 0 && knn_projection_auto_dims(m, dim) > 0)));
        for (int i = 0; i < n_ks; i++)
            check_search(idx, q, nq, bank, m, dim, ks[i]);
        knn_index_free(idx);
    }
    free(q);
    free(bank);
}

/* ------------------------------------------------------------------ tests */

static void test_matches_brute_force(void **state)
{
    (void)state;
    nm_backend *be = backend();
    const int ks[] = {1, 3, 9};
    run_case(be, 4133, 200, 64, ks, 3, 1);  /* 2 full chunks + a tail */
    run_case(be, 300, 57, 37, ks, 3, 2);    /* bank smaller than a chunk */
    run_case(be, 2500, 96, 1024, ks, 1, 3); /* PatchCore's width */
    backend_destroy(be);
}

static void test_single_query_and_many_queries(void **state)
{
    (void)state;
    nm_backend *be = backend();
    const int k1[] = {1, 3};
    run_case(be, 2049, 1, 48, k1, 2, 4);
    run_case(be, 700, 2500, 16, k1, 2, 5); /* several query blocks */
    backend_destroy(be);
}

static void test_large_k_and_k_equal_to_bank(void **state)
{
    (void)state;
    nm_backend *be = backend();
    const int k64[] = {64};
    run_case(be, 3000, 40, 32, k64, 1, 6);
    const int k5[] = {5, 1};
    run_case(be, 5, 30, 20, k5, 2, 7);
    const int k1[] = {1};
    run_case(be, 1, 10, 8, k1, 1, 8); /* one-row bank */
    backend_destroy(be);
}

/* A query equal to a bank row is at distance 0 (or within float rounding
 * of the norms: 1e-5 of |a|^2), never negative. */
static void test_duplicates_are_at_distance_zero(void **state)
{
    (void)state;
    nm_backend *be = backend();
    const int64_t m = 3000;
    const int dim = 1024;
    float *bank = features((size_t)m, dim, 9);
    /* the bank holds two copies of row 17 */
    memcpy(bank + 1234 * dim, bank + 17 * dim, dim * sizeof *bank);
    const int64_t nq = 50;
    float *q = malloc((size_t)nq * dim * sizeof *q);
    assert_non_null(q);
    for (int64_t i = 0; i < nq; i++)
        memcpy(q + i * dim, bank + (i * 59 % m) * dim, dim * sizeof *q);
    memcpy(q, bank + 17 * dim, dim * sizeof *q);
    knn_index *idx = NULL;
    assert_int_equal(knn_index_create(be, bank, m, dim, NULL, &idx, NULL), NM_OK);
    float d[2 * 50];
    assert_int_equal(knn_search(idx, q, nq, 2, d, NULL), NM_OK);
    for (int64_t i = 0; i < nq; i++) {
        double norm = 0;
        for (int j = 0; j < dim; j++)
            norm += (double)q[i * dim + j] * q[i * dim + j];
        if (!(d[i * 2] >= 0 && d[i * 2] <= 1e-5 * norm))
            fail_msg("query %lld: distance to itself %g (|a|^2 %g)",
                     (long long)i, d[i * 2], norm);
    }
    /* query 0 is row 17, which the bank holds twice: both at zero */
    double norm0 = 0;
    for (int j = 0; j < dim; j++)
        norm0 += (double)q[j] * q[j];
    assert_true(d[1] >= 0 && d[1] <= 1e-5 * norm0);
    knn_index_free(idx);
    free(q);
    free(bank);
    backend_destroy(be);
}

/* Searches of different sizes on one index reuse and grow its workspace. */
static void test_workspace_reuse(void **state)
{
    (void)state;
    nm_backend *be = backend();
    const int64_t m = 2100;
    const int dim = 40;
    float *bank = features((size_t)m, dim, 10);
    float *q = features(1300, dim, 11);
    knn_index *idx = NULL;
    assert_int_equal(knn_index_create(be, bank, m, dim, NULL, &idx, NULL), NM_OK);
    const int64_t sizes[] = {10, 1300, 3, 700};
    for (int i = 0; i < 4; i++)
        check_search(idx, q, sizes[i], bank, m, dim, i % 2 ? 1 : 4);
    float none = -1;
    assert_int_equal(knn_search(idx, q, 0, 1, &none, NULL), NM_OK);
    assert_true(none == -1);
    knn_index_free(idx);
    free(q);
    free(bank);
    backend_destroy(be);
}

static void test_invalid_arguments(void **state)
{
    (void)state;
    nm_backend *be = backend();
    float bank[10 * 4] = {0};
    float q[4] = {0}, d[64];
    knn_index *idx = NULL;
    nm_error err = {0};
    assert_int_equal(knn_index_create(be, bank, 0, 4, NULL, &idx, &err), NM_ERR_ARG);
    assert_null(idx);
    assert_int_equal(knn_index_create(be, bank, 10, 0, NULL, &idx, &err), NM_ERR_ARG);
    assert_int_equal(knn_index_create(NULL, bank, 10, 4, NULL, &idx, &err), NM_ERR_ARG);
    assert_int_equal(knn_index_create(be, NULL, 10, 4, NULL, &idx, &err), NM_ERR_ARG);
    assert_int_equal(knn_index_create(be, bank, 10, 4, NULL, &idx, &err), NM_OK);
    const int bad_k[] = {0, -1, 65, 11};
    for (int i = 0; i < 4; i++) {
        err.code = NM_OK;
        assert_int_equal(knn_search(idx, q, 1, bad_k[i], d, &err), NM_ERR_ARG);
        assert_int_equal(err.code, NM_ERR_ARG);
        assert_non_null(strstr(err.msg, "k ="));
    }
    assert_int_equal(knn_search(idx, q, 1, 10, d, &err), NM_OK); /* k == m */
    assert_int_equal(knn_search(idx, q, -1, 1, d, &err), NM_ERR_ARG);
    assert_int_equal(knn_search(idx, NULL, 1, 1, d, &err), NM_ERR_ARG);
    assert_int_equal(knn_search(NULL, q, 1, 1, d, &err), NM_ERR_ARG);
    knn_index_free(idx);
    knn_index_free(NULL);
    backend_destroy(be);
}

/* Gaussian rows around a low-rank structure (what CNN patch features look
 * like: a few directions carry most of the variance), plus far-away queries
 * (anomalies) and queries equal to bank rows. */
static float gaussian(rng *r)
{
    float u = rng_float(r) + 1e-7f, v = rng_float(r);
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

static float *low_rank_rows(size_t rows, int dim, int rank, float noise, uint64_t seed,
                            const float *dirs)
{
    rng r = {seed * 0x9E3779B97F4A7C15u + 7};
    float *f = calloc(rows * (size_t)dim, sizeof *f);
    assert_non_null(f);
    for (size_t i = 0; i < rows; i++) {
        float *row = f + i * (size_t)dim;
        for (int c = 0; c < rank; c++) {
            float w = gaussian(&r) * 3.0f / (1.0f + (float)c);
            for (int j = 0; j < dim; j++)
                row[j] += w * dirs[(size_t)c * (size_t)dim + (size_t)j];
        }
        for (int j = 0; j < dim; j++)
            row[j] += 1.0f + noise * gaussian(&r);
    }
    return f;
}

/* Each distance within 2e-5 of itself (plus 1e-6 of the norms for zero
 * distances): a missed neighbour would show as the next one's distance. */
static void check_tight(knn_index *idx, const float *q, int64_t nq, const float *bank,
                        int64_t m, int dim, int k)
{
    float *got = malloc((size_t)nq * (size_t)k * sizeof *got);
    assert_non_null(got);
    assert_int_equal(knn_search(idx, q, nq, k, got, NULL), NM_OK);
    double *ref = brute_force(q, nq, bank, m, dim, k);
    for (int64_t i = 0; i < nq; i++) {
        double norm = 0;
        for (int j = 0; j < dim; j++)
            norm += (double)q[i * dim + j] * q[i * dim + j];
        for (int j = 0; j < k; j++) {
            double g = got[i * k + j], r = ref[i * k + j];
            if (!(fabs(g - r) <= 2e-5 * r + 1e-6 * norm))
                fail_msg("dim %d k %d: query %lld neighbour %d: %.9g, reference %.9g",
                         dim, k, (long long)i, j, g, r);
        }
    }
    free(ref);
    free(got);
}

static void test_projected_search_is_exact(void **state)
{
    (void)state;
    nm_backend *be = backend();
    const int dim = 512, rank = 40;
    const int64_t m = 6000, nq = 300;
    rng r = {99};
    float *dirs = malloc((size_t)rank * dim * sizeof *dirs);
    assert_non_null(dirs);
    for (int i = 0; i < rank * dim; i++)
        dirs[i] = gaussian(&r) / sqrtf((float)dim);
    float *bank = low_rank_rows((size_t)m, dim, rank, 0.01f, 1, dirs);
    float *q = low_rank_rows((size_t)nq, dim, rank, 0.01f, 2, dirs);
    for (int64_t i = 0; i < 20; i++) /* anomalies: far off the subspace */
        for (int j = 0; j < dim; j++)
            q[i * dim + j] += 0.5f * gaussian(&r);
    for (int64_t i = 20; i < 40; i++) /* exact copies of bank rows */
        memcpy(q + i * dim, bank + (i * 97) * dim, dim * sizeof *q);
    knn_index *idx = NULL;
    assert_int_equal(knn_index_create(be, bank, m, dim, NULL, &idx, NULL), NM_OK);
    assert_non_null(knn_index_projection(idx));
    assert_int_equal(knn_index_projection(idx)->dims, knn_projection_auto_dims(m, dim));
    check_tight(idx, q, nq, bank, m, dim, 1);
    /* the bound prunes: far fewer exact distances than the brute force */
    int64_t measured = knn_last_exact_count(idx);
    print_message("projected search: %.1f exact distances per query of %lld rows\n",
                  (double)measured / (double)nq, (long long)m);
    assert_true(measured >= nq && measured < nq * m / 20);
    check_tight(idx, q, nq, bank, m, dim, 5);
    knn_index_free(idx);

    /* isotropic data: the subspace holds no more than its share, the bound
     * prunes little, and the answer is still exact */
    float *iso = malloc((size_t)m * dim * sizeof *iso);
    assert_non_null(iso);
    for (int64_t i = 0; i < m * dim; i++)
        iso[i] = gaussian(&r);
    knn_options o;
    knn_options_default(&o);
    o.projection_dims = 64;
    assert_int_equal(knn_index_create(be, iso, m, dim, &o, &idx, NULL), NM_OK);
    check_tight(idx, iso + 17 * dim, 50, iso, m, dim, 2);
    knn_index_free(idx);
    free(iso);
    free(q);
    free(bank);
    free(dirs);
    backend_destroy(be);
}

/* A stored projection gives the same answers; a query with a NaN gives NaN
 * in both search modes, and the other queries are unaffected. */
static void test_stored_projection_and_nan(void **state)
{
    (void)state;
    nm_backend *be = backend();
    const int64_t m = 3000, nq = 64;
    const int dim = 256;
    float *bank = features((size_t)m, dim, 21);
    float *q = features((size_t)nq, dim, 22);
    knn_index *a = NULL, *b = NULL;
    assert_int_equal(knn_index_create(be, bank, m, dim, NULL, &a, NULL), NM_OK);
    const knn_projection *p = knn_index_projection(a);
    assert_non_null(p);
    knn_projection *copy = NULL;
    assert_int_equal(knn_projection_copy(p->mean, p->basis, p->dim, p->dims, &copy, NULL),
                     NM_OK);
    knn_options o;
    knn_options_default(&o);
    o.projection = copy;
    o.projection_dims = 0; /* ignored: a projection is given */
    assert_int_equal(knn_index_create(be, bank, m, dim, &o, &b, NULL), NM_OK);
    knn_projection_free(copy); /* the index holds its own */
    q[5 * dim + 3] = NAN;
    float da[64 * 3], db[64 * 3];
    assert_int_equal(knn_search(a, q, nq, 3, da, NULL), NM_OK);
    assert_int_equal(knn_search(b, q, nq, 3, db, NULL), NM_OK);
    for (int i = 0; i < nq * 3; i++) {
        if (i / 3 == 5)
            assert_true(isnan(da[i]) && isnan(db[i]));
        else
            assert_true(da[i] == db[i]);
    }
    knn_index_free(b);
    o.projection = NULL;
    assert_int_equal(knn_index_create(be, bank, m, dim, &o, &b, NULL), NM_OK);
    assert_null(knn_index_projection(b));
    assert_int_equal(knn_search(b, q, nq, 1, db, NULL), NM_OK);
    assert_true(isnan(db[5]));
    assert_int_equal(knn_last_exact_count(b), nq * m);
    knn_index_free(b);
    knn_index_free(a);
    free(q);
    free(bank);
    backend_destroy(be);
}

/* The basis is orthonormal and finds a planted direction: rows spread
 * along one unit vector (variance 100) over isotropic noise (variance 1)
 * give that vector first. */
static void test_projection_finds_principal_direction(void **state)
{
    (void)state;
    nm_backend *be = backend();
    const int dim = 64, dims = 8;
    const int64_t m = 4000;
    rng r = {5};
    float dir[64];
    double n2 = 0;
    for (int j = 0; j < dim; j++) {
        dir[j] = gaussian(&r);
        n2 += (double)dir[j] * dir[j];
    }
    for (int j = 0; j < dim; j++)
        dir[j] = (float)(dir[j] / sqrt(n2));
    float *bank = malloc((size_t)m * dim * sizeof *bank);
    assert_non_null(bank);
    for (int64_t i = 0; i < m; i++) {
        float w = 10.0f * gaussian(&r);
        for (int j = 0; j < dim; j++)
            bank[i * dim + j] = 3.0f + w * dir[j] + gaussian(&r);
    }
    knn_projection *p = NULL;
    assert_int_equal(knn_projection_fit(be, bank, m, dim, dims, &p, NULL), NM_OK);
    for (int a = 0; a < dims; a++)
        for (int b = 0; b < dims; b++) {
            double s = 0;
            for (int j = 0; j < dim; j++)
                s += (double)p->basis[a * dim + j] * p->basis[b * dim + j];
            assert_true(fabs(s - (a == b)) < 1e-6);
        }
    double c = 0;
    for (int j = 0; j < dim; j++)
        c += (double)p->basis[j] * dir[j];
    assert_true(fabs(fabs(c) - 1.0) < 1e-3);
    for (int j = 0; j < dim; j++) /* the mean is 3 + (mean of w) dir */
        assert_true(fabs(p->mean[j] - 3.0) < 0.5);
    knn_projection_free(p);
    knn_projection *bad = NULL;
    nm_error err = {0};
    assert_int_equal(knn_projection_fit(be, bank, m, dim, dim + 1, &bad, &err), NM_ERR_ARG);
    assert_null(bad);
    free(bank);
    backend_destroy(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_brute_force),
        cmocka_unit_test(test_single_query_and_many_queries),
        cmocka_unit_test(test_large_k_and_k_equal_to_bank),
        cmocka_unit_test(test_duplicates_are_at_distance_zero),
        cmocka_unit_test(test_workspace_reuse),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_projected_search_is_exact),
        cmocka_unit_test(test_stored_projection_and_nan),
        cmocka_unit_test(test_projection_finds_principal_direction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
